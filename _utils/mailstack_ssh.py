"""
The salt-ssh side of the mail formula (``_wrapper/mailstack.py``), pure parts:
the fake root the control host decides the plan in, built from the target's
``mailstack_host`` grain, and the digest both ends compare.
"""

import contextlib
import hashlib
import json
import os

# lookup keys whose paths the grain looks at: {settings path: grain path key}
COVERED = {
    ("state_dir",): "state_dir",
    ("systemd_unit_dir",): "systemd_unit_dir",
    ("postfix", "config_dir"): "postfix_config_dir",
    ("msmtp", "config"): "msmtp_config",
}


def digest(mapdata):
    """The digest of what ``mailstack.mapdata`` returned."""
    text = json.dumps(mapdata, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def uncovered_paths(lookup, facts):
    """The ``mail:lookup`` keys whose path the grain did not look at: ``[(key, path, grain's)]``."""
    found = []
    for keys, fact in COVERED.items():
        value = lookup
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        covered = facts.get("paths", {}).get(fact)
        if value != covered:
            found.append((":".join(keys), value, covered))
    return found


def materialize(facts, root):
    """Write the grain's files and directories under ``root`` (an empty directory)."""
    for path in facts.get("dirs", []):
        os.makedirs(os.path.join(root, path.lstrip("/")), exist_ok=True)
    for path, content in facts.get("files", {}).items():
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if content is None:  # there, and not a regular file: a link stands for it
            os.symlink("/nonexistent", target)
            continue
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(content)


class Users:
    """``pwd`` as far as the settings' validation asks: whether a user exists on the target."""

    def __init__(self, names):
        self.names = frozenset(names)

    def getpwnam(self, name):
        if name not in self.names:
            raise KeyError(f"getpwnam(): name not found: {name!r}")
        return name


# salt-ssh ships a state run's pillar (passwords too) in
# <thin_dir>/salt_state.tgz and leaves it there after the run; state.pkg has
# unpacked it before the first state runs.
SHIPPED_STATE_PACKAGE = "salt_state.tgz"


def forget_shipped_pillar(opts):
    """Under salt-ssh (``root_dir`` is the thin directory's ``running_data``),
    remove the package with the pillar that salt-ssh left; elsewhere nothing."""
    root_dir = (opts.get("root_dir") or "").rstrip("/")
    if os.path.basename(root_dir) != "running_data":
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(os.path.dirname(root_dir), SHIPPED_STATE_PACKAGE))
