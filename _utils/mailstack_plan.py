"""
The plan of the ``mail`` formula and the content of the files it writes, used
by the ``mailstack`` execution module (``__utils__["mailstack_plan.build"]``).

Everything here works on plain data: validated settings, the decided mode and
container status, and a few facts the module reads off the running system.
"""

import re
import shlex
import zlib

# msmtp 1.8 reads its files with a 501-byte buffer: 499 characters, the
# newline and the NUL. A longer line is refused at send time ("line longer
# than 500 characters") and msmtp has no way to continue or escape one.
MSMTP_MAX_LINE = 499

# The first line of every file the formula writes with content: what tells
# mail.clean (and the next apply) that the file is the formula's.
HEADER = "# Managed by Salt (mail formula). Local changes are overwritten.\n"

ALERT_UNIT = "mail-alert@.service"

ALERT_DROPIN = "50-mail-alert.conf"

HEALTH_UNIT = "mail-health"

# The key of the server's name in each upstream section of the settings (as
# pillar spells it); the plan's targets call it ``host`` for both.
SERVER_KEY = {"mailu": "host", "relay": "relayhost"}

# The file postmap builds from a lookup table's source, by table type.
MAP_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".dir", "sdbm": ".dir"}


def map_file(source, map_type):
    """The table postmap builds from ``source`` for ``map_type``."""
    return source + MAP_SUFFIX.get(map_type, ".db")


def _tables(source, map_type):
    """Every table the formula may have built from ``source``: what removing it removes."""
    return sorted({map_file(source, kind) for kind in ("hash", "lmdb", map_type)})


def _from_template(path, template, conf, *, mode="0644", group="root", context=None, secret=False):
    """A file written from a template; ``sources`` tries mail:tofs:source_files first."""
    return {
        "path": path,
        "present": True,
        "sources": conf["tofs"]["source_files"].get(template, []),
        "template": template,
        "user": "root",
        "group": group,
        "mode": mode,
        "context": context or {},
        "secret": secret,
    }


def _with_contents(path, contents, mode="0644"):
    return {
        "path": path,
        "present": True,
        "template": "",
        "contents": contents,
        "user": "root",
        "group": "root",
        "mode": mode,
        "secret": False,
    }


def _absent(path, tables=()):
    return {"path": path, "present": False, "tables": list(tables)}


def _msmtp_lines_by_key(settings):
    """Yield (pillar key, line) for every line a value can put in msmtp's files."""
    yield "from", f"from {settings['from']}"
    yield "admin", f"default: {settings['admin']}"
    for name, addresses in settings["aliases"].items():
        yield f"aliases:{name}", _msmtp_alias_line(name, addresses)
    for section, host_key in SERVER_KEY.items():
        upstream = settings[section]
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
    upstream["host"] = conf[section][SERVER_KEY[section]]
    if not upstream["ca_file"]:
        upstream["ca_file"] = conf["lookup"]["ca_bundle"]
    return upstream


def _delivery(conf, mode_name, container):
    """Return (postfix wanted, msmtp target, postfix upstream or None)."""
    if mode_name == "mailu" and not (conf["mailu"]["queue"] and not container):
        return False, _upstream(conf, "mailu"), None
    if mode_name == "mailu":
        return True, _loopback_target(), _upstream(conf, "mailu")
    relay = _upstream(conf, "relay") if conf["relay"]["relayhost"] else None
    if container:
        return False, relay or _loopback_target(), None
    return True, _loopback_target(), relay


def _describe(target):
    if target is None:
        return "the recipient's MX, found through DNS"
    auth = f" as {target['user']}" if target["user"] else ""
    host = f"[{target['host']}]" if ":" in target["host"] else target["host"]
    return f"{host}:{target['port']} (TLS: {target['tls']}){auth}"


def _packages(conf, postfix_wanted):
    """What is installed (and by which state: ``by_state``) and what is removed."""
    msmtp, postfix = conf["lookup"]["msmtp"], conf["lookup"]["postfix"]
    mta = [msmtp["mta_pkg"]] if msmtp["mta_pkg"] else []
    by_state = {
        "msmtp": msmtp["pkgs"],
        "postfix": postfix["pkgs"] if postfix_wanted else [],
        "sendmail": [] if postfix_wanted else mta,
    }
    return {
        "install": by_state["msmtp"] + by_state["postfix"] + by_state["sendmail"],
        "remove": mta if postfix_wanted else [postfix["pkgs"][0]],
        "by_state": by_state,
    }


def _sendmail(conf, postfix_wanted):
    """How msmtp becomes sendmail where Postfix is not: its MTA package, or a symlink."""
    msmtp = conf["lookup"]["msmtp"]
    if postfix_wanted:
        return {"package": "", "link": None}
    if msmtp["mta_pkg"]:
        return {"package": msmtp["mta_pkg"], "link": None}
    return {"package": "", "link": {"path": msmtp["sendmail"], "target": msmtp["binary"]}}


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


def written_files(plan, conf):
    """``(pillar key, path)`` of every file this plan writes with content (each
    carries the formula's marker), for the module to check before any change."""
    lookup, files = conf["lookup"], plan["files"]
    config_dir = lookup["postfix"]["config_dir"]
    written = [("lookup:msmtp:config", lookup["msmtp"]["config"])]
    if files["msmtp_aliases"]:
        written.append(("lookup:msmtp:aliases", lookup["msmtp"]["aliases"]))
    for name in ("sasl_passwd", "recipient_canonical", "virtual_alias"):
        if files[name]:
            written.append(("lookup:postfix:config_dir", f"{config_dir}/{name}"))
    alerts, health = plan["alerts"], plan["health"]
    if alerts["active"]:
        written += [
            ("lookup:libexec_dir", alerts["script"]),
            ("lookup:systemd_unit_dir", alerts["unit_file"]),
        ]
        written += [("alerts:units", path) for path in alerts["dropins"].values()]
    if health["enabled"]:
        written.append(("lookup:libexec_dir", health["script"]))
        if health["systemd"]:
            written += [("lookup:systemd_unit_dir", health[k]) for k in ("service_file", "timer_file")]
        else:
            written.append(("lookup:cron_dir", health["cron_file"]))
    return written


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
        (alert drop-ins present), ``health_timer_installed``,
        ``owned_files`` (recorded as the formula's), ``formula_dir`` (on the
        file server), ``mailu_user_is_address``, and ``mask``:
        what replaces passwords, or ``None`` to keep them.
    """
    postfix, msmtp_target, postfix_upstream = _delivery(conf, decided["mode"], container["container"])
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
    alerts, health = _alerts_plan(conf, host), _health_plan(conf, host)
    next_hops = {"msmtp": _describe(msmtp_target), "postfix": _describe(postfix_upstream) if postfix else ""}
    return {
        "mode": decided["mode"],
        "mode_reason": decided["reason"],
        "container": container["container"],
        "container_reason": container["reason"],
        "postfix": postfix,
        "postfix_reason": _postfix_reason(conf, container["container"], postfix),
        "sendmail": "postfix" if postfix else "msmtp",
        "packages": _packages(conf, postfix),
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
        "sendmail_provider": _sendmail(conf, postfix),
        "senders_group": _senders_group(conf, secret_in_msmtprc),
        "layout": _completed(
            {
                "smtp": _smtp_files(conf, files, postfix),
                "smtp_secrets_absent": {} if postfix else {"secrets-absent": _postfix_secrets_absent(conf)},
                "msmtp": _msmtp_files(conf, files),
                "alerts": _alerts_files(conf, alerts),
                "health": _health_files(conf, health),
            },
            conf,
            host["formula_dir"],
        ),
        "clean": cleanup(conf, host),
    }


def _alerts_plan(conf, host):
    """OnFailure= drop-ins for mail:alerts:units, and the ones to remove."""
    lookup, units = conf["lookup"], conf["alerts"]["units"]
    systemd = host["systemd"]
    unit_dir = lookup["systemd_unit_dir"]
    dropins = {unit: f"{unit_dir}/{unit}.d/{ALERT_DROPIN}" for unit in units} if systemd else {}
    recipient = conf["admin"] or "root"
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
        "script": f"{lookup['libexec_dir']}/mail-alert",
        "unit_file": f"{unit_dir}/{ALERT_UNIT}",
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


def _health_plan(conf, host):
    """The daily "is alive" mail: a systemd timer, or a cron entry without systemd."""
    lookup, health = conf["lookup"], conf["health"]
    systemd = host["systemd"]
    seed = zlib.crc32(host["fqdn"].encode())
    if not health["enabled"]:
        reason = "mail:health:enabled is false"
    elif systemd:
        reason = f"{HEALTH_UNIT}.timer ({health['on_calendar']}) mails {conf['admin'] or 'root'}"
    else:
        reason = f"no systemd: a cron entry in {lookup['cron_dir']} mails {conf['admin'] or 'root'} daily"
    return {
        **health,
        "systemd": systemd,
        "recipient": conf["admin"] or "root",
        "script": f"{lookup['libexec_dir']}/{HEALTH_UNIT}",
        "service_file": f"{lookup['systemd_unit_dir']}/{HEALTH_UNIT}.service",
        "timer_file": f"{lookup['systemd_unit_dir']}/{HEALTH_UNIT}.timer",
        "timer": f"{HEALTH_UNIT}.timer",
        "timer_installed": host["health_timer_installed"],
        "cron_file": f"{lookup['cron_dir']}/{HEALTH_UNIT}",
        "cron_time": {"minute": seed % 60, "hour": seed // 60 % 24},
        "state_file": f"{lookup['state_dir']}/health.last",
        "shell_vars": _shell_vars(
            recipient=conf["admin"] or "root",
            sendmail=lookup["msmtp"]["sendmail"],
            state_file=f"{lookup['state_dir']}/health.last",
            retries=health["retries"],
            retry_delay=health["retry_delay"],
        ),
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


# ------------------------------------------------ the files, state by state ---


def _smtp_files(conf, files, postfix):
    """The Postfix relay's files, by the suffix of their state ID (mail-smtp-config-<key>)."""
    if not postfix:
        return {}
    config_dir = conf["lookup"]["postfix"]["config_dir"]
    sasl = f"{config_dir}/sasl_passwd"
    layout = {
        "main-cf": _from_template(
            f"{config_dir}/main.cf", "main.cf.jinja", conf, context={"params": files["main_cf"]}
        ),
        "sasl-passwd": _from_template(sasl, "sasl_passwd.jinja", conf, mode="0600", secret=True)
        if files["sasl_passwd"]
        else _absent(sasl, _tables(sasl, conf["lookup"]["postfix"]["map_type"])),
    }
    for name in ("recipient_canonical", "virtual_alias"):
        path = f"{config_dir}/{name}"
        layout[name.replace("_", "-")] = _with_contents(path, files[name]) if files[name] else _absent(path)
    return layout


def _completed(layout, conf, formula_dir):
    """Every file of ``layout`` with all its state needs: a template's sources end
    with the formula's own, and removing one asks what the formula recorded."""
    for files in layout.values():
        for file in files.values():
            if file["present"] and file["template"]:
                file["sources"] = [*file["sources"], f"salt://{formula_dir}/files/{file['template']}"]
            elif not file["present"]:
                file["state_dir"] = conf["lookup"]["state_dir"]
    return layout


def _postfix_secrets_absent(conf):
    """What a host without the local relay must not keep: the relay's password and its tables."""
    sasl = f"{conf['lookup']['postfix']['config_dir']}/sasl_passwd"
    return _absent(sasl, _tables(sasl, conf["lookup"]["postfix"]["map_type"]))


def _msmtp_files(conf, files):
    """msmtp's files, by the suffix of their state ID (mail-msmtp-config-<key>)."""
    msmtp = conf["lookup"]["msmtp"]
    secret = files["secret_in_msmtprc"]
    return {
        "msmtprc": _from_template(
            msmtp["config"],
            "msmtprc.jinja",
            conf,
            mode="0640" if secret else "0644",
            group=msmtp["group"] if secret else "root",
            secret=True,
        ),
        "aliases": _with_contents(msmtp["aliases"], files["msmtp_aliases"])
        if files["msmtp_aliases"]
        else _absent(msmtp["aliases"]),
    }


def _senders_group(conf, secret_in_msmtprc):
    """The formula's group of mail:senders: only where msmtprc holds a password."""
    return {
        "name": conf["lookup"]["msmtp"]["group"],
        "present": secret_in_msmtprc,
        "members": conf["senders"] if secret_in_msmtprc else [],
    }


def _alerts_files(conf, alerts):
    """The alert script, its unit, and one OnFailure= drop-in per unit (stale ones absent)."""
    if not alerts["systemd"]:
        return {}
    active = alerts["active"]
    layout = {
        "script": _from_template(
            alerts["script"],
            "mail-alert.sh.jinja",
            conf,
            mode="0755",
            context={"shell_vars": alerts["shell_vars"]},
        )
        if active
        else _absent(alerts["script"]),
        "unit": _from_template(
            alerts["unit_file"], "mail-alert@.service.jinja", conf, context={"script": alerts["script"]}
        )
        if active
        else _absent(alerts["unit_file"]),
    }
    for unit, path in sorted(alerts["dropins"].items()):
        layout[f"dropin-{unit}"] = _from_template(path, "mail-alert-dropin.conf", conf)
    for path in alerts["stale_dropins"]:
        layout[f"stale-dropin-{path}"] = _absent(path)
    return layout


def _health_files(conf, health):
    """The "is alive" script, and its timer units with systemd or its cron entry without."""
    enabled, systemd = health["enabled"], health["systemd"]
    context = {k: v for k, v in health.items() if k not in ("files",)}
    script = _from_template(
        health["script"],
        "mail-health.sh.jinja",
        conf,
        mode="0755",
        context={"shell_vars": health["shell_vars"]},
    )
    layout = {"script": script if enabled else _absent(health["script"])}
    if systemd:
        for key, template in (("service", "mail-health.service.jinja"), ("timer", "mail-health.timer.jinja")):
            path = health[f"{key}_file"]
            layout[key] = _from_template(path, template, conf, context=context) if enabled else _absent(path)
    else:
        cron = _from_template(health["cron_file"], "mail-health.cron.jinja", conf, context=context)
        layout["cron"] = cron if enabled else _absent(health["cron_file"])
    return layout


def cleanup(conf, host):
    """
    What ``mail.clean`` and its per-concern clean states remove, whatever the
    current mode: packages, units and every file the formula may have written.
    Only files that carry the formula's marker or that it recorded as its own
    are removed (``mailstack.formula_files_absent``).

    host
        ``systemd``, ``health_timer_installed``, ``installed_dropins`` and
        ``owned_files`` (recorded in the state directory).
    """
    lookup = conf["lookup"]
    postfix, msmtp = lookup["postfix"], lookup["msmtp"]
    sasl = f"{postfix['config_dir']}/sasl_passwd"
    unit_dir = lookup["systemd_unit_dir"]
    return {
        "smtp": {
            "service": postfix["service"],
            "packages": postfix["pkgs"][:1],
            "files": [
                f"{postfix['config_dir']}/main.cf",
                sasl,
                f"{postfix['config_dir']}/recipient_canonical",
                f"{postfix['config_dir']}/virtual_alias",
            ],
            "tables": _tables(sasl, postfix["map_type"]),
        },
        "msmtp": {
            "packages": ([msmtp["mta_pkg"]] if msmtp["mta_pkg"] else []) + msmtp["pkgs"],
            "files": [msmtp["config"], msmtp["aliases"], *host["owned_files"]],
            "group": msmtp["group"],
            "sendmail_link": None
            if msmtp["mta_pkg"]
            else {"path": msmtp["sendmail"], "target": msmtp["binary"]},
        },
        "alerts": {
            "files": [
                f"{lookup['libexec_dir']}/mail-alert",
                f"{unit_dir}/{ALERT_UNIT}",
                *host["installed_dropins"],
            ],
            "systemd": host["systemd"],
        },
        "health": {
            "timer": f"{HEALTH_UNIT}.timer" if host["health_timer_installed"] else "",
            "files": [
                f"{lookup['libexec_dir']}/{HEALTH_UNIT}",
                f"{lookup['cron_dir']}/{HEALTH_UNIT}",
                f"{unit_dir}/{HEALTH_UNIT}.service",
                f"{unit_dir}/{HEALTH_UNIT}.timer",
            ],
            "systemd": host["systemd"],
        },
        "directories": {
            lookup["libexec_dir"]: {"files": [], "subdirs": []},
            lookup["state_dir"]: {
                "files": ["health.last", "owned.json", "owned.json.new"],
                "subdirs": ["alerts"],
            },
        },
    }
