"""A salt-master on the host driving systemd-booted machines (``machines.py``).

The master runs from this project's virtualenv and listens only on the test
bridge's host address; every machine's salt-minion (a systemd unit inside it)
points there. ``Fleet.salt`` runs the ``salt`` command line and returns its
JSON, keyed by minion ID.
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys
import time

import salt.utils.yaml

from tests.support.loader import formula_root
from tests.support.machines import Machine

SALT_BIN = pathlib.Path(sys.executable).parent
PUBLISH_PORT = 14505
RET_PORT = 14506
FILE_IGNORE_GLOB = ["*/__pycache__", "*.pyc"]
# One state that does nothing: the baseline of a salt-call in each machine.
NOP_SLS = "fleet-nop:\n  test.nop: []\n"


class SaltMaster:
    """A real ``salt-master`` process with its own short root directory."""

    def __init__(self, directory: pathlib.Path, interface: str):
        self.directory = directory
        self.interface = interface
        self.conf_dir = directory / "conf"
        self.pillar_dir = directory / "pillar"
        self.states_dir = directory / "states"
        self.log_file = directory / "master.log"
        self.process: subprocess.Popen | None = None

    def start(self, worker_threads: int = 4, timeout: float = 60) -> None:
        for path in (self.conf_dir, self.pillar_dir, self.states_dir):
            path.mkdir(parents=True, exist_ok=True)
        (self.states_dir / "fleet_nop.sls").write_text(NOP_SLS)
        config = {
            "root_dir": str(self.directory),
            "pki_dir": str(self.directory / "pki"),
            "cachedir": str(self.directory / "cache"),
            "sock_dir": str(self.directory / "sock"),
            "pidfile": str(self.directory / "master.pid"),
            "log_file": str(self.log_file),
            "log_level_logfile": "info",
            "user": "root",
            "interface": self.interface,
            "publish_port": PUBLISH_PORT,
            "ret_port": RET_PORT,
            "worker_threads": worker_threads,
            "file_roots": {"base": [str(formula_root(self.directory / "formula")), str(self.states_dir)]},
            "file_ignore_glob": FILE_IGNORE_GLOB,
            "pillar_roots": {"base": [str(self.pillar_dir)]},
            "timeout": 60,
        }
        (self.conf_dir / "master").write_text(salt.utils.yaml.safe_dump(config))
        self.process = subprocess.Popen(
            [str(SALT_BIN / "salt-master"), "-c", str(self.conf_dir), "-l", "quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _listening(self.interface, RET_PORT):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"salt-master did not start:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run(["kill", "-TERM", "--", f"-{self.process.pid}"], capture_output=True, check=False)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            subprocess.run(["kill", "-KILL", "--", f"-{self.process.pid}"], capture_output=True, check=False)
            self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return "(no master log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def cli(self, program: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SALT_BIN / program), "-c", str(self.conf_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def listen(self, tagmatch: str) -> subprocess.Popen:
        """Wait in the background for one event on the master's bus matching ``tagmatch``;
        its output is ``<tag>\t<json data>``."""
        return subprocess.Popen(
            [
                str(SALT_BIN / "salt-run"),
                "-c",
                str(self.conf_dir),
                "state.event",
                f"tagmatch={tagmatch}",
                "count=1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def set_pillar(self, pillars: dict[str, dict]) -> None:
        """Per-minion pillar: ``{minion_id: mail pillar}`` through the top file."""
        top = {"base": {minion: [f"node_{minion}"] for minion in pillars}}
        (self.pillar_dir / "top.sls").write_text(salt.utils.yaml.safe_dump(top))
        for minion, mail in pillars.items():
            (self.pillar_dir / f"node_{minion}.sls").write_text(salt.utils.yaml.safe_dump({"mail": mail}))


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class SaltRun:
    """One ``salt`` command: exit code, output, and the return per minion."""

    def __init__(self, completed: subprocess.CompletedProcess, seconds: float):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.seconds = seconds
        try:
            self.data = json.loads(completed.stdout) if completed.stdout.strip() else {}
        except ValueError:
            self.data = {}

    def states(self, minion: str) -> dict:
        """State results of ``minion`` keyed by state ID."""
        value = self.data.get(minion)
        assert isinstance(value, dict), f"no state return from {minion}: {self!r}"
        return {state["__id__"]: state for state in value.values()}

    def changed(self, minion: str) -> dict:
        return {sid: s["changes"] for sid, s in self.states(minion).items() if s["changes"]}

    def predicted(self, minion: str) -> dict:
        """States that test=True says would change (result None)."""
        return {sid: s["changes"] for sid, s in self.states(minion).items() if s["result"] is None}

    def failed(self, minion: str) -> dict:
        return {sid: s["comment"] for sid, s in self.states(minion).items() if s["result"] is False}

    def __repr__(self):
        out, err = self.stdout[-4000:], self.stderr[-2000:]
        return f"SaltRun(returncode={self.returncode}, stdout={out!r}, stderr={err!r})"


class Fleet:
    """The master and its machines."""

    def __init__(self, master: SaltMaster, machines: dict[str, Machine]):
        self.master = master
        self.machines = machines
        self.pillars: dict[str, dict] = {}

    @property
    def ids(self) -> set[str]:
        return set(self.machines)

    def set_pillar(self, minion: str, mail: dict) -> None:
        self.pillars[minion] = mail
        self.master.set_pillar(self.pillars)

    def salt(self, target: str, *args: str, timeout: float = 900) -> SaltRun:
        started = time.monotonic()
        completed = self.master.cli(
            "salt", "--out=json", "--static", "-t", str(int(timeout)), target, *args, timeout=timeout + 60
        )
        return SaltRun(completed, time.monotonic() - started)

    def accept_keys(self, timeout: float = 180) -> None:
        """Accept every machine's key, then wait until all of them answer."""
        deadline = time.monotonic() + timeout
        while True:
            self.master.cli("salt-key", "-A", "-y")
            listed = self.master.cli("salt-key", "-l", "acc", "--out=json")
            accepted = set(json.loads(listed.stdout or "{}").get("minions", []))
            if self.ids <= accepted:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"keys accepted: {sorted(accepted)}, wanted {sorted(self.ids)}")
            time.sleep(1)
        self.wait_for_minions(self.ids, deadline)

    def wait_for_minions(self, ids, deadline: float) -> None:
        while True:
            answered = set(self.salt("*", "test.ping", timeout=10).data)
            if set(ids) <= answered:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"minions answering: {sorted(answered)}, wanted {sorted(ids)}")
            time.sleep(1)
