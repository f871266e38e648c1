"""
States for the ``mail`` formula.

``mailstack.postfix_running`` and ``mailstack.postfix_dead`` manage the Postfix
daemon with systemd where systemd is PID 1, and with Postfix's own ``postfix
start|reload|stop`` where no init system runs. ``postfix check`` runs before
every start and reload. A ``watch`` reloads Postfix, or restarts it when the
listening settings (``inet_interfaces``, ``inet_protocols``) changed, since
those are only read at start.

``mailstack.postfix_enabled`` makes the Postfix unit start at boot where
systemd is PID 1 (installing the package does not enable it on Arch or
Fedora, and an operator may have disabled it); where no init system runs
there is nothing to enable and it says so.

``mailstack.postmapped`` rebuilds a Postfix lookup table when its source is
newer than the table.

.. code-block:: yaml

    mail-smtp-service-running:
      mailstack.postfix_running:
        - name: postfix
        - watch:
          - file: mail-smtp-config-main-cf
"""

import json
import os
import time

__virtualname__ = "mailstack"

LISTEN_PARAMETERS = ("inet_interfaces", "inet_protocols")
LISTEN_MARKER = "mailstack-listen"
STOP_TIMEOUT = 120
MAP_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".dir", "sdbm": ".dir"}


def __virtual__():
    return __virtualname__


def _ret(name, result=True, comment="", changes=None):
    return {"name": name, "result": result, "comment": comment, "changes": changes or {}}


def _run(cmd):
    out = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, output_loglevel="debug")
    return out["retcode"] == 0, (out["stdout"] + "\n" + out["stderr"]).strip()


def _systemd_booted():
    return os.path.isdir("/run/systemd/system")


def _postconf(*parameters):
    ok, out = _run(["postconf", "-h", *parameters])
    return out if ok else None


def _marker_path():
    data_dir = _postconf("data_directory") or "/var/lib/postfix"
    return os.path.join(data_dir, LISTEN_MARKER)


def _listen_settings():
    return _postconf(*LISTEN_PARAMETERS) or ""


def _master_pid():
    """PID of the running Postfix master process, or None."""
    queue_dir = _postconf("queue_directory")
    if not queue_dir:
        return None
    try:
        with open(os.path.join(queue_dir, "pid", "master.pid"), encoding="utf-8") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return pid if os.path.exists(f"/proc/{pid}") else None


def _master_started(pid):
    """When process ``pid`` started (seconds since the epoch), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="utf-8") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _main_cf_mtime():
    config_dir = _postconf("config_directory") or "/etc/postfix"
    try:
        return os.path.getmtime(os.path.join(config_dir, "main.cf"))
    except OSError:
        return None


def _read_marker():
    """The recorded listening settings and master PID; None if never recorded."""
    try:
        with open(_marker_path(), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None
    try:
        data = json.loads(text)
        return {"listen": data["listen"], "master_pid": data.get("master_pid")}
    except (ValueError, KeyError, TypeError):
        return {"listen": text, "master_pid": None}  # written by an older formula


def _listen_settings_changed():
    """
    Whether the running master may listen otherwise than main.cf now says.

    The settings are recorded with the master's PID whenever the formula starts
    Postfix. A master with another PID was started outside the formula (by
    hand, or by systemd at boot) and read main.cf then: unless main.cf is older
    than that master, what it listens on is unknown, so it must restart.
    """
    marker = _read_marker()
    if marker is None:
        return True
    pid = _master_pid()
    if marker["master_pid"] is None or pid is None or pid == marker["master_pid"]:
        return marker["listen"] != _listen_settings()
    started, modified = _master_started(pid), _main_cf_mtime()
    return started is None or modified is None or modified >= started


def _record_listen_settings():
    with open(_marker_path(), "w", encoding="utf-8") as handle:
        json.dump({"listen": _listen_settings(), "master_pid": _master_pid()}, handle)


def _is_running(service):
    """Whether Postfix's master runs: asked of Postfix itself, since a unit that
    systemd calls active (Debian's ``postfix`` wrapper) may have a dead master."""
    if not __salt__["cmd.which"]("postfix"):
        return False
    return _run(["postfix", "status"])[0]


def _unit_active(service):
    return _systemd_booted() and bool(__salt__["service.status"](service))


def _start_action(service):
    """``start``; ``restart`` where systemd holds the unit active around a dead
    master, since starting an active unit starts nothing."""
    return "restart" if _unit_active(service) else "start"


def _check():
    ok, out = _run(["postfix", "check"])
    return ok, f"postfix check failed, Postfix was left as it was: {out}"


def _still_stopping(service):
    """Units of ``service`` (``postfix``, ``postfix@-``...) systemd is still stopping."""
    ok, out = _run(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--state=deactivating", f"{service}*"]
    )
    return out.split()[:1] if ok and out.strip() else []


def _wait_until_stopped(service):
    """
    Wait until systemd has finished stopping Postfix: stopping ``postfix``
    returns before its instances (``postfix@-``) are down, and a package
    removed meanwhile leaves them hanging in "deactivating".
    """
    deadline = time.monotonic() + STOP_TIMEOUT
    while _master_pid() is not None or _still_stopping(service):
        if time.monotonic() > deadline:
            return False, (
                f"systemd did not finish stopping {service} within {STOP_TIMEOUT} s;"
                f" see `systemctl status '{service}*'`. Postfix was left as it is."
            )
        time.sleep(0.5)
    return True, ""


def _action(service, action, prestart):
    """Run start, stop, reload or restart; return (ok, message)."""
    if action != "stop":
        ok, message = _check()
        if not ok:
            return ok, message
    if _systemd_booted():
        ok = __salt__[f"service.{action}"](service)
        if ok and action == "stop":
            return _wait_until_stopped(service)
        return bool(ok), f"systemd could not {action} {service}"
    if action == "restart":
        ok, message = _action(service, "stop", prestart)
        return _action(service, "start", prestart) if ok else (ok, message)
    if action == "start" and prestart:
        result = __salt__["cmd.run_all"](prestart, python_shell=True, ignore_retcode=True)
        if result["retcode"] != 0:
            return False, f"{prestart} failed: {result['stderr'] or result['stdout']}"
    ok, out = _run(["postfix", action])
    return ok, f"postfix {action} failed: {out}"


def _act_and_report(name, action, prestart, changes):
    ok, message = _action(name, action, prestart)
    if not ok:
        return _ret(name, False, message)
    if action in ("start", "restart"):
        _record_listen_settings()
    return _ret(name, True, f"Postfix {action}ed" if action != "stop" else "Postfix stopped", changes)


def postfix_running(name="postfix", prestart=""):
    """
    Ensure Postfix runs with the listening settings of its current main.cf.

    name
        The service name (used where systemd runs).
    prestart
        Shell command run before ``postfix start`` where no init system runs
        (Debian: ``/usr/lib/postfix/configure-instance.sh -`` prepares the chroot).
    """
    if not _is_running(name):
        action, changes = _start_action(name), {"postfix": "started"}
    elif _listen_settings_changed():
        action, changes = "restart", {"postfix": "restarted: listening settings changed"}
    else:
        return _ret(name, True, "Postfix is running")
    if __opts__["test"]:
        return _ret(name, None, f"Postfix would be {changes['postfix'].split(':')[0]}", changes)
    return _act_and_report(name, action, prestart, changes)


def postfix_dead(name="postfix"):
    """
    Ensure Postfix is stopped (before its package is removed, since removing
    the package does not stop a daemon that no init system started).
    """
    if not _is_running(name) and not _unit_active(name):
        return _ret(name, True, "Postfix is not running")
    if __opts__["test"]:
        return _ret(name, None, "Postfix would be stopped", {"postfix": "stopped"})
    return _act_and_report(name, "stop", "", {"postfix": "stopped"})


def mod_watch(name, sfun=None, prestart="", **kwargs):
    """
    Reload Postfix after a watched change, or restart it when the listening
    settings changed; start it if it is not running.
    """
    if sfun == "postfix_dead":
        return postfix_dead(name)
    if not _is_running(name):
        action = _start_action(name)
    elif _listen_settings_changed():
        action = "restart"
    else:
        action = "reload"
    changes = {"postfix": f"{action}ed"}
    if __opts__["test"]:
        return _ret(name, None, f"Postfix would be {action}ed", changes)
    return _act_and_report(name, action, prestart, changes)


def postfix_enabled(name="postfix"):
    """
    Ensure the Postfix unit is enabled at boot where systemd is PID 1.

    name
        The systemd unit (``mail:lookup:postfix:service``). On Debian this is
        ``postfix``, whose instances (``postfix@-``) start with it.

    Where no init system runs, nothing starts Postfix at boot and this state
    changes nothing. ``test=True`` predicts the change.
    """
    if not _systemd_booted():
        return _ret(name, True, "No systemd on this host: nothing to enable at boot")
    if __salt__["service.enabled"](name):
        return _ret(name, True, f"{name} is enabled at boot")
    changes = {"enabled": name}
    if __opts__["test"]:
        return _ret(name, None, f"{name} would be enabled at boot", changes)
    if not __salt__["service.enable"](name) or not __salt__["service.enabled"](name):
        return _ret(
            name,
            False,
            f"systemd could not enable {name}; see `systemctl enable {name}` and the unit name in"
            " mail:lookup:postfix:service",
        )
    return _ret(name, True, f"{name} enabled at boot", changes)


def _map_file(source, map_type):
    return source + MAP_SUFFIX.get(map_type, ".db")


def postmapped(name, map_type="hash"):
    """
    Build the Postfix lookup table for ``name`` when it is missing or older
    than its source file.

    name
        The source file, e.g. ``/etc/postfix/sasl_passwd``.
    map_type
        The table type: hash, lmdb, btree, cdb.
    """
    table = _map_file(name, map_type)
    changes = {"postmap": f"{map_type}:{name}"}
    if not os.path.exists(name):
        if __opts__["test"]:
            return _ret(name, None, f"{table} would be built once {name} is written", changes)
        return _ret(name, False, f"{name} does not exist")
    if os.path.exists(table) and os.path.getmtime(table) >= os.path.getmtime(name):
        return _ret(name, True, f"{table} is up to date")
    if __opts__["test"]:
        return _ret(name, None, f"{table} would be rebuilt", changes)
    ok, out = _run(["postmap", f"{map_type}:{name}"])
    if not ok:
        return _ret(name, False, f"postmap {map_type}:{name} failed: {out}")
    os.chmod(table, os.stat(name).st_mode & 0o777)
    return _ret(name, True, f"{table} rebuilt", changes)
