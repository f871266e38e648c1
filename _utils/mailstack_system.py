"""
What the ``mailstack`` execution module and the ``mailstack`` states both ask
of the running system: whether systemd is PID 1, running a command without a
shell, and reading Postfix's parameters. The caller passes its ``__salt__``,
so that commands run through Salt's ``cmd.run_all`` (and its logging).
"""

import contextlib
import glob
import os


def systemd_booted(root="/"):
    """Whether systemd is PID 1 (``/run/systemd/system`` exists under ``root``)."""
    return os.path.isdir(os.path.join(root, "run/systemd/system"))


def enabled_by_wants_link(unit, root="/"):
    """
    Whether ``systemctl enable`` left its link to ``unit`` (``postfix`` is
    ``postfix.service``) in a ``*.wants/`` directory of /etc/systemd/system,
    with the unit not masked in /etc or /run: read, no process. ``False``
    says nothing: ``systemctl is-enabled`` knows the other ways.
    """
    name = unit if "." in unit else f"{unit}.service"
    for config in ("etc/systemd/system", "run/systemd/system"):
        if os.path.realpath(os.path.join(root, config, name)) == "/dev/null":
            return False
    links = glob.glob(os.path.join(root, "etc/systemd/system/*.wants", glob.escape(name)))
    return any(os.path.exists(link) for link in links)


def run(salt, cmd, stdin=None, timeout=None):
    """Run ``cmd`` (an argument list, no shell); return Salt's ``cmd.run_all`` dict."""
    return salt["cmd.run_all"](
        cmd, python_shell=False, stdin=stdin, timeout=timeout, ignore_retcode=True, output_loglevel="quiet"
    )


def postconf(salt, *parameters):
    """The values of Postfix's ``parameters`` (``postconf -h``, one per line), or ``None``."""
    result = run(salt, ["postconf", "-h", *parameters])
    return result["stdout"].strip() if result["retcode"] == 0 else None


def postconf_values(salt, *parameters):
    """
    The values of Postfix's ``parameters`` from one ``postconf``, by name, or
    ``None`` when Postfix cannot answer. Parsed from ``name = value`` lines,
    since ``postconf -h`` leaves out an unknown parameter and Salt strips a
    last empty value, which would shift the values of a list.
    """
    result = run(salt, ["postconf", *parameters])
    if result["retcode"] != 0:
        return None
    values = {}
    for line in result["stdout"].splitlines():
        name, equals, value = line.partition(" =")
        if equals and name in parameters:
            values[name] = value.strip()
    return values


def _unpacked_by_dpkg(name, root):
    """Whether dpkg holds a file list of package ``name``: it does for every
    installed package (and for a half-installed one), not for others."""
    info = os.path.join(root, "var/lib/dpkg/info")
    return os.path.exists(os.path.join(info, f"{name}.list")) or bool(
        glob.glob(os.path.join(info, f"{name}:*.list"))
    )


def unpacked_packages(pkgs, root="/"):
    """Those of ``pkgs`` dpkg holds a file list of: installed, or left half-way
    by an interrupted run (no process; ``[]`` where dpkg is not the package
    manager)."""
    return sorted(name for name in pkgs if _unpacked_by_dpkg(name, root))


# dpkg's database of package states (dpkg(1), FILES), one deb822 paragraph
# per package and architecture; changes not yet folded in wait in its journal.
DPKG_STATUS = "var/lib/dpkg/status"


def _installed_by_dpkg_status(pkgs, root):
    """Those of ``pkgs`` dpkg's status file has ``installed``, or ``None``
    where it cannot tell: the file is unreadable, or dpkg's journal holds
    changes not yet folded into it."""
    if dpkg_journal(root):
        return None
    try:
        with open(os.path.join(root, DPKG_STATUS), "rb") as status:
            text = b"\n" + status.read()
    except OSError:
        return None
    return {name for name in pkgs if any(_says_installed(p) for p in _paragraphs_of(name, text))}


def _paragraphs_of(name, text):
    """The paragraphs of package ``name`` (one per architecture) in dpkg's status file."""
    field = f"\nPackage: {name}\n".encode()
    start = text.find(field)
    while start != -1:
        end = text.find(b"\n\n", start + 1)
        yield text[start : end if end != -1 else len(text)]
        start = text.find(field, start + 1)


def _says_installed(paragraph):
    """Whether the ``Status:`` of a paragraph ends in ``installed`` (as ``dpkg-query`` reports it)."""
    statuses = [line.split() for line in paragraph.splitlines() if line.startswith(b"Status: ")]
    return any(status[-1:] == [b"installed"] for status in statuses)


def installed_packages(salt, grains, pkgs, root="/"):
    """Which of ``pkgs`` are installed. On Debian, read from dpkg's status
    file for just those of these names dpkg has a file list of (none: nothing
    to read), or, where the file cannot tell, one ``dpkg-query`` for them
    (exit status 1: some are unknown to dpkg, so not installed); elsewhere,
    or when dpkg-query fails, Salt's ``pkg.list_pkgs``, which lists every
    package of the system."""
    if grains.get("os_family") == "Debian":
        pkgs = [name for name in pkgs if _unpacked_by_dpkg(name, root)]
        if not pkgs:
            return set()
        installed = _installed_by_dpkg_status(pkgs, root)
        if installed is not None:
            return installed
        query = ["dpkg-query", "--show", "--showformat=${Package} ${Status}\\n", "--", *pkgs]
        out = run(salt, query)
        if out["retcode"] in (0, 1):
            rows = [line.split() for line in out["stdout"].splitlines()]
            return {row[0] for row in rows if row and row[0] in pkgs and row[-1] == "installed"}
    return set(salt["pkg.list_pkgs"]()) & set(pkgs)


# ------------------------------------------------ an interrupted dpkg run ---

# dpkg's journal: while it works it writes each change of a package's status
# here first (files named by number) and folds them into its status file at
# the end. Files left here mean a dpkg run was killed (apt then refuses with
# "dpkg was interrupted, you must manually run 'dpkg --configure -a'"): the
# test unattended-upgrades and apt themselves make.
DPKG_UPDATES = "var/lib/dpkg/updates"
DPKG_LOCKS = ("var/lib/dpkg/lock-frontend", "var/lib/dpkg/lock")


def dpkg_journal(root="/"):
    """The journal files an interrupted dpkg run left (``[]`` when none):
    one ``os.listdir``, no process."""
    try:
        names = os.listdir(os.path.join(root, DPKG_UPDATES))
    except OSError:
        return []
    return sorted(name for name in names if name.isdigit() or name.startswith("tmp.i"))


def dpkg_journal_packages(root="/"):
    """The packages named in dpkg's journal (the ones it was working on)."""
    packages = set()
    for name in dpkg_journal(root):
        try:
            with open(os.path.join(root, DPKG_UPDATES, name), encoding="utf-8", errors="replace") as handle:
                packages.update(
                    line.split(":", 1)[1].strip() for line in handle if line.startswith("Package:")
                )
        except OSError:
            continue
    return sorted(packages)


def dpkg_busy(root="/"):
    """Whether a dpkg or apt run holds dpkg's locks now (then its journal is
    work in progress, not an interrupted run). Asked with the same ``fcntl``
    lock they take, released at once."""
    import fcntl  # pylint: disable=import-outside-toplevel

    for lock in DPKG_LOCKS:
        try:
            fd = os.open(os.path.join(root, lock), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing releases the lock
    return False


def interrupted_dpkg(root="/"):
    """
    What dpkg reports of an interrupted run, or ``None`` when there is none:
    ``{"packages": [...], "journal": [...]}`` when its journal holds entries
    and no dpkg or apt is at work. Costs one ``os.listdir`` when all is well.
    """
    journal = dpkg_journal(root)
    if not journal or dpkg_busy(root):
        return None
    return {"packages": dpkg_journal_packages(root), "journal": journal}


def finish_interrupted_dpkg(salt, root="/", timeout=1800):
    """
    Finish what an interrupted dpkg run left half-done, as unattended-upgrades
    does: ``dpkg --configure -a``, nothing else (no package forced, installed
    or removed; no conffile question answered: one would make it fail). Runs
    only when ``interrupted_dpkg`` reports an interrupted run.

    Returns ``None`` when there was nothing to finish, else
    ``{"ok", "packages", "comment"}``.
    """
    found = interrupted_dpkg(root)
    if found is None:
        return None
    named = ", ".join(found["packages"]) or "packages it did not name"
    out = salt["cmd.run_all"](
        ["dpkg", "--configure", "-a"],
        python_shell=False,
        env={"DEBIAN_FRONTEND": "noninteractive"},
        stdin="",
        timeout=timeout,
        ignore_retcode=True,
        output_loglevel="debug",
    )
    text = (out["stdout"] + "\n" + out["stderr"]).strip()
    if out["retcode"] != 0 or dpkg_journal(root):
        return {
            "ok": False,
            "packages": found["packages"],
            "comment": (
                f"dpkg reports an interrupted run ({named}) and `dpkg --configure -a` did not finish it"
                f" (exit status {out['retcode']}): {text[-1500:]}; nothing else was done, see `dpkg --audit`"
            ),
        }
    return {
        "ok": True,
        "packages": found["packages"],
        "comment": f"dpkg reported an interrupted run ({named}): finished it with `dpkg --configure -a`",
    }


# ------------------------------------------- an interrupted apply of mail ---

APPLY_MARKER = "apply-in-progress"


def apply_marker_path(state_dir):
    return os.path.join(state_dir, APPLY_MARKER)


def _boot_id(root="/"):
    try:
        with open(os.path.join(root, "proc/sys/kernel/random/boot_id"), encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def mark_apply_started(state_dir, root="/"):
    """Leave the marker of a running apply: this process, this boot, the time."""
    import json  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    path = apply_marker_path(state_dir)
    data = {"pid": os.getpid(), "boot_id": _boot_id(root), "started": int(time.time())}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def mark_apply_finished(state_dir):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(apply_marker_path(state_dir))


def _is_salt(cmdline):
    try:
        with open(cmdline, "rb") as handle:
            return b"salt" in handle.read()
    except OSError:
        return False


def apply_marker(state_dir, root="/"):
    """
    The marker an apply of ``mail`` left, or ``None``: ``{"started",
    "started_at", "pid", "interrupted"}``. It is an interrupted apply unless its
    process still runs in this boot (then an apply is under way now); a marker
    that cannot be read (cut while written) is an interrupted one.
    """
    import json  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    path = apply_marker_path(state_dir)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError:
        text = ""
    try:
        data = json.loads(text)
        pid, boot, started = int(data["pid"]), str(data["boot_id"]), int(data["started"])
    except (ValueError, KeyError, TypeError):
        pid, boot, started = 0, "", int(os.path.getmtime(path)) if os.path.exists(path) else 0
    running = bool(pid) and boot == _boot_id(root) and _is_salt(os.path.join(root, f"proc/{pid}/cmdline"))
    return {
        "started": started,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "pid": pid,
        "interrupted": not running,
    }
