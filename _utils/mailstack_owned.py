"""
What on a host is the ``mail`` formula's own, used by the ``mailstack``
execution module (to refuse a pillar that would touch anything else) and by
its states (to write and remove only that).

A file is the formula's when it carries the formula's marker line near its top
(every file the formula writes with content does), or when the formula created
it and recorded it (the msmtp log file, whose lines are msmtp's). A group is
the formula's when the formula created it and recorded it; a package when the
formula installed it and recorded it. The record is a JSON file in the
formula's state directory. Nothing here follows a symbolic link, and a
directory root writes into or runs from counts as safe only when every part of
its path is root's and writable by nobody else (``unsafe_path_problem``).
"""

import errno
import json
import os
import stat

MARKER = b"Managed by Salt (mail formula"
RECORD = "owned.json"
KINDS = ("files", "groups", "packages")
_HEAD = 512


def symlink_on_path(path, root="/"):
    """The first component of ``path`` that is a symbolic link, or ``None``."""
    current = root
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
        except FileNotFoundError:
            return None
    return None


def _open_no_follow(path, flags=os.O_RDONLY):
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)


def carries_marker(path):
    """Whether ``path`` is a regular file (not a link) with the formula's marker near its top."""
    try:
        fd = _open_no_follow(path)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return MARKER in os.read(fd, _HEAD)
    finally:
        os.close(fd)


def foreign_file_problem(path):
    """Why the formula must not write ``path`` (with content), or ``None``."""
    link = symlink_on_path(path)
    if link:
        return f"{link} is a symbolic link, and the formula never writes through one"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        return f"{path} exists and is not a regular file"
    if not carries_marker(path):
        return (
            f"{path} exists and was not written by the mail formula (it has no"
            f" '{MARKER.decode()})' line); move it aside or choose another path"
        )
    return None


def _record_path(state_dir):
    return os.path.join(state_dir, RECORD)


def _load_raw(state_dir):
    try:
        fd = _open_no_follow(_record_path(state_dir))
    except OSError:
        return {}
    with os.fdopen(fd, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except ValueError:
            data = {}
    return data if isinstance(data, dict) else {}


def load(state_dir):
    """``{"files": [...], "groups": [...], "packages": [...]}`` the formula
    created or installed and recorded."""
    data = _load_raw(state_dir)
    return {kind: [item for item in data.get(kind, []) if isinstance(item, str)] for kind in KINDS}


def records_packages(state_dir):
    """Whether the record lists packages: a record made before the formula
    recorded its packages (or none at all) does not."""
    return isinstance(_load_raw(state_dir).get("packages"), list)


def adopt_packages(state_dir, packages):
    """Start the package record with ``packages`` where it has none yet;
    returns whether it was started."""
    if records_packages(state_dir):
        return False
    data = load(state_dir)
    data["packages"] = sorted(set(packages))
    _save(state_dir, data)
    return True


def _save(state_dir, data):
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    path = _record_path(state_dir)
    temporary = f"{path}.new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def record(state_dir, kind, name):
    """Remember that the formula created ``name`` (a file or a group) or installed it (a package)."""
    data = load(state_dir)
    if name not in data[kind]:
        data[kind] = sorted(data[kind] + [name])
        _save(state_dir, data)


def forget(state_dir, kind, name):
    data = load(state_dir)
    if name in data[kind]:
        data[kind].remove(name)
        _save(state_dir, data)


def owns(state_dir, kind, name):
    return name in load(state_dir)[kind]


def _unsafe_component(path, info, in_sticky_directory):
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link"
    if info.st_uid != 0:
        return f"{path} is not owned by root" + (
            " (in a directory every user may write to)" if in_sticky_directory else ""
        )
    others_may_write = info.st_mode & 0o002 or (info.st_mode & 0o020 and info.st_gid != 0)
    if others_may_write and not (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
        return f"{path} is writable by users other than root"
    return None


def unsafe_path_problem(path, root="/", follow_last=False):
    """
    Why root must not write into or run from ``path``, or ``None``: each of
    its existing parts (``/`` included) must be root's, writable by root
    alone (or root's group) and no symbolic link, since whoever may change
    one of them may swap what root reads, writes or runs. A directory every
    user may write to with the sticky bit (``/tmp``) passes: no one but root
    can rename or remove root's entries in it, and the entry after it must be
    root's. ``follow_last``: the last part may be a root-owned link (a CA file
    in /etc/ssl/certs), and what it points to is checked the same way.
    """
    current = root
    parts = [part for part in path.strip("/").split("/") if part]
    sticky = False
    for index, part in enumerate(["", *parts]):
        current = os.path.join(current, part) if part else root
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return None
        shown = current if root == "/" else "/" + os.path.relpath(current, root)
        if index == len(parts) and follow_last and stat.S_ISLNK(info.st_mode):
            return _unsafe_link_target(current, shown, info, root)
        problem = _unsafe_component(shown, info, sticky)
        if problem:
            return problem
        sticky = bool(stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX)
    return None


def _unsafe_link_target(current, shown, info, root):
    if info.st_uid != 0:
        return f"{shown} is a symbolic link not owned by root"
    resolved = os.path.realpath(current)
    target = "/" + os.path.relpath(resolved, root) if root != "/" else resolved
    problem = unsafe_path_problem(target, root)
    return f"{shown} points to {target}, and {problem}" if problem else None


# Accounts below this uid are the system's own (Debian's SYS_UID_MAX is 999).
SYSTEM_UID_LIMIT = 1000


def unsafe_textfile_dir_problem(path, root="/"):
    """
    Why the metrics collector must not write into ``path``, or ``None``: the
    directory itself (where it exists) must be root's, writable by root alone;
    the directories above it no symbolic link, owned by root or by a system
    account (Debian's ``prometheus`` package gives ``/var/lib/prometheus`` to
    its own user), and writable by no one else. The collector opens each part
    without following links and writes its file new, then renames it.
    """
    parts = [part for part in path.strip("/").split("/") if part]
    current = root
    for index, part in enumerate(["", *parts]):
        current = os.path.join(current, part) if part else root
        shown = current if root == "/" else "/" + os.path.relpath(current, root)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return None
        if index == len(parts) or stat.S_ISLNK(info.st_mode):
            problem = _unsafe_component(shown, info, False)
        elif info.st_uid >= SYSTEM_UID_LIMIT:
            problem = f"{shown} is owned by a user who is not a system account"
        elif info.st_mode & 0o002 or (info.st_mode & 0o020 and info.st_gid >= SYSTEM_UID_LIMIT):
            problem = f"{shown} is writable by users other than its owner"
        else:
            problem = None
        if problem:
            return problem
    return None


def primary_members(group_name):
    """Users whose primary group is ``group_name`` (``getent group`` does not list them)."""
    import grp  # pylint: disable=import-outside-toplevel
    import pwd  # pylint: disable=import-outside-toplevel

    try:
        gid = grp.getgrnam(group_name).gr_gid
    except KeyError:
        return []
    return sorted(user.pw_name for user in pwd.getpwall() if user.pw_gid == gid)


def create_private_file(path, uid, gid, mode):
    """Create ``path`` (which must not exist) as an empty file owned and
    moded as asked from the first instant, never following a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def set_owner_and_mode(path, uid, gid, mode):
    """Fix the owner and mode of a regular file without following a link;
    returns what changed."""
    fd = _open_no_follow(path)
    try:
        current = os.fstat(fd)
        if not stat.S_ISREG(current.st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        changed = {}
        if (current.st_uid, current.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
            changed["owner"] = f"{uid}:{gid}"
        if stat.S_IMODE(current.st_mode) != mode:
            os.fchmod(fd, mode)
            changed["mode"] = f"{mode:04o}"
        return changed
    finally:
        os.close(fd)


def remove_if_ours(path, state_dir):
    """Remove ``path`` when it is the formula's (marker or record); returns
    ``"removed"``, ``"absent"`` or why it was left."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        forget(state_dir, "files", path)
        return "absent"
    if symlink_on_path(path):
        return f"left {path}: a symbolic link is on its path"
    if not stat.S_ISREG(mode):
        return f"left {path}: not a regular file"
    recorded = path in load(state_dir)["files"]
    if not (recorded or carries_marker(path)):
        return f"left {path}: not written by the mail formula"
    os.unlink(path)
    if recorded:
        forget(state_dir, "files", path)
    return "removed"
