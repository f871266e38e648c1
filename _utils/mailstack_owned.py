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
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        return f"{path} exists and is not a regular file"
    if info.st_size == 0 and info.st_uid == 0 and stat.S_IMODE(mode) & 0o022 == 0:
        # What Salt's file.managed leaves of a new file when it is killed
        # between creating it and renaming the content over it: nothing to keep.
        return None
    if not carries_marker(path):
        return (
            f"{path} exists and was not written by the mail formula (it has no"
            f" '{MARKER.decode()})' line); move it aside or choose another path"
        )
    return None


def _record_path(state_dir):
    return os.path.join(state_dir, RECORD)


class CorruptRecord(ValueError):
    """The record is there but is not one the formula wrote (truncated, edited, garbage)."""


def _read_record(state_dir):
    """The record as written, ``{}`` where there is none; ``CorruptRecord`` when
    it cannot be what the formula wrote (which writes it whole or not at all,
    ``write_atomically``)."""
    try:
        fd = _open_no_follow(_record_path(state_dir))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CorruptRecord(f"it cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise CorruptRecord("it is not a regular file")
        text = handle.read()
    try:
        data = json.loads(text.decode("utf-8"))
    except ValueError:
        raise CorruptRecord(f"it is not JSON ({len(text)} bytes)") from None
    if not isinstance(data, dict):
        raise CorruptRecord("it is not a JSON object")
    for kind in KINDS + ("installing",):
        value = data.get(kind, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise CorruptRecord(f"its {kind!r} is not a list of names")
    return data


def record_problem(state_dir):
    """Why the record in ``state_dir`` cannot be trusted, or ``None`` (also when there is none)."""
    try:
        _read_record(state_dir)
    except CorruptRecord as exc:
        return f"{_record_path(state_dir)} is corrupt: {exc}"
    return None


def _load_raw(state_dir):
    """The record; a corrupt one counts as recording nothing (so nothing is
    removed on its strength) and is never written over (``_save``)."""
    try:
        return _read_record(state_dir)
    except CorruptRecord:
        return {}


def load(state_dir):
    """``{"files": [...], "groups": [...], "packages": [...]}`` the formula
    created or installed and recorded."""
    data = _load_raw(state_dir)
    return {kind: [item for item in data.get(kind, []) if isinstance(item, str)] for kind in KINDS}


def _load_for_update(state_dir):
    """``load``, keeping the note of packages being installed (``begin_installing``)."""
    raw = _load_raw(state_dir)
    data = {kind: [item for item in raw.get(kind, []) if isinstance(item, str)] for kind in KINDS}
    if raw.get("installing"):
        data["installing"] = raw["installing"]
    return data


def records_packages(state_dir):
    """Whether the record lists packages: a record made before the formula
    recorded its packages (or none at all) does not."""
    return isinstance(_load_raw(state_dir).get("packages"), list)


def adopt_packages(state_dir, packages):
    """Start the package record with ``packages`` where it has none yet;
    returns whether it was started."""
    if records_packages(state_dir):
        return False
    data = _load_raw(state_dir)
    data["packages"] = sorted(set(packages))
    _save(state_dir, data)
    return True


def write_atomically(path, content, mode=0o644, durable=True):
    """
    Replace ``path`` with ``content`` (bytes) so that it is never seen, nor
    left by a crash or a power cut, half-written: the content goes to a
    temporary file in the same directory (``<name>.new``, created without
    following a link, with ``mode`` from the start), which is flushed to the
    disk (``fsync``) and renamed over ``path``; then the directory is flushed,
    so that the rename itself survives. ``durable=False`` skips both flushes
    (a marker whose loss in a power cut costs nothing but a hint).
    """
    directory = os.path.dirname(path) or "."
    temporary = f"{path}.new"
    if os.path.islink(temporary):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _save(state_dir, data):
    problem = record_problem(state_dir)
    if problem:
        raise CorruptRecord(f"{problem}; it is left as it is, not written over")
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    write_atomically(_record_path(state_dir), json.dumps(data, sort_keys=True).encode("utf-8"))


def begin_installing(state_dir, packages):
    """Note, before asking apt, that the formula is about to install ``packages``:
    if the apply is killed meanwhile, ``settle_installing`` at the next one
    counts those dpkg got onto the system as the formula's."""
    data = _load_raw(state_dir)
    data["installing"] = sorted(set(packages))
    _save(state_dir, data)


def installing(state_dir):
    """The packages ``begin_installing`` noted and no ``settle_installing`` cleared."""
    return list(_load_raw(state_dir).get("installing", []))


def settle_installing(state_dir, unpacked):
    """Record as the formula's those of the packages noted by ``begin_installing``
    that dpkg holds (``unpacked``: names installed or left half-way), and clear
    the note; returns those recorded."""
    data = _load_raw(state_dir)
    pending = data.get("installing")
    if not pending:
        return []
    got = sorted(name for name in unpacked if name in pending)
    data["packages"] = sorted(set(data.get("packages", [])) | set(got))
    del data["installing"]
    _save(state_dir, data)
    return got


def record(state_dir, kind, name):
    """Remember that the formula created ``name`` (a file or a group) or installed it (a package)."""
    data = _load_for_update(state_dir)
    if name not in data[kind]:
        data[kind] = sorted(data[kind] + [name])
        _save(state_dir, data)


def forget(state_dir, kind, name):
    data = _load_for_update(state_dir)
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


# ------------------------------------------- the rules, for module and states ---


def foreign_group(name, state_dir, take_over):
    """Whether group ``name`` exists and is not the formula's (nor handed to it by ``take_over``)."""
    import grp  # pylint: disable=import-outside-toplevel

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return not (take_over or owns(state_dir, "groups", name))


def strangers(group_name, members):
    """Users whose primary group is ``group_name`` and who are not among ``members``."""
    return [user for user in primary_members(group_name) if user not in members]


def foreign_log_file(path, state_dir, root="/"):
    """Whether a file ``path`` (below ``root``) exists that the formula did not create (and record)."""
    return os.path.lexists(os.path.join(root, path.lstrip("/"))) and path not in load(state_dir)["files"]


# ---------------------------------- what applying a plan would take over ---


class Refused(Exception):
    """Applying the plan would touch what is not the formula's: the message names the pillar key."""


def refusal(utils, salt, grains, settings, plan, fs_root="/"):
    """
    Why applying ``plan`` would write, chown, run, remove or take over what is
    not the formula's (its ``inventory``), or ``""``: a file it did not write,
    a Postfix or a package it did not install, a path root writes into or
    runs from that others could change, a group it did not create, a log file
    others could forge.
    """
    if plan["mode"] == "disabled":
        return ""
    check = _Check(utils, salt, grains, settings, plan, fs_root)
    try:
        check.postfix()
        check.files()
        check.packages()
        check.paths()
        check.group()
        check.log_file()
    except Refused as exc:
        return str(exc)
    return ""


class _Check:
    def __init__(self, utils, salt, grains, settings, plan, fs_root):
        self.utils, self.salt, self.grains = utils, salt, grains
        self.settings, self.plan, self.fs_root = settings, plan, fs_root
        self.items = {item["id"]: item for item in plan["inventory"]}
        self.state_dir = self.host_path(settings["lookup"]["state_dir"])

    def host_path(self, path):
        return os.path.join(self.fs_root, path.lstrip("/"))

    def postfix(self):
        """A Postfix that was there before the formula (no main.cf of the formula's) is never taken
        silently."""
        main_cf = self.items["smtp:main-cf"]
        if not self.plan["postfix"] or self.settings["take_over"]["postfix"]:
            return
        if carries_marker(self.host_path(main_cf["path"])) or not self.salt["cmd.which"]("postconf"):
            return
        raise Refused(
            "Invalid pillar mail:take_over:postfix: is false, and Postfix is installed here and was not"
            f" installed by the mail formula ({main_cf['path']} does not carry the formula's marker): set it"
            " to true to hand this Postfix to the formula (an existing main.cf is kept as"
            " main.cf.before-mail-formula), or remove Postfix yourself first"
        )

    def files(self):
        taken_over = self.items["smtp:main-cf"]["path"] if self.settings["take_over"]["postfix"] else None
        for key, path in self.utils["mailstack_plan.written_files"](self.plan):
            if path == taken_over and not os.path.islink(self.host_path(path)):
                continue
            problem = foreign_file_problem(self.host_path(path))
            if problem:
                raise Refused(f"Invalid pillar mail:{key}: {problem}")

    def packages(self):
        """A package the mode would remove (it conflicts with what it installs), not installed by the
        formula."""
        packages = self.plan["packages"]
        kept = [name for name in packages["unwanted"] if name not in packages["remove"]]
        if not kept:
            return
        installed = self.utils["mailstack_system.installed_packages"](
            self.salt, self.grains, kept, self.fs_root
        )
        for name in sorted(installed):
            if name in self.settings["lookup"]["postfix"]["pkgs"]:
                raise Refused(
                    "Invalid pillar mail:take_over:postfix: is false, and this mode (sendmail by msmtp) would"
                    f" remove {name}, which is installed and was not installed by the mail formula: set it to"
                    " true to let the formula remove it, or remove it yourself"
                )
            raise Refused(
                f"Invalid pillar mail:mode: this mode ({self.plan['mode']}, sendmail by"
                f" {self.plan['sendmail']}) would remove the package {name}, which is installed and was"
                " not installed by the mail formula: remove it yourself if it is not needed, or choose a"
                " mode that keeps it"
            )

    def paths(self):
        """Every directory root writes into and every program it runs or file it trusts: root's alone."""
        root = self.fs_root
        for item in self.plan["inventory"]:
            if not item["wanted"] or item["kind"] in ("package", "group", "unit", "command"):
                continue
            if item["kind"] == "program":
                found = unsafe_path_problem(item["path"], root, follow_last=True)
            elif item["kind"] == "directory":
                found = unsafe_path_problem(item["path"], root)
            elif item["kind"] == "textfile":
                found = unsafe_textfile_dir_problem(os.path.dirname(item["path"]), root)
            else:
                found = unsafe_path_problem(os.path.dirname(item["path"]), root)
            if found:
                raise Refused(f"Invalid pillar mail:{item['key']}: {found}, so root must not rely on it")
        for key in ("mailu:ca_file", "relay:ca_file", "lookup:ca_bundle"):
            section, name = key.split(":")
            path = self.settings[section][name]
            found = path and unsafe_path_problem(path, root, follow_last=True)
            if found:
                raise Refused(f"Invalid pillar mail:{key}: {found}, so it cannot be trusted")

    def group(self):
        group = self.plan["senders_group"]
        if foreign_group(group["name"], self.state_dir, group["take_over"]):
            raise Refused(
                f"Invalid pillar mail:lookup:msmtp:group: group {group['name']!r} exists and was not"
                " created by the mail formula, which only creates, fills and removes a group of its own:"
                " choose a name no group has, or set mail:take_over:senders_group to true to hand it to"
                " the formula"
            )
        others = strangers(group["name"], group["members"]) if group["present"] else []
        if others:
            raise Refused(
                f"Invalid pillar mail:senders: {', '.join(others)} {'has' if len(others) == 1 else 'have'}"
                f" group {group['name']!r} as primary group and would read the password in msmtp's"
                " configuration: add them to mail:senders, or give them another primary group"
            )

    def log_file(self):
        secret = self.plan["files"]["secret_in_msmtprc"]
        problem = self.utils["mailstack_plan.msmtp_log_problem"](self.settings, secret)
        logfile = self.settings["msmtp"]["logfile"]
        if not problem and logfile:
            path = self.host_path(logfile)
            if foreign_log_file(logfile, self.state_dir, self.fs_root):
                problem = f"{logfile} exists and was not created by the mail formula: choose a new file"
            elif not os.path.isdir(os.path.dirname(path)):
                problem = (
                    f"{os.path.dirname(logfile)} does not exist: the log file goes into an existing directory"
                )
        if problem:
            raise Refused(f"Invalid pillar mail:msmtp:logfile: {problem}")
