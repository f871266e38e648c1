"""
The plan of the ``mail`` formula: where mail goes, what is installed, every
file with its owner, mode and source, and what the clean states remove. Used
by the ``mailstack`` execution module (``mailstack_facts.plan`` calls
``build``). The content of the files it writes is ``mailstack_content``'s,
which ``build`` reaches through the ``utils`` mapping it is handed (Salt's
utils cannot import each other).

Everything here works on plain data: validated settings, the decided mode and
container status, and a few facts the module reads off the running system.
"""

import collections
import shlex
import zlib

ALERT_UNIT = "mail-alert@.service"

ALERT_DROPIN = "50-mail-alert.conf"

HEALTH_UNIT = "mail-health"

METRICS_UNIT = "mail-metrics"

# The file node_exporter's textfile collector reads (it reads *.prom only).
METRICS_FILE = "mailstack.prom"

# The collector runs on the system's own Python, not Salt's: isolated, without site.
METRICS_PYTHON = "/usr/bin/python3"

# Where an operator's own main.cf is kept when mail:take_over:postfix hands Postfix to the formula.
MAIN_CF_BEFORE = "main.cf.before-mail-formula"

# The file postmap builds from a lookup table's source, by table type.
MAP_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".dir", "sdbm": ".dir"}


def map_file(source, map_type):
    """The table postmap builds from ``source`` for ``map_type``."""
    return source + MAP_SUFFIX.get(map_type, ".db")


def _tables(source, map_type):
    """Every table the formula may have built from ``source``: what removing it removes."""
    return sorted({map_file(source, kind) for kind in ("hash", "lmdb", map_type)})


def _from_template(item, template, settings, *, mode="0644", group="root", context=None, secret=False):
    """A file written from a template; ``sources`` tries mail:tofs:source_files first."""
    return {
        **_placed(item),
        "present": True,
        "sources": settings["tofs"]["source_files"].get(template, []),
        "template": template,
        "user": "root",
        "group": group,
        "mode": mode,
        "context": dict(context or {}),
        "secret": secret,
    }


def _with_contents(item, contents, mode="0644"):
    return {
        **_placed(item),
        "present": True,
        "template": "",
        "contents": contents,
        "user": "root",
        "group": "root",
        "mode": mode,
        "secret": False,
    }


def _absent(item, tables=()):
    return {**_placed(item), "present": False, "tables": [table["path"] for table in tables]}


def _placed(item):
    """What a file of the layout keeps of its catalogue item: where it is and why it may be touched."""
    return {"path": item["path"], "key": item["key"], "guard": item["guard"]}


def _loopback_target():
    return {
        "host": "127.0.0.1",
        "port": 25,
        "tls": "none",
        "user": "",
        "password": "",
        "ca_file": "",
        "tls_name": "",
    }


def _upstream(settings, section):
    upstream = {k: settings[section][k] for k in ("port", "tls", "user", "password", "ca_file", "tls_name")}
    upstream["host"] = settings[section][settings[section]["server_key"]]
    if not upstream["ca_file"]:
        upstream["ca_file"] = settings["lookup"]["ca_bundle"]
    return upstream


Delivery = collections.namedtuple("Delivery", "postfix msmtp postfix_upstream")
Delivery.__doc__ = """How mail leaves this host: whether the local Postfix relays
(``postfix``), where msmtp sends (``msmtp``: a target) and where Postfix
relays to (``postfix_upstream``: a target, or ``None`` for the recipient's MX)."""


def _delivery(settings, mode_name, container):
    if mode_name == "mailu" and not (settings["mailu"]["queue"] and not container):
        return Delivery(postfix=False, msmtp=_upstream(settings, "mailu"), postfix_upstream=None)
    if mode_name == "mailu":
        return Delivery(postfix=True, msmtp=_loopback_target(), postfix_upstream=_upstream(settings, "mailu"))
    relay = _upstream(settings, "relay") if settings["relay"]["relayhost"] else None
    if container:
        return Delivery(postfix=False, msmtp=relay or _loopback_target(), postfix_upstream=None)
    return Delivery(postfix=True, msmtp=_loopback_target(), postfix_upstream=relay)


# The modes that send through an upstream of the settings, each named as its section.
UPSTREAM_MODES = ("mailu", "relay")


def upstreams(settings):
    """The targets of the settings' upstreams, by section (``mailu``, ``relay``),
    whether or not the mode sends to them: what checks of every value that may
    reach msmtp's files render (``mailstack_content.overlong_msmtp_line``)."""
    return {section: _upstream(settings, section) for section in UPSTREAM_MODES}


def postfix_upstreams(settings, container):
    """Where Postfix relays to in each mode of the settings that relays through
    Postfix to an upstream, by section: the ``_delivery`` of each, for checks
    that hold whatever the mode (``mailstack_settings.validate``)."""
    deliveries = {mode_name: _delivery(settings, mode_name, container) for mode_name in UPSTREAM_MODES}
    return {mode_name: d.postfix_upstream for mode_name, d in deliveries.items() if d.postfix_upstream}


def _describe(target):
    if target is None:
        return "the recipient's MX, found through DNS"
    auth = f" as {target['user']}" if target["user"] else ""
    host = f"[{target['host']}]" if ":" in target["host"] else target["host"]
    return f"{host}:{target['port']} (TLS: {target['tls']}){auth}"


def _packages(settings, postfix_wanted, owned_packages):
    """
    What is installed (and by which state: ``by_state``), what the mode has
    no use for (``unwanted``: the package that conflicts with or is replaced
    by the one it installs) and of that what is removed: only what the
    formula installed (``remove``). The module refuses a plan whose unwanted
    package is installed and not the formula's.
    """
    msmtp, postfix = settings["lookup"]["msmtp"], settings["lookup"]["postfix"]
    mta = [msmtp["mta_pkg"]] if msmtp["mta_pkg"] else []
    by_state = {
        "msmtp": msmtp["pkgs"],
        "postfix": postfix["pkgs"] if postfix_wanted else [],
        "sendmail": [] if postfix_wanted else mta,
    }
    unwanted = mta if postfix_wanted else [postfix["pkgs"][0]]
    return {
        "install": by_state["msmtp"] + by_state["postfix"] + by_state["sendmail"],
        "unwanted": unwanted,
        "remove": [name for name in unwanted if name in owned_packages],
        "by_state": by_state,
        "owned": list(owned_packages),
        "state_dir": settings["lookup"]["state_dir"],
    }


def _sendmail(settings, postfix_wanted, items):
    """How msmtp becomes sendmail where Postfix is not: its MTA package, or a symlink."""
    msmtp = settings["lookup"]["msmtp"]
    if postfix_wanted:
        return {"package": "", "link": None}
    if msmtp["mta_pkg"]:
        return {"package": msmtp["mta_pkg"], "link": None}
    return {"package": "", "link": _sendmail_link(items)}


def _sendmail_link(items):
    link = items["msmtp:sendmail"]
    return {"path": link["path"], "target": link["target"]}


def _msmtp_log(settings, syslog):
    """Where msmtp logs: a log file (``logfile``), else ``syslog`` where it runs.
    A log file is root's alone: only root may send where one is allowed."""
    logfile = settings["msmtp"]["logfile"]
    if logfile:
        return {"logfile": logfile, "mode": "0600", "syslog": False, "where": logfile}
    if syslog:
        return {"logfile": "", "syslog": True, "where": "syslog (facility LOG_MAIL)"}
    return {
        "logfile": "",
        "syslog": False,
        "where": "nowhere: no syslog (/dev/log) and mail:msmtp:logfile is empty",
    }


def msmtp_log_problem(settings, secret_in_msmtprc):
    """Why ``mail:msmtp:logfile`` cannot be used here, or ``None``: every user
    who can append to a log file can also truncate it or forge lines in it."""
    if not settings["msmtp"]["logfile"]:
        return None
    if not secret_in_msmtprc:
        return (
            "every local user may send here (msmtp holds no password), and a log file every sender can"
            " append to is one any of them can truncate or forge lines in: leave it empty so that"
            " msmtp logs to syslog"
        )
    if settings["senders"]:
        return (
            "mail:senders may send too, and a log file they can append to is one each of them can"
            " truncate or forge lines in: leave it empty so that msmtp logs to syslog"
        )
    return None


def written_files(plan):
    """``(pillar key, path)`` of every file this plan writes with content (each
    carries the formula's marker), for the module to check before any change."""
    return [
        (item["key"], item["path"])
        for item in plan["inventory"]
        if item["kind"] in ("file", "textfile") and item["guard"] == "marker" and item["wanted"]
    ]


def _who_can_send(settings, secret_in_msmtprc):
    if not secret_in_msmtprc:
        return "every local user"
    return (
        "root and mail:senders ("
        + (", ".join(settings["senders"]) or "none")
        + "), who can read the password"
    )


def build(utils, settings, decided, container, host):
    """
    The plan: what the formula does on this host, with the content of every
    file it writes (``mailstack_content.files``).

    utils
        The formula's utils (``mailstack_content`` is used).
    settings
        Validated settings. ``decided`` and ``container`` are
        ``mailstack.mode`` and ``mailstack.is_container``.
    host
        Facts of the running system: ``fqdn``, ``systemd`` (PID 1 is
        systemd), ``syslog`` (``/dev/log`` exists), ``installed_dropins``
        (alert drop-ins present), ``health_timer_installed``, ``metrics_timer_installed``,
        ``owned_files`` (recorded as the formula's), ``owned_packages``
        (installed by the formula), ``formula_dir`` (on the file server),
        ``mailu_user_is_address``, and ``mask``: what replaces passwords, or
        ``None`` to keep them.
    """
    items = catalogue(settings, host)
    delivery = _delivery(settings, decided["mode"], container["container"])
    postfix, msmtp_target, postfix_upstream = delivery.postfix, delivery.msmtp, delivery.postfix_upstream
    if host["mask"]:
        for target in (msmtp_target, postfix_upstream):
            if target and target["password"]:
                target["password"] = host["mask"]
    mailu_user = settings["mailu"]["user"]
    envelope_sender = mailu_user if decided["mode"] == "mailu" and host["mailu_user_is_address"] else ""
    relay_sender = settings["relay"]["sender"] if decided["mode"] == "relay" else ""
    myhostname = host["fqdn"]
    msmtp_log = _msmtp_log(settings, host["syslog"])
    files = utils["mailstack_content.files"](
        settings, delivery, envelope_sender, relay_sender, myhostname, msmtp_log
    )
    secret_in_msmtprc = files["secret_in_msmtprc"]
    alerts, health = _alerts_plan(settings, host, items), _health_plan(settings, host, items)
    metrics = _metrics_plan(settings, host, items, decided["mode"], postfix)
    packages = _packages(settings, postfix, host["owned_packages"])
    layout = _completed(
        {
            "smtp": _smtp_files(settings, files, postfix, items),
            "smtp_secrets_absent": {} if postfix else {"secrets-absent": _postfix_secrets_absent(items)},
            "msmtp": _msmtp_files(settings, files, items),
            "alerts": _alerts_files(settings, alerts, items),
            "health": _health_files(settings, health, items),
            "metrics": _metrics_files(settings, metrics, items),
        },
        settings,
        host["formula_dir"],
        utils["mailstack_content.marker"](),
        utils["mailstack_content.written_without_template"](),
    )
    _add_needs(layout, health, metrics)
    health["timer_wanted"], metrics["timer_wanted"] = _timer_wanted(health), _timer_wanted(metrics)
    next_hops = {"msmtp": _describe(msmtp_target), "postfix": _describe(postfix_upstream) if postfix else ""}
    plan = {
        "mode": decided["mode"],
        "mode_reason": decided["reason"],
        "container": container["container"],
        "container_reason": container["reason"],
        "postfix": postfix,
        "postfix_reason": _postfix_reason(settings, container["container"], postfix),
        "sendmail": "postfix" if postfix else "msmtp",
        "packages": packages,
        "msmtp": msmtp_target,
        "postfix_upstream": postfix_upstream,
        "next_hop": "",
        "summary": {
            "msmtp sends to": next_hops["msmtp"],
            "postfix relays to": next_hops["postfix"] or "(no postfix)",
            "mail for root goes to": settings["admin"] or f"root@{myhostname} (mail:admin is empty)",
            "sender": envelope_sender or relay_sender or settings["from"],
            "who can send": _who_can_send(settings, secret_in_msmtprc),
            "msmtp logs to": msmtp_log["where"],
        },
        "alerts": alerts,
        "health": health,
        "files": files,
        "sendmail_provider": _sendmail(settings, postfix, items),
        # msmtp's sendmail link, made where the distribution has no msmtp-mta, goes before Postfix comes.
        "sendmail_link_removed": _sendmail_link(items)
        if postfix and not settings["lookup"]["msmtp"]["mta_pkg"]
        else None,
        "senders_group": _senders_group(settings, secret_in_msmtprc, items),
        "layout": layout,
        "metrics": metrics,
        "inventory": inventory(
            items,
            layout,
            packages,
            postfix,
            files["msmtp_log"]["logfile"],
            metrics["enabled"] and metrics["textfile"],
        ),
        "clean": cleanup(settings, host, items),
    }
    plan["next_hop"] = _describe(next_hop(plan))
    return plan


def next_hop(plan):
    """The target the first hop of system mail goes to (``None``: the
    recipient's MX, found through DNS): sendmail's next hop is Postfix's where
    it runs, else msmtp's."""
    return plan["postfix_upstream"] if plan["postfix"] else plan["msmtp"]


def _needs(package=False, postmap=False, daemon_reload=False, postfix_watches=False, timer_stopped=False):
    """
    What the state of a file of the layout needs besides the file:

    package
        the package installed first (the file is used by its program).
    postmap
        its lookup table built from it (``mailstack.postmapped``) after it.
    daemon_reload
        ``systemctl daemon-reload`` after it changes (a unit file).
    postfix_watches
        Postfix reloaded or restarted when it (or its table) changes.
    timer_stopped
        the timer stopped before it is removed.
    """
    return {
        "package": package,
        "postmap": postmap,
        "daemon_reload": daemon_reload,
        "postfix_watches": postfix_watches,
        "timer_stopped": timer_stopped,
    }


def _add_needs(layout, health, metrics):
    """Every file of ``layout`` says what its state needs (``_needs``)."""
    for files in layout.values():
        for file in files.values():
            file["needs"] = _needs()
    for key, file in layout["smtp"].items():
        is_map = key == "sasl-passwd"
        file["needs"] = _needs(package=is_map, postmap=is_map and file["present"], postfix_watches=True)
    layout["msmtp"]["msmtprc"]["needs"] = _needs(package=True)
    for key, file in layout["alerts"].items():
        file["needs"] = _needs(daemon_reload=key != "script")
    for scheduled, files in ((health, layout["health"]), (metrics, layout["metrics"])):
        for key in ("service", "timer"):
            if key in files:
                stop_first = not files[key]["present"] and scheduled["timer_installed"]
                files[key]["needs"] = _needs(daemon_reload=True, timer_stopped=stop_first)


def _timer_wanted(scheduled):
    """``running``, ``dead`` (installed and no longer wanted) or ``""`` (nothing to do)."""
    if not scheduled["systemd"]:
        return ""
    if scheduled["enabled"]:
        return "running"
    return "dead" if scheduled["timer_installed"] else ""


def _recipient(settings):
    """Who system mail, alerts and the health mail go to: mail:admin, else root."""
    return settings["admin"] or "root"


def _alerts_plan(settings, host, items):
    """OnFailure= drop-ins for mail:alerts:units, and the ones to remove."""
    lookup, units = settings["lookup"], settings["alerts"]["units"]
    systemd = host["systemd"]
    dropins = {unit: items[f"alerts:dropin:{unit}"]["path"] for unit in units} if systemd else {}
    recipient = _recipient(settings)
    if not systemd:
        reason = "systemd does not run here, so no unit can alert on failure: nothing to do"
    elif units:
        reason = f"{', '.join(units)} mail {recipient} when they fail"
    else:
        reason = "mail:alerts:units is empty"
    return {
        "systemd": systemd,
        "active": systemd and bool(units or settings["health"]["enabled"]),
        "units": units,
        "interval": settings["alerts"]["interval"],
        "recipient": recipient,
        "script": items["alerts:script"]["path"],
        "unit_file": items["alerts:unit"]["path"],
        "dropins": dropins,
        "stale_dropins": [path for path in host["installed_dropins"] if path not in dropins.values()],
        "shell_vars": _shell_vars(
            recipient=recipient,
            sendmail=lookup["msmtp"]["sendmail"],
            state_dir=f"{lookup['state_dir']}/alerts",
            interval=settings["alerts"]["interval"],
        ),
        "reason": reason,
    }


def _shell_vars(**values):
    """Values for the variable assignments at the top of a shell script, quoted."""
    return {name: shlex.quote(str(value)) for name, value in values.items()}


def _health_plan(settings, host, items):
    """The daily "is alive" mail: a systemd timer, or a cron entry without systemd."""
    lookup, health = settings["lookup"], settings["health"]
    systemd = host["systemd"]
    seed = zlib.crc32(host["fqdn"].encode())
    if not health["enabled"]:
        reason = "mail:health:enabled is false"
    elif systemd:
        reason = f"{HEALTH_UNIT}.timer ({health['on_calendar']}) mails {_recipient(settings)}"
    else:
        reason = f"no systemd: a cron entry in {lookup['cron_dir']} mails {_recipient(settings)} daily"
    return {
        **health,
        "systemd": systemd,
        "recipient": _recipient(settings),
        "script": items["health:script"]["path"],
        "service_file": items["health:service"]["path"],
        "timer_file": items["health:timer"]["path"],
        "timer": items["health:timer-unit"]["path"],
        "timer_installed": host["health_timer_installed"],
        "cron_file": items["health:cron"]["path"],
        "cron_time": {"minute": seed % 60, "hour": seed // 60 % 24},
        "state_file": items["state:health.last"]["path"],
        "shell_vars": _shell_vars(
            recipient=_recipient(settings),
            sendmail=lookup["msmtp"]["sendmail"],
            state_file=items["state:health.last"]["path"],
            retries=health["retries"],
            retry_delay=health["retry_delay"],
        ),
        "reason": reason,
    }


def _cron_minutes(interval):
    """The minute field of a cron entry running every ``interval`` seconds (whole minutes)."""
    minutes = max(1, interval // 60)
    return "*" if minutes == 1 else f"*/{minutes}"


def _metrics_plan(settings, host, items, mode_name, postfix):
    """The metrics file for node_exporter: its collector, refreshed by a timer or cron."""
    lookup, metrics = settings["lookup"], settings["metrics"]
    systemd = host["systemd"]
    textfile = items["metrics:textfile"]["path"]
    if not metrics["enabled"]:
        reason = "mail:metrics:enabled is false"
    elif systemd:
        reason = f"{METRICS_UNIT}.timer writes {textfile} every {metrics['interval']} s"
    else:
        reason = f"no systemd: a cron entry in {lookup['cron_dir']} writes {textfile}"
    state_dir = lookup["state_dir"]
    return {
        **metrics,
        "systemd": systemd,
        "textfile": textfile,
        "script": items["metrics:script"]["path"],
        "timer": items["metrics:timer-unit"]["path"],
        "timer_installed": host["metrics_timer_installed"],
        "accuracy": max(1, metrics["interval"] // 10),
        "cron_minutes": _cron_minutes(metrics["interval"]),
        # What the collector reads; nothing secret, no address.
        "collector": {
            "directory": metrics["directory"],
            "file": METRICS_FILE,
            "mode": mode_name,
            "sendmail": "postfix" if postfix else "msmtp",
            "postfix": postfix,
            "postfix_log": lookup["postfix"]["maillog_file"],
            "msmtp_log": settings["msmtp"]["logfile"],
            "health_state": items["state:health.last"]["path"],
            "alerts_dir": f"{state_dir}/alerts",
            "state": items["state:metrics.json"]["path"],
            "journal_cursor": items["state:metrics.journal"]["path"],
        },
        "reason": reason,
    }


def _postfix_reason(settings, container, postfix):
    if postfix:
        return "a local loopback-only Postfix relay queues the mail"
    if container:
        return "no Postfix daemon inside a container: msmtp sends directly"
    return "mail:mailu:queue is false: msmtp submits straight to Mailu"


def alert_dropin_glob(unit_dir):
    """The pattern matching every alert drop-in the formula may have installed."""
    return f"{unit_dir}/*.d/{ALERT_DROPIN}"


# ------------------------------------ everything the formula may touch, once ---


def _item(concern, kind, path, key, guard, **extra):
    """
    One thing the formula may write, create, run or remove.

    kind
        ``file``, ``table`` (built by postmap from a file), ``directory``,
        ``log_file``, ``group``, ``package``, ``program`` (run, never
        written), ``link`` (the sendmail link), ``unit``, ``textfile`` (the
        metrics file, written by the formula's collector) or ``command`` (a
        command line of the system's run by a state).
    key
        The pillar key (under ``mail:``) that names or moves it.
    guard
        What makes it the formula's: ``marker`` (its marker line), ``record``
        (the formula created it and recorded it), ``kept`` (the operator's
        own file, copied once before the formula replaces it, never removed),
        ``source`` (a table goes with the marked file it is built from),
        ``installed`` (the formula installed the package and recorded it),
        ``own directory`` (only the formula's own files in it are removed,
        then the directory if empty), ``link to msmtp`` (removed only while it
        points to msmtp), ``package`` (a unit of a package the formula
        installed), ``root-owned`` (a program it runs: every part of its path
        root's alone), ``system`` (a command of the system's, with fixed
        arguments).
    """
    return {"concern": concern, "kind": kind, "path": path, "key": key, "guard": guard, **extra}


def catalogue(settings, host):
    """
    Everything the formula may write, create, run or remove on this host, in
    any mode, by a stable id: the one place where its paths, names, pillar
    keys and guards are spelled. The layout, the clean-up, the ownership check
    and the inventory read it.
    """
    items = {}
    for item in (
        *_smtp_items(settings),
        *_msmtp_items(settings, host),
        *_alerts_items(settings, host),
        *_health_items(settings),
        *_metrics_items(settings),
        *_state_items(settings),
    ):
        items[item.pop("id")] = item
    return items


def _smtp_items(settings):
    postfix = settings["lookup"]["postfix"]
    config_dir = postfix["config_dir"]
    sasl = f"{config_dir}/sasl_passwd"
    yield _item(
        "smtp", "file", f"{config_dir}/main.cf", "lookup:postfix:config_dir", "marker", id="smtp:main-cf"
    )
    yield _item(
        "smtp",
        "file",
        f"{config_dir}/{MAIN_CF_BEFORE}",
        "take_over:postfix",
        "kept",
        id="smtp:main-cf-before",
    )
    yield _item("smtp", "file", sasl, "lookup:postfix:config_dir", "marker", id="smtp:sasl-passwd")
    for table in _tables(sasl, postfix["map_type"]):
        yield _item(
            "smtp", "table", table, "lookup:postfix:map_type", "source", source=sasl, id=f"smtp:table:{table}"
        )
    for name in ("recipient_canonical", "virtual_alias"):
        path = f"{config_dir}/{name}"
        yield _item(
            "smtp", "file", path, "lookup:postfix:config_dir", "marker", id=f"smtp:{name.replace('_', '-')}"
        )
    yield _item("smtp", "unit", postfix["service"], "lookup:postfix:service", "package", id="smtp:service")
    if postfix["prestart"]:
        yield _item(
            "smtp",
            "program",
            postfix["prestart"][0],
            "lookup:postfix:prestart",
            "root-owned",
            id="smtp:prestart",
        )
    for name in postfix["pkgs"]:
        yield _item("smtp", "package", name, "lookup:postfix:pkgs", "installed", id=f"smtp:package:{name}")


def _msmtp_items(settings, host):
    msmtp = settings["lookup"]["msmtp"]
    yield _item("msmtp", "file", msmtp["config"], "lookup:msmtp:config", "marker", id="msmtp:msmtprc")
    yield _item("msmtp", "file", msmtp["aliases"], "lookup:msmtp:aliases", "marker", id="msmtp:aliases")
    logfiles = dict.fromkeys(
        [*([settings["msmtp"]["logfile"]] if settings["msmtp"]["logfile"] else []), *host["owned_files"]]
    )
    for path in logfiles:
        yield _item("msmtp", "log_file", path, "msmtp:logfile", "record", id=f"msmtp:logfile:{path}")
    yield _item("msmtp", "group", msmtp["group"], "lookup:msmtp:group", "record", id="msmtp:group")
    yield _item("msmtp", "program", msmtp["binary"], "lookup:msmtp:binary", "root-owned", id="msmtp:binary")
    yield _item(
        "msmtp",
        "link",
        msmtp["sendmail"],
        "lookup:msmtp:sendmail",
        "link to msmtp",
        target=msmtp["binary"],
        id="msmtp:sendmail",
    )
    packages = ([msmtp["mta_pkg"]] if msmtp["mta_pkg"] else []) + msmtp["pkgs"]
    for name in packages:
        key = "lookup:msmtp:mta_pkg" if name == msmtp["mta_pkg"] else "lookup:msmtp:pkgs"
        yield _item("msmtp", "package", name, key, "installed", id=f"msmtp:package:{name}")


def _alerts_items(settings, host):
    lookup = settings["lookup"]
    unit_dir = lookup["systemd_unit_dir"]
    yield _item(
        "alerts",
        "file",
        f"{lookup['libexec_dir']}/mail-alert",
        "lookup:libexec_dir",
        "marker",
        id="alerts:script",
    )
    yield _item(
        "alerts", "file", f"{unit_dir}/{ALERT_UNIT}", "lookup:systemd_unit_dir", "marker", id="alerts:unit"
    )
    for unit in settings["alerts"]["units"]:
        path = f"{unit_dir}/{unit}.d/{ALERT_DROPIN}"
        yield _item("alerts", "file", path, "alerts:units", "marker", id=f"alerts:dropin:{unit}")
    yield _item(
        "alerts",
        "command",
        "systemctl daemon-reload",
        "lookup:systemd_unit_dir",
        "system",
        id="alerts:daemon-reload",
    )
    for path in host["installed_dropins"]:
        yield _item("alerts", "file", path, "alerts:units", "marker", id=f"alerts:installed-dropin:{path}")


def _scheduled_script_items(settings, concern, unit):
    """A script of the formula's run by ``<unit>.timer`` (its service and timer
    units), or by a cron entry where systemd does not run."""
    lookup = settings["lookup"]
    unit_dir = lookup["systemd_unit_dir"]
    libexec = f"{lookup['libexec_dir']}/{unit}"
    yield _item(concern, "file", libexec, "lookup:libexec_dir", "marker", id=f"{concern}:script")
    for suffix in ("service", "timer"):
        path = f"{unit_dir}/{unit}.{suffix}"
        yield _item(concern, "file", path, "lookup:systemd_unit_dir", "marker", id=f"{concern}:{suffix}")
    cron = f"{lookup['cron_dir']}/{unit}"
    yield _item(concern, "file", cron, "lookup:cron_dir", "marker", id=f"{concern}:cron")
    yield _item(concern, "unit", f"{unit}.timer", f"{concern}:enabled", "marker", id=f"{concern}:timer-unit")


def _health_items(settings):
    yield from _scheduled_script_items(settings, "health", HEALTH_UNIT)


def _metrics_items(settings):
    lookup = settings["lookup"]
    yield from _scheduled_script_items(settings, "metrics", METRICS_UNIT)
    # The collector, run once by the apply that writes it (then by its timer or cron).
    yield _item(
        "metrics",
        "command",
        f"{lookup['libexec_dir']}/{METRICS_UNIT}",
        "lookup:libexec_dir",
        "marker",
        id="metrics:refresh",
    )
    # Written by the collector, not by Salt, with the formula's marker as its first (comment) line.
    yield _item(
        "metrics",
        "textfile",
        f"{settings['metrics']['directory']}/{METRICS_FILE}",
        "metrics:directory",
        "marker",
        id="metrics:textfile",
    )


# What the formula keeps in its state directory: removed by mail.clean with it.
STATE_FILES = (
    "apply-in-progress",
    "health.last",
    "metrics.json",
    "metrics.journal",
    "owned.json",
    "owned.json.new",
)
STATE_SUBDIRS = ("alerts",)


def _state_items(settings):
    lookup = settings["lookup"]
    for key in ("libexec_dir", "state_dir"):
        yield _item("state", "directory", lookup[key], f"lookup:{key}", "own directory", id=f"state:{key}")
    state_dir = lookup["state_dir"]
    for name in STATE_FILES:
        yield _item(
            "state", "file", f"{state_dir}/{name}", "lookup:state_dir", "own directory", id=f"state:{name}"
        )
    for name in STATE_SUBDIRS:
        yield _item(
            "state",
            "directory",
            f"{state_dir}/{name}",
            "lookup:state_dir",
            "own directory",
            id=f"state:{name}",
        )


def inventory(items, layout, packages, postfix, logfile, textfile=""):
    """
    The catalogue as a list, each item saying whether this plan wants it
    (``wanted``) and, for files, with the owner and mode the plan gives it.
    """
    files = {file["path"]: file for concern in layout.values() for file in concern.values()}
    used = {
        "package": set(packages["install"]),
        "program": {
            items["msmtp:binary"]["path"],
            *([items["smtp:prestart"]["path"]] if postfix and "smtp:prestart" in items else []),
        },
        "unit": {items["smtp:service"]["path"]} if postfix else set(),
        "log_file": {logfile} if logfile else set(),
        "textfile": {textfile} if textfile else set(),
        # The record of what the formula owns lives in its state directory.
        "directory": {item["path"] for item in items.values() if item["kind"] == "directory"},
        "command": {item["path"] for item in items.values() if item["kind"] == "command"},
    }
    result = []
    for item_id, item in sorted(items.items()):
        entry = {"id": item_id, **item, "user": "root", "group": "root", "mode": ""}
        file = files.get(item["path"]) if item["kind"] == "file" else None
        if file is not None:
            entry["wanted"] = file["present"]
            if file["present"]:
                entry.update({name: file[name] for name in ("user", "group", "mode")})
        else:
            entry["wanted"] = item["path"] in used.get(item["kind"], ())
        result.append(entry)
    return result


# ------------------------------------------------ the files, state by state ---


def _smtp_files(settings, files, postfix, items):
    """The Postfix relay's files, by the suffix of their state ID (mail-smtp-config-<key>)."""
    if not postfix:
        return {}
    sasl = items["smtp:sasl-passwd"]
    tables = [
        items[f"smtp:table:{path}"]
        for path in _tables(sasl["path"], settings["lookup"]["postfix"]["map_type"])
    ]
    main_cf = _from_template(
        items["smtp:main-cf"], "main.cf.jinja", settings, context={"params": files["main_cf"]}
    )
    main_cf["must_keep"] = files["main_cf"]
    main_cf["keep_as"] = items["smtp:main-cf-before"]["path"] if settings["take_over"]["postfix"] else ""
    layout = {
        "main-cf": main_cf,
        "sasl-passwd": _from_template(sasl, "sasl_passwd.jinja", settings, mode="0600", secret=True)
        if files["sasl_passwd"]
        else _absent(sasl, tables),
    }
    if files["sasl_passwd"]:
        wanted = map_file(sasl["path"], settings["lookup"]["postfix"]["map_type"])
        layout["sasl-passwd"]["stale_tables"] = [table["path"] for table in tables if table["path"] != wanted]
    for name in ("recipient_canonical", "virtual_alias"):
        item = items[f"smtp:{name.replace('_', '-')}"]
        layout[name.replace("_", "-")] = _with_contents(item, files[name]) if files[name] else _absent(item)
    return layout


def _completed(layout, settings, formula_dir, marker, written_without_template):
    """Every file of ``layout`` with all its state needs: a template's sources end
    with the formula's own, every template starts with the ``marker``
    (``{{ marker }}``), and removing one asks what the formula recorded.
    ``own_text``: no pillar source replaces a template whose text the formula
    also writes without it (``mailstack_content.own_text``)."""
    for files in layout.values():
        for file in files.values():
            file["state_dir"] = settings["lookup"]["state_dir"]
            if file["present"] and file["template"]:
                file["own_text"] = not file["sources"] and file["template"] in written_without_template
                file["sources"] = [*file["sources"], f"salt://{formula_dir}/files/{file['template']}"]
                file["context"] = {"marker": marker, **file["context"]}
    return layout


def _postfix_secrets_absent(items):
    """What a host without the local relay must not keep: the relay's password and its tables."""
    sasl = items["smtp:sasl-passwd"]
    return _absent(sasl, [item for item in items.values() if item.get("source") == sasl["path"]])


def _msmtp_files(settings, files, items):
    """msmtp's files, by the suffix of their state ID (mail-msmtp-config-<key>)."""
    msmtp = settings["lookup"]["msmtp"]
    secret = files["secret_in_msmtprc"]
    aliases = items["msmtp:aliases"]
    return {
        "msmtprc": _from_template(
            items["msmtp:msmtprc"],
            "msmtprc.jinja",
            settings,
            mode="0640" if secret else "0644",
            group=msmtp["group"] if secret else "root",
            secret=True,
        ),
        "aliases": _with_contents(aliases, files["msmtp_aliases"])
        if files["msmtp_aliases"]
        else _absent(aliases),
    }


def _senders_group(settings, secret_in_msmtprc, items):
    """The formula's group of mail:senders: only where msmtprc holds a password."""
    return {
        "name": items["msmtp:group"]["path"],
        "present": secret_in_msmtprc,
        "members": settings["senders"] if secret_in_msmtprc else [],
        "take_over": settings["take_over"]["senders_group"],
    }


def _alerts_files(settings, alerts, items):
    """The alert script, its unit, and one OnFailure= drop-in per unit (stale ones absent)."""
    if not alerts["systemd"]:
        return {}
    active = alerts["active"]
    script, unit = items["alerts:script"], items["alerts:unit"]
    layout = {
        "script": _from_template(
            script,
            "mail-alert.sh.jinja",
            settings,
            mode="0755",
            context={"shell_vars": alerts["shell_vars"]},
        )
        if active
        else _absent(script),
        "unit": _from_template(
            unit, "mail-alert@.service.jinja", settings, context={"script": alerts["script"]}
        )
        if active
        else _absent(unit),
    }
    for name in sorted(alerts["dropins"]):
        layout[f"dropin-{name}"] = _from_template(
            items[f"alerts:dropin:{name}"], "mail-alert-dropin.conf", settings
        )
    for path in alerts["stale_dropins"]:
        layout[f"stale-dropin-{path}"] = _absent(items[f"alerts:installed-dropin:{path}"])
    return layout


def _scheduled_files(settings, concern, unit, scheduled, items, script, context):
    """A scheduled script's files: the script (``script``: its template and
    context), and its timer units with systemd or its cron entry without
    (``<unit>.<key>.jinja`` with ``context``); all absent when it is off."""

    def file(key, template, **options):
        item = items[f"{concern}:{key}"]
        return _from_template(item, template, settings, **options) if scheduled["enabled"] else _absent(item)

    template, script_context = script
    layout = {"script": file("script", template, mode="0755", context=script_context)}
    for key in ("service", "timer") if scheduled["systemd"] else ("cron",):
        layout[key] = file(key, f"{unit}.{key}.jinja", context=context)
    return layout


def _health_files(settings, health, items):
    """The "is alive" script, and its timer units with systemd or its cron entry without."""
    context = {k: v for k, v in health.items() if k not in ("files",)}
    script = ("mail-health.sh.jinja", {"shell_vars": health["shell_vars"]})
    return _scheduled_files(settings, "health", HEALTH_UNIT, health, items, script, context)


def _metrics_files(settings, metrics, items):
    """The collector, its timer units with systemd or its cron entry without; and, when
    metrics are off, the metrics file it wrote."""
    enabled = metrics["enabled"]
    context = {k: metrics[k] for k in ("script", "interval", "accuracy", "cron_minutes")}
    script = ("mail-metrics.py.jinja", {"collector": metrics["collector"]})
    layout = _scheduled_files(settings, "metrics", METRICS_UNIT, metrics, items, script, context)
    if not enabled:
        layout["textfile"] = _absent(items["metrics:textfile"])
    return layout


def _paths(items, concern, *kinds, guards=None):
    """The paths (or names) of ``concern``'s items of ``kinds``, each once."""
    return list(
        dict.fromkeys(
            item["path"]
            for item in items.values()
            if item["concern"] == concern
            and item["kind"] in kinds
            and (guards is None or item["guard"] in guards)
        )
    )


def cleanup(settings, host, items=None):
    """
    What ``mail.clean`` and its per-concern clean states remove, whatever the
    current mode, read off the catalogue: units, every file the formula may
    have written, and the packages it installed (``host["owned_packages"]``;
    of Postfix's, the first only: the others may serve other programs).
    Only files that carry the formula's marker or that it recorded as its own
    are removed (``mailstack.formula_files_absent``).

    host
        ``systemd``, ``health_timer_installed``, ``metrics_timer_installed``, ``installed_dropins``,
        ``owned_files`` and ``owned_packages`` (recorded in the state directory).
    """
    items = items or catalogue(settings, host)
    owned = host["owned_packages"]
    postfix_packages = _paths(items, "smtp", "package")[:1]
    state_dir = items["state:state_dir"]["path"]
    state = {"state_dir": state_dir, "owned": list(owned)}
    return {
        "packages": state,
        "smtp": {
            # An operator's own Postfix keeps running after mail.clean.
            "service": items["smtp:service"]["path"] if set(postfix_packages) & set(owned) else "",
            "packages": [name for name in postfix_packages if name in owned],
            # A Postfix handed over (mail:take_over:postfix) is removed, not purged: its
            # configuration directory keeps the operator's main.cf.before-mail-formula.
            "purge": not settings["take_over"]["postfix"],
            "files": _paths(items, "smtp", "file", guards=("marker",)),
            "tables": _paths(items, "smtp", "table"),
        },
        "msmtp": {
            "packages": [name for name in _paths(items, "msmtp", "package") if name in owned],
            "files": _paths(items, "msmtp", "file", "log_file"),
            "group": items["msmtp:group"]["path"],
            "sendmail_link": None if settings["lookup"]["msmtp"]["mta_pkg"] else _sendmail_link(items),
        },
        "alerts": {"files": _paths(items, "alerts", "file"), "systemd": host["systemd"]},
        "health": {
            "timer": items["health:timer-unit"]["path"] if host["health_timer_installed"] else "",
            "files": _paths(items, "health", "file"),
            "systemd": host["systemd"],
        },
        "metrics": {
            "timer": items["metrics:timer-unit"]["path"] if host["metrics_timer_installed"] else "",
            "files": _paths(items, "metrics", "file", "textfile"),
            "systemd": host["systemd"],
        },
        "directories": {
            items["state:libexec_dir"]["path"]: {"files": [], "subdirs": []},
            state_dir: {"files": list(STATE_FILES), "subdirs": list(STATE_SUBDIRS)},
        },
    }
