"""
The host facts of the ``mail`` formula: everything its plan needs to know
about the running system, gathered on the target in one call (``gather``),
and the one pure function that turns settings and facts into what
``mailstack.mapdata`` returns (``mapdata``).

``gather`` reads the target's file system (under ``fs_root``) and asks Salt's
execution functions (``salt``: ``cmd.which``, ``cmd.run_all``, ``pkg.list_pkgs``);
``mapdata`` reads nothing but its arguments, so it can run where the settings
are (the minion, or the master under salt-ssh) once the facts are there.

Salt's utils have no ``__utils__`` of their own: both take ``utils``, the
mapping of the formula's utils (``__utils__`` of the caller), to reach
``mailstack_plan`` (which reaches ``mailstack_content`` through it),
``mailstack_owned``, ``mailstack_states``.
"""

import glob
import os
import re
import socket

_CONTAINER_CGROUP_RE = re.compile(r"docker|kubepods|containerd|libpod|podman|lxc|machine\.slice/.*nspawn")
_CONTAINER_VIRTUAL = ("container", "docker", "lxc", "podman", "systemd-nspawn", "kubernetes", "openvzve")


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def container_signals(grains, fs_root="/"):
    """A description of every sign that this host is a container."""
    signals = []
    for marker in ("/.dockerenv", "/run/.containerenv"):
        if os.path.exists(os.path.join(fs_root, marker.lstrip("/"))):
            signals.append(f"{marker} exists")
    environ = _read(os.path.join(fs_root, "proc/1/environ")) or ""
    signals += [f"PID 1 runs with {entry}" for entry in environ.split("\0") if entry.startswith("container=")]
    match = _CONTAINER_CGROUP_RE.search(_read(os.path.join(fs_root, "proc/1/cgroup")) or "")
    if match:
        signals.append(f"the cgroup of PID 1 mentions {match.group(0)}")
    virtual = str(grains.get("virtual", "")).lower()
    subtype = str(grains.get("virtual_subtype", "")).lower()
    if virtual in _CONTAINER_VIRTUAL or subtype in _CONTAINER_VIRTUAL:
        signals.append(f"the virtual grain says {subtype or virtual}")
    return signals


def _host_path(fs_root, path):
    return os.path.join(fs_root, path.lstrip("/"))


def installed_alert_dropins(utils, unit_dir, fs_root="/"):
    pattern = _host_path(fs_root, utils["mailstack_plan.alert_dropin_glob"](unit_dir))
    return sorted("/" + os.path.relpath(path, fs_root) for path in glob.glob(pattern))


def _owned_packages(utils, settings, record, fs_root):
    """
    The packages the formula installed: its record; where the record is from
    a formula that recorded no packages, the packages whose configuration
    carries the formula's marker (it wrote main.cf before it installed
    Postfix). With mail:take_over:postfix, Postfix is the formula's too.
    """
    lookup = settings["lookup"]
    postfix = lookup["postfix"]["pkgs"][:1]
    msmtp = [*lookup["msmtp"]["pkgs"], lookup["msmtp"]["mta_pkg"]]
    state_dir = _host_path(fs_root, lookup["state_dir"])
    marked = utils["mailstack_owned.carries_marker"]
    if utils["mailstack_owned.records_packages"](state_dir):
        owned = list(record["packages"])
    else:
        main_cf = f"{lookup['postfix']['config_dir']}/main.cf"
        owned = [*(postfix if marked(_host_path(fs_root, main_cf)) else [])]
        owned += [name for name in msmtp if name and marked(_host_path(fs_root, lookup["msmtp"]["config"]))]
    if settings["take_over"]["postfix"]:
        owned += postfix
    return sorted(set(owned))


def gather(
    utils, salt, grains, settings, fs_root="/", formula_dir="mail", mask="********", check_ownership=True
):
    """
    The host facts of this target for ``settings`` (validated, with secrets),
    as plain data: what the plan is built from (``fqdn``, ``systemd``,
    ``syslog``, ``installed_dropins``, ``health_timer_installed``,
    ``metrics_timer_installed``, ``owned_files``, ``owned_packages``,
    ``mailu_user_is_address``), ``container_signals``, ``formula_dir``,
    ``mask`` (what replaces passwords in the plan, ``None`` to keep them),
    ``record_problem`` (the formula's record is corrupt) and
    ``ownership_error`` (why applying would touch what is not the formula's,
    ``mailstack_owned.refusal``; empty when nothing is in the way, or not
    checked with ``check_ownership=False``).
    """
    lookup = settings["lookup"]
    unit_dir = lookup["systemd_unit_dir"]
    state_dir = _host_path(fs_root, lookup["state_dir"])
    record = utils["mailstack_owned.load"](state_dir)
    facts = {
        "fqdn": grains.get("fqdn") or grains.get("host") or socket.getfqdn(),
        "systemd": utils["mailstack_system.systemd_booted"](fs_root),
        "syslog": os.path.exists(_host_path(fs_root, "/dev/log")),
        "installed_dropins": installed_alert_dropins(utils, unit_dir, fs_root),
        "health_timer_installed": os.path.exists(_host_path(fs_root, f"{unit_dir}/mail-health.timer")),
        "metrics_timer_installed": os.path.exists(_host_path(fs_root, f"{unit_dir}/mail-metrics.timer")),
        "owned_files": record["files"],
        "owned_packages": _owned_packages(utils, settings, record, fs_root),
        "formula_dir": formula_dir,
        "mailu_user_is_address": utils["mailstack_settings.is_address"](settings["mailu"]["user"]),
        "container_signals": container_signals(grains, fs_root),
        "mask": mask,
        "record_problem": utils["mailstack_owned.record_problem"](state_dir),
    }
    facts["ownership_error"] = ""
    if check_ownership and not facts["record_problem"]:
        built = plan(utils, settings, facts)
        facts["ownership_error"] = utils["mailstack_owned.refusal"](
            utils, salt, grains, settings, built, fs_root
        )
    return facts


def decide_mode(settings):
    """How this host sends system mail, and why: ``mailu``, ``relay`` or
    ``disabled``. ``auto`` is decided from the settings alone (a Mailu host
    configured means ``mailu``), so the decision never flips because a server
    was down."""
    if not settings["enabled"]:
        return {"mode": "disabled", "reason": "pillar mail:enabled is false"}
    if settings["mode"] != "auto":
        return {"mode": settings["mode"], "reason": f"pillar mail:mode is {settings['mode']}"}
    if settings["mailu"]["host"]:
        return {"mode": "mailu", "reason": "mail:mode is auto and mail:mailu:host is set"}
    return {"mode": "relay", "reason": "mail:mode is auto and no mail:mailu:host is set"}


def decide_container(settings, signals):
    """Whether this host is a container, and why: pillar ``mail:container`` if
    it says true or false, else the signals."""
    forced = settings["container"]
    if isinstance(forced, bool):
        return {"container": forced, "reason": f"pillar mail:container is {str(forced).lower()}"}
    if signals:
        return {"container": True, "reason": "detected: " + "; ".join(signals)}
    return {"container": False, "reason": "no container signal found"}


def plan(utils, settings, facts):
    """The plan for ``settings`` on the host of ``facts`` (``mailstack.plan``)."""
    decided = decide_mode(settings)
    if decided["mode"] == "disabled":
        return {
            "mode": "disabled",
            "mode_reason": decided["reason"],
            "container": None,
            "container_reason": "not checked: mail is disabled",
            "clean": utils["mailstack_plan.cleanup"](settings, facts),
        }
    container = decide_container(settings, facts["container_signals"])
    return utils["mailstack_plan.build"](utils, settings, decided, container, facts)


def record_error(record_problem):
    return (
        f"The mail formula's record of what is its own, {record_problem}. It is not trusted and nothing is"
        " changed on its strength: no package, group or file is removed or taken as the formula's."
        " Look at it, then restore it or move it aside (the formula then counts Postfix and msmtp as"
        " its own only where their configuration carries its marker)"
    )


def mapdata(utils, settings, facts, sls="mail", tplroot="mail", mask="********", rendered=()):
    """
    What ``mailstack.mapdata`` returns for the state file ``sls``, from the
    validated ``settings`` (with secrets) and the ``facts`` of ``gather``
    alone: ``error`` (why nothing may change), ``blocked`` (the state to
    include instead: ``<tplroot>.error``, or ``<tplroot>.disabled`` when mail
    is disabled, except for the clean states), ``mail`` (the settings,
    passwords masked), ``plan`` and ``sls`` (the state file's states,
    ``mailstack_states.sls``, without those of the state files in ``rendered``).
    """
    error = _error(facts, sls)
    if error:
        return refused(utils, error, sls, tplroot)
    masked = utils["mailstack_settings.masked"](settings, mask)
    built = plan(utils, settings, facts)
    # A state file rendered before that was blocked holds no states.
    earlier = [name.split(":", 1)[-1] for name in rendered]
    holding = [name for name in earlier if not _blocked(name, tplroot, built, _error(facts, name))]
    return _answer(utils, sls, tplroot, masked, built, rendered=holding)


def _cleaning(sls):
    return sls.rsplit(".", 1)[-1] == "clean"


def _error(facts, sls):
    """Why the state file ``sls`` may change nothing, or ``""``: a corrupt
    record stops every state file, what is in the way all but the clean
    ones (they only remove what is the formula's)."""
    if facts["record_problem"]:
        return record_error(facts["record_problem"])
    return "" if _cleaning(sls) else facts["ownership_error"]


def _blocked(sls, tplroot, plan, error):
    """The state the state file ``sls`` includes instead of its own, or ``""``."""
    if error:
        return f"{tplroot}.error"
    return f"{tplroot}.disabled" if plan["mode"] == "disabled" and not _cleaning(sls) else ""


def refused(utils, error, sls="mail", tplroot="mail"):
    """What ``mailstack.mapdata`` returns for the state file ``sls`` where
    nothing may change, and why (``error``): it includes ``<tplroot>.error``."""
    return _answer(utils, sls, tplroot, {}, {"mode": "invalid"}, error=error)


def _answer(utils, sls, tplroot, masked, plan, error="", rendered=()):
    blocked = _blocked(sls, tplroot, plan, error)
    return {
        "error": error,
        "blocked": blocked,
        "mail": masked,
        "plan": plan,
        "sls": utils["mailstack_states.sls"](sls, tplroot, masked, plan, blocked, rendered),
    }
