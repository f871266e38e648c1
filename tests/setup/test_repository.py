"""Nothing machine-specific is tracked: a fresh clone is all a user has."""

import os
import subprocess

from tests.support.salt_local import REPO


def _git(*args):
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)} failed (is {REPO} a git checkout?): {result.stderr}"
    return result.stdout


def _tracked_symlinks():
    entries = (line.split(maxsplit=3) for line in _git("ls-files", "-s", "-z").split("\0") if line)
    return [path for mode, _object, _stage, path in entries if mode == "120000"]


def test_no_tracked_symlink_points_outside_the_repository_or_dangles():
    escaping = []
    for path in _tracked_symlinks():
        link = REPO / path
        target = (link.parent / os.readlink(link)).resolve()
        if not target.exists() or not target.is_relative_to(REPO):
            escaping.append(f"{path} -> {os.readlink(link)}")
    assert escaping == [], f"tracked links that a fresh clone cannot follow: {escaping}"


def test_no_tracked_path_is_matched_by_gitignore():
    ignored = _git("ls-files", "--cached", "--ignored", "--exclude-standard").split()
    assert ignored == [], f"tracked yet ignored (machine-specific?): {ignored}"


def test_the_virtualenv_is_ignored_as_a_directory_a_link_or_a_file():
    for candidate in (".venv", ".venv/", ".venv/bin/python"):
        result = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "--no-index", "-q", candidate], check=False
        )
        assert result.returncode == 0, f"{candidate} is not ignored"
