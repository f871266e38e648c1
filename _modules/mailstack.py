"""
Decisions for the ``mail`` formula: settings, validation, container detection,
delivery mode and reachability probes.

The ``.sls`` files of the formula ask this module once, at the top, and branch
on the plain values it returns. Settings come from, in order of precedence:
``mail/parameters/defaults.yaml``, ``os_family/``, ``os/`` and ``osfinger/``
files beside it, pillar ``mail:lookup``, then pillar ``mail``.

Passwords are only returned with ``include_secrets=True`` (``settings`` and
``plan``), which the formula's secret-holding templates use; everything else
masks them.
"""

import copy
import email.message
import email.policy
import email.utils
import glob
import ipaddress
import os
import pwd
import re
import shlex
import socket
import ssl
import time
import zlib

import salt.utils.dictupdate
import salt.utils.yaml
from salt.exceptions import CommandExecutionError

__virtualname__ = "mailstack"

PARAMETERS_DIR = "mail/parameters"
MASK = "********"

MODES = ("auto", "mailu", "relay")
MAILU_TLS = ("implicit", "starttls")
RELAY_TLS = ("implicit", "starttls", "none")
SECRET_KEYS = ("password",)
# msmtp 1.8 reads its files with a 501-byte buffer: 499 characters, the
# newline and the NUL. A longer line is refused at send time ("line longer
# than 500 characters") and msmtp has no way to continue or escape one.
MSMTP_MAX_LINE = 499
FS_ROOT = "/"
# Pillar mappings whose keys are the operator's (names, parameters), not the formula's.
FREE_FORM_KEYS = ("mail:aliases", "mail:postfix:main_cf")
POSTFIX_KNOWN_PARAMETERS = "mail/files/postfix-parameters.txt"
_POSTFIX_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
# main.cf parameters mail:postfix:main_cf may not set: what keeps the relay
# closed, send-only and local delivery off, where mail goes, and what the
# formula derives from mail:relay, mail:mailu, mail:admin and mail:aliases.
POSTFIX_PROTECTED = frozenset(
    (
        "inet_interfaces",
        "proxy_interfaces",
        "mynetworks",
        "mynetworks_style",
        "mydestination",
        "relay_domains",
        "virtual_alias_domains",
        "virtual_mailbox_domains",
        "local_transport",
        "default_transport",
        "relay_transport",
        "transport_maps",
        "smtpd_relay_restrictions",
        "smtpd_recipient_restrictions",
        "relayhost",
        "myhostname",
        "myorigin",
        "compatibility_level",
        "maillog_file",
        "alias_maps",
        "alias_database",
        "recipient_canonical_maps",
        "virtual_alias_maps",
        "sender_canonical_maps",
        "sender_canonical_classes",
        "smtp_generic_maps",
        "smtp_tls_security_level",
        "smtp_tls_secure_cert_match",
        "smtp_tls_CAfile",
        "smtp_tls_CApath",
        "smtp_tls_wrappermode",
        "smtp_tls_policy_maps",
        "smtp_use_tls",
        "smtp_enforce_tls",
        "smtp_tls_enforce_peername",
    )
)
POSTFIX_PROTECTED_PREFIXES = ("smtp_sasl_",)

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOST_RE = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@" + rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
_LOCAL_NAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.+-]{0,63}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CONTAINER_CGROUP_RE = re.compile(r"docker|kubepods|containerd|libpod|podman|lxc|machine\.slice/.*nspawn")
_UNIT_RE = re.compile(
    r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\@-]*)?"
    r"\.(service|socket|timer|mount|automount|path|target|swap|slice)$"
)
_CALENDAR_RE = re.compile(r"^[A-Za-z0-9 *:,./~+-]+$")
ALERT_UNIT = "mail-alert@.service"
ALERT_DROPIN = "50-mail-alert.conf"
HEALTH_UNIT = "mail-health"
_CONTAINER_VIRTUAL = ("container", "docker", "lxc", "podman", "systemd-nspawn", "kubernetes", "openvzve")


def __virtual__():
    return __virtualname__


# --------------------------------------------------------------- settings ---


def _parameter_files():
    if "mailstack.parameter_files" not in __context__:
        __context__["mailstack.parameter_files"] = set(__salt__["cp.list_master"](prefix=PARAMETERS_DIR))
    return __context__["mailstack.parameter_files"]


def _load_parameter_file(name):
    """Return the parsed YAML of ``mail/parameters/<name>.yaml``, or ``{}``."""
    path = f"{PARAMETERS_DIR}/{name}.yaml"
    if path not in _parameter_files():
        return {}
    text = __salt__["cp.get_file_str"](f"salt://{path}")
    return salt.utils.yaml.safe_load(text or "") or {}


def _parameter_layers():
    defaults = _load_parameter_file("defaults")
    if not defaults:
        raise CommandExecutionError(
            f"salt://{PARAMETERS_DIR}/defaults.yaml is not on the Salt file server: put the"
            " formula's directory in file_roots (or gitfs) so that salt://mail exists"
        )
    layers = [defaults]
    for grain in ("os_family", "os", "osfinger"):
        value = __grains__.get(grain)
        if value:
            layers.append(_load_parameter_file(f"{grain}/{value}"))
    return layers


def _pillar_mail():
    # __pillar__ directly: pillar.get masks values outside templates (Salt 3008).
    value = __pillar__.get("mail", {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CommandExecutionError(
            f"Invalid pillar mail: must be a mapping of settings, got {type(value).__name__}"
        )
    return value


def _merged_raw():
    merged = {}
    for layer in _parameter_layers():
        merged = salt.utils.dictupdate.merge(merged, layer, merge_lists=False)
    pillar = copy.deepcopy(_pillar_mail())
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
        if value and not _ADDRESS_RE.match(value):
            self.fail(path, f"{value!r} is not an e-mail address (user@example.org)")
        return value

    def path(self, path):
        value = self.token(path)
        if value and not value.startswith("/"):
            self.fail(path, f"{value!r} must be an absolute path")
        return value


def _is_ip_address(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _require_tls_name_for_postfix(check, section, upstream):
    """Postfix matches certificate names only: an IP literal next hop needs the name to expect."""
    if _is_ip_address(upstream["host"]) and upstream["tls"] != "none" and not upstream["tls_name"]:
        check.fail(
            f"{section}:tls_name",
            f"is required when mail:{section} has an IP address and TLS: Postfix verifies a certificate"
            " by name only, so give the DNS name the server's certificate holds",
        )


def _is_host(value):
    if _is_ip_address(value):
        return True
    return len(value) <= 253 and bool(_HOST_RE.match(value)) and not value.replace(".", "").isdigit()


def _validate_container(value):
    if value == "auto" or isinstance(value, bool):
        return value
    raise CommandExecutionError(f"Invalid pillar mail:container: must be auto, true or false; got {value!r}")


def _validate_upstream(check, section, tls_choices):
    host_key = "host" if section == "mailu" else "relayhost"
    out = {
        "host": check.host(f"{section}:{host_key}"),
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
    if out["user"] and not out["host"]:
        check.fail(
            f"{section}:{host_key}", f"is empty but mail:{section}:user is set: credentials need a server"
        )
    if out["user"] and out["tls"] == "none":
        check.fail(
            f"{section}:tls", "is none but credentials are set: a password is never sent in clear text"
        )
    return out


def _validate_relay(check):
    relay = _validate_upstream(check, "relay", RELAY_TLS)
    relay["sender"] = check.address("relay:sender")
    if relay["sender"] and not relay["host"]:
        check.fail(
            "relay:sender", "is set but mail:relay:relayhost is empty: it is the sender for a relayhost"
        )
    return relay


def _validate_senders(value):
    if not isinstance(value, list) or not all(
        isinstance(user, str) and _USER_RE.match(user) for user in value
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
        if not isinstance(name, str) or not _LOCAL_NAME_RE.match(name) or name == "default":
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


def _postconf_defaults():
    """Parameter names the installed Postfix knows, or None without Postfix."""
    if not __salt__["cmd.which"]("postconf"):
        return None
    result = __salt__["cmd.run_all"](
        ["postconf", "-d"], python_shell=False, ignore_retcode=True, output_loglevel="quiet"
    )
    if result["retcode"] != 0:
        return None
    return {line.split(" =", 1)[0] for line in result["stdout"].splitlines() if " =" in line}


def _postfix_known_parameters():
    """(names, where they come from): ``postconf -d`` if installed, else the shipped list."""
    if "mailstack.postfix_parameters" not in __context__:
        names = _postconf_defaults()
        source = "postconf -d on this minion"
        if names is None:
            text = __salt__["cp.get_file_str"](f"salt://{POSTFIX_KNOWN_PARAMETERS}") or ""
            names = {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
            source = (
                f"the formula's list from Postfix 3.7 ({POSTFIX_KNOWN_PARAMETERS}; Postfix is not installed)"
            )
        __context__["mailstack.postfix_parameters"] = (names, source)
    return __context__["mailstack.postfix_parameters"]


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


def _validate_main_cf(check, main_cf):
    if main_cf is None:
        return {}
    if not isinstance(main_cf, dict):
        check.fail("postfix:main_cf", f"must be a mapping of parameter names to values, got {main_cf!r}")
    result = {}
    for name, value in main_cf.items():
        if not isinstance(name, str) or not _POSTFIX_NAME_RE.match(name):
            check.fail("postfix:main_cf", f"{name!r} is not a Postfix parameter name")
        key = f"postfix:main_cf:{name}"
        if name in POSTFIX_PROTECTED or name.startswith(POSTFIX_PROTECTED_PREFIXES):
            check.fail(
                key,
                "is managed by the formula (it keeps the relay closed and send-only, or is derived from"
                " mail:relay, mail:mailu, mail:admin, mail:aliases or mail:lookup) and cannot be set here",
            )
        result[name] = _main_cf_value(check, key, value)
    if result:
        known, source = _postfix_known_parameters()
        for name in result:
            if name not in known:
                check.fail(
                    f"postfix:main_cf:{name}", f"is not a parameter Postfix knows (checked with {source})"
                )
    return result


def _validate(raw):
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
        "postfix": {"main_cf": _validate_main_cf(check, raw["postfix"]["main_cf"])},
        "msmtp": {"logfile": check.path("msmtp:logfile")},
        "senders": _validate_senders(raw["senders"]),
        "timeout": check.integer("timeout", 1, 300),
        "mailu": mailu,
        "relay": _validate_relay(check),
        "alerts": _validate_alerts(check),
        "health": _validate_health(check),
        "lookup": _validate_lookup(raw.get("lookup", {})),
    }
    if settings["mode"] == "mailu" and not mailu["host"]:
        check.fail("mailu:host", "is required when mail:mode is mailu")
    _check_msmtp_line_lengths(check, settings)
    if not _is_container(settings["container"]):
        _require_tls_name_for_postfix(check, "relay", settings["relay"])
        if mailu["queue"]:
            _require_tls_name_for_postfix(check, "mailu", mailu)
    return settings


def _validate_alerts(check):
    units = check.get("alerts:units")
    if not isinstance(units, list) or not all(
        isinstance(unit, str) and len(unit) <= 255 and _UNIT_RE.match(unit) for unit in units
    ):
        check.fail("alerts:units", f"must be a list of systemd unit names (cron.service), got {units!r}")
    if any(unit.startswith("mail-alert@") for unit in units):
        check.fail("alerts:units", "must not list mail-alert@ itself: a failing alert would alert again")
    return {"units": sorted(set(units)), "interval": check.integer("alerts:interval", 0, 7 * 86400)}


def _validate_health(check):
    on_calendar = check.text("health:on_calendar")
    if not _CALENDAR_RE.match(on_calendar):
        check.fail("health:on_calendar", f"{on_calendar!r} is not a systemd calendar expression (daily)")
    return {
        "enabled": check.boolean("health:enabled"),
        "on_calendar": on_calendar,
        "randomized_delay": check.integer("health:randomized_delay", 0, 86400),
        "retries": check.integer("health:retries", 0, 10),
        "retry_delay": check.integer("health:retry_delay", 1, 3600),
    }


def _msmtp_lines_by_key(settings):
    """Yield (pillar key, line) for every line a value can put in msmtp's files."""
    yield "from", f"from {settings['from']}"
    yield "admin", f"default: {settings['admin']}"
    for name, addresses in settings["aliases"].items():
        yield f"aliases:{name}", _msmtp_alias_line(name, addresses)
    for section, host_key in (("mailu", "host"), ("relay", "relayhost")):
        upstream = settings[section]
        yield f"{section}:{host_key}", f"host {upstream['host']}"
        yield f"{section}:user", f"user {upstream['user']}"
        yield f"{section}:password", f"password {_msmtp_quote(upstream['password'])}"
        yield f"{section}:ca_file", f"tls_trust_file {upstream['ca_file']}"
    yield "relay:sender", f"from {settings['relay']['sender']}"
    yield "msmtp:logfile", f"logfile {settings['msmtp']['logfile']}"
    lookup = settings["lookup"]
    yield "lookup:ca_bundle", f"tls_trust_file {lookup['ca_bundle']}"
    yield "lookup:msmtp:aliases", f"aliases {lookup['msmtp']['aliases']}"


def _check_msmtp_line_lengths(check, settings):
    for key, line in _msmtp_lines_by_key(settings):
        if len(line) > MSMTP_MAX_LINE:
            check.fail(
                key,
                f"is too long for msmtp: it would make a line of {len(line)} characters in msmtp's"
                f" configuration, and msmtp reads at most {MSMTP_MAX_LINE} (it has no way to continue"
                " a line); shorten it",
            )


def _validate_lookup(lookup):
    for section in ("msmtp", "postfix"):
        if not isinstance(lookup.get(section), dict):
            raise CommandExecutionError(f"Invalid pillar mail:lookup:{section}: must be a mapping")
    check = _Validator({"lookup": lookup})
    for path in (
        "lookup:ca_bundle",
        "lookup:libexec_dir",
        "lookup:state_dir",
        "lookup:systemd_unit_dir",
        "lookup:cron_dir",
        "lookup:msmtp:binary",
        "lookup:msmtp:config",
        "lookup:msmtp:aliases",
        "lookup:msmtp:sendmail",
        "lookup:postfix:config_dir",
    ):
        if not check.path(path):
            check.fail(path, "must not be empty")
    check.path("lookup:postfix:maillog_file")
    for path in (
        "lookup:msmtp:mta_pkg",
        "lookup:msmtp:group",
        "lookup:postfix:service",
        "lookup:postfix:map_type",
        "lookup:postfix:compatibility_level",
    ):
        check.token(path)
    check.text("lookup:postfix:prestart")
    for path in ("lookup:msmtp:pkgs", "lookup:postfix:pkgs"):
        value = check.get(path)
        if not isinstance(value, list) or not value or not all(_is_package_name(p) for p in value):
            check.fail(path, "must be a non-empty list of package names")
    return lookup


def _is_package_name(value):
    return isinstance(value, str) and bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$", value))


def _is_address(value):
    return bool(_ADDRESS_RE.match(value))


def _fqdn():
    return __grains__.get("fqdn") or __grains__.get("host") or socket.getfqdn()


def _with_derived_defaults(settings):
    if not settings["from"]:
        mailu_user = settings["mailu"]["user"]
        settings["from"] = mailu_user if _is_address(mailu_user) else f"root@{_fqdn()}"
    return settings


def _masked(settings):
    masked = copy.deepcopy(settings)
    for section in ("mailu", "relay"):
        for key in SECRET_KEYS:
            if masked[section][key]:
                masked[section][key] = MASK
    return masked


def _settings():
    """The validated settings, computed once per run (per pillar, for long-lived minions)."""
    pillar = __pillar__.get("mail")
    cached = __context__.get("mailstack.settings")
    if cached is None or cached[0] != pillar:
        __context__["mailstack.settings"] = (
            copy.deepcopy(pillar),
            _with_derived_defaults(_validate(_merged_raw())),
        )
    return __context__["mailstack.settings"][1]


def settings(include_secrets=False):
    """
    Return the merged, validated and normalized settings of the mail formula.

    Raises an error naming the pillar key for any invalid value; nothing is
    changed on the minion. Passwords are replaced by ``********`` unless
    ``include_secrets`` is true (the formula's templates use that).

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.settings
    """
    result = _settings()
    return copy.deepcopy(result) if include_secrets else _masked(result)


def validation_error():
    """
    Return why the settings are invalid, as one message naming the pillar
    key, or an empty string when they are valid. The formula's states check
    this first and change nothing when it is not empty.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.validation_error
    """
    try:
        _settings()
    except CommandExecutionError as exc:
        return str(exc)
    return ""


# ------------------------------------------------------------- container ---


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def _container_signals():
    """Yield a description of every sign that this host is a container."""
    root = FS_ROOT
    for marker in ("/.dockerenv", "/run/.containerenv"):
        if os.path.exists(os.path.join(root, marker.lstrip("/"))):
            yield f"{marker} exists"
    environ = _read(os.path.join(root, "proc/1/environ")) or ""
    for entry in environ.split("\0"):
        if entry.startswith("container="):
            yield f"PID 1 runs with {entry}"
    cgroup = _read(os.path.join(root, "proc/1/cgroup")) or ""
    match = _CONTAINER_CGROUP_RE.search(cgroup)
    if match:
        yield f"the cgroup of PID 1 mentions {match.group(0)}"
    virtual = str(__grains__.get("virtual", "")).lower()
    subtype = str(__grains__.get("virtual_subtype", "")).lower()
    if virtual in _CONTAINER_VIRTUAL or subtype in _CONTAINER_VIRTUAL:
        yield f"the virtual grain says {subtype or virtual}"


def _is_container(forced):
    return forced if isinstance(forced, bool) else any(True for _ in _container_signals())


def is_container():
    """
    Tell whether this minion is a container, and why.

    Looks at ``/.dockerenv``, ``/run/.containerenv``, ``container=`` in the
    environment of PID 1, the cgroup of PID 1 and the ``virtual`` grain; pillar
    ``mail:container: true|false`` overrides the detection.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.is_container
    """
    forced = _settings()["container"]
    if isinstance(forced, bool):
        return {"container": forced, "reason": f"pillar mail:container is {str(forced).lower()}"}
    signals = list(_container_signals())
    if signals:
        return {"container": True, "reason": "detected: " + "; ".join(signals)}
    return {"container": False, "reason": "no container signal found"}


# ------------------------------------------------------------------ mode ---


def mode():
    """
    Return how this minion sends system mail, and why: ``mailu``, ``relay``
    or ``disabled``.

    ``auto`` is decided from pillar alone (a Mailu host configured means
    ``mailu``), so the decision never flips because a server was down.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.mode
    """
    conf = _settings()
    if not conf["enabled"]:
        return {"mode": "disabled", "reason": "pillar mail:enabled is false"}
    if conf["mode"] != "auto":
        return {"mode": conf["mode"], "reason": f"pillar mail:mode is {conf['mode']}"}
    if conf["mailu"]["host"]:
        return {"mode": "mailu", "reason": "mail:mode is auto and mail:mailu:host is set"}
    return {"mode": "relay", "reason": "mail:mode is auto and no mail:mailu:host is set"}


# ------------------------------------------------------------------ plan ---


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
    upstream = {
        k: conf[section][k] for k in ("host", "port", "tls", "user", "password", "ca_file", "tls_name")
    }
    if not upstream["ca_file"]:
        upstream["ca_file"] = conf["lookup"]["ca_bundle"]
    return upstream


def _delivery(conf, mode_name, container):
    """Return (postfix wanted, msmtp target, postfix upstream or None)."""
    if mode_name == "mailu" and not (conf["mailu"]["queue"] and not container):
        return False, _upstream(conf, "mailu"), None
    if mode_name == "mailu":
        return True, _loopback_target(), _upstream(conf, "mailu")
    relay = _upstream(conf, "relay") if conf["relay"]["host"] else None
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
    msmtp, postfix = conf["lookup"]["msmtp"], conf["lookup"]["postfix"]
    mta = [msmtp["mta_pkg"]] if msmtp["mta_pkg"] else []
    if postfix_wanted:
        return {"install": msmtp["pkgs"] + postfix["pkgs"], "remove": mta}
    return {"install": msmtp["pkgs"] + mta, "remove": [postfix["pkgs"][0]]}


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
    return "".join(line + "\n" for line in lines)


def _virtual_alias(aliases, myhostname):
    lines = [
        f"/{_local_address_pattern(_ere_escape(name), myhostname)}/ {', '.join(addresses)}"
        for name, addresses in aliases.items()
    ]
    return "".join(line + "\n" for line in lines)


def _sasl_passwd(upstream):
    if not upstream or not upstream["user"]:
        return ""
    return f"{_bracketed(upstream)} {upstream['user']}:{upstream['password']}\n"


def _msmtp_quote(value):
    # msmtp strips the outer quotes and keeps everything between them as is.
    return f'"{value}"'


def _syslog_available():
    return os.path.exists(os.path.join(FS_ROOT, "dev/log"))


def _msmtp_log(conf, secret_in_msmtprc):
    """Where msmtp logs, and who may append to a log file: those who may send."""
    logfile = conf["msmtp"]["logfile"]
    if logfile:
        if secret_in_msmtprc:
            owner = {"user": "root", "group": conf["lookup"]["msmtp"]["group"], "mode": "0660"}
        else:  # every local user may send: each can append, none can read.
            owner = {"user": "root", "group": "root", "mode": "0622"}
        return {"line": ("logfile", logfile), "logfile": logfile, **owner, "where": logfile}
    if _syslog_available():
        return {"line": ("syslog", "LOG_MAIL"), "logfile": "", "where": "syslog (facility LOG_MAIL)"}
    return {
        "line": None,
        "logfile": "",
        "where": "nowhere: no syslog (/dev/log) and mail:msmtp:logfile is empty",
    }


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
    return "".join(line + "\n" for line in lines)


def _who_can_send(conf, secret_in_msmtprc):
    if not secret_in_msmtprc:
        return "every local user"
    return "root and mail:senders (" + (", ".join(conf["senders"]) or "none") + "), who can read the password"


def _plan(include_secrets):
    conf = _settings()
    decided = mode()
    if decided["mode"] == "disabled":
        return {
            "mode": "disabled",
            "mode_reason": decided["reason"],
            "container": None,
            "container_reason": "not checked: mail is disabled",
        }
    container = is_container()
    postfix, msmtp_target, postfix_upstream = _delivery(conf, decided["mode"], container["container"])
    if not include_secrets:
        for target in (msmtp_target, postfix_upstream):
            if target and target["password"]:
                target["password"] = MASK
    mailu_user = conf["mailu"]["user"]
    envelope_sender = mailu_user if decided["mode"] == "mailu" and _is_address(mailu_user) else ""
    relay_sender = conf["relay"]["sender"] if decided["mode"] == "relay" else ""
    # msmtp talks to the relayhost itself only where no Postfix relays.
    msmtp_sender = "" if postfix else relay_sender
    myhostname = _fqdn()
    secret_in_msmtprc = bool(msmtp_target["user"])
    msmtp_log = _msmtp_log(conf, secret_in_msmtprc)
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
        "summary": {
            "msmtp sends to": _describe(msmtp_target),
            "postfix relays to": _describe(postfix_upstream) if postfix else "(no postfix)",
            "mail for root goes to": conf["admin"] or f"root@{myhostname} (mail:admin is empty)",
            "sender": envelope_sender or relay_sender or conf["from"],
            "who can send": _who_can_send(conf, secret_in_msmtprc),
            "msmtp logs to": msmtp_log["where"],
        },
        "alerts": _alerts_plan(conf),
        "health": _health_plan(conf),
        "files": {
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
        },
    }


def _installed_alert_dropins(unit_dir):
    pattern = os.path.join(FS_ROOT, unit_dir.lstrip("/"), "*.d", ALERT_DROPIN)
    return sorted("/" + os.path.relpath(path, FS_ROOT) for path in glob.glob(pattern))


def alert_dropins():
    """
    The ``OnFailure=`` drop-ins the formula installed: which units mail the
    administrator when they fail.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.alert_dropins
    """
    return _installed_alert_dropins(_settings()["lookup"]["systemd_unit_dir"])


def _alerts_plan(conf):
    """OnFailure= drop-ins for mail:alerts:units, and the ones to remove."""
    lookup, units = conf["lookup"], conf["alerts"]["units"]
    systemd = _systemd_booted()
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
        "stale_dropins": [
            path for path in _installed_alert_dropins(unit_dir) if path not in dropins.values()
        ],
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


def _health_plan(conf):
    """The daily "is alive" mail: a systemd timer, or a cron entry without systemd."""
    lookup, health = conf["lookup"], conf["health"]
    systemd = _systemd_booted()
    seed = zlib.crc32(_fqdn().encode())
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


def plan(include_secrets=False):
    """
    Show what the formula would do on this minion, without changing anything:
    the mode and why, container or not, whether Postfix runs, which packages
    are installed and removed, what provides ``sendmail`` and where mail goes.
    Passwords are masked.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.plan
        salt-call --local mailstack.plan --out=yaml
    """
    return _plan(include_secrets)


# ----------------------------------------------------------------- probe ---


def _probe_once(host, port, tls, timeout, ca_file):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if tls == "implicit":
            context = ssl.create_default_context(cafile=ca_file or None)
            with context.wrap_socket(sock, server_hostname=host) as tls_sock:
                banner = tls_sock.recv(512)
        else:
            sock.settimeout(timeout)
            banner = sock.recv(512)
    text = banner.decode("ascii", "replace").strip()
    if not text.startswith("220"):
        raise OSError(f"unexpected greeting {text[:80]!r}")
    return text


def probe():
    """
    Check, once per run and bounded by ``mail:timeout``, that the server mail
    goes to next answers with an SMTP greeting (after TLS where it is implicit).
    The result is reported, never acted on: the mode does not change.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.probe
    """
    if "mailstack.probe" in __context__:
        return __context__["mailstack.probe"]
    current = _plan(include_secrets=False)
    target = current.get("postfix_upstream") if current.get("postfix") else current.get("msmtp")
    if current["mode"] == "disabled" or target is None:
        result = {"reachable": None, "target": None, "comment": "nothing to probe"}
    else:
        where = f"{target['host']}:{target['port']}"
        try:
            banner = _probe_once(
                target["host"], target["port"], target["tls"], _settings()["timeout"], target["ca_file"]
            )
            result = {"reachable": True, "target": where, "comment": banner}
        except (OSError, ssl.SSLError) as exc:
            result = {"reachable": False, "target": where, "comment": f"{where} did not answer: {exc}"}
    __context__["mailstack.probe"] = result
    return result


# -------------------------------------------------------------- operator ---

MSMTP_LOG_TO_STDOUT = "--logfile=-"
# Keeps the Message-ID on one line, as Postfix logs it.
UNFOLDED = email.policy.default.clone(max_line_length=None)
FOLLOW_INTERVAL = 0.5


def _command(cmd, stdin=None, timeout=None):
    """Run ``cmd`` (a list); return Salt's ``cmd.run_all`` dict."""
    return __salt__["cmd.run_all"](
        cmd,
        python_shell=False,
        stdin=stdin,
        timeout=timeout,
        ignore_retcode=True,
        output_loglevel="quiet",
    )


def _systemd_booted():
    return os.path.isdir(os.path.join(FS_ROOT, "run/systemd/system"))


def _postfix_daemon(conf):
    installed = bool(__salt__["cmd.which"]("postfix"))
    running = installed and _command(["postfix", "status"])["retcode"] == 0
    enabled = None
    if installed and _systemd_booted():
        enabled = bool(__salt__["service.enabled"](conf["lookup"]["postfix"]["service"]))
    return {"installed": installed, "running": running, "enabled": enabled}


def _queue_messages():
    listed = _command(["postqueue", "-j"])
    if listed["retcode"] != 0:
        raise CommandExecutionError(f"postqueue -j failed, the queue could not be read: {listed['stderr']}")
    try:
        return __utils__["mailqueue.parse_postqueue_json"](listed["stdout"])
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from None


def _queue_summary():
    messages = _queue_messages()
    summary = __utils__["mailqueue.summarize"](messages, time.time())
    summary["deferral_reasons"] = __utils__["mailqueue.deferral_reasons"](messages)
    return summary


def _last_health_send(state_file):
    """The last run of the health mail: ``{"time", "result", "detail"}``, or ``None``."""
    try:
        with open(os.path.join(FS_ROOT, state_file.lstrip("/")), encoding="utf-8") as handle:
            when, result, *detail = handle.read().split(maxsplit=2)
        return {"time": int(when), "result": result, "detail": " ".join(detail).strip()}
    except (OSError, ValueError):
        return None


def status(check_next_hop=True):
    """
    Is mail working on this node, and if not, why? Shows the mode, whether
    Postfix is installed, running and enabled at boot (``None`` where systemd
    does not run), the queue (``total``, ``active``, ``deferred``, ``hold``,
    the age in seconds of the oldest message and the most frequent deferral
    reasons), the last health mail, and whether the next hop answers
    (``mailstack.probe``, skipped with ``check_next_hop=False``). Changes
    nothing; cheap enough to call every minute.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.status
        salt-call mailstack.status --out=yaml
    """
    conf = _settings()
    current = _plan(include_secrets=False)
    if current["mode"] == "disabled":
        return {"mode": "disabled", "comment": current["mode_reason"]}
    daemon = _postfix_daemon(conf)
    hop = probe() if check_next_hop else {"target": None, "reachable": None, "comment": "not checked"}
    return {
        "health": _last_health_send(current["health"]["state_file"]),
        "mode": current["mode"],
        "sendmail": current["sendmail"],
        "postfix": daemon,
        "queue": _queue_summary() if daemon["installed"] else None,
        "next_hop": current["summary"]["postfix relays to" if current["postfix"] else "msmtp sends to"],
        "next_hop_answers": hop["reachable"],
        "next_hop_comment": hop["comment"],
    }


def _test_recipient(conf, to):
    recipient = to or conf["admin"] or "root"
    if not isinstance(recipient, str) or not (_is_address(recipient) or _USER_RE.match(recipient)):
        raise CommandExecutionError(
            f"send_test: to={recipient!r} is neither an e-mail address nor a local user name"
        )
    return recipient


def _test_message(recipient, sender):
    host = _fqdn()
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"mailstack test from {host}"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid("mailstack-test", domain=host)
    message.set_content(f"A test message from {host}, sent by `salt-call mailstack.send_test`.\n")
    return message


class _PostfixLog:
    """New lines of Postfix's log since this object was made."""

    def __init__(self):
        self.started = int(time.time()) - 1
        self.file = _postconf_value("maillog_file") or ("/var/log/mail.log" if not _systemd_booted() else "")
        self.offset = os.path.getsize(self.file) if self.file and os.path.exists(self.file) else 0

    @property
    def readable(self):
        return _systemd_booted() or bool(self.file and os.path.exists(self.file))

    def lines(self):
        if self.file:
            if not os.path.exists(self.file):
                return []
            with open(self.file, encoding="utf-8", errors="replace") as handle:
                handle.seek(self.offset)
                return handle.read().splitlines()
        listed = _command(
            [
                "journalctl",
                "--quiet",
                "--no-pager",
                "--output=cat",
                f"--since=@{self.started}",
                "SYSLOG_FACILITY=2",
            ]
        )
        return listed["stdout"].splitlines()


def _postconf_value(parameter):
    result = _command(["postconf", "-h", parameter])
    return result["stdout"].strip() if result["retcode"] == 0 else ""


def _follow_in_postfix(log, message_id, wait):
    """Follow a submitted message through Postfix's log until it leaves or ``wait`` runs out."""
    deadline = time.monotonic() + wait
    queue_id, outcome = None, None
    while True:
        lines = log.lines()
        queue_id = queue_id or __utils__["mailqueue.queue_id_of"](lines, message_id)
        if queue_id:
            outcome = __utils__["mailqueue.delivery_outcome"](lines, queue_id)
        if (outcome and outcome["result"] != "deferred") or time.monotonic() >= deadline:
            break
        time.sleep(FOLLOW_INTERVAL)
    if outcome:
        return queue_id, outcome
    return queue_id, {"result": "queued", "detail": f"still in Postfix's queue after {wait} s, not yet tried"}


def _send_through_postfix(sendmail, message, recipient, wait, timeout):
    log = _PostfixLog()
    submitted = _command(
        [sendmail, "-i", "--", recipient], stdin=message.as_string(policy=UNFOLDED), timeout=timeout
    )
    if submitted["retcode"] != 0:
        return None, {"result": "failed", "detail": f"sendmail refused the message: {submitted['stderr']}"}
    if not log.readable:
        return None, {
            "result": "queued",
            "detail": "Postfix's log is not readable here, so it was not followed",
        }
    return _follow_in_postfix(log, message["Message-ID"], wait)


def _send_through_msmtp(sendmail, message, recipient, timeout):
    submitted = _command(
        [sendmail, MSMTP_LOG_TO_STDOUT, "-i", "--", recipient],
        stdin=message.as_string(policy=UNFOLDED),
        timeout=timeout,
    )
    fields = {}
    for line in submitted["stdout"].splitlines():
        fields.update(__utils__["mailqueue.msmtp_log_fields"](line))
    reply = fields.get("smtpmsg", "")
    if submitted["retcode"] == 0:
        return {"result": "delivered", "detail": reply or "accepted"}
    reason = fields.get("errormsg") or submitted["stderr"].strip() or f"exit code {submitted['retcode']}"
    return {"result": "failed", "detail": f"{reason} {reply}".strip()}


def send_test(to=None, wait=30):
    """
    Send one test message through this node's own ``sendmail``, as system
    mail does, and report what became of it: ``result`` is ``delivered``,
    ``queued`` (in Postfix's queue, not yet tried), ``deferred`` (tried,
    waiting to retry; ``detail`` says why) or ``failed``; ``detail`` holds the
    remote server's reply or the reason. Where Postfix queues, the message is
    followed until it leaves the queue or ``wait`` seconds run out. The exit
    code is non-zero unless the message was delivered.

    to
        Recipient address or local name; default ``mail:admin`` (else root).

    wait
        Seconds to follow the message through Postfix's queue (default 30).

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.send_test
        salt-call mailstack.send_test to=ops@example.org wait=60
    """
    conf = _settings()
    current = _plan(include_secrets=False)
    if current["mode"] == "disabled":
        raise CommandExecutionError("send_test: mail is disabled on this node (mail:enabled is false)")
    try:
        wait = max(0, int(wait))
    except (TypeError, ValueError):
        raise CommandExecutionError(f"send_test: wait={wait!r} is not a number of seconds") from None
    recipient = _test_recipient(conf, to)
    message = _test_message(recipient, current["summary"]["sender"])
    sendmail = conf["lookup"]["msmtp"]["sendmail"]
    timeout = conf["timeout"] * 3
    queue_id = None
    if current["postfix"]:
        queue_id, outcome = _send_through_postfix(sendmail, message, recipient, wait, timeout)
        path = f"sendmail (Postfix) -> {current['summary']['postfix relays to']}"
    else:
        outcome = _send_through_msmtp(sendmail, message, recipient, timeout)
        path = f"sendmail (msmtp) -> {current['summary']['msmtp sends to']}"
    if outcome["result"] != "delivered":
        __context__["retcode"] = 1
    return {
        "result": outcome["result"],
        "message_id": message["Message-ID"],
        "to": recipient,
        "path": path,
        "queue_id": queue_id,
        "detail": outcome["detail"],
    }


def flush(wait=5):
    """
    Ask Postfix to retry deferred mail now (``postqueue -f``) and show the
    queue before and, after up to ``wait`` seconds, after.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.flush
    """
    if not _plan(include_secrets=False).get("postfix") or not __salt__["cmd.which"]("postqueue"):
        raise CommandExecutionError("flush: this node has no Postfix queue (msmtp sends directly)")
    before = _queue_summary()
    flushed = _command(["postqueue", "-f"])
    if flushed["retcode"] != 0:
        raise CommandExecutionError(f"postqueue -f failed: {flushed['stderr']}")
    deadline = time.monotonic() + max(0, int(wait))
    after = _queue_summary()
    while after["total"] and after["total"] >= before["total"] and time.monotonic() < deadline:
        time.sleep(FOLLOW_INTERVAL)
        after = _queue_summary()
    return {"before": before, "after": after}
