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

``mailstack.packages_installed`` and ``mailstack.packages_removed`` are Salt's
``pkg.installed`` and ``pkg.removed``, skipped when there is nothing to do.

``mailstack.formula_file`` writes one file of the plan with Salt's
``file.managed``, or removes it where the plan has it absent, if the formula
wrote it.

.. code-block:: yaml

    mail-smtp-service-running:
      mailstack.postfix_running:
        - name: postfix
        - watch:
          - file: mail-smtp-config-main-cf
"""

import json
import os
import stat
import time

import salt.utils.templates
from salt.exceptions import CommandExecutionError, SaltRenderError

__virtualname__ = "mailstack"

LISTEN_PARAMETERS = ("inet_interfaces", "inet_protocols")
# Postfix's directories, and where they are when postconf cannot say.
DIRECTORIES = {
    "queue_directory": "/var/spool/postfix",
    "data_directory": "/var/lib/postfix",
    "config_directory": "/etc/postfix",
}
LISTEN_MARKER = "mailstack-listen"
STOP_TIMEOUT = 120
# Where the states look at processes and at dpkg's records (unit tests point them at fake ones).
PROC = "/proc"
FS_ROOT = "/"


def __virtual__():
    return __virtualname__


def _ret(name, result=True, comment="", changes=None):
    return {"name": name, "result": result, "comment": comment, "changes": changes or {}}


def _run(cmd):
    out = __utils__["mailstack_system.run"](__salt__, cmd)
    return out["retcode"] == 0, (out["stdout"] + "\n" + out["stderr"]).strip()


def _systemd_booted():
    return __utils__["mailstack_system.systemd_booted"]()


def _postconf_values(*parameters):
    return __utils__["mailstack_system.postconf_values"](__salt__, *parameters) or {}


def _postfix_settings():
    """
    What the Postfix states need of main.cf, from one ``postconf``: its
    ``queue_directory``, ``data_directory`` and ``config_directory``, and
    ``listen``, the listening settings (``LISTEN_PARAMETERS``, one per line).
    Where Postfix is not installed, its default directories and no settings.
    """
    installed = __salt__["cmd.which"]("postconf")
    values = _postconf_values(*DIRECTORIES, *LISTEN_PARAMETERS) if installed else {}
    settings = {name: values.get(name) or default for name, default in DIRECTORIES.items()}
    settings["listen"] = _joined_listen_settings(values)
    return settings


def _joined_listen_settings(values):
    """The values of ``LISTEN_PARAMETERS`` one per line, as the marker records them."""
    return "\n".join(values.get(name, "") for name in LISTEN_PARAMETERS).strip()


def _current_listen_settings():
    """The listening settings main.cf holds now: read again after a start, for the master it started."""
    return _joined_listen_settings(_postconf_values(*LISTEN_PARAMETERS))


def _marker_path(settings):
    return os.path.join(settings["data_directory"], LISTEN_MARKER)


def _master_pid(queue_dir):
    """
    PID of the running Postfix master process, or None: the PID in its pid
    file, if that process exists and is Postfix's ``master`` (a pid file
    outlives its master, and after a reboot its PID may be another process's).
    """
    try:
        with open(os.path.join(queue_dir, "pid", "master.pid"), encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        with open(os.path.join(PROC, str(pid), "comm"), encoding="utf-8") as handle:
            command = handle.read().strip()
    except (OSError, ValueError):
        return None
    return pid if command == "master" else None


def _master_started(pid):
    """When process ``pid`` started (seconds since the epoch), or None."""
    try:
        with open(os.path.join(PROC, str(pid), "stat"), encoding="utf-8") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open(os.path.join(PROC, "stat"), encoding="utf-8") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _main_cf_mtime(config_dir):
    try:
        return os.path.getmtime(os.path.join(config_dir, "main.cf"))
    except OSError:
        return None


def _read_marker(settings):
    """The recorded listening settings and master PID; None if never recorded."""
    try:
        with open(_marker_path(settings), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None
    try:
        data = json.loads(text)
        return {"listen": data["listen"], "master_pid": data.get("master_pid")}
    except (ValueError, KeyError, TypeError):
        return {"listen": text, "master_pid": None}  # written by an older formula


def _listen_settings_changed(settings):
    """
    Whether the running master may listen otherwise than main.cf now says.

    The settings are recorded with the master's PID whenever the formula starts
    Postfix. A master with another PID was started outside the formula (by
    hand, or by systemd at boot) and read main.cf then: unless main.cf is older
    than that master, what it listens on is unknown, so it must restart.
    """
    marker = _read_marker(settings)
    if marker is None:
        return True
    pid = _master_pid(settings["queue_directory"])
    if marker["master_pid"] is None or pid is None or pid == marker["master_pid"]:
        return marker["listen"] != settings["listen"]
    started, modified = _master_started(pid), _main_cf_mtime(settings["config_directory"])
    return started is None or modified is None or modified >= started


def _record_listen_settings(settings):
    """Record what the master just started or restarted listens on, and its PID."""
    recorded = {"listen": _current_listen_settings(), "master_pid": _master_pid(settings["queue_directory"])}
    _owned("write_atomically")(_marker_path(settings), json.dumps(recorded).encode("utf-8"))


def _is_running(settings):
    """
    Whether Postfix's master runs: its pid file names a live ``master`` process
    (``postfix status`` is a shell script that runs postconf and master to
    find out). Not asked of systemd: a unit it calls active, Debian's
    ``postfix`` wrapper, may have a dead master.
    """
    return _master_pid(settings["queue_directory"]) is not None


def _unit_active(service):
    """Whether systemd holds ``service`` active: ``systemctl is-active``, asked
    directly (Salt's ``service.status`` would first load the service modules)."""
    return _systemd_booted() and _run(["systemctl", "is-active", "--quiet", "--", service])[0]


def _start_action(service):
    """``start``; ``restart`` where systemd holds the unit active around a dead
    master, since starting an active unit starts nothing."""
    return "restart" if _unit_active(service) else "start"


def _postfix_check():
    ok, out = _run(["postfix", "check"])
    return ok, f"postfix check failed, Postfix was left as it was: {out}"


def _still_stopping(service):
    """Units of ``service`` (``postfix``, ``postfix@-``...) systemd is still stopping."""
    ok, out = _run(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--state=deactivating", f"{service}*"]
    )
    return out.split()[:1] if ok and out.strip() else []


def _wait_until_stopped(service, settings):
    """
    Wait until systemd has finished stopping Postfix: stopping ``postfix``
    returns before its instances (``postfix@-``) are down, and a package
    removed meanwhile leaves them hanging in "deactivating".
    """
    deadline = time.monotonic() + STOP_TIMEOUT
    while _master_pid(settings["queue_directory"]) is not None or _still_stopping(service):
        if time.monotonic() > deadline:
            return False, (
                f"systemd did not finish stopping {service} within {STOP_TIMEOUT} s;"
                f" see `systemctl status '{service}*'`. Postfix was left as it is."
            )
        time.sleep(0.5)
    return True, ""


def _systemd_action(service, action):
    """``(ok, message)`` of Salt's ``service.<action>``: systemd's own words
    where it failed (Salt raises them for a reload)."""
    try:
        ok, why = bool(__salt__[f"service.{action}"](service)), ""
    except CommandExecutionError as exc:
        ok, why = False, f": {exc}".rstrip()
    return ok, f"systemd could not {action} {service}{why}"


def _action(service, action, prestart, settings):
    """Run start, stop, reload or restart; return (ok, message)."""
    if action != "stop":
        ok, message = _postfix_check()
        if not ok:
            return ok, message
    if _systemd_booted():
        ok, message = _systemd_action(service, action)
        if not ok and action == "reload":
            # systemd on cgroup v1 may have pruned the cgroup of an exited
            # oneshot (Debian's postfix.service) and then fail its ExecReload
            # ("Failed at step CGROUP"); the next reload finds it again.
            ok, message = _systemd_action(service, action)
        if ok and action == "stop":
            return _wait_until_stopped(service, settings)
        return ok, message
    if action == "restart":
        ok, message = _action(service, "stop", prestart, settings)
        return _action(service, "start", prestart, settings) if ok else (ok, message)
    if action == "start" and prestart:
        ok, out = _run(list(prestart))
        if not ok:
            return False, f"{' '.join(prestart)} failed: {out}"
    ok, out = _run(["postfix", action])
    return ok, f"postfix {action} failed: {out}"


def _act_and_report(name, action, prestart, changes, settings):
    ok, message = _action(name, action, prestart, settings)
    if not ok:
        return _ret(name, False, message)
    if action in ("start", "restart"):
        _record_listen_settings(settings)
    return _ret(name, True, f"Postfix {action}ed" if action != "stop" else "Postfix stopped", changes)


def postfix_running(name="postfix", prestart=()):
    """
    Ensure Postfix runs with the listening settings of its current main.cf.

    name
        The service name (used where systemd runs).
    prestart
        Argument list run (without a shell) before ``postfix start`` where no
        init system runs (Debian: ``[/usr/lib/postfix/configure-instance.sh, -]``
        prepares the chroot).
    """
    settings = _postfix_settings()
    if not _is_running(settings):
        action, changes = _start_action(name), {"postfix": "started"}
    elif _listen_settings_changed(settings):
        action, changes = "restart", {"postfix": "restarted: listening settings changed"}
    else:
        return _ret(name, True, "Postfix is running")
    if __opts__["test"]:
        return _ret(name, None, f"Postfix would be {changes['postfix'].split(':')[0]}", changes)
    return _act_and_report(name, action, prestart, changes, settings)


def postfix_dead(name="postfix"):
    """
    Ensure Postfix is stopped (before its package is removed, since removing
    the package does not stop a daemon that no init system started).
    """
    settings = _postfix_settings()
    if not _is_running(settings) and not _unit_active(name):
        return _ret(name, True, "Postfix is not running")
    if __opts__["test"]:
        return _ret(name, None, "Postfix would be stopped", {"postfix": "stopped"})
    return _act_and_report(name, "stop", "", {"postfix": "stopped"}, settings)


def mod_watch(name, sfun=None, prestart=(), **kwargs):
    """
    Reload Postfix after a watched change, or restart it when the listening
    settings changed; start it if it is not running.
    """
    if sfun == "postfix_dead":
        return postfix_dead(name)
    settings = _postfix_settings()
    if not _is_running(settings):
        action = _start_action(name)
    elif _listen_settings_changed(settings):
        action = "restart"
    else:
        action = "reload"
    changes = {"postfix": f"{action}ed"}
    if __opts__["test"]:
        return _ret(name, None, f"Postfix would be {action}ed", changes)
    return _act_and_report(name, action, prestart, changes, settings)


def _enabled_at_boot(name):
    """The link ``systemctl enable`` makes, read; else ``systemctl is-enabled``,
    asked directly: Salt's ``service.enabled`` would first load the service
    modules, which an idempotent run never needs."""
    return (
        __utils__["mailstack_system.enabled_by_wants_link"](name, FS_ROOT)
        or _run(["systemctl", "is-enabled", "--", name])[0]
        or __salt__["service.enabled"](name)
    )


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
    if _enabled_at_boot(name):
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


def postmapped(name, map_type="hash", stale_tables=()):
    """
    Build the Postfix lookup table for ``name`` when it is missing or older
    than its source file, and keep it as private as its source on every run
    (a table made by hand with ``postmap`` is world-readable). Tables of the
    formula's other types for the same source (``stale_tables``, left by a
    change of ``map_type``) are removed.

    name
        The source file, e.g. ``/etc/postfix/sasl_passwd``.
    map_type
        The table type: hash, lmdb, btree, cdb.
    """
    table = __utils__["mailstack_plan.map_file"](name, map_type)
    if not os.path.exists(name):
        if __opts__["test"]:
            return _ret(name, None, f"{table} would be built once {name} is written", {"postmap": table})
        return _ret(name, False, f"{name} does not exist")
    stale = [path for path in stale_tables if os.path.isfile(path) and not os.path.islink(path)]
    changes = {"removed": stale} if stale else {}
    fresh = os.path.exists(table) and os.path.getmtime(table) >= os.path.getmtime(name)
    if not fresh:
        changes["postmap"] = f"{map_type}:{name}"
    source = os.stat(name)
    wanted = (source.st_uid, source.st_gid, stat.S_IMODE(source.st_mode))
    if fresh and _owner_and_mode(table) != wanted:
        changes["table"] = f"owner {wanted[0]}:{wanted[1]}, mode {wanted[2]:04o}"
    if not changes:
        return _ret(name, True, f"{table} is up to date")
    if __opts__["test"]:
        return _ret(name, None, f"{table} would be brought up to date", changes)
    for path in stale:
        os.unlink(path)
    if not fresh:
        # postmap creates the table 0644: with umask 077 it is never readable by others.
        result = __salt__["cmd.run_all"](
            ["postmap", f"{map_type}:{name}"], python_shell=False, umask="077", output_loglevel="debug"
        )
        if result["retcode"] != 0:
            out = (result["stdout"] + "\n" + result["stderr"]).strip()
            return _ret(name, False, f"postmap {map_type}:{name} failed: {out}")
    _owned("set_owner_and_mode")(table, *wanted)
    return _ret(name, True, f"{table} is up to date and private", changes)


def _owner_and_mode(path):
    info = os.lstat(path)
    return (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))


# -------------------------------------------------------------- packages ---


def _installed_packages(pkgs):
    return __utils__["mailstack_system.installed_packages"](__salt__, __grains__, pkgs, FS_ROOT)


def _settle_installing(state_dir):
    """Packages an apply noted it was installing and never finished
    (``mailstack_owned.begin_installing``): those dpkg holds files of
    (installed, or left half-done) are recorded as the formula's."""
    pending = _owned("installing")(state_dir)
    if pending:
        unpacked = __utils__["mailstack_system.unpacked_packages"](pending, FS_ROOT)
        _owned("settle_installing")(state_dir, unpacked)


class _InterruptedDpkg:
    """
    What a package state does about an interrupted dpkg run (files left in
    dpkg's journal, ``/var/lib/dpkg/updates``, while no dpkg or apt runs):
    it finishes it with ``dpkg --configure -a`` before it goes on, and says so,
    when the run was at one of the state's packages or when the state must
    install or remove a package (apt refuses to until it is finished). An
    interrupted run of other packages only, where the formula changes no
    package, is left to its administrator (or unattended-upgrades), and the
    comment says so. Nothing is forced, installed or removed to finish it.
    Costs one ``os.listdir`` when dpkg reports nothing.
    """

    def __init__(self, name, pkgs):
        self.name = name
        self.found = __utils__["mailstack_system.interrupted_dpkg"](FS_ROOT)
        self.mine = bool(self.found) and bool(set(self.found["packages"]) & set(pkgs))
        self.note = ""
        self.ret = None

    def blocks(self, needed):
        """Finish the interrupted run when it must be; whether the state stops here
        (``self.ret``: the failure, or test mode's prediction)."""
        if self.found is None or self.note or not (needed or self.mine):
            return False
        named = ", ".join(self.found["packages"]) or "packages it did not name"
        if __opts__["test"]:
            self.ret = _ret(
                self.name,
                None,
                f"dpkg reports an interrupted run ({named}): `dpkg --configure -a` would finish it first",
                {"dpkg": "configure -a"},
            )
            return True
        finished = __utils__["mailstack_system.finish_interrupted_dpkg"](__salt__, FS_ROOT)
        if finished is None:  # finished by someone else meanwhile
            self.found = None
            return False
        if not finished["ok"]:
            self.ret = _ret(self.name, False, finished["comment"])
            return True
        self.note = finished["comment"]
        return False

    def noted(self, ret):
        if self.note:
            ret["comment"] = f"{self.note}; {ret.get('comment') or ''}".rstrip("; ")
            ret["changes"] = dict(ret.get("changes") or {}, dpkg="configure -a")
        elif self.found is not None:
            ret["comment"] = (
                f"{ret.get('comment') or ''}; dpkg reports an interrupted run of"
                f" {', '.join(self.found['packages']) or 'packages it did not name'}, none of this state's,"
                " and this state changes no package: left to the administrator (`dpkg --configure -a`)"
            )
        return ret


def packages_installed(name, pkgs, state_dir="", owned=()):
    """
    Salt's ``pkg.installed`` for ``pkgs`` (refreshing the package database
    first), unless every one of them is installed already. Those it installs
    are recorded in ``state_dir`` as the formula's (only those are ever
    removed); a record that lists no packages yet starts with ``owned``.

    A ``pkg`` state costs Salt 3006 a second before it starts (its set-up looks
    for a function that no package module has, which loads every execution
    module); an idempotent apply needs no package state at all.
    """
    if state_dir and not __opts__["test"]:
        _owned("adopt_packages")(state_dir, owned)
        _settle_installing(state_dir)
    dpkg = _InterruptedDpkg(name, pkgs)
    if dpkg.blocks(needed=False):
        return dpkg.ret
    missing = set(pkgs) - _installed_packages(pkgs)
    if not missing:
        return dpkg.noted(_ret(name, True, "All specified packages are already installed"))
    if dpkg.blocks(needed=True):
        return dpkg.ret
    if state_dir and not __opts__["test"]:
        _owned("begin_installing")(state_dir, sorted(missing))
    # Left half-installed by a killed dpkg (dpkg: "must be reinstalled"), which
    # Salt's own package list counts as installed: only a reinstall finishes it.
    half = __utils__["mailstack_system.unpacked_packages"](sorted(missing), FS_ROOT)
    extra = {"reinstall": True} if half else {}
    ret = __states__["pkg.installed"](name=name, pkgs=list(pkgs), refresh=True, **extra)
    if state_dir and ret["result"] and not __opts__["test"]:
        for package in sorted(missing & _installed_packages(sorted(missing))):
            _owned("record")(state_dir, "packages", package)
    if state_dir and not __opts__["test"]:
        _settle_installing(state_dir)
    return dpkg.noted(ret)


def packages_removed(name, pkgs, state_dir="", purge=False):
    """
    Salt's ``pkg.removed`` (``pkg.purged`` with ``purge``) for ``pkgs``, unless
    none of them is installed (see ``packages_installed``). The plan names
    only packages the formula installed; those removed are forgotten from
    the record in ``state_dir``.
    """
    if state_dir and not __opts__["test"]:
        _settle_installing(state_dir)
    dpkg = _InterruptedDpkg(name, pkgs)
    if dpkg.blocks(needed=False):
        return dpkg.ret
    present = _installed_packages(pkgs) | set(__utils__["mailstack_system.unpacked_packages"](pkgs, FS_ROOT))
    if not pkgs or not present:
        return dpkg.noted(_ret(name, True, "All specified packages are already absent"))
    if dpkg.blocks(needed=True):
        return dpkg.ret
    ret = __states__["pkg.purged" if purge else "pkg.removed"](name=name, pkgs=list(pkgs))
    if state_dir and ret["result"] and not __opts__["test"]:
        for package in sorted(set(pkgs) - _installed_packages(pkgs)):
            _owned("forget")(state_dir, "packages", package)
    return dpkg.noted(ret)


# ----------------------------------------------------- what the formula owns ---


def _owned(function):
    return __utils__[f"mailstack_owned.{function}"]


def owned_group(name, state_dir, members=(), take_over=False):
    """
    Ensure the formula's own group ``name`` exists with exactly ``members``.
    A group of that name the formula did not create is left alone and the
    state fails saying so, unless ``take_over`` hands it to the formula. A
    user whose primary group it is, and who is not among ``members``, would
    read what the group may read: the state fails naming them.
    """
    import grp  # pylint: disable=import-outside-toplevel

    members = sorted(members)
    try:
        current = sorted(grp.getgrnam(name).gr_mem)
    except KeyError:
        current = None
    if _owned("foreign_group")(name, state_dir, take_over):
        return _ret(
            name, False, f"group {name} exists and was not created by the mail formula: it is left as it is"
        )
    strangers = _owned("strangers")(name, members)
    if strangers:
        return _ret(
            name,
            False,
            f"{', '.join(strangers)} {'has' if len(strangers) == 1 else 'have'} group {name} as primary"
            " group and would read what it may read: the group is left as it is",
        )
    if current is not None and take_over and not __opts__["test"]:
        _owned("record")(state_dir, "groups", name)
    if current == members:
        return _ret(name, True, f"group {name} has members {', '.join(members) or '(none)'}")
    changes = {"group": name if current is None else "members", "members": members}
    if __opts__["test"]:
        return _ret(
            name, None, f"group {name} would be set to {', '.join(members) or '(no members)'}", changes
        )
    if current is None:
        if not __salt__["group.add"](name, system=True):
            return _ret(name, False, f"group {name} could not be created")
        _owned("record")(state_dir, "groups", name)
    if not __salt__["group.members"](name, ",".join(members)):
        return _ret(name, False, f"the members of group {name} could not be set")
    return _ret(name, True, f"group {name} has members {', '.join(members) or '(none)'}", changes)


def owned_group_absent(name, state_dir):
    """Remove group ``name`` if the formula created it; any other group stays."""
    import grp  # pylint: disable=import-outside-toplevel

    try:
        grp.getgrnam(name)
    except KeyError:
        _owned("forget")(state_dir, "groups", name)
        return _ret(name, True, f"group {name} is absent")
    if not _owned("owns")(state_dir, "groups", name):
        return _ret(name, True, f"group {name} was not created by the mail formula: left as it is")
    if __opts__["test"]:
        return _ret(name, None, f"group {name} would be removed", {"group": "removed"})
    if not __salt__["group.delete"](name):
        return _ret(name, False, f"group {name} could not be removed")
    _owned("forget")(state_dir, "groups", name)
    return _ret(name, True, f"group {name} removed", {"group": "removed"})


def owned_log_file(name, state_dir, mode="0600"):
    """
    Ensure the log file ``name`` exists as root's with ``mode``. The formula
    creates it (never through a link) and records it; a file of that name it
    did not create is left alone and the state fails saying so.
    """
    mode = int(str(mode), 8)
    unsafe = _unsafe_directory(name)
    if unsafe:
        return _ret(name, False, f"{unsafe}: the log file is not written there")
    if _owned("symlink_on_path")(name):
        return _ret(name, False, f"{name} is a symbolic link: the log file is not written through it")
    exists = os.path.lexists(name)
    if _owned("foreign_log_file")(name, state_dir):
        return _ret(
            name, False, f"{name} exists and was not created by the mail formula: it is left as it is"
        )
    if not exists:
        changes = {"created": name, "mode": f"{mode:04o}"}
        if __opts__["test"]:
            return _ret(name, None, f"{name} would be created", changes)
        _owned("record")(state_dir, "files", name)
        _owned("create_private_file")(name, 0, 0, mode)
        return _ret(name, True, f"{name} created", changes)
    if __opts__["test"]:
        current = os.lstat(name)
        if (current.st_uid, current.st_gid, current.st_mode & 0o7777) == (0, 0, mode):
            return _ret(name, True, f"{name} is in place")
        return _ret(name, None, f"{name} would get owner root and mode {mode:04o}", {"mode": f"{mode:04o}"})
    changes = _owned("set_owner_and_mode")(name, 0, 0, mode)
    return _ret(name, True, f"{name} is in place", changes)


def _unsafe_directory(path):
    """Why root must not write into the directory of ``path``, or ``None``."""
    return _owned("unsafe_path_problem")(os.path.dirname(path))


def formula_file(name, file):
    """
    One file of the formula's plan (``mailstack.plan``, ``layout``): written
    with Salt's own ``file.managed`` (a template rendered first, from the
    first of its sources on the file server), or removed where the plan has
    it absent and the formula wrote it (``formula_files_absent``).

    name
        The file's path.
    file
        The plan's entry for it: ``present``; then ``user``, ``group``, ``mode``
        and either ``contents`` or a ``template`` with its ``sources`` (the
        pillar's ``mail:tofs`` sources first, the formula's own last) and
        ``context``, and ``own_text`` where the formula writes the template's
        text without it; a ``secret`` file's changes are not shown. Absent: the
        ``tables`` built from it. Both: the ``state_dir`` of the formula's
        records. ``keep_as`` (main.cf under mail:take_over:postfix): where a
        file without the formula's marker is copied before it is replaced.
        ``must_keep`` (main.cf): the parameters a rendered template must keep.

    The directory it goes into must be root's alone (every part of its path),
    checked right before the write. main.cf rendered from a pillar's template
    must keep every parameter the plan sets (the closed relay, where mail goes).

    .. code-block:: yaml

        mail-smtp-config-main-cf:
          mailstack.formula_file:
            - name: /etc/postfix/main.cf
            - file: {"present": true, "template": "main.cf.jinja", ...}
    """
    if not file["present"]:
        return formula_files_absent(name, file["state_dir"], [name], file["tables"])
    unsafe = _unsafe_directory(name)
    if unsafe:
        return _ret(name, False, f"{unsafe}: {name} is not written there")
    written = _written_content(name, file)
    if isinstance(written, str):
        return _ret(name, False, written)
    backup = _keep_operators_file(name, file)
    ret = __states__["file.managed"](
        name=name,
        makedirs=True,
        user=file["user"],
        group=file["group"],
        mode=file["mode"],
        show_changes=not file["secret"],
        **written,
    )
    if backup:
        ret.setdefault("changes", {})["kept"] = backup
    return ret


def _written_content(name, file):
    """``file.managed``'s arguments for the content, or why it must not be
    written. The formula's own text where no pillar source replaces its
    template and it has one (``own_text``); else a template rendered here,
    from the first of its sources on the Salt file server: one fetch, where
    ``file.managed`` would ask the file server again for its hash."""
    if not file["template"]:
        return {"contents": file["contents"]}
    if file["own_text"]:
        plan = __salt__["mailstack.plan"](include_secrets=True) if file["secret"] else {}
        return {"contents": __utils__["mailstack_content.own_text"](file["template"], file["context"], plan)}
    source, rendered = _rendered_template(name, file)
    if source is None:
        return rendered
    if file.get("must_keep") and len(file["sources"]) > 1:
        changed = _parameters_changed(rendered, file["must_keep"])
        if changed:
            return (
                f"{source} (mail:tofs:source_files) renders a main.cf that does not keep the formula's value"
                f" of {', '.join(changed)}: the relay must stay closed and send where pillar says; {name} was"
                " left as it is"
            )
    return {"contents": rendered}


def _rendered_template(name, file):
    """``(source, text)``: the template rendered from the first of its sources
    that exists, with the variables ``file.managed`` gives a template; or
    ``(None, why not)``."""
    for source in file["sources"]:
        text = __salt__["cp.get_file_str"](source)
        if text:
            break
    else:
        return None, f"none of {', '.join(file['sources'])} is on the Salt file server"
    context = {**file["context"], "name": name, "source": source}
    context.update(user=file["user"], group=file["group"], mode=file["mode"])
    try:
        rendered = salt.utils.templates.TEMPLATE_REGISTRY["jinja"](
            text,
            from_str=True,
            to_str=True,
            context=context,
            saltenv=__env__,
            grains=__grains__,
            pillar=__pillar__,
            salt=__salt__,
            opts=__opts__,
        )
    except SaltRenderError as exc:
        rendered = {"result": False, "data": str(exc)}
    if not rendered["result"]:
        return None, f"{source} could not be rendered: {rendered['data']}"
    return source, rendered["data"]


def _parameters_changed(main_cf, must_keep):
    """Those of the parameters ``must_keep`` whose value ``main_cf`` (its text) does not keep."""
    values = {}
    for line in main_cf.splitlines():
        key, equals, value = line.partition("=")
        if equals and line[:1].strip() and not line.startswith("#"):
            values[key.strip()] = value.strip()
    return sorted(key for key, value in must_keep.items() if values.get(key) != value)


def _keep_operators_file(name, file):
    """Under mail:take_over, the operator's own file (no marker) copied once to
    the plan's ``keep_as``; its path, or ``""``."""
    kept = file.get("keep_as")
    if not kept or __opts__["test"] or not os.path.isfile(name):
        return ""
    if os.path.islink(name) or _owned("carries_marker")(name):
        return ""
    if os.path.lexists(kept):
        return ""
    with open(name, "rb") as source, open(kept, "xb") as copy:
        copy.write(source.read())
    return kept


def formula_files_absent(name, state_dir, paths=(), tables=()):
    """
    Remove those of ``paths`` that are the formula's (its marker, or its
    record) and, for each of them, its Postfix tables among ``tables``
    (``<name>.db``...). Anything else is left, and the comment says so.
    """
    removed, left = [], []
    for path in paths:
        ours = _owned("carries_marker")(path) or path in _owned("load")(state_dir)["files"]
        companions = [table for table in tables if table.startswith(path + ".")]
        if not os.path.lexists(path):
            continue
        if __opts__["test"]:
            (removed if ours else left).append(path)
            continue
        outcome = _owned("remove_if_ours")(path, state_dir)
        if outcome != "removed":
            left.append(outcome)
            continue
        removed.append(path)
        for table in companions:
            if os.path.isfile(table) and not os.path.islink(table):
                os.unlink(table)
                removed.append(table)
    comment = "; ".join(left) if left else f"{name}: nothing of the formula's left"
    if not removed:
        return _ret(name, True, comment)
    changes = {"removed": removed}
    if __opts__["test"]:
        return _ret(name, None, f"would remove {', '.join(removed)}", changes)
    return _ret(name, True, comment, changes)


def formula_dir_absent(name, files=(), subdirs=()):
    """
    Remove the formula's own directory ``name``: the ``files`` it holds (names
    relative to it), the regular files in its ``subdirs``, then each directory
    that is empty. Nothing else in it is touched, and no link is followed.
    """
    link = _owned("symlink_on_path")(name)
    if link:
        return _ret(name, True, f"{link} is a symbolic link: {name} is left as it is")
    if not os.path.isdir(name):
        return _ret(name, True, f"{name} is absent")
    doomed = [os.path.join(name, entry) for entry in files if os.path.isfile(os.path.join(name, entry))]
    for subdir in subdirs:
        path = os.path.join(name, subdir)
        if os.path.isdir(path) and not os.path.islink(path):
            doomed += [entry.path for entry in os.scandir(path) if entry.is_file(follow_symlinks=False)]
    dirs = [os.path.join(name, subdir) for subdir in subdirs] + [name]
    if __opts__["test"]:
        return _ret(name, None, f"{name} and the formula's files in it would be removed", {"removed": name})
    for path in doomed:
        if not os.path.islink(path):
            os.unlink(path)
    left = []
    for path in dirs:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            left.append(path)
    changes = {"removed": doomed + [d for d in dirs if not os.path.exists(d)]}
    comment = (
        f"left {', '.join(left)}: it holds files the formula did not put there" if left else f"{name} removed"
    )
    return _ret(name, True, comment, changes if changes["removed"] else {})


def sendmail_link_absent(name, target):
    """Remove ``name`` only if it is a symbolic link to ``target`` (the link the formula made)."""
    if not os.path.islink(name) or os.readlink(name) != target:
        return _ret(name, True, f"{name} is not the formula's link to {target}")
    if __opts__["test"]:
        return _ret(name, None, f"{name} would be removed", {"removed": name})
    os.unlink(name)
    return _ret(name, True, f"{name} removed", {"removed": name})


# ------------------------------------------------- an interrupted apply ---


def _apply_marker(state_dir):
    return __utils__["mailstack_system.apply_marker_path"](state_dir)


def apply_started(name):
    """
    First state of an apply of ``mail``: leaves a marker in the formula's state
    directory ``name`` that ``apply_finished``, its last state, removes. A
    marker found here is an apply that never finished (killed, or a power
    cut): the comment says so, and this apply goes on to complete it.
    ``mailstack.status`` shows such a marker. Written without a flush to the
    disk: an idempotent apply stays cheap, and a marker lost in a power cut
    costs only that hint.
    """
    previous = __utils__["mailstack_system.apply_marker"](name)
    comment = "apply started"
    if previous and previous["interrupted"]:
        comment = (
            f"the apply started at {previous['started_at']} never finished (killed, or the power was cut):"
            " this one goes on from where the system is"
        )
    if __opts__["test"]:
        return _ret(name, True, comment)
    __utils__["mailstack_system.mark_apply_started"](name)
    return _ret(name, True, comment)


def apply_finished(name):
    """Last state of an apply of ``mail``: removes ``apply_started``'s marker."""
    if not __opts__["test"]:
        __utils__["mailstack_system.mark_apply_finished"](name)
    return _ret(name, True, "apply finished")


def ssh_plan_checked(name, digest, sls="mail", tplroot=None, files=None, rendered=()):
    """
    Under salt-ssh, the first state of ``mail`` and ``mail.clean`` (``failhard``):
    decide ``mailstack.mapdata`` here on the target, with the pillar salt-ssh
    shipped, and stop the apply unless it is the one the control host rendered
    the states from (``digest``, by ``_wrapper/mailstack.py``). It also makes
    what the control host cannot see count: a file in the way that is not the
    formula's, a group, a corrupt record. ``files`` names what the module reads
    from the file server (``salt://<tplroot>/parameters``), so that salt-ssh
    ships it with the states; ``rendered``, the state files rendered before
    ``sls`` (``mailstack.mapdata``). Read-only: no changes, the same in test mode.
    """
    __utils__["mailstack_ssh.forget_shipped_pillar"](__opts__)
    data = __salt__["mailstack.mapdata"](sls, tplroot, rendered)
    if data["error"]:
        return _ret(name, False, data["error"])
    found = __utils__["mailstack_ssh.digest"](data)
    if found != digest:
        return _ret(
            name,
            False,
            "The plan salt-ssh decided on the control host (from the mailstack_host grain) is not the"
            " one this host decides: nothing was changed. salt-ssh caches grains for 5 minutes unless"
            " the master config sets `ssh_minion_opts: {grains_cache: false}` (docs/salt-ssh.md); with"
            " that, run `salt-run saltutil.sync_all` on the control host and apply again"
            f" (digest {digest[:12]}, here {found[:12]})",
        )
    return _ret(name, True, "The control host's plan is this host's")
