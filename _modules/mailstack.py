"""
The ``mailstack`` execution module of the ``mail`` formula: its public
functions, and everything that reads or acts on the running system (the
parameter files and pillar, container detection, probes, Postfix's queue and
log, test messages).

The ``.sls`` files of the formula ask this module once, at the top, and branch
on the plain values it returns. Settings come from, in order of precedence:
``parameters/defaults.yaml`` in the formula's directory (``mail``, or the
name ``map.jinja`` passes as ``tplroot``), ``os_family/``, ``os/`` and
``osfinger/`` files beside it, pillar ``mail:lookup``, then pillar ``mail``. The work on
plain data lives in ``_utils/``: ``mailstack_settings`` (merging and
validation), ``mailstack_plan`` (the plan: every file, package, unit and
clean-up), ``mailstack_queue`` (reading ``postqueue -j`` and Postfix's log),
``mailstack_owned`` (what the formula owns) and ``mailstack_system`` (commands
and ``postconf``, shared with the states).

Passwords are only returned with ``include_secrets=True`` (``settings`` and
``plan``), which the formula's secret-holding templates use; everything else
masks them.
"""

import contextlib
import copy
import email.message
import email.policy
import email.utils
import glob
import json
import os
import re
import socket
import ssl
import time

import salt.utils.yaml
from salt.exceptions import CommandExecutionError

__virtualname__ = "mailstack"

MASK = "********"
# The formula's directory on the Salt file server, unless map.jinja says it is
# vendored under another name (template-formula's tplroot).
FORMULA_DIR = "mail"
_FORMULA_DIR_RE = re.compile(r"[A-Za-z0-9_-]+")

# Where the module looks at the running system (unit tests point it at a fake root).
FS_ROOT = "/"
# main.cf parameter names of Postfix 3.7 (in the formula's directory), for
# checking mail:postfix:main_cf where Postfix is not installed yet.
POSTFIX_KNOWN_PARAMETERS = "files/postfix-parameters.txt"

# Where the module runs without the formula's _utils: Salt 3006's salt-ssh
# ships none (3007 and newer do), or a minion that has not synced them.
MISSING_UTILS = (
    "The mail formula's _utils are not loaded here. Over salt-ssh: Salt 3006's salt-ssh does not ship"
    " _utils to the target (3007 and newer do, with the formula's _wrapper): use Salt 3007 or newer on"
    " the control host. On a minion: run `saltutil.sync_all`, then apply mail again."
)
_CONTAINER_CGROUP_RE = re.compile(r"docker|kubepods|containerd|libpod|podman|lxc|machine\.slice/.*nspawn")
_CONTAINER_VIRTUAL = ("container", "docker", "lxc", "podman", "systemd-nspawn", "kubernetes", "openvzve")


def __virtual__():
    return __virtualname__


# --------------------------------------------------------------- settings ---


def _formula_dir():
    return __context__.get("mailstack.formula_dir", FORMULA_DIR)


def _use_formula_dir(tplroot):
    """Read the parameter files from ``salt://<tplroot>/`` from now on in this run."""
    if not tplroot or tplroot == _formula_dir():
        return
    if not isinstance(tplroot, str) or not _FORMULA_DIR_RE.fullmatch(tplroot):
        raise CommandExecutionError(f"tplroot {tplroot!r} is not a directory name on the Salt file server")
    for cached in ("mailstack.parameter_files", "mailstack.settings", "mailstack.postfix_parameters"):
        __context__.pop(cached, None)
    __context__["mailstack.formula_dir"] = tplroot


def _parameters_dir():
    return f"{_formula_dir()}/parameters"


def _parameter_files():
    if "mailstack.parameter_files" not in __context__:
        __context__["mailstack.parameter_files"] = set(__salt__["cp.list_master"](prefix=_parameters_dir()))
    return __context__["mailstack.parameter_files"]


def _load_parameter_file(name):
    """Return the parsed YAML of ``<formula>/parameters/<name>.yaml``, or ``{}``."""
    path = f"{_parameters_dir()}/{name}.yaml"
    if path not in _parameter_files():
        return {}
    text = __salt__["cp.get_file_str"](f"salt://{path}")
    return salt.utils.yaml.safe_load(text or "") or {}


def _parameter_layers():
    defaults = _load_parameter_file("defaults")
    if not defaults:
        raise CommandExecutionError(
            f"salt://{_parameters_dir()}/defaults.yaml is not on the Salt file server: put the"
            f" formula's directory in file_roots (or gitfs) so that salt://{_formula_dir()} exists"
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
    return __utils__["mailstack_settings.merge"](_parameter_layers(), _pillar_mail())


def _postconf_defaults():
    """Parameter names the installed Postfix knows, or None without Postfix."""
    if not __salt__["cmd.which"]("postconf"):
        return None
    # Called back from inside mailstack_settings.validate, where Salt's loader
    # resolves __utils__ in the utils loader (which has none): __salt__ only.
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
            listed = f"{_formula_dir()}/{POSTFIX_KNOWN_PARAMETERS}"
            text = __salt__["cp.get_file_str"](f"salt://{listed}") or ""
            names = {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
            source = f"the formula's list from Postfix 3.7 ({listed}; Postfix is not installed)"
        __context__["mailstack.postfix_parameters"] = (names, source)
    return __context__["mailstack.postfix_parameters"]


def _fqdn():
    return __grains__.get("fqdn") or __grains__.get("host") or socket.getfqdn()


def _refuse_overlong_msmtp_lines(conf):
    overlong = __utils__["mailstack_plan.overlong_msmtp_line"](conf)
    if overlong:
        key, length, limit = overlong
        raise CommandExecutionError(
            f"Invalid pillar mail:{key}: is too long for msmtp: it would make a line of {length}"
            f" characters in msmtp's configuration, and msmtp reads at most {limit} (it has no way"
            " to continue a line); shorten it"
        )


def _validated(raw):
    conf = __utils__["mailstack_settings.validate"](raw, _postfix_known_parameters, _is_container)
    _refuse_overlong_msmtp_lines(conf)
    return __utils__["mailstack_settings.with_derived_defaults"](conf, _fqdn())


def _settings():
    """The validated settings, computed once per run (per pillar, for long-lived minions)."""
    pillar = __pillar__.get("mail")
    cached = __context__.get("mailstack.settings")
    if cached is None or cached[0] != pillar:
        __context__.pop("mailstack.ownership_error", None)
        __context__["mailstack.settings"] = (
            copy.deepcopy(pillar),
            _validated(_merged_raw()),
        )
    return __context__["mailstack.settings"][1]


def _ownership_error():
    """Why applying the plan would touch what is not the formula's, or ``""``; once per run."""
    if "mailstack.ownership_error" not in __context__:
        try:
            _refuse_what_is_not_the_formulas()
            __context__["mailstack.ownership_error"] = ""
        except CommandExecutionError as exc:
            __context__["mailstack.ownership_error"] = str(exc)
    return __context__["mailstack.ownership_error"]


def _refuse_what_is_not_the_formulas():
    """Stop before any change when the plan would write, chown, run, remove or
    take over what is not the formula's (``mailstack.plan``'s ``inventory``):
    a file it did not write, a Postfix or a package it did not install, a
    path root writes into or runs from that others could change, a group it
    did not create, a log file others could forge."""
    conf = _settings()
    current = _plan(include_secrets=False)
    if current["mode"] == "disabled":
        return
    items = {item["id"]: item for item in current["inventory"]}
    _refuse_foreign_postfix(conf, current, items)
    _refuse_foreign_files(conf, current, items)
    _refuse_foreign_packages(conf, current)
    _refuse_unsafe_paths(conf, current)
    _refuse_foreign_group(conf, current)
    _refuse_shared_log_file(conf, current)


def _host_path(path):
    return os.path.join(FS_ROOT, path.lstrip("/"))


def _owned_util(function):
    return __utils__[f"mailstack_owned.{function}"]


def _refuse_foreign_files(conf, current, items):
    taken_over = items["smtp:main-cf"]["path"] if conf["take_over"]["postfix"] else None
    for key, path in __utils__["mailstack_plan.written_files"](current):
        if path == taken_over and not os.path.islink(_host_path(path)):
            continue
        problem = _owned_util("foreign_file_problem")(_host_path(path))
        if problem:
            raise CommandExecutionError(f"Invalid pillar mail:{key}: {problem}")


def _refuse_foreign_postfix(conf, current, items):
    """A Postfix that was there before the formula (no main.cf of the formula's) is never taken silently."""
    main_cf = items["smtp:main-cf"]
    if not current["postfix"] or conf["take_over"]["postfix"] or _carries_marker(main_cf["path"]):
        return
    if not __salt__["cmd.which"]("postconf"):
        return
    raise CommandExecutionError(
        "Invalid pillar mail:take_over:postfix: is false, and Postfix is installed here and was not"
        f" installed by the mail formula ({main_cf['path']} does not carry the formula's marker): set it"
        " to true to hand this Postfix to the formula (an existing main.cf is kept as"
        " main.cf.before-mail-formula), or remove Postfix yourself first"
    )


def _carries_marker(path):
    return _owned_util("carries_marker")(_host_path(path))


def _refuse_foreign_packages(conf, current):
    """A package the mode would remove (it conflicts with what it installs), not installed by the formula."""
    kept = [name for name in current["packages"]["unwanted"] if name not in current["packages"]["remove"]]
    installed = (
        __utils__["mailstack_system.installed_packages"](__salt__, __grains__, kept, FS_ROOT)
        if kept
        else set()
    )
    for name in sorted(installed):
        if name in conf["lookup"]["postfix"]["pkgs"]:
            raise CommandExecutionError(
                "Invalid pillar mail:take_over:postfix: is false, and this mode (sendmail by msmtp) would"
                f" remove {name}, which is installed and was not installed by the mail formula: set it to"
                " true to let the formula remove it, or remove it yourself"
            )
        raise CommandExecutionError(
            f"Invalid pillar mail:mode: this mode ({current['mode']}, sendmail by {current['sendmail']})"
            f" would remove the package {name}, which is installed and was not installed by the mail"
            " formula: remove it yourself if it is not needed, or choose a mode that keeps it"
        )


def _refuse_unsafe_paths(conf, current):
    """Every directory root writes into and every program it runs or file it trusts: root's alone."""
    problem = _owned_util("unsafe_path_problem")
    for item in current["inventory"]:
        if not item["wanted"] or item["kind"] in ("package", "group", "unit", "command"):
            continue
        if item["kind"] == "program":
            found = problem(item["path"], FS_ROOT, follow_last=True)
        elif item["kind"] == "directory":
            found = problem(item["path"], FS_ROOT)
        elif item["kind"] == "textfile":
            found = _owned_util("unsafe_textfile_dir_problem")(os.path.dirname(item["path"]), FS_ROOT)
        else:
            found = problem(os.path.dirname(item["path"]), FS_ROOT)
        if found:
            raise CommandExecutionError(
                f"Invalid pillar mail:{item['key']}: {found}, so root must not rely on it"
            )
    for key in ("mailu:ca_file", "relay:ca_file", "lookup:ca_bundle"):
        section, name = key.split(":")
        path = conf[section][name]
        found = path and problem(path, FS_ROOT, follow_last=True)
        if found:
            raise CommandExecutionError(f"Invalid pillar mail:{key}: {found}, so it cannot be trusted")


def _state_dir(conf):
    return _host_path(conf["lookup"]["state_dir"])


def _refuse_foreign_group(conf, current):
    import grp  # pylint: disable=import-outside-toplevel

    group = current["senders_group"]
    try:
        grp.getgrnam(group["name"])
    except KeyError:
        return
    if not (group["take_over"] or _owned_util("owns")(_state_dir(conf), "groups", group["name"])):
        raise CommandExecutionError(
            f"Invalid pillar mail:lookup:msmtp:group: group {group['name']!r} exists and was not created by"
            " the mail formula, which only creates, fills and removes a group of its own: choose a name no"
            " group has, or set mail:take_over:senders_group to true to hand it to the formula"
        )
    strangers = [
        user for user in _owned_util("primary_members")(group["name"]) if user not in group["members"]
    ]
    if group["present"] and strangers:
        raise CommandExecutionError(
            f"Invalid pillar mail:senders: {', '.join(strangers)} {'has' if len(strangers) == 1 else 'have'}"
            f" group {group['name']!r} as primary group and would read the password in msmtp's"
            " configuration: add them to mail:senders, or give them another primary group"
        )


def _refuse_shared_log_file(conf, current):
    problem = __utils__["mailstack_plan.msmtp_log_problem"](conf, current["files"]["secret_in_msmtprc"])
    if problem:
        raise CommandExecutionError(f"Invalid pillar mail:msmtp:logfile: {problem}")
    logfile = conf["msmtp"]["logfile"]
    if not logfile:
        return
    path = _host_path(logfile)
    recorded = logfile in _owned_util("load")(_state_dir(conf))["files"]
    if os.path.lexists(path) and not recorded:
        problem = f"{logfile} exists and was not created by the mail formula: choose a new file"
    elif not os.path.isdir(os.path.dirname(path)):
        problem = f"{os.path.dirname(logfile)} does not exist: the log file goes into an existing directory"
    if problem:
        raise CommandExecutionError(f"Invalid pillar mail:msmtp:logfile: {problem}")


def settings(include_secrets=False, tplroot=None):
    """
    Return the merged, validated and normalized settings of the mail formula.

    Raises an error naming the pillar key for any invalid value; nothing is
    changed on the minion. Passwords are replaced by ``********`` unless
    ``include_secrets`` is true (the formula's templates use that).

    tplroot
        The formula's directory on the file server, where it is not ``mail``
        (the formula's ``map.jinja`` passes it).

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.settings
    """
    _use_formula_dir(tplroot)
    result = _settings()
    return copy.deepcopy(result) if include_secrets else __utils__["mailstack_settings.masked"](result, MASK)


def validation_error(writes=True, tplroot=None):
    """
    Return why the settings are invalid, as one message naming the pillar
    key, or an empty string when they are valid. The formula's states check
    this first and change nothing when it is not empty.

    writes
        Also refuse a plan that would write, chown or remove what is not the
        formula's (a file it did not write, a path through a symbolic link, a
        group it did not create, a log file others could forge). ``mail.clean``,
        which only removes what is the formula's, passes ``False``.
    tplroot
        As for ``mailstack.settings``.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.validation_error
    """
    try:
        _use_formula_dir(tplroot)
        conf = _settings()
    except CommandExecutionError as exc:
        return str(exc)
    corrupt = _owned_util("record_problem")(_state_dir(conf))
    if corrupt:
        return (
            f"The mail formula's record of what is its own, {corrupt}. It is not trusted and nothing is"
            " changed on its strength: no package, group or file is removed or taken as the formula's."
            " Look at it, then restore it or move it aside (the formula then counts Postfix and msmtp as"
            " its own only where their configuration carries its marker)"
        )
    return _ownership_error() if writes else ""


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


def _syslog_available():
    return os.path.exists(os.path.join(FS_ROOT, "dev/log"))


def _host_facts(conf, include_secrets):
    lookup = conf["lookup"]
    record = _owned_util("load")(_state_dir(conf))
    return {
        "fqdn": _fqdn(),
        "systemd": _systemd_booted(),
        "syslog": _syslog_available(),
        "installed_dropins": _installed_alert_dropins(lookup["systemd_unit_dir"]),
        "health_timer_installed": _unit_file_exists(lookup, "mail-health.timer"),
        "metrics_timer_installed": _unit_file_exists(lookup, "mail-metrics.timer"),
        "owned_files": record["files"],
        "owned_packages": _owned_packages(conf, record),
        "formula_dir": _formula_dir(),
        "mailu_user_is_address": __utils__["mailstack_settings.is_address"](conf["mailu"]["user"]),
        "mask": None if include_secrets else MASK,
    }


def _unit_file_exists(lookup, unit):
    return os.path.exists(os.path.join(FS_ROOT, lookup["systemd_unit_dir"].lstrip("/"), unit))


def _owned_packages(conf, record):
    """
    The packages the formula installed: its record; where the record is from
    a formula that recorded no packages, the packages whose configuration
    carries the formula's marker (it wrote main.cf before it installed
    Postfix). With mail:take_over:postfix, Postfix is the formula's too.
    """
    lookup = conf["lookup"]
    postfix, msmtp = lookup["postfix"]["pkgs"][:1], [*lookup["msmtp"]["pkgs"], lookup["msmtp"]["mta_pkg"]]
    if _owned_util("records_packages")(_state_dir(conf)):
        owned = list(record["packages"])
    else:
        owned = [*(postfix if _carries_marker(f"{lookup['postfix']['config_dir']}/main.cf") else [])]
        owned += [name for name in msmtp if name and _carries_marker(lookup["msmtp"]["config"])]
    if conf["take_over"]["postfix"]:
        owned += postfix
    return sorted(set(owned))


def _plan(include_secrets):
    conf = _settings()
    decided = mode()
    host = _host_facts(conf, include_secrets)
    if decided["mode"] == "disabled":
        return {
            "mode": "disabled",
            "mode_reason": decided["reason"],
            "container": None,
            "container_reason": "not checked: mail is disabled",
            "clean": __utils__["mailstack_plan.cleanup"](conf, host),
        }
    return __utils__["mailstack_plan.build"](conf, decided, is_container(), host)


def _installed_alert_dropins(unit_dir):
    pattern = os.path.join(FS_ROOT, __utils__["mailstack_plan.alert_dropin_glob"](unit_dir).lstrip("/"))
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


def owned_files():
    """
    The files the formula created and recorded as its own (the msmtp log
    file), which ``mail.clean`` removes with the files that carry its marker.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.owned_files
    """
    return __utils__["mailstack_owned.load"](_state_dir(_settings()))["files"]


def plan(include_secrets=False, tplroot=None):
    """
    Show what the formula would do on this minion, without changing anything:
    the mode and why, container or not, whether Postfix runs, which packages
    are installed and removed, what provides ``sendmail`` and where mail goes,
    every file with its owner and mode, and what the clean states remove.
    Passwords are masked.

    tplroot
        As for ``mailstack.settings``.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.plan
        salt-call --local mailstack.plan --out=yaml
    """
    _use_formula_dir(tplroot)
    return _plan(include_secrets)


def mapdata(sls="mail", tplroot=None):
    """
    What the formula's ``map.jinja`` gives every state file, in one call:
    ``error`` (why nothing may change: invalid pillar, or what is not the
    formula's in the way; empty when all is well), ``blocked`` (the state to
    include instead of any other: ``<tplroot>.error``, or ``<tplroot>.disabled``
    when mail is disabled, except for the clean states), ``mail`` (the settings)
    and ``plan``, passwords masked.

    sls
        The state file asking; the clean states (``*.clean``) only remove what
        is the formula's, so they are not refused for what a write would be.
    tplroot
        As for ``mailstack.settings``.

    CLI Example:

    .. code-block:: bash

        salt '*' mailstack.mapdata mail.smtp.config
    """
    tplroot = tplroot or _formula_dir()
    if "mailstack_settings.merge" not in __utils__:
        return {
            "error": MISSING_UTILS,
            "blocked": f"{tplroot}.error",
            "mail": {},
            "plan": {"mode": "invalid"},
        }
    cleaning = sls.rsplit(".", 1)[-1] == "clean"
    error = validation_error(writes=not cleaning, tplroot=tplroot)
    if error:
        return {"error": error, "blocked": f"{tplroot}.error", "mail": {}, "plan": {"mode": "invalid"}}
    current = _plan(include_secrets=False)
    disabled = current["mode"] == "disabled" and not cleaning
    return {
        "error": "",
        "blocked": f"{tplroot}.disabled" if disabled else "",
        "mail": settings(),
        "plan": current,
    }


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
    return __utils__["mailstack_system.run"](__salt__, cmd, stdin=stdin, timeout=timeout)


def _systemd_booted():
    return __utils__["mailstack_system.systemd_booted"](FS_ROOT)


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
        return __utils__["mailstack_queue.parse_postqueue_json"](listed["stdout"])
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from None


def _queue_summary():
    messages = _queue_messages()
    summary = __utils__["mailstack_queue.summarize"](messages, time.time())
    summary["deferral_reasons"] = __utils__["mailstack_queue.deferral_reasons"](messages)
    return summary


def _queue_or_why_not():
    """The queue's summary; where it cannot be read (Postfix half-installed by an
    interrupted run), why, so that the rest of the status still shows."""
    try:
        return _queue_summary()
    except CommandExecutionError as exc:
        return {"error": str(exc)}


def _last_health_send(state_file):
    """The last run of the health mail: ``{"time", "result", "detail"}``, or ``None``."""
    try:
        with open(os.path.join(FS_ROOT, state_file.lstrip("/")), encoding="utf-8") as handle:
            when, result, *detail = handle.read().split(maxsplit=2)
        return {"time": int(when), "result": result, "detail": " ".join(detail).strip()}
    except (OSError, ValueError):
        return None


def _interrupted(conf):
    """What was cut off and not finished yet: dpkg's run (its journal) and the
    formula's own last apply (its marker); ``comment`` says what to expect."""
    system = "mailstack_system"
    dpkg = __utils__[f"{system}.interrupted_dpkg"](FS_ROOT)
    marker = __utils__[f"{system}.apply_marker"](_state_dir(conf), FS_ROOT)
    apply = marker if marker and marker["interrupted"] else None
    record = _owned_util("record_problem")(_state_dir(conf))
    notes = []
    if dpkg:
        notes.append(
            f"dpkg was interrupted ({', '.join(dpkg['packages']) or 'packages it did not name'}):"
            " the next apply that installs or removes a package, or whose packages these are,"
            " runs `dpkg --configure -a`"
        )
    if apply:
        notes.append(f"the apply of mail started at {apply['started_at']} never finished: apply again")
    elif marker:
        notes.append(
            f"an apply of mail is under way (started at {marker['started_at']}, pid {marker['pid']})"
        )
    if record:
        notes.append(
            f"the formula's record {record}: applies are refused until it is restored or moved aside"
        )
    return {
        "dpkg": dpkg["packages"] if dpkg else None,
        "apply": {"started_at": apply["started_at"], "pid": apply["pid"]} if apply else None,
        "record": record,
        "comment": "; ".join(notes) or "nothing interrupted",
    }


def status(check_next_hop=True):
    """
    Is mail working on this node, and if not, why? Shows the mode, whether
    Postfix is installed, running and enabled at boot (``None`` where systemd
    does not run), what was interrupted (``interrupted``: a dpkg run left
    half-done, the formula's last apply cut off, a corrupt record), the
    queue (``total``, ``active``, ``deferred``, ``hold``, the age in seconds
    of the oldest message and the most frequent deferral reasons), the last
    health mail, and whether the next hop answers (``mailstack.probe``,
    skipped with ``check_next_hop=False``). Changes nothing; cheap enough to
    call every minute.

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
        "interrupted": _interrupted(conf),
        "health": _last_health_send(current["health"]["state_file"]),
        "mode": current["mode"],
        "sendmail": current["sendmail"],
        "postfix": daemon,
        "queue": _queue_or_why_not() if daemon["installed"] else None,
        "next_hop": current["next_hop"],
        "next_hop_answers": hop["reachable"],
        "next_hop_comment": hop["comment"],
    }


def _test_recipient(conf, to):
    recipient = to or conf["admin"] or "root"
    is_address, is_user_name = (
        __utils__["mailstack_settings.is_address"],
        __utils__["mailstack_settings.is_user_name"],
    )
    if not isinstance(recipient, str) or not (is_address(recipient) or is_user_name(recipient)):
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
    return __utils__["mailstack_system.postconf"](__salt__, parameter) or ""


def _follow_in_postfix(log, message_id, wait):
    """Follow a submitted message through Postfix's log until it leaves or ``wait`` runs out."""
    deadline = time.monotonic() + wait
    queue_id, outcome = None, None
    while True:
        lines = log.lines()
        queue_id = queue_id or __utils__["mailstack_queue.queue_id_of"](lines, message_id)
        if queue_id:
            outcome = __utils__["mailstack_queue.delivery_outcome"](lines, queue_id)
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
        fields.update(__utils__["mailstack_queue.msmtp_log_fields"](line))
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
        path = f"sendmail (Postfix) -> {current['next_hop']}"
    else:
        outcome = _send_through_msmtp(sendmail, message, recipient, timeout)
        path = f"sendmail (msmtp) -> {current['next_hop']}"
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


# ---------------------------------------------------------------- salt-ssh ---

# salt-ssh ships a state run's pillar (passwords too) in
# <thin_dir>/salt_state.tgz and leaves it there; state.pkg has unpacked it.
SSH_STATE_PACKAGE = "salt_state.tgz"
SSH_CALLS = ("status", "send_test", "flush")


def ssh_call(function, kwargs=None):
    """
    Under salt-ssh (``_wrapper/mailstack.py`` runs it through ``state.single
    module.run``, which ships the pillar): run ``mailstack.<function>`` here
    (``status``, ``send_test`` or ``flush``) and remove the package with the
    pillar that salt-ssh leaves behind. Returns JSON: ``{"ret": ..., "failed": ...}``.

    CLI Example:

    .. code-block:: bash

        salt-ssh pi mailstack.status
    """
    if function not in SSH_CALLS:
        raise CommandExecutionError(f"mailstack.ssh_call runs {', '.join(SSH_CALLS)}, not {function!r}")
    root_dir = (__opts__.get("root_dir") or "").rstrip("/")
    if os.path.basename(root_dir) == "running_data":  # salt-ssh's thin directory
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(os.path.dirname(root_dir), SSH_STATE_PACKAGE))
    __context__.pop("retcode", None)
    returned = globals()[function](**(kwargs or {}))
    return json.dumps({"ret": returned, "failed": bool(__context__.get("retcode"))}, default=str)
