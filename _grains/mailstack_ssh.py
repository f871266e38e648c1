"""
The ``mailstack_host`` grain: what the mail formula's plan needs to know about
this host's file system, gathered where the grain runs.

Under salt-ssh the state files render on the control host, where the
formula's wrapper module (``_wrapper/mailstack.py``) decides the plan from the
pillar and this grain; salt-ssh computes grains on the target in the one SSH
call it makes before every command (``test.opts_pkg``), so the facts cost no
round trip of their own. On a minion the grain is there too and unused.

It holds no secret: files that may hold one (``/etc/msmtprc``) are reduced to
whether they carry the formula's marker. The paths are the formula's defaults
(``mail/parameters``); a host whose pillar moves them gets the facts from the
target in a state that checks the control host's plan there (``mail`` and
``mail.clean`` always do).
"""

import glob
import os
import pwd
import subprocess

VERSION = 1
# The formula's default lookup paths this grain looks at.
PATHS = {
    "state_dir": "/var/lib/mailstack",
    "systemd_unit_dir": "/etc/systemd/system",
    "postfix_config_dir": "/etc/postfix",
    "msmtp_config": "/etc/msmtprc",
}
# _utils/mailstack_owned.py's MARKER and record file, and the unit files the plan looks for.
MARKER = b"Managed by Salt (mail formula"
RECORD = "owned.json"
UNIT_FILES = ("mail-health.timer", "mail-metrics.timer")
ALERT_DROPINS = "*.d/50-mail-alert.conf"  # mailstack_plan.alert_dropin_glob
HEAD = 512


def _exists(path):
    return os.path.lexists(path)


def _marker(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return MARKER in os.read(fd, HEAD)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(path, limit=1 << 20):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _postconf_names():
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        postconf = os.path.join(directory, "postconf")
        if os.access(postconf, os.X_OK):
            break
    else:
        return None
    try:
        done = subprocess.run([postconf, "-d"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return sorted({line.split(" =", 1)[0] for line in done.stdout.splitlines() if " =" in line})


def gather(root="/"):
    """The facts: ``files`` ({path: content}, markers reduced to the marker
    or nothing), ``dirs`` (directories that exist), ``users`` and ``postconf_names``."""

    def at(path):
        return os.path.join(root, path.lstrip("/"))

    files = {}
    dirs = []
    for path in ("/.dockerenv", "/run/.containerenv", "/dev/log"):
        if _exists(at(path)):
            files[path] = ""
    if os.path.isdir(at("/run/systemd/system")):
        dirs.append("/run/systemd/system")
    environ = _read(at("/proc/1/environ")) or ""
    files["/proc/1/environ"] = "\0".join(e for e in environ.split("\0") if e.startswith("container="))
    files["/proc/1/cgroup"] = _read(at("/proc/1/cgroup")) or ""
    record = os.path.join(PATHS["state_dir"], RECORD)
    if _exists(at(record)):
        if os.path.islink(at(record)) or not os.path.isfile(at(record)):
            files[record] = None  # not a regular file: the record check says so on the target
        else:
            files[record] = _read(at(record))
    if os.path.isdir(at(PATHS["state_dir"])):
        dirs.append(PATHS["state_dir"])
    unit_dir = PATHS["systemd_unit_dir"]
    for name in UNIT_FILES:
        if _exists(at(f"{unit_dir}/{name}")):
            files[f"{unit_dir}/{name}"] = ""
    for found in glob.glob(at(f"{unit_dir}/{ALERT_DROPINS}")):
        files["/" + os.path.relpath(found, root)] = ""
    for path in (f"{PATHS['postfix_config_dir']}/main.cf", PATHS["msmtp_config"]):
        marked = _marker(at(path))
        if marked is not None:
            files[path] = MARKER.decode() + ")" if marked else ""
    return {
        "version": VERSION,
        "paths": dict(PATHS),
        "files": files,
        "dirs": dirs,
        "users": sorted(entry.pw_name for entry in pwd.getpwall()),
        "postconf_names": _postconf_names(),
    }


def mailstack_host():
    return {"mailstack_host": gather()}
