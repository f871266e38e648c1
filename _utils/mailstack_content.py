"""
The content of the files the ``mail`` formula writes: main.cf's parameters,
msmtprc's lines, msmtp's aliases file, the SASL map and Postfix's rewrite and
alias tables, the marker every file starts with, and the templates that render
the rest (in ``<formula>/files/``).

``files`` gives the plan's ``files`` from its decisions (where mail goes, which
sender, where msmtp logs); ``mailstack_plan.build`` calls it through the
``utils`` mapping it is handed. The module uses the rest to check settings:
``managed_postfix_parameters``, ``templates`` and ``overlong_msmtp_line``.
Pure: validated settings and decisions in, text and parameters out.
"""

import re

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


def templates():
    """The formula's templates (in ``<formula>/files/``), which pillar
    ``mail:tofs:source_files`` may replace."""
    return TEMPLATES


def marker():
    """The start of the first line of every file the formula writes."""
    return MARKER


def files(settings, delivery, envelope_sender, relay_sender, myhostname, msmtp_log):
    """
    The plan's ``files``: the content of every file the formula writes, from
    the plan's decisions.

    delivery
        ``mailstack_plan.Delivery``: whether Postfix relays, where msmtp sends
        and where Postfix relays to (passwords already masked where asked).
    envelope_sender, relay_sender
        The sender mail leaves with (the Mailu login, ``mail:relay:sender``),
        or empty.
    msmtp_log
        Where msmtp logs (``logfile`` and its ``mode``, else ``syslog``).
    """
    postfix, upstream = delivery.postfix, delivery.postfix_upstream
    # msmtp talks to the relayhost itself only where no Postfix relays.
    msmtp_sender = "" if postfix else relay_sender
    msmtprc = _msmtprc(settings, delivery.msmtp, envelope_sender, msmtp_sender, _msmtp_log_line(msmtp_log))
    return {
        "msmtprc": msmtprc,
        "msmtp_aliases": _msmtp_aliases(settings["admin"], settings["aliases"]),
        "secret_in_msmtprc": any(key == "password" for key, _ in msmtprc),
        "msmtp_log": {k: v for k, v in msmtp_log.items() if k in ("logfile", "mode")},
        "main_cf": _postfix_main_cf(settings, upstream, envelope_sender, relay_sender, myhostname)
        if postfix
        else {},
        "sasl_passwd": _sasl_passwd(upstream) if postfix else "",
        "recipient_canonical": _recipient_canonical(settings["admin"], settings["aliases"], myhostname)
        if postfix
        else "",
        "virtual_alias": _virtual_alias(settings["aliases"], myhostname) if postfix else "",
    }


def _with_header(lines):
    return HEADER + "".join(line + "\n" for line in lines) if lines else ""


# ------------------------------------------------------------------ Postfix ---


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


def _postfix_main_cf(settings, upstream, envelope_sender, relay_sender, myhostname):
    postfix = settings["lookup"]["postfix"]
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
    if settings["admin"]:
        params["recipient_canonical_maps"] = f"regexp:{postfix['config_dir']}/recipient_canonical"
    if settings["aliases"]:
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
    params.update(settings["postfix"]["main_cf"])
    return params


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
    settings = {
        "lookup": {"postfix": postfix},
        "admin": "a",
        "aliases": {"a": ["b"]},
        "postfix": {"main_cf": {}},
    }
    upstreams = [None] + [
        {"host": "h", "port": 25, "tls": tls, "user": "u", "ca_file": "c", "tls_name": ""}
        for tls in ("none", "starttls", "implicit")
    ]
    names = set()
    for upstream in upstreams:
        names.update(_postfix_main_cf(settings, upstream, "sender", "", "host"))
        names.update(_postfix_main_cf(settings, upstream, "", "sender", "host"))
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


# -------------------------------------------------------------------- msmtp ---


def _msmtp_quote(value):
    # msmtp strips the outer quotes and keeps everything between them as is.
    return f'"{value}"'


def _msmtp_log_line(msmtp_log):
    if msmtp_log["logfile"]:
        return ("logfile", msmtp_log["logfile"])
    return ("syslog", "LOG_MAIL") if msmtp_log["syslog"] else None


def _msmtprc(settings, target, envelope_sender, relay_sender="", log_line=None):
    """msmtprc's lines, as ``(keyword, value)``: msmtprc.jinja writes each as
    ``_msmtp_line`` does."""
    lines = [
        ("defaults", ""),
        ("timeout", str(settings["timeout"])),
        *([log_line] if log_line else []),
        ("account", "default"),
        ("host", target["host"]),
        ("port", str(target["port"])),
        ("from", envelope_sender or relay_sender or settings["from"]),
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
    if settings["admin"] or settings["aliases"]:
        lines.insert(2, ("aliases", settings["lookup"]["msmtp"]["aliases"]))
    return lines


def _msmtp_line(keyword, value):
    """One line of msmtprc as msmtprc.jinja writes it."""
    return f"{keyword} {value}" if value else keyword


def _msmtp_alias_line(name, addresses):
    return f"{name}: {', '.join(addresses)}"


def _msmtp_aliases(admin, aliases):
    lines = [_msmtp_alias_line(name, addresses) for name, addresses in aliases.items()]
    if admin:
        lines.append(_msmtp_alias_line("default", [admin]))
    return _with_header(lines)


# The pillar key (under mail:) of the value an msmtprc line towards the
# upstream of mail:<section> holds, by the line's keyword; the others are fixed.
_MSMTPRC_KEYS = {
    "timeout": "timeout",
    "logfile": "msmtp:logfile",
    "aliases": "lookup:msmtp:aliases",
    "port": "{section}:port",
    "user": "{section}:user",
    "password": "{section}:password",
    "tls_host_override": "{section}:tls_name",
}


def _msmtprc_key(settings, section, sender_key, keyword):
    upstream = settings[section]
    if keyword == "host":
        return f"{section}:{upstream['server_key']}"
    if keyword == "tls_trust_file":
        return f"{section}:ca_file" if upstream["ca_file"] else "lookup:ca_bundle"
    if keyword == "from":
        return sender_key
    return _MSMTPRC_KEYS.get(keyword, "").format(section=section)


def _msmtp_lines_by_key(settings, upstreams):
    """``(pillar key, line)`` of every line msmtp's files can get from these
    settings, as they are written: the aliases file, and msmtprc (with
    mail:msmtp:logfile) towards each of ``upstreams`` with each sender."""
    for line in _msmtp_aliases(settings["admin"], settings["aliases"]).splitlines()[1:]:
        name = line.split(":", 1)[0]
        yield (f"aliases:{name}" if name in settings["aliases"] else "admin"), line
    log_line = _msmtp_log_line({"logfile": settings["msmtp"]["logfile"], "syslog": False})
    senders = {
        "from": "",
        "mailu:user": settings["mailu"]["user"],
        "relay:sender": settings["relay"]["sender"],
    }
    for section, target in upstreams.items():
        for sender_key, sender in senders.items():
            envelope, relay = (sender, "") if sender_key == "mailu:user" else ("", sender)
            for keyword, value in _msmtprc(settings, target, envelope, relay, log_line):
                yield _msmtprc_key(settings, section, sender_key, keyword), _msmtp_line(keyword, value)


def overlong_msmtp_line(settings, upstreams):
    """``(pillar key, line length, msmtp's limit)`` of the first value that would
    make a line msmtp cannot read, or ``None``. ``upstreams``: the targets msmtp
    may send to, by the section of the settings they come from
    (``mailstack_plan.upstreams``)."""
    for key, line in _msmtp_lines_by_key(settings, upstreams):
        if len(line) > MSMTP_MAX_LINE:
            return key, len(line), MSMTP_MAX_LINE
    return None


# ------------------------------------------- templates also written here ---


def _main_cf_text(context, plan):
    lines = [
        f"{context['marker']}): a send-only Postfix that listens on loopback",
        "# only and never delivers locally. Local changes are overwritten.",
    ]
    lines += [f"{key} = {value}" for key, value in context["params"].items()]
    return _ending_as_the_template_does("\n".join(lines))


def _sasl_passwd_text(context, plan):
    return f"{context['marker']}). Credentials for the relayhost; root only.\n{plan['files']['sasl_passwd']}"


def _msmtprc_text(context, plan):
    lines = [f"{context['marker']}, mode {plan['mode']}). Local changes are overwritten."]
    for keyword, value in plan["files"]["msmtprc"]:
        if keyword == "account":
            lines.append("")
        lines.append(_msmtp_line(keyword, value))
    return _ending_as_the_template_does("\n".join(lines))


def _ending_as_the_template_does(text):
    # main.cf.jinja and msmtprc.jinja end with an empty line, so every file
    # written so far does: the same text keeps an upgrade from changing it.
    return text + "\n\n"


# Where no mail:tofs source replaces them, these templates' text is written
# from here: no request to the file server and no Jinja for the files every
# host with Postfix or msmtp has. A test renders each template and compares.
OWN_TEXT = {
    "main.cf.jinja": _main_cf_text,
    "sasl_passwd.jinja": _sasl_passwd_text,
    "msmtprc.jinja": _msmtprc_text,
}


def written_without_template():
    """The formula's templates whose text ``own_text`` writes."""
    return frozenset(OWN_TEXT)


def own_text(template, context, plan):
    """
    The text ``file.managed`` writes from the formula's own ``template``
    (last lines included): from the plan entry's ``context`` and, for the
    files that hold a password, the ``plan`` built with passwords.
    """
    return OWN_TEXT[template](context, plan)
