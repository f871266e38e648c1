"""The formula touches only what is its own (issue 12): a secret is never
readable by others, not even for an instant, and mail.clean removes only the
formula's files, then its directories only when they are empty."""

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.e2e.conftest import with_base

SECRET = "s3cret-watched-" + os.urandom(4).hex()
MAILU = {"host": "mail.example.org", "user": "alerts@example.org", "password": SECRET}
RELAY_SASL = {"relayhost": "smtp.example.net", "user": "relay-user", "password": SECRET}

# Run as nobody: open the watched files as fast as it can and report each time
# their content held the secret. Stops when the stop file appears.
WATCHER = r"""
import os, sys
secret, stop, paths = sys.argv[1].encode(), sys.argv[2], sys.argv[3:]
seen, tries = set(), 0
while not os.path.exists(stop):
    for path in paths:
        tries += 1
        try:
            with open(path, "rb") as handle:
                if secret in handle.read():
                    seen.add(path)
        except OSError:
            pass
print(tries, " ".join(sorted(seen)))
"""


class Watcher:
    """An unprivileged user reading the files while the formula switches modes."""

    def __init__(self, paths):
        # Not under pytest's tmp_path, which is root's alone (0700).
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="mailstack-watch-"))
        self.directory.chmod(0o755)
        self.stop = self.directory / "stop"
        script = self.directory / "watch.py"
        script.write_text(WATCHER)
        script.chmod(0o644)
        self.process = subprocess.Popen(
            ["runuser", "-u", "nobody", "--", "/usr/bin/python3", str(script), SECRET, str(self.stop)]
            + list(paths),
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)

    def result(self):
        self.stop.touch()
        out, _ = self.process.communicate(timeout=30)
        shutil.rmtree(self.directory)
        assert self.process.returncode == 0, "the watcher failed"
        tries, _, seen = out.strip().partition(" ")
        return int(tries), seen.split()


@pytest.mark.parametrize(
    "before, after, paths",
    [
        pytest.param(
            {"mode": "relay"},
            {"mailu": MAILU},
            ["/etc/msmtprc"],
            id="relay-to-mailu-direct",
        ),
        pytest.param(
            {"mode": "relay", "container": True},
            {"mode": "relay", "container": True, "relay": RELAY_SASL},
            ["/etc/msmtprc"],
            id="container-relay-to-relayhost-with-sasl",
        ),
        pytest.param(
            {"mode": "relay"},
            {"mode": "relay", "relay": RELAY_SASL},
            ["/etc/postfix/sasl_passwd", "/etc/postfix/sasl_passwd.db"],
            id="relay-to-relayhost-with-sasl",
        ),
    ],
)
def test_a_secret_is_never_readable_by_others_while_the_mode_switches(clean_machine, before, after, paths):
    minion = clean_machine
    minion.set_pillar(with_base(**before))
    first = minion.apply()
    assert first.returncode == 0, first.output

    watcher = Watcher(paths)
    minion.set_pillar(with_base(**after))
    switched = minion.apply()
    tries, seen = watcher.result()

    assert switched.returncode == 0, switched.output
    assert SECRET in b"".join(pathlib.Path(p).read_bytes() for p in paths).decode(errors="replace")
    assert tries > 1000, "the watcher hardly ran"
    assert seen == [], f"nobody read the secret in {seen}"


def test_clean_removes_the_formulas_files_and_leaves_everything_else(clean_machine):
    minion = clean_machine
    minion.set_pillar(with_base(admin="ops@example.org", aliases={"backup": "backup@example.org"}))
    applied = minion.apply()
    assert applied.returncode == 0, applied.output
    state_dir, libexec_dir = pathlib.Path("/var/lib/mailstack"), pathlib.Path("/usr/local/lib/mailstack")
    foreign = {
        state_dir / "operator-notes.txt": "mine\n",
        libexec_dir / "site-hook": "#!/bin/sh\n",
        pathlib.Path("/etc/aliases"): "postmaster: root\n",
    }
    for path, text in foreign.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    ours = [pathlib.Path("/etc/msmtprc"), pathlib.Path("/etc/aliases.msmtp")]
    assert all(path.exists() for path in ours)

    try:
        cleaned = minion.apply("mail.clean")

        assert cleaned.returncode == 0, cleaned.output
        assert [str(p) for p in ours if p.exists()] == []
        assert {path: path.read_text() for path in foreign} == foreign
        assert state_dir.is_dir() and libexec_dir.is_dir()
        assert sorted(os.listdir(state_dir)) == ["operator-notes.txt"]
    finally:
        for path in foreign:
            path.unlink(missing_ok=True)
    again = minion.apply("mail.clean")
    assert again.returncode == 0, again.output
    assert not state_dir.exists() and not libexec_dir.exists()


def test_a_file_someone_else_wrote_where_the_formula_writes_is_left_and_the_run_refused(clean_machine):
    minion = clean_machine
    msmtprc = pathlib.Path("/etc/msmtprc")
    msmtprc.write_text("account default\nhost mine.example.org\n")
    try:
        minion.set_pillar(with_base())
        refused = minion.apply()

        assert refused.returncode != 0
        assert list(refused.states) == ["mail-error"], refused.output
        assert "mail:lookup:msmtp:config" in refused.states["mail-error"]["comment"]
        assert msmtprc.read_text() == "account default\nhost mine.example.org\n"

        cleaned = minion.apply("mail.clean")
        assert cleaned.returncode != 0 or msmtprc.exists()
        assert msmtprc.read_text() == "account default\nhost mine.example.org\n"
    finally:
        msmtprc.unlink(missing_ok=True)
