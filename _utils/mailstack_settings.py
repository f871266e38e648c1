"""
Settings and their validation for the ``mail`` formula, used by the
``mailstack`` execution module (``__utils__["mailstack_settings.validate"]``).

The module loads the parameter files and pillar and passes in what only the
running system can tell (the parameters the installed Postfix knows, whether
this host is a container); the one look at the system here is that every user
in ``mail:senders`` exists (the password database).

What pillar may name is confined here, by allow-lists: addresses of plain
characters, the formula's own directories and files at the places the formula
uses, programs root runs only at their packages' own paths, the default Postfix
instance, and ``mail:postfix:main_cf`` parameters from a reviewed list whose TLS
values may only harden. Whether the files and directories on disk are the
formula's (its marker, ownership, links) is checked elsewhere, when writing.
"""

import copy
import ipaddress
import pwd
import re

import salt.utils.dictupdate
from salt.exceptions import CommandExecutionError

MODES = ("auto", "mailu", "relay")


MAILU_TLS = ("implicit", "starttls")


RELAY_TLS = ("implicit", "starttls", "none")


SECRET_KEYS = ("password",)


# The key of the server's name in each upstream section, as pillar spells it.
SERVER_KEY = {"mailu": "host", "relay": "relayhost"}

FREE_FORM_KEYS = ("mail:aliases", "mail:postfix:main_cf", "mail:tofs:source_files")

# A template override: a file on the Salt fileserver, never a URL or a local path.
_SALT_SOURCE_RE = re.compile(r"salt://[A-Za-z0-9_.@+-]+(/[A-Za-z0-9_.@+-]+)*(\?saltenv=[A-Za-z0-9_-]+)?")


# The only main.cf parameters mail:postfix:main_cf may set (pillar.example says
# why each family is safe). None of them changes where mail goes, who gets a
# copy, what is logged of a session, which programs run or which files are read.
POSTFIX_TUNABLE = frozenset(
    (
        # Sizes and limits.
        "message_size_limit",
        "header_size_limit",
        "line_length_limit",
        "bounce_size_limit",
        "queue_minfree",
        "smtp_line_length_limit",
        "smtp_mx_address_limit",
        "smtp_mx_session_limit",
        "smtpd_recipient_limit",
        "qmgr_message_active_limit",
        "qmgr_message_recipient_limit",
        "default_process_limit",
        # Concurrency and rate towards the next hop.
        "default_destination_concurrency_limit",
        "smtp_destination_concurrency_limit",
        "initial_destination_concurrency",
        "default_destination_recipient_limit",
        "smtp_destination_recipient_limit",
        "default_destination_rate_delay",
        "smtp_destination_rate_delay",
        # Queue lifetimes and retry times.
        "maximal_queue_lifetime",
        "bounce_queue_lifetime",
        "minimal_backoff_time",
        "maximal_backoff_time",
        "queue_run_delay",
        "delay_warning_time",
        # Timeouts.
        "smtp_connect_timeout",
        "smtp_helo_timeout",
        "smtp_mail_timeout",
        "smtp_rcpt_timeout",
        "smtp_data_init_timeout",
        "smtp_data_xfer_timeout",
        "smtp_data_done_timeout",
        "smtp_quit_timeout",
        "smtp_starttls_timeout",
        "smtpd_timeout",
        # TLS protocol and cipher hardening (the certificate check stays the formula's);
        # the protocols and cipher grades are checked to harden only (_check_tls_hardening).
        "smtp_tls_protocols",
        "smtp_tls_mandatory_protocols",
        "smtp_tls_ciphers",
        "smtp_tls_mandatory_ciphers",
        "smtp_tls_exclude_ciphers",
        "smtp_tls_mandatory_exclude_ciphers",
        "tls_preempt_cipherlist",
        # How this host introduces itself and which addresses it uses.
        "smtp_helo_name",
        "inet_protocols",
        "smtp_address_preference",
        "smtputf8_enable",
    )
)


# TLS values of mail:postfix:main_cf that may only harden what Postfix does.
TLS_CIPHER_GRADES = ("medium", "high")
TLS_CIPHER_PARAMETERS = ("smtp_tls_ciphers", "smtp_tls_mandatory_ciphers")
TLS_PROTOCOL_PARAMETERS = ("smtp_tls_protocols", "smtp_tls_mandatory_protocols")
TLS_MINIMUM_PROTOCOLS = (">=TLSv1.2", ">=TLSv1.3")
TLS_PROTOCOLS_TO_EXCLUDE = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")


# Where the files the formula writes or removes may be (see _validate_written_paths):
# root-owned system places only, never a directory others may write to.
SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/usr/local/lib/systemd/system")
CRON_DIRS = ("/etc/cron.d",)
STATE_DIRS = ("/var/lib/mailstack", "/var/local/lib/mailstack")
LIBEXEC_DIRS = (
    "/usr/local/lib/mailstack",
    "/usr/lib/mailstack",
    "/usr/local/libexec/mailstack",
    "/usr/libexec/mailstack",
)
POSTFIX_CONFIG_DIR = "/etc/postfix"
MSMTP_CONFIGS = ("/etc/msmtprc", "/usr/local/etc/msmtprc")
MSMTP_ALIASES_FILES = ("/etc/aliases.msmtp", "/usr/local/etc/aliases.msmtp")
LOG_DIR = "/var/log/"
# node_exporter's textfile collector directories: Debian's, and the usual ones elsewhere.
METRICS_DIRS = (
    "/var/lib/prometheus/node-exporter",
    "/var/lib/node_exporter/textfile_collector",
    "/var/lib/node_exporter",
)

# Programs root runs, at the places their packages install them.
MSMTP_BINARY_DIRS = ("/usr/bin", "/bin", "/usr/local/bin")
SENDMAIL_DIRS = ("/usr/sbin", "/usr/bin", "/usr/lib", "/sbin", "/usr/local/sbin")
POSTFIX_DAEMON_DIRS = ("/usr/lib/postfix/", "/usr/libexec/postfix/")


_POSTFIX_NAME_RE = re.compile(r"[A-Za-z0-9_]+")


_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"


_HOST_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")


# The part before the @: no "/" (an address must never read as a path), no "$" "{" "}"
# (Postfix substitutes them in regexp-table results), no ":" or white space (separators
# in msmtp's aliases file), no quotes or other shell and glob characters.
ADDRESS_LOCAL_CHARACTERS = "letters, digits and . _ % + = -"
_ADDRESS_LOCAL_RE = re.compile(r"[A-Za-z0-9._%+=-]+")
_ADDRESS_RE = re.compile(_ADDRESS_LOCAL_RE.pattern + "@" + rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")


_USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")


_LOCAL_NAME_RE = re.compile(r"[a-z0-9_][a-z0-9_.+-]{0,63}")


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# systemd unit names the formula writes drop-ins for and passes to systemctl and
# scripts: no backslash escapes, and not starting with "-" (an option).
_UNIT_RE = re.compile(
    r"[A-Za-z0-9_:][A-Za-z0-9:_.-]*(@[A-Za-z0-9:_.-]*)?"
    r"\.(service|socket|timer|mount|automount|path|target|swap|slice)"
)


_PACKAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")


_GROUP_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


# Absolute paths of plain characters: no white space, quotes, shell or glob
# characters, and no component that starts with a dot (no "..", no ".").
_PLAIN_PATH_RE = re.compile(r"(/[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*)+")


_CALENDAR_RE = re.compile(r"[A-Za-z0-9 *:,./~+-]+")


def merge(layers, pillar):
    """
    The defaults and per-OS ``layers`` merged in order, then pillar
    ``mail:lookup``, then the rest of pillar ``mail``. Raises for a pillar key
    the formula does not know.
    """
    merged = {}
    for layer in layers:
        merged = salt.utils.dictupdate.merge(merged, layer, merge_lists=False)
    pillar = copy.deepcopy(pillar)
    lookup = pillar.pop("lookup", None) or {}
    if not isinstance(lookup, dict):
        raise CommandExecutionError("Invalid pillar mail:lookup: must be a mapping")
    merged["lookup"] = salt.utils.dictupdate.merge(merged.get("lookup", {}), lookup, merge_lists=False)
    _reject_unknown_keys(pillar, merged, "mail")
    return salt.utils.dictupdate.merge(merged, pillar, merge_lists=False)


def _reject_unknown_keys(given, known, path):
    """Raise for keys the formula does not know; an empty section counts as ``{}``."""
    for key, value in list(given.items()):
        if key not in known:
            choices = ", ".join(sorted(k for k in known if k != "lookup"))
            raise CommandExecutionError(f"Unknown pillar key {path}:{key} (known keys: {choices})")
        if not isinstance(known[key], dict):
            continue
        if f"{path}:{key}" in FREE_FORM_KEYS:
            continue
        if value is None:
            given[key] = {}
        elif not isinstance(value, dict):
            raise CommandExecutionError(
                f"Invalid pillar {path}:{key}: must be a mapping of settings, got {type(value).__name__}"
            )
        else:
            _reject_unknown_keys(value, known[key], f"{path}:{key}")


class _Validator:
    """Checks one settings tree; every error names the pillar key."""

    def __init__(self, data):
        self.data = data

    def get(self, path):
        node = self.data
        for part in path.split(":"):
            node = node[part]
        return node

    def fail(self, path, problem):
        raise CommandExecutionError(f"Invalid pillar mail:{path}: {problem}")

    def boolean(self, path):
        value = self.get(path)
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false, got {value!r}")
        return value

    def choice(self, path, choices):
        value = self.get(path)
        if not isinstance(value, str) or value not in choices:
            self.fail(path, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def integer(self, path, low, high):
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(path, f"must be a whole number from {low} to {high}, got {value!r}")
        return value

    def text(self, path, secret=False):
        value = self.get(path)
        shown = "the value" if secret else repr(value)
        if not isinstance(value, str):
            self.fail(path, f"must be a string (quote it in YAML), got a {type(value).__name__}")
        if _CONTROL_RE.search(value):
            self.fail(path, f"{shown} contains a newline or another control character")
        return value

    def token(self, path, secret=False):
        value = self.text(path, secret=secret)
        if value != value.strip() or (not secret and re.search(r"\s", value)):
            self.fail(
                path,
                "must not contain white space" if not secret else "must not start or end with white space",
            )
        return value

    def host(self, path):
        value = self.token(path)
        if value and not _is_host(value):
            self.fail(path, f"{value!r} is not a host name or IP address")
        return value

    def address(self, path):
        return self.address_value(path, self.get(path))

    def address_value(self, path, value):
        if not isinstance(value, str):
            self.fail(path, f"must be an e-mail address (a string), got a {type(value).__name__}")
        if value != value.strip() or re.search(r"\s", value) or _CONTROL_RE.search(value):
            self.fail(path, f"{value!r} contains white space or a control character")
        local = value.rpartition("@")[0]
        if local and not _ADDRESS_LOCAL_RE.fullmatch(local):
            self.fail(
                path,
                f"{value!r}: the part before @ may contain only {ADDRESS_LOCAL_CHARACTERS}"
                " (no / $ { } : quotes or other punctuation, which paths and the mail tables would"
                " read as syntax); use a plain address such as ops@example.org",
            )
        if value and not _ADDRESS_RE.fullmatch(value):
            self.fail(path, f"{value!r} is not an e-mail address (user@example.org)")
        return value

    def path(self, path):
        value = self.token(path)
        if value and not value.startswith("/"):
            self.fail(path, f"{value!r} must be an absolute path")
        if value and not _PLAIN_PATH_RE.fullmatch(value):
            self.fail(
                path,
                f"{value!r} must be a plain absolute path: letters, digits and _ + @ - . only,"
                " no component starting with a dot",
            )
        return value

    def path_under(self, path, parent):
        value = self.path(path)
        if value and not (value.startswith(parent) and len(value) > len(parent)):
            self.fail(path, f"{value!r} must be a file under {parent}")
        return value


def _is_ip_address(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _require_tls_name_for_postfix(check, section, upstream):
    """Postfix matches certificate names only: an IP literal next hop needs the
    name to expect. ``upstream``: a target Postfix relays to."""
    if _is_ip_address(upstream["host"]) and upstream["tls"] != "none" and not upstream["tls_name"]:
        check.fail(
            f"{section}:tls_name",
            f"is required when mail:{section} has an IP address and TLS: Postfix verifies a certificate"
            " by name only, so give the DNS name the server's certificate holds",
        )


def _is_host(value):
    if _is_ip_address(value):
        return True
    return len(value) <= 253 and bool(_HOST_RE.fullmatch(value)) and not value.replace(".", "").isdigit()


def _validate_container(value):
    if value == "auto" or isinstance(value, bool):
        return value
    raise CommandExecutionError(f"Invalid pillar mail:container: must be auto, true or false; got {value!r}")


def _validate_upstream(check, section, tls_choices):
    host_key = SERVER_KEY[section]
    out = {
        host_key: check.host(f"{section}:{host_key}"),
        "port": check.integer(f"{section}:port", 1, 65535),
        "tls": check.choice(f"{section}:tls", tls_choices),
        "user": check.token(f"{section}:user"),
        "password": check.token(f"{section}:password", secret=True),
        "ca_file": check.path(f"{section}:ca_file"),
        "tls_name": check.host(f"{section}:tls_name"),
    }
    if out["tls_name"] and _is_ip_address(out["tls_name"]):
        check.fail(f"{section}:tls_name", "must be a DNS name from the server's certificate, not an address")
    if out["tls_name"] and out["tls"] == "none":
        check.fail(f"{section}:tls_name", f"is set but mail:{section}:tls is none")
    if ":" in out["user"]:
        check.fail(f"{section}:user", "must not contain ':'")
    if out["password"] and not out["user"]:
        check.fail(f"{section}:user", f"is empty but mail:{section}:password is set")
    if out["user"] and not out["password"]:
        check.fail(f"{section}:password", f"is empty but mail:{section}:user is set")
    if out["user"] and not out[host_key]:
        check.fail(
            f"{section}:{host_key}", f"is empty but mail:{section}:user is set: credentials need a server"
        )
    if out["user"] and out["tls"] == "none":
        check.fail(
            f"{section}:tls", "is none but credentials are set: a password is never sent in clear text"
        )
    # Which key holds the server's name, for the plan (its targets call it ``host``).
    out["server_key"] = host_key
    return out


def _validate_relay(check):
    relay = _validate_upstream(check, "relay", RELAY_TLS)
    relay["sender"] = check.address("relay:sender")
    if relay["sender"] and not relay["relayhost"]:
        check.fail(
            "relay:sender", "is set but mail:relay:relayhost is empty: it is the sender for a relayhost"
        )
    return relay


def _validate_senders(value):
    if not isinstance(value, list) or not all(
        isinstance(user, str) and _USER_RE.fullmatch(user) for user in value
    ):
        raise CommandExecutionError(
            f"Invalid pillar mail:senders: must be a list of local user names, got {value!r}"
        )
    for user in value:
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise CommandExecutionError(
                f"Invalid pillar mail:senders: user {user!r} does not exist on this minion"
            ) from None
    return sorted(set(value))


def _validate_aliases(check, aliases):
    """Return ``{local name: [addresses]}``; a single address becomes a list of one."""
    if aliases is None:
        return {}
    if not isinstance(aliases, dict):
        check.fail("aliases", f"must be a mapping of local names to addresses, got {type(aliases).__name__}")
    result = {}
    for name, targets in aliases.items():
        if not isinstance(name, str) or not _LOCAL_NAME_RE.fullmatch(name) or name == "default":
            check.fail(
                "aliases",
                f"{name!r} is not a local name (lower-case letters, digits and _ . + -; 'default' is"
                " what mail:admin stands for)",
            )
        key = f"aliases:{name}"
        addresses = [targets] if isinstance(targets, str) else targets
        if not isinstance(addresses, list) or not addresses:
            check.fail(key, "must be an e-mail address or a non-empty list of them")
        for address in addresses:
            if not check.address_value(key, address):
                check.fail(key, "must not contain an empty address")
        result[name] = list(dict.fromkeys(addresses))
    return dict(sorted(result.items()))


def _main_cf_value(check, key, value):
    """A main.cf value from a string, number, true/false or a list of strings and numbers."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(
        isinstance(item, (str, int, float)) and not isinstance(item, bool) for item in value
    ):
        value = ", ".join(str(item) for item in value)
    if not isinstance(value, str):
        check.fail(key, f"must be a string, a number or a list of them, got {value!r}")
    if _CONTROL_RE.search(value):
        check.fail(key, f"{value!r} contains a newline or another control character")
    return value.strip()


def _check_tls_hardening(check, key, name, value):
    """A TLS protocol or cipher grade in main.cf may only be stricter than Postfix's default."""
    if name in TLS_CIPHER_PARAMETERS and value not in TLS_CIPHER_GRADES:
        check.fail(
            key,
            f"{value!r} would weaken TLS: the cipher grade may only be {' or '.join(TLS_CIPHER_GRADES)}"
            " (null, export and low are refused)",
        )
    if name in TLS_PROTOCOL_PARAMETERS and not _hardens_tls_protocols(value):
        check.fail(
            key,
            f"{value!r} would allow old protocols: give {' or '.join(TLS_MINIMUM_PROTOCOLS)}, or a list"
            f" that excludes at least {', '.join('!' + p for p in TLS_PROTOCOLS_TO_EXCLUDE)}"
            " (a <= form is refused)",
        )


def _hardens_tls_protocols(value):
    """``>=TLSv1.2``, ``>=TLSv1.3``, or ``!NAME`` items excluding every protocol older than TLSv1.2."""
    if value in TLS_MINIMUM_PROTOCOLS:
        return True
    items = [item for item in re.split(r"[\s,:]+", value) if item]
    if not items or not all(re.fullmatch(r"![A-Za-z0-9.]+", item) for item in items):
        return False
    return set(TLS_PROTOCOLS_TO_EXCLUDE) <= {item[1:] for item in items}


def _validate_main_cf(check, main_cf, known_postfix_parameters, managed):
    if main_cf is None:
        return {}
    if not isinstance(main_cf, dict):
        check.fail("postfix:main_cf", f"must be a mapping of parameter names to values, got {main_cf!r}")
    result = {}
    for name, value in main_cf.items():
        if not isinstance(name, str) or not _POSTFIX_NAME_RE.fullmatch(name):
            check.fail("postfix:main_cf", f"{name!r} is not a Postfix parameter name")
        key = f"postfix:main_cf:{name}"
        if name in managed and name not in POSTFIX_TUNABLE:
            check.fail(
                key,
                "is managed by the formula (it keeps the relay closed and send-only, or is derived from"
                " mail:relay, mail:mailu, mail:admin, mail:aliases or mail:lookup) and cannot be set here",
            )
        if name not in POSTFIX_TUNABLE:
            check.fail(
                key,
                "is not one of the parameters pillar may tune (sizes, rates, queue lifetimes, timeouts,"
                " TLS protocols and ciphers, HELO name; the list is in pillar.example): anything that"
                " could change where mail goes, who receives a copy, what is logged, which programs"
                " run, or weaken TLS beyond what can be checked is refused",
            )
        result[name] = _main_cf_value(check, key, value)
        _check_tls_hardening(check, key, name, result[name])
    if result:
        known, source = known_postfix_parameters()
        for name in result:
            if name not in known:
                check.fail(
                    f"postfix:main_cf:{name}", f"is not a parameter Postfix knows (checked with {source})"
                )
    return result


def validate(
    raw, known_postfix_parameters, in_container, managed_postfix_parameters, templates, postfix_upstreams
):
    """
    The settings of ``raw`` (defaults, per-OS data and pillar merged), checked
    and normalized. Raises ``CommandExecutionError`` naming the pillar key of
    the first invalid value.

    known_postfix_parameters
        Called, only when ``mail:postfix:main_cf`` is set, for ``(names,
        where they come from)``.
    in_container
        Called with the validated ``mail:container`` value; whether this host
        counts as a container.
    managed_postfix_parameters
        The main.cf parameters the formula sets itself
        (``mailstack_content.managed_postfix_parameters``): naming one in
        ``mail:postfix:main_cf`` gets a message saying where it comes from,
        unless it is a default pillar may tune (``POSTFIX_TUNABLE``).
    templates
        The formula's templates (``mailstack_content.TEMPLATES``), which
        ``mail:tofs:source_files`` may replace.
    postfix_upstreams
        Called with the settings and whether this host counts as a container,
        for where Postfix relays to in each mode (``mailstack_plan.postfix_upstreams``):
        each upstream there needs its TLS name where it is an IP address.
    """
    check = _Validator(raw)
    mailu = _validate_upstream(check, "mailu", MAILU_TLS)
    mailu["queue"] = check.boolean("mailu:queue")
    if mailu["host"] and not mailu["user"]:
        check.fail(
            "mailu:user",
            "is required when mail:mailu:host is set (Mailu only accepts authenticated submission)",
        )
    settings = {
        "enabled": check.boolean("enabled"),
        "mode": check.choice("mode", MODES),
        "container": _validate_container(raw["container"]),
        "from": check.address("from"),
        "admin": check.address("admin"),
        "aliases": _validate_aliases(check, raw["aliases"]),
        "postfix": {
            "main_cf": _validate_main_cf(
                check, raw["postfix"]["main_cf"], known_postfix_parameters, managed_postfix_parameters
            )
        },
        "msmtp": {"logfile": check.path_under("msmtp:logfile", LOG_DIR)},
        "senders": _validate_senders(raw["senders"]),
        "timeout": check.integer("timeout", 1, 300),
        "mailu": mailu,
        "relay": _validate_relay(check),
        "alerts": _validate_alerts(check),
        "health": _validate_health(check),
        "metrics": _validate_metrics(check),
        "tofs": {"source_files": _validate_tofs(check, raw["tofs"]["source_files"], templates)},
        "take_over": _validate_take_over(check),
        "lookup": _validate_lookup(raw.get("lookup", {})),
    }
    if settings["mode"] == "mailu" and not mailu["host"]:
        check.fail("mailu:host", "is required when mail:mode is mailu")
    for section, upstream in postfix_upstreams(settings, in_container(settings["container"])).items():
        _require_tls_name_for_postfix(check, section, upstream)
    return settings


def _validate_take_over(check):
    """What existing on the host before the formula it may take as its own."""
    return {
        "postfix": check.boolean("take_over:postfix"),
        "senders_group": check.boolean("take_over:senders_group"),
    }


def _validate_alerts(check):
    units = check.get("alerts:units")
    if not isinstance(units, list) or not all(
        isinstance(unit, str) and len(unit) <= 255 and _UNIT_RE.fullmatch(unit) for unit in units
    ):
        check.fail("alerts:units", f"must be a list of systemd unit names (cron.service), got {units!r}")
    for unit in units:
        if unit.startswith("mail-alert@"):
            check.fail("alerts:units", "must not list mail-alert@ itself: a failing alert would alert again")
        if unit.split("@", 1)[0].rsplit(".", 1)[0].endswith("-"):
            check.fail(
                "alerts:units",
                f"{unit!r} names a prefix drop-in (systemd applies {unit}.d/ to every unit whose name"
                " starts with it, mail-alert@ included): list the units themselves",
            )
    return {"units": sorted(set(units)), "interval": check.integer("alerts:interval", 0, 7 * 86400)}


def _validate_tofs(check, source_files, templates):
    if source_files is None:
        return {}
    if not isinstance(source_files, dict):
        check.fail(
            "tofs:source_files",
            f"must be a mapping of template names to lists of salt:// sources, got {source_files!r}",
        )
    result = {}
    for template, sources in source_files.items():
        key = f"tofs:source_files:{template}"
        if template not in templates:
            check.fail(
                "tofs:source_files", f"{template!r} is not a template of the formula ({', '.join(templates)})"
            )
        if isinstance(sources, str):
            sources = [sources]
        if not isinstance(sources, list) or not sources:
            check.fail(key, f"must be a list of salt:// sources, got {sources!r}")
        for source in sources:
            if (
                not isinstance(source, str)
                or not _SALT_SOURCE_RE.fullmatch(source)
                or "/../" in source + "/"
                or "/./" in source + "/"
            ):
                check.fail(
                    key,
                    f"{source!r} is not a salt:// path on the fileserver (salt://<dir>/<file>, without .. or"
                    " spaces; http and local paths are refused)",
                )
        result[template] = list(sources)
    return result


def _validate_health(check):
    on_calendar = check.text("health:on_calendar")
    if not _CALENDAR_RE.fullmatch(on_calendar):
        check.fail("health:on_calendar", f"{on_calendar!r} is not a systemd calendar expression (daily)")
    return {
        "enabled": check.boolean("health:enabled"),
        "on_calendar": on_calendar,
        "randomized_delay": check.integer("health:randomized_delay", 0, 86400),
        "retries": check.integer("health:retries", 0, 10),
        "retry_delay": check.integer("health:retry_delay", 1, 3600),
    }


def _validate_metrics(check):
    """The metrics file for node_exporter: where (a textfile directory of the allow-list) and how often."""
    return {
        "enabled": check.boolean("metrics:enabled"),
        "directory": _require_one_of(
            check, "metrics:directory", METRICS_DIRS, "a directory node_exporter's textfile collector reads"
        ),
        "interval": check.integer("metrics:interval", 60, 3600),
    }


def _validate_lookup(lookup):
    for section in ("msmtp", "postfix"):
        if not isinstance(lookup.get(section), dict):
            raise CommandExecutionError(f"Invalid pillar mail:lookup:{section}: must be a mapping")
    check = _Validator({"lookup": lookup})
    if not check.path("lookup:ca_bundle"):
        check.fail("lookup:ca_bundle", "must not be empty")
    _validate_written_paths(check)
    _validate_program_path(check, "lookup:msmtp:binary", "msmtp", MSMTP_BINARY_DIRS)
    check.path_under("lookup:postfix:maillog_file", LOG_DIR)
    if lookup["msmtp"]["mta_pkg"] and not _is_package_name(check.token("lookup:msmtp:mta_pkg")):
        check.fail("lookup:msmtp:mta_pkg", "must be a package name or empty")
    if not _GROUP_RE.fullmatch(check.token("lookup:msmtp:group")):
        check.fail("lookup:msmtp:group", "must be a group name (lower-case letters, digits, _ and -)")
    service = check.token("lookup:postfix:service")
    if not (_UNIT_RE.fullmatch(service) or _UNIT_RE.fullmatch(service + ".service")):
        check.fail("lookup:postfix:service", f"{service!r} is not a systemd unit name")
    check.choice("lookup:postfix:map_type", MAP_TYPES)
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", check.token("lookup:postfix:compatibility_level")):
        check.fail("lookup:postfix:compatibility_level", "must be a Postfix compatibility level (3.6)")
    lookup["postfix"]["prestart"] = _validate_prestart(check)
    for path in ("lookup:msmtp:pkgs", "lookup:postfix:pkgs"):
        value = check.get(path)
        if not isinstance(value, list) or not value or not all(_is_package_name(p) for p in value):
            check.fail(path, "must be a non-empty list of package names")
    return lookup


MAP_TYPES = ("hash", "btree", "lmdb", "cdb")


def _validate_written_paths(check):
    """Paths the formula writes, chowns or removes: each one of the places that are the formula's."""
    for path, allowed, problem in (
        ("lookup:state_dir", STATE_DIRS, "a directory of the formula's own that only root may write to"),
        ("lookup:libexec_dir", LIBEXEC_DIRS, "a directory of the formula's own that only root may write to"),
        ("lookup:systemd_unit_dir", SYSTEMD_UNIT_DIRS, "systemd's directory of local units"),
        ("lookup:cron_dir", CRON_DIRS, "cron's directory of system jobs"),
        ("lookup:msmtp:config", MSMTP_CONFIGS, "msmtp's system configuration"),
        ("lookup:msmtp:aliases", MSMTP_ALIASES_FILES, "the formula's own aliases file for msmtp"),
    ):
        _require_one_of(check, path, allowed, problem)
    if check.path("lookup:postfix:config_dir") != POSTFIX_CONFIG_DIR:
        check.fail(
            "lookup:postfix:config_dir",
            f"must be {POSTFIX_CONFIG_DIR}: Postfix instances other than the default are not supported"
            " (the formula runs postfix and postconf without -c, so settings elsewhere would never be read)",
        )
    _validate_program_path(check, "lookup:msmtp:sendmail", "sendmail", SENDMAIL_DIRS)


def _require_one_of(check, path, allowed, what):
    value = check.path(path)
    if value not in allowed:
        check.fail(path, f"{value!r} is not allowed: it must be {what}, one of {', '.join(allowed)}")
    return value


def _validate_program_path(check, path, program, directories):
    """A program root runs: ``<dir>/<program>`` in one of the directories its packages use."""
    allowed = tuple(f"{directory}/{program}" for directory in directories)
    return _require_one_of(check, path, allowed, f"the {program} program")


def _validate_prestart(check):
    """An argument list, run without a shell: the program is one of Postfix's own."""
    value = check.get("lookup:postfix:prestart")
    if value in ("", None, []):
        return []
    if not isinstance(value, list) or not all(isinstance(arg, str) for arg in value):
        check.fail(
            "lookup:postfix:prestart",
            "must be a list of arguments (the program first), run without a shell, or empty",
        )
    for index, arg in enumerate(value):
        if _CONTROL_RE.search(arg):
            check.fail(f"lookup:postfix:prestart:{index}", "contains a newline or another control character")
    if not _PLAIN_PATH_RE.fullmatch(value[0]):
        check.fail("lookup:postfix:prestart", f"{value[0]!r}: the program must be a plain absolute path")
    if not value[0].startswith(POSTFIX_DAEMON_DIRS):
        check.fail(
            "lookup:postfix:prestart",
            f"{value[0]!r}: the program must be one of Postfix's own, under"
            f" {' or '.join(POSTFIX_DAEMON_DIRS)} (such as /usr/lib/postfix/configure-instance.sh)",
        )
    return list(value)


def _is_package_name(value):
    return isinstance(value, str) and bool(_PACKAGE_RE.fullmatch(value))


def is_address(value):
    """Whether ``value`` is an e-mail address as the formula accepts them."""
    return bool(_ADDRESS_RE.fullmatch(value))


def is_user_name(value):
    """Whether ``value`` is a local user name."""
    return bool(_USER_RE.fullmatch(value))


def with_derived_defaults(settings, fqdn):
    """Fill in what defaults to other values: ``from`` is the Mailu login, or root@<fqdn>."""
    if not settings["from"]:
        mailu_user = settings["mailu"]["user"]
        settings["from"] = mailu_user if is_address(mailu_user) else f"root@{fqdn}"
    return settings


def masked(settings, mask):
    """A copy of ``settings`` with every password replaced by ``mask``."""
    result = copy.deepcopy(settings)
    for section in ("mailu", "relay"):
        for key in SECRET_KEYS:
            if result[section][key]:
                result[section][key] = mask
    return result
