"""
The formula over salt-ssh (issue 24): no minion, no master daemon; sshd and
python3 on the targets, salt-ssh from this virtualenv on the control "host"
(a directory with a Saltfile, a roster and a master configuration whose
file_roots is this checkout and whose pillar_roots has a top file).

Targets are Debian 12 machines booted with systemd from a derived image with
sshd and sudo (``tests/support/ssh_machines.py``): ``s1`` logged into as
root, ``s2`` as a Raspberry Pi OS style user ``pi`` with passwordless sudo
(roster ``sudo: True``). Mail is counted at the fleet's SMTP peers on the host
by Message-ID.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import tempfile
import time

import pytest

from tests.fleet.conftest import (
    CA_PATH,
    HOST,
    MAILU_NAME,
    PREFIX,
    SMARTHOST_NAME,
    record,
)
from tests.support import machines, ssh_machines

# name -> (base image, address, SSH user, through sudo)
TARGETS = {
    "s1": ("bookworm", f"{PREFIX}.31", "root", False),
    "s2": ("bookworm", f"{PREFIX}.32", "pi", True),
}


class SshRun:
    def __init__(self, completed, seconds):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.seconds = seconds
        try:
            self.data = json.loads(completed.stdout) if completed.stdout.strip() else {}
        except ValueError:
            self.data = {}

    def ret(self, target):
        return self.data.get(target)

    def states(self, target):
        value = self.data.get(target)
        assert isinstance(value, dict), f"no state return from {target}: {self!r}"
        return {state["__id__"]: state for state in value.values()}

    def changed(self, target):
        return {sid: s["changes"] for sid, s in self.states(target).items() if s["changes"]}

    def failed(self, target):
        return {sid: s["comment"] for sid, s in self.states(target).items() if s["result"] is False}

    def __repr__(self):
        return f"SshRun({self.returncode}, stdout={self.stdout[-4000:]!r}, stderr={self.stderr[-2000:]!r})"


class SshFleet:
    def __init__(self, control, targets):
        self.control = control
        self.targets = targets

    def ssh(self, target, *args, timeout=600):
        started = time.monotonic()
        done = self.control.run("salt-ssh", "--out=json", "--static", target, *args, timeout=timeout)
        return SshRun(done, time.monotonic() - started)


@pytest.fixture(scope="module")
def ssh_fleet(fleet_bridge, fleet_peers, test_ca):
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="ms", dir="/tmp"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        control = ssh_machines.Control(workdir / "control", machines.REPO_ROOT)
        control.create()
        started = time.monotonic()
        booted = {}
        for name, (base, address, _user, _sudo) in TARGETS.items():
            image = ssh_machines.image(base, log=lambda line: None)
            machine = machines.Machine(name, base, address, fleet_bridge, workdir)
            stack.callback(machine.destroy)
            machine.create(
                image,
                {
                    "/etc/hosts": (
                        f"127.0.0.1 localhost\n127.0.1.1 {name}.fleet.test {name}\n"
                        f"{HOST} {SMARTHOST_NAME} {MAILU_NAME}\n"
                    ),
                    CA_PATH: pathlib.Path(test_ca.ca_file).read_text(),
                },
            )
            booted[name] = machine
        for name, machine in booted.items():
            machine.boot()
            _, address, user, sudo = TARGETS[name]
            if user == "root":
                ssh_machines.authorize_root(machine, control.public_key)
            else:
                ssh_machines.add_sudo_user(machine, user, control.public_key)
            ssh_machines.wait_for_sshd(machine)
            control.trust(machine)
            control.add(name, address, user=user, sudo=sudo)
        record("salt-ssh targets boot (2 machines, sshd up)", f"{time.monotonic() - started:.1f} s")
        yield SshFleet(control, booted)


def test_ping(ssh_fleet):
    run = ssh_fleet.ssh("*", "test.ping")
    assert run.data == {"s1": True, "s2": True}, run
