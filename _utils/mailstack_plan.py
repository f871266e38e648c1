"""
The plan of the ``mail`` formula and the content of the files it writes, used
by the ``mailstack`` execution module (``__utils__["mailstack_plan.build"]``).

Everything here works on plain data: validated settings, the decided mode and
container status, and a few facts the module reads off the running system.
"""

import collections
import re
import shlex
import zlib

# msmtp 1.8 reads its files with a 501-byte buffer: 499 characters, the
# newline and the NUL. A longer line is refused at send time ("line longer
# than 500 characters") and msmtp has no way to continue or escape one.
MSMTP_MAX_LINE = 499

# The first line of every file the formula writes with content: what tells
# mail.clean (and the next apply) that the file is the formula's.
MARKER = "# Managed by Salt (mail formula"
HEADER = f"{MARKER}). Local changes are overwritten.\n"

# The formula's templates (in <formula>/files/) that pillar mail:tofs:source_files
# may replace with sources of its own, tried in order before the formula's.
TEMPLATES = (
    "main.cf.jinja",
    "sasl_passwd.jinja",
    "msmtprc.jinja",
    "mail-alert.sh.jinja",
    "mail-alert@.service.jinja",
    "mail-alert-dropin.conf",
    "mail-health.sh.jinja",
    "mail-health.service.jinja",
    "mail-health.timer.jinja",
    "mail-health.cron.jinja",
    "mail-metrics.py.jinja",
    "mail-metrics.service.jinja",
    "mail-metrics.timer.jinja",
    "mail-metrics.cron.jinja",
)

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


def _from_template(item, template, conf, *, mode="0644", group="root", context=None, secret=False):
    """A file written from a template; ``sources`` tries mail:tofs:source_files first."""
    return {
        **_placed(item),
        "present": True,
        "sources": conf["tofs"]["source_files"].get(template, []),
        "template": template,
        "user": "root",
        "group": group,
        "mode": mode,
        # Every template starts with the marker: {{ marker }}.
        "context": {"marker": MARKER, **(context or {})},
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


def _msmtp_lines_by_key(settings):
    """Yield (pillar key, line) for every line a value can put in msmtp's files."""
    yield "from", f"from {settings['from']}"
    yield "admin", f"default: {settings['admin']}"
    for name, addresses in settings["aliases"].items():
        yield f"aliases:{name}", _msmtp_alias_line(name, addresses)
    for section in ("mailu", "relay"):
        upstream = settings[section]
        host_key = upstream["server_key"]
        yield f"{section}:{host_key}", f"host {upstream[host_key]}"
        yield f"{section}:user", f"user {upstream['user']}"
        yield f"{section}:password", f"password {_msmtp_quote(upstream['password'])}"
        yield f"{section}:ca_file", f"tls_trust_file {upstream['ca_file']}"
    yield "relay:sender", f"from {settings['relay']['sender']}"
    yield "msmtp:logfile", f"logfile {settings['msmtp']['logfile']}"
    lookup = settings["lookup"]
    yield "lookup:ca_bundle", f"tls_trust_file {lookup['ca_bundle']}"
    yield "lookup:msmtp:aliases", f"aliases {lookup['msmtp']['aliases']}"


def overlong_msmtp_line(settings):
    """``(pillar key, line length, msmtp's limit)`` of the first value that would
    make a line msmtp cannot read, or ``None``."""
    for key, line in _msmtp_lines_by_key(settings):
        if len(line) > MSMTP_MAX_LINE:
            return key, len(line), MSMTP_MAX_LINE
    return None


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


def _upstream(conf, section):
    upstream = {k: conf[section][k] for k in ("port", "tls", "user", "password", "ca_file", "tls_name")}
    upstream["host"] = conf[section][conf[section]["server_key"]]
    if not upstream["ca_file"]:
        upstream["ca_file"] = conf["lookup"]["ca_bundle"]
    return upstream


Delivery = collections.namedtuple("Delivery", "postfix msmtp postfix_upstream")
Delivery.__doc__ = """How mail leaves this host: whether the local Postfix relays
(``postfix``), where msmtp sends (``msmtp``: a target) and where Postfix
relays to (``postfix_upstream``: a target, or ``None`` for the recipient's MX)."""


def _delivery(conf, mode_name, container):
    if mode_name == "mailu" and not (conf["mailu"]["queue"] and not container):
        return Delivery(postfix=False, msmtp=_upstream(conf, "mailu"), postfix_upstream=None)
    if mode_name == "mailu":
        return Delivery(postfix=True, msmtp=_loopback_target(), postfix_upstream=_upstream(conf, "mailu"))
    relay = _upstream(conf, "relay") if conf["relay"]["relayhost"] else None
    if container:
        return Delivery(postfix=False, msmtp=relay or _loopback_target(), postfix_upstream=None)
    return Delivery(postfix=True, msmtp=_loopback_target(), postfix_upstream=relay)


def _describe(target):
    if target is None:
        return "the recipient's MX, found through DNS"
    auth = f" as {target['user']}" if target["user"] else ""
    host = f"[{target['host']}]" if ":" in target["host"] else target["host"]
    return f"{host}:{target['port']} (TLS: {target['tls']}){auth}"


def _packages(conf, postfix_wanted, owned_packages):
    """
    What is installed (and by which state: ``by_state``), what the mode has
    no use for (``unwanted``: the package that conflicts with or is replaced
    by the one it installs) and of that what is removed: only what the
    formula installed (``remove``). The module refuses a plan whose unwanted
    package is installed and not the formula's.
    """
    msmtp, postfix = conf["lookup"]["msmtp"], conf["lookup"]["postfix"]
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
        "state_dir": conf["lookup"]["state_dir"],
    }


def _sendmail(conf, postfix_wanted, items):
    """How msmtp becomes sendmail where Postfix is not: its MTA package, or a symlink."""
    msmtp = conf["lookup"]["msmtp"]
    if postfix_wanted:
        return {"package": "", "link": None}
    if msmtp["mta_pkg"]:
        return {"package": msmtp["mta_pkg"], "link": None}
    return {"package": "", "link": _sendmail_link(items)}


def _sendmail_link(items):
    link = items["msmtp:sendmail"]
    return {"path": link["path"], "target": link["target"]}


def _bracketed(target):
    return f"[{target['host']}]:{target['port']}"


def _postfix_tls(upstream):
    if upstream is None:
        return {"smtp_tls_security_level": "may"}
    if upstream["tls"] == "none":
        return {"smtp_tls_security_level": "none"}
    params = {
        "smtp_tls_security_level": "secure",
        "smtp_tls_secure_cert_match": upstream["tls_name"] or "nexthop, dot-nexthop",
        "smtp_tls_CAfile": upstream["ca_file"],
    }
    if upstream["tls"] == "implicit":
        params["smtp_tls_wrappermode"] = "yes"
    return params


def _local_domains(myhostname):
    names = [myhostname, myhostname.split(".")[0], "localhost", "localhost.localdomain"]
    return list(dict.fromkeys(names))


def _postfix_main_cf(conf, upstream, envelope_sender, relay_sender, myhostname):
    postfix = conf["lookup"]["postfix"]
    params = {
        "compatibility_level": postfix["compatibility_level"],
        "myhostname": myhostname,
        "myorigin": "$myhostname",
        "mydestination": "",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "all",
        "mynetworks": "127.0.0.0/8 [::1]/128",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "smtpd_banner": "$myhostname ESMTP",
        "disable_vrfy_command": "yes",
        "local_transport": "error:local delivery disabled",
        "default_transport": "smtp",
        "relay_transport": "relay",
        "alias_maps": "",
        "alias_database": "",
        "biff": "no",
        "append_dot_mydomain": "no",
        # A relayhost or Mailu is found like any other host name of this system
        # (/etc/hosts, then DNS): with "dns, native" a DNS failure defers the
        # mail even when /etc/hosts knows the name. Without a relayhost, MX
        # lookups need DNS.
        "smtp_host_lookup": "native" if upstream else "dns, native",
        "relayhost": _bracketed(upstream) if upstream else "",
    }
    params.update(_postfix_tls(upstream))
    if upstream and upstream["user"]:
        params.update(
            {
                "smtp_sasl_auth_enable": "yes",
                "smtp_sasl_password_maps": f"{postfix['map_type']}:{postfix['config_dir']}/sasl_passwd",
                "smtp_sasl_security_options": "noanonymous",
                "smtp_sasl_tls_security_options": "noanonymous",
            }
        )
    if conf["admin"]:
        params["recipient_canonical_maps"] = f"regexp:{postfix['config_dir']}/recipient_canonical"
    if conf["aliases"]:
        params["virtual_alias_maps"] = f"regexp:{postfix['config_dir']}/virtual_alias"
    if envelope_sender:
        params["sender_canonical_maps"] = f"static:{envelope_sender}"
        params["sender_canonical_classes"] = "envelope_sender"
    if relay_sender:
        # Every message leaves through the relayhost (nothing is delivered
        # locally), so rewriting on the way in is rewriting on the way out.
        params["sender_canonical_maps"] = f"static:{relay_sender}"
        params["sender_canonical_classes"] = "envelope_sender, header_sender"
    if postfix["maillog_file"]:
        params["maillog_file"] = postfix["maillog_file"]
    params.update(conf["postfix"]["main_cf"])
    return params


def templates():
    """The formula's templates (in ``<formula>/files/``), which pillar
    ``mail:tofs:source_files`` may replace."""
    return TEMPLATES


def managed_postfix_parameters():
    """The main.cf parameters the formula sets itself, whatever the mode: every
    name ``_postfix_main_cf`` writes for each kind of upstream (none, no TLS,
    STARTTLS, implicit TLS with a login), with mail:admin, mail:aliases, a
    rewritten sender and Postfix's own log file set."""
    postfix = {
        "compatibility_level": "3.6",
        "map_type": "hash",
        "config_dir": "/etc/postfix",
        "maillog_file": "-",
    }
    conf = {"lookup": {"postfix": postfix}, "admin": "a", "aliases": {"a": ["b"]}, "postfix": {"main_cf": {}}}
    upstreams = [None] + [
        {"host": "h", "port": 25, "tls": tls, "user": "u", "ca_file": "c", "tls_name": ""}
        for tls in ("none", "starttls", "implicit")
    ]
    names = set()
    for upstream in upstreams:
        names.update(_postfix_main_cf(conf, upstream, "sender", "", "host"))
        names.update(_postfix_main_cf(conf, upstream, "", "sender", "host"))
    return frozenset(names)


def _ere_escape(text):
    """Escape a host or local name for a POSIX ERE (Postfix regexp tables)."""
    return re.sub(r"[.+]", r"\\\g<0>", text)


def _local_domains_pattern(myhostname):
    return "|".join(_ere_escape(name) for name in _local_domains(myhostname))


def _local_address_pattern(local_part, myhostname):
    """A Postfix regexp (POSIX ERE) body matching ``local_part`` bare or at a local domain."""
    return f"^({local_part}(@({_local_domains_pattern(myhostname)}))?)$"


def _recipient_canonical(admin, aliases, myhostname):
    """Local names go to mail:admin; names in mail:aliases stay as they are for virtual_alias."""
    if not admin:
        return ""
    domains = _local_domains_pattern(myhostname)
    lines = [f"/{_local_address_pattern(_ere_escape(name), myhostname)}/ ${{1}}" for name in aliases]
    lines += [f"/^[^@]+@({domains})$/ {admin}", f"/^[^@]+$/ {admin}"]
    return _with_header(lines)


def _with_header(lines):
    return HEADER + "".join(line + "\n" for line in lines) if lines else ""


def _virtual_alias(aliases, myhostname):
    lines = [
        f"/{_local_address_pattern(_ere_escape(name), myhostname)}/ {', '.join(addresses)}"
        for name, addresses in aliases.items()
    ]
    return _with_header(lines)


def _sasl_passwd(upstream):
    if not upstream or not upstream["user"]:
        return ""
    return f"{_bracketed(upstream)} {upstream['user']}:{upstream['password']}\n"


def _msmtp_quote(value):
    # msmtp strips the outer quotes and keeps everything between them as is.
    return f'"{value}"'


def _msmtp_log(conf, syslog):
    """Where msmtp logs. A log file is root's alone: only root may send where one is allowed."""
    logfile = conf["msmtp"]["logfile"]
    if logfile:
        return {"line": ("logfile", logfile), "logfile": logfile, "mode": "0600", "where": logfile}
    if syslog:
        return {"line": ("syslog", "LOG_MAIL"), "logfile": "", "where": "syslog (facility LOG_MAIL)"}
    return {
        "line": None,
        "logfile": "",
        "where": "nowhere: no syslog (/dev/log) and mail:msmtp:logfile is empty",
    }


def msmtp_log_problem(conf, secret_in_msmtprc):
    """Why ``mail:msmtp:logfile`` cannot be used here, or ``None``: every user
    who can append to a log file can also truncate it or forge lines in it."""
    if not conf["msmtp"]["logfile"]:
        return None
    if not secret_in_msmtprc:
        return (
            "every local user may send here (msmtp holds no password), and a log file every sender can"
            " append to is one any of them can truncate or forge lines in: leave it empty so that"
            " msmtp logs to syslog"
        )
    if conf["senders"]:
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


def _msmtprc(conf, target, envelope_sender, relay_sender="", log_line=None):
    lines = [
        ("defaults", ""),
        ("timeout", str(conf["timeout"])),
        *([log_line] if log_line else []),
        ("account", "default"),
        ("host", target["host"]),
        ("port", str(target["port"])),
        ("from", envelope_sender or relay_sender or conf["from"]),
    ]
    if target["tls"] == "none":
        lines.append(("tls", "off"))
    else:
        lines += [
            ("tls", "on"),
            ("tls_starttls", "on" if target["tls"] == "starttls" else "off"),
            ("tls_trust_file", target["ca_file"]),
        ]
        if target["tls_name"]:
            lines.append(("tls_host_override", target["tls_name"]))
    if target["user"]:
        lines += [("auth", "on"), ("user", target["user"]), ("password", _msmtp_quote(target["password"]))]
    else:
        lines.append(("auth", "off"))
    if envelope_sender or relay_sender:
        lines.append(("allow_from_override", "off"))
    if relay_sender:
        lines.append(("set_from_header", "on"))
    if conf["admin"] or conf["aliases"]:
        lines.insert(2, ("aliases", conf["lookup"]["msmtp"]["aliases"]))
    return lines


def _msmtp_alias_line(name, addresses):
    return f"{name}: {', '.join(addresses)}"


def _msmtp_aliases(admin, aliases):
    lines = [_msmtp_alias_line(name, addresses) for name, addresses in aliases.items()]
    if admin:
        lines.append(_msmtp_alias_line("default", [admin]))
    return _with_header(lines)


def _who_can_send(conf, secret_in_msmtprc):
    if not secret_in_msmtprc:
        return "every local user"
    return "root and mail:senders (" + (", ".join(conf["senders"]) or "none") + "), who can read the password"


def build(conf, decided, container, host):
    """
    The plan: what the formula does on this host, with the content of every
    file it writes.

    conf
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
    items = catalogue(conf, host)
    delivery = _delivery(conf, decided["mode"], container["container"])
    postfix, msmtp_target, postfix_upstream = delivery.postfix, delivery.msmtp, delivery.postfix_upstream
    if host["mask"]:
        for target in (msmtp_target, postfix_upstream):
            if target and target["password"]:
                target["password"] = host["mask"]
    mailu_user = conf["mailu"]["user"]
    envelope_sender = mailu_user if decided["mode"] == "mailu" and host["mailu_user_is_address"] else ""
    relay_sender = conf["relay"]["sender"] if decided["mode"] == "relay" else ""
    # msmtp talks to the relayhost itself only where no Postfix relays.
    msmtp_sender = "" if postfix else relay_sender
    myhostname = host["fqdn"]
    secret_in_msmtprc = bool(msmtp_target["user"])
    msmtp_log = _msmtp_log(conf, host["syslog"])
    files = {
        "msmtprc": _msmtprc(conf, msmtp_target, envelope_sender, msmtp_sender, msmtp_log["line"]),
        "msmtp_aliases": _msmtp_aliases(conf["admin"], conf["aliases"]),
        "secret_in_msmtprc": secret_in_msmtprc,
        "msmtp_log": {k: v for k, v in msmtp_log.items() if k not in ("line", "where")},
        "main_cf": _postfix_main_cf(conf, postfix_upstream, envelope_sender, relay_sender, myhostname)
        if postfix
        else {},
        "sasl_passwd": _sasl_passwd(postfix_upstream) if postfix else "",
        "recipient_canonical": _recipient_canonical(conf["admin"], conf["aliases"], myhostname)
        if postfix
        else "",
        "virtual_alias": _virtual_alias(conf["aliases"], myhostname) if postfix else "",
    }
    alerts, health = _alerts_plan(conf, host, items), _health_plan(conf, host, items)
    metrics = _metrics_plan(conf, host, items, decided["mode"], postfix)
    packages = _packages(conf, postfix, host["owned_packages"])
    layout = _completed(
        {
            "smtp": _smtp_files(conf, files, postfix, items),
            "smtp_secrets_absent": {} if postfix else {"secrets-absent": _postfix_secrets_absent(items)},
            "msmtp": _msmtp_files(conf, files, items),
            "alerts": _alerts_files(conf, alerts, items),
            "health": _health_files(conf, health, items),
            "metrics": _metrics_files(conf, metrics, items),
        },
        conf,
        host["formula_dir"],
    )
    _add_needs(layout, health, metrics)
    health["timer_wanted"], metrics["timer_wanted"] = _timer_wanted(health), _timer_wanted(metrics)
    next_hops = {"msmtp": _describe(msmtp_target), "postfix": _describe(postfix_upstream) if postfix else ""}
    return {
        "mode": decided["mode"],
        "mode_reason": decided["reason"],
        "container": container["container"],
        "container_reason": container["reason"],
        "postfix": postfix,
        "postfix_reason": _postfix_reason(conf, container["container"], postfix),
        "sendmail": "postfix" if postfix else "msmtp",
        "packages": packages,
        "msmtp": msmtp_target,
        "postfix_upstream": postfix_upstream,
        # Where the first hop of system mail goes: sendmail's next hop is Postfix's where it runs.
        "next_hop": next_hops["postfix"] if postfix else next_hops["msmtp"],
        "summary": {
            "msmtp sends to": next_hops["msmtp"],
            "postfix relays to": next_hops["postfix"] or "(no postfix)",
            "mail for root goes to": conf["admin"] or f"root@{myhostname} (mail:admin is empty)",
            "sender": envelope_sender or relay_sender or conf["from"],
            "who can send": _who_can_send(conf, secret_in_msmtprc),
            "msmtp logs to": msmtp_log["where"],
        },
        "alerts": alerts,
        "health": health,
        "files": files,
        "sendmail_provider": _sendmail(conf, postfix, items),
        # msmtp's sendmail link, made where the distribution has no msmtp-mta, goes before Postfix comes.
        "sendmail_link_removed": _sendmail_link(items)
        if postfix and not conf["lookup"]["msmtp"]["mta_pkg"]
        else None,
        "senders_group": _senders_group(conf, secret_in_msmtprc, items),
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
        "clean": cleanup(conf, host, items),
    }


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


def _recipient(conf):
    """Who system mail, alerts and the health mail go to: mail:admin, else root."""
    return conf["admin"] or "root"


def _alerts_plan(conf, host, items):
    """OnFailure= drop-ins for mail:alerts:units, and the ones to remove."""
    lookup, units = conf["lookup"], conf["alerts"]["units"]
    systemd = host["systemd"]
    dropins = {unit: items[f"alerts:dropin:{unit}"]["path"] for unit in units} if systemd else {}
    recipient = _recipient(conf)
    if not systemd:
        reason = "systemd does not run here, so no unit can alert on failure: nothing to do"
    elif units:
        reason = f"{', '.join(units)} mail {recipient} when they fail"
    else:
        reason = "mail:alerts:units is empty"
    return {
        "systemd": systemd,
        "active": systemd and bool(units or conf["health"]["enabled"]),
        "units": units,
        "interval": conf["alerts"]["interval"],
        "recipient": recipient,
        "script": items["alerts:script"]["path"],
        "unit_file": items["alerts:unit"]["path"],
        "dropins": dropins,
        "stale_dropins": [path for path in host["installed_dropins"] if path not in dropins.values()],
        "shell_vars": _shell_vars(
            recipient=recipient,
            sendmail=lookup["msmtp"]["sendmail"],
            state_dir=f"{lookup['state_dir']}/alerts",
            interval=conf["alerts"]["interval"],
        ),
        "reason": reason,
    }


def _shell_vars(**values):
    """Values for the variable assignments at the top of a shell script, quoted."""
    return {name: shlex.quote(str(value)) for name, value in values.items()}


def _health_plan(conf, host, items):
    """The daily "is alive" mail: a systemd timer, or a cron entry without systemd."""
    lookup, health = conf["lookup"], conf["health"]
    systemd = host["systemd"]
    seed = zlib.crc32(host["fqdn"].encode())
    if not health["enabled"]:
        reason = "mail:health:enabled is false"
    elif systemd:
        reason = f"{HEALTH_UNIT}.timer ({health['on_calendar']}) mails {_recipient(conf)}"
    else:
        reason = f"no systemd: a cron entry in {lookup['cron_dir']} mails {_recipient(conf)} daily"
    return {
        **health,
        "systemd": systemd,
        "recipient": _recipient(conf),
        "script": items["health:script"]["path"],
        "service_file": items["health:service"]["path"],
        "timer_file": items["health:timer"]["path"],
        "timer": items["health:timer-unit"]["path"],
        "timer_installed": host["health_timer_installed"],
        "cron_file": items["health:cron"]["path"],
        "cron_time": {"minute": seed % 60, "hour": seed // 60 % 24},
        "state_file": items["state:health.last"]["path"],
        "shell_vars": _shell_vars(
            recipient=_recipient(conf),
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


def _metrics_plan(conf, host, items, mode_name, postfix):
    """The metrics file for node_exporter: its collector, refreshed by a timer or cron."""
    lookup, metrics = conf["lookup"], conf["metrics"]
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
            "msmtp_log": conf["msmtp"]["logfile"],
            "health_state": items["state:health.last"]["path"],
            "alerts_dir": f"{state_dir}/alerts",
            "state": items["state:metrics.json"]["path"],
            "journal_cursor": items["state:metrics.journal"]["path"],
        },
        "reason": reason,
    }


def _postfix_reason(conf, container, postfix):
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


def catalogue(conf, host):
    """
    Everything the formula may write, create, run or remove on this host, in
    any mode, by a stable id: the one place where its paths, names, pillar
    keys and guards are spelled. The layout, the clean-up, the ownership check
    and the inventory read it.
    """
    items = {}
    for item in (
        *_smtp_items(conf),
        *_msmtp_items(conf, host),
        *_alerts_items(conf, host),
        *_health_items(conf),
        *_metrics_items(conf),
        *_state_items(conf),
    ):
        items[item.pop("id")] = item
    return items


def _smtp_items(conf):
    postfix = conf["lookup"]["postfix"]
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


def _msmtp_items(conf, host):
    msmtp = conf["lookup"]["msmtp"]
    yield _item("msmtp", "file", msmtp["config"], "lookup:msmtp:config", "marker", id="msmtp:msmtprc")
    yield _item("msmtp", "file", msmtp["aliases"], "lookup:msmtp:aliases", "marker", id="msmtp:aliases")
    logfiles = dict.fromkeys(
        [*([conf["msmtp"]["logfile"]] if conf["msmtp"]["logfile"] else []), *host["owned_files"]]
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


def _alerts_items(conf, host):
    lookup = conf["lookup"]
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
    for unit in conf["alerts"]["units"]:
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


def _scheduled_script_items(conf, concern, unit):
    """A script of the formula's run by ``<unit>.timer`` (its service and timer
    units), or by a cron entry where systemd does not run."""
    lookup = conf["lookup"]
    unit_dir = lookup["systemd_unit_dir"]
    libexec = f"{lookup['libexec_dir']}/{unit}"
    yield _item(concern, "file", libexec, "lookup:libexec_dir", "marker", id=f"{concern}:script")
    for suffix in ("service", "timer"):
        path = f"{unit_dir}/{unit}.{suffix}"
        yield _item(concern, "file", path, "lookup:systemd_unit_dir", "marker", id=f"{concern}:{suffix}")
    cron = f"{lookup['cron_dir']}/{unit}"
    yield _item(concern, "file", cron, "lookup:cron_dir", "marker", id=f"{concern}:cron")
    yield _item(concern, "unit", f"{unit}.timer", f"{concern}:enabled", "marker", id=f"{concern}:timer-unit")


def _health_items(conf):
    yield from _scheduled_script_items(conf, "health", HEALTH_UNIT)


def _metrics_items(conf):
    lookup = conf["lookup"]
    yield from _scheduled_script_items(conf, "metrics", METRICS_UNIT)
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
        f"{conf['metrics']['directory']}/{METRICS_FILE}",
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


def _state_items(conf):
    lookup = conf["lookup"]
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


def _smtp_files(conf, files, postfix, items):
    """The Postfix relay's files, by the suffix of their state ID (mail-smtp-config-<key>)."""
    if not postfix:
        return {}
    sasl = items["smtp:sasl-passwd"]
    tables = [
        items[f"smtp:table:{path}"] for path in _tables(sasl["path"], conf["lookup"]["postfix"]["map_type"])
    ]
    main_cf = _from_template(
        items["smtp:main-cf"], "main.cf.jinja", conf, context={"params": files["main_cf"]}
    )
    main_cf["must_keep"] = files["main_cf"]
    main_cf["keep_as"] = items["smtp:main-cf-before"]["path"] if conf["take_over"]["postfix"] else ""
    layout = {
        "main-cf": main_cf,
        "sasl-passwd": _from_template(sasl, "sasl_passwd.jinja", conf, mode="0600", secret=True)
        if files["sasl_passwd"]
        else _absent(sasl, tables),
    }
    if files["sasl_passwd"]:
        wanted = map_file(sasl["path"], conf["lookup"]["postfix"]["map_type"])
        layout["sasl-passwd"]["stale_tables"] = [table["path"] for table in tables if table["path"] != wanted]
    for name in ("recipient_canonical", "virtual_alias"):
        item = items[f"smtp:{name.replace('_', '-')}"]
        layout[name.replace("_", "-")] = _with_contents(item, files[name]) if files[name] else _absent(item)
    return layout


def _completed(layout, conf, formula_dir):
    """Every file of ``layout`` with all its state needs: a template's sources end
    with the formula's own, and removing one asks what the formula recorded."""
    for files in layout.values():
        for file in files.values():
            file["state_dir"] = conf["lookup"]["state_dir"]
            if file["present"] and file["template"]:
                file["sources"] = [*file["sources"], f"salt://{formula_dir}/files/{file['template']}"]
    return layout


def _postfix_secrets_absent(items):
    """What a host without the local relay must not keep: the relay's password and its tables."""
    sasl = items["smtp:sasl-passwd"]
    return _absent(sasl, [item for item in items.values() if item.get("source") == sasl["path"]])


def _msmtp_files(conf, files, items):
    """msmtp's files, by the suffix of their state ID (mail-msmtp-config-<key>)."""
    msmtp = conf["lookup"]["msmtp"]
    secret = files["secret_in_msmtprc"]
    aliases = items["msmtp:aliases"]
    return {
        "msmtprc": _from_template(
            items["msmtp:msmtprc"],
            "msmtprc.jinja",
            conf,
            mode="0640" if secret else "0644",
            group=msmtp["group"] if secret else "root",
            secret=True,
        ),
        "aliases": _with_contents(aliases, files["msmtp_aliases"])
        if files["msmtp_aliases"]
        else _absent(aliases),
    }


def _senders_group(conf, secret_in_msmtprc, items):
    """The formula's group of mail:senders: only where msmtprc holds a password."""
    return {
        "name": items["msmtp:group"]["path"],
        "present": secret_in_msmtprc,
        "members": conf["senders"] if secret_in_msmtprc else [],
        "take_over": conf["take_over"]["senders_group"],
    }


def _alerts_files(conf, alerts, items):
    """The alert script, its unit, and one OnFailure= drop-in per unit (stale ones absent)."""
    if not alerts["systemd"]:
        return {}
    active = alerts["active"]
    script, unit = items["alerts:script"], items["alerts:unit"]
    layout = {
        "script": _from_template(
            script,
            "mail-alert.sh.jinja",
            conf,
            mode="0755",
            context={"shell_vars": alerts["shell_vars"]},
        )
        if active
        else _absent(script),
        "unit": _from_template(unit, "mail-alert@.service.jinja", conf, context={"script": alerts["script"]})
        if active
        else _absent(unit),
    }
    for name in sorted(alerts["dropins"]):
        layout[f"dropin-{name}"] = _from_template(
            items[f"alerts:dropin:{name}"], "mail-alert-dropin.conf", conf
        )
    for path in alerts["stale_dropins"]:
        layout[f"stale-dropin-{path}"] = _absent(items[f"alerts:installed-dropin:{path}"])
    return layout


def _scheduled_files(conf, concern, unit, scheduled, items, script, context):
    """A scheduled script's files: the script (``script``: its template and
    context), and its timer units with systemd or its cron entry without
    (``<unit>.<key>.jinja`` with ``context``); all absent when it is off."""

    def file(key, template, **options):
        item = items[f"{concern}:{key}"]
        return _from_template(item, template, conf, **options) if scheduled["enabled"] else _absent(item)

    template, script_context = script
    layout = {"script": file("script", template, mode="0755", context=script_context)}
    for key in ("service", "timer") if scheduled["systemd"] else ("cron",):
        layout[key] = file(key, f"{unit}.{key}.jinja", context=context)
    return layout


def _health_files(conf, health, items):
    """The "is alive" script, and its timer units with systemd or its cron entry without."""
    context = {k: v for k, v in health.items() if k not in ("files",)}
    script = ("mail-health.sh.jinja", {"shell_vars": health["shell_vars"]})
    return _scheduled_files(conf, "health", HEALTH_UNIT, health, items, script, context)


def _metrics_files(conf, metrics, items):
    """The collector, its timer units with systemd or its cron entry without; and, when
    metrics are off, the metrics file it wrote."""
    enabled = metrics["enabled"]
    context = {k: metrics[k] for k in ("script", "interval", "accuracy", "cron_minutes")}
    script = ("mail-metrics.py.jinja", {"collector": metrics["collector"]})
    layout = _scheduled_files(conf, "metrics", METRICS_UNIT, metrics, items, script, context)
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


def cleanup(conf, host, items=None):
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
    items = items or catalogue(conf, host)
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
            "purge": not conf["take_over"]["postfix"],
            "files": _paths(items, "smtp", "file", guards=("marker",)),
            "tables": _paths(items, "smtp", "table"),
        },
        "msmtp": {
            "packages": [name for name in _paths(items, "msmtp", "package") if name in owned],
            "files": _paths(items, "msmtp", "file", "log_file"),
            "group": items["msmtp:group"]["path"],
            "sendmail_link": None if conf["lookup"]["msmtp"]["mta_pkg"] else _sendmail_link(items),
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
