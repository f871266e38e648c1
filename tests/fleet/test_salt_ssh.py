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
import pathlib
import re
import shutil
import statistics
import tempfile
import time

import pytest

from tests.fleet.conftest import (
    CA_PATH,
    HOST,
    MAILU_NAME,
    MAILU_PASSWORD,
    PREFIX,
    RELAY_PASSWORD,
    SMARTHOST_NAME,
    assert_no_secret,
    deliver_and_count,
    message,
    record,
)
from tests.support import machines, ssh_machines
from tests.support.fleet import SaltRun

RUNS = 5
# name -> (base image, address, SSH user, the recipe's roster address); as in
# docs/salt-ssh.md: pi1 through the pi user's sudo (the local Postfix relay),
# pi2 as root (Mailu direct, msmtp is sendmail).
TARGETS = {
    "pi1": ("bookworm", f"{PREFIX}.31", "pi", "192.0.2.21"),
    "pi2": ("bookworm", f"{PREFIX}.32", "root", "192.0.2.22"),
}


class SshRun(SaltRun):
    """One ``salt-ssh`` command: as a ``salt`` one, and the plain return of a target."""

    def ret(self, target):
        return self.data.get(target)


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
        control.create({recipe: address for _, address, _, recipe in TARGETS.values()})
        started = time.monotonic()
        booted = {}
        for name, (base, address, _user, _recipe) in TARGETS.items():
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
            user = TARGETS[name][2]
            if user == "root":
                ssh_machines.authorize_root(machine, control.public_key)
            else:
                ssh_machines.add_sudo_user(machine, user, control.public_key)
            ssh_machines.wait_for_sshd(machine)
            control.trust(machine)
        record("salt-ssh targets boot (2 machines, sshd up)", f"{time.monotonic() - started:.1f} s")
        yield SshFleet(control, booted)


@pytest.fixture(scope="module")
def applied(ssh_fleet):
    """docs/salt-ssh.md's "Apply" section, command by command."""
    started = time.monotonic()
    done = ssh_fleet.control.run_recipe()
    record(
        "salt-ssh recipe (sync, ping, apply, apply test=True, send_test; 2 targets)",
        f"{time.monotonic() - started:.1f} s",
    )
    return done


def not_succeeded(highstate_text):
    """The state blocks of salt-ssh's text output whose result is not True, with the summaries."""
    blocks = re.split(r"\n(?=-{10}\n)", highstate_text)
    picked = [b for b in blocks if re.search(r"Result: (False|None)", b) or "Summary" in b]
    return "\n".join(picked)[-6000:]


def test_the_recipe_runs_word_for_word_and_applies_both_targets(applied):
    for line, result in applied:
        assert result.returncode == 0, (line, not_succeeded(result.stdout), result.stderr[-2000:])
        assert RELAY_PASSWORD not in result.stdout + result.stderr
        assert MAILU_PASSWORD not in result.stdout + result.stderr
        if "state.apply mail" in line:
            assert re.findall(r"^Failed:\s+(\d+)$", result.stdout, re.M) == ["0", "0"], result.stdout[-3000:]
        if line.endswith("test.ping"):
            assert result.stdout.count("True") == 2, result.stdout
    assert [line for line, _ in applied] == ssh_machines.recipe()[1]


def test_mail_sent_on_each_target_arrives_once(ssh_fleet, applied, fleet_peers):
    deliver_and_count(None, fleet_peers, ssh_fleet.targets["pi1"], message("pi1"), "smarthost")
    deliver_and_count(None, fleet_peers, ssh_fleet.targets["pi2"], message("pi2"), "mailu_direct")


def test_second_apply_changes_nothing_and_test_mode_predicts_nothing(ssh_fleet, applied):
    again = ssh_fleet.ssh("*", "state.apply", "mail")
    dry = ssh_fleet.ssh("*", "state.apply", "mail", "test=True")
    for target in TARGETS:
        assert again.failed(target) == {} and again.changed(target) == {}, (target, again)
        predicted = {sid: s for sid, s in dry.states(target).items() if s["result"] is not True}
        assert predicted == {}, (target, predicted)
    assert_no_secret(again)


def test_cost_of_an_idempotent_apply_against_one_test_nop(ssh_fleet, applied):
    """Medians of alternating runs on pi1 (sudo): apply mail (idempotent) and apply of one test.nop."""
    mail, nop = [], []
    for _ in range(RUNS):
        mail.append(ssh_fleet.ssh("pi1", "state.apply", "mail").seconds)
        nop.append(ssh_fleet.ssh("pi1", "state.apply", "ssh_nop").seconds)
    ratio = statistics.median(mail) / statistics.median(nop)
    record(
        f"salt-ssh cost, pi1 (sudo), medians of {RUNS} alternations",
        f"idempotent apply mail {statistics.median(mail):.2f} s, one test.nop {statistics.median(nop):.2f} s,"
        f" ratio {ratio:.2f}",
    )
    connections = {sls: ssh_connections(ssh_fleet, sls) for sls in ("mail", "ssh_nop")}
    record(
        "salt-ssh connections per apply (ssh and scp commands run, pi1)",
        f"apply mail {connections['mail']}, apply of one test.nop {connections['ssh_nop']}",
    )
    assert connections["mail"] == connections["ssh_nop"], connections
    assert ratio <= 1.3, (mail, nop)


def ssh_connections(ssh_fleet, sls):
    """The SSH connections (ssh and scp commands) salt-ssh makes for one apply of ``sls``."""
    done = ssh_fleet.control.run("salt-ssh", "-l", "trace", "pi1", "state.apply", sls)
    assert done.returncode == 0, done.stderr[-2000:]
    commands = [
        line.split("Executing command: ", 1)[1].split()
        for line in (done.stdout + done.stderr).splitlines()
        if "Executing command: " in line
    ]
    return sum(1 for words in commands if words and pathlib.Path(words[0]).name in ("ssh", "scp"))


def test_operator_functions_answer_over_salt_ssh(ssh_fleet, applied, fleet_peers):
    plan = ssh_fleet.ssh("*", "mailstack.plan")
    assert plan.ret("pi1")["mode"] == "relay" and plan.ret("pi2")["mode"] == "mailu", plan
    assert_no_secret(plan)
    status = ssh_fleet.ssh("pi1", "mailstack.status")
    assert isinstance(status.ret("pi1"), dict), status
    assert_no_secret(status)
    sent = ssh_fleet.ssh("pi2", "mailstack.send_test")
    assert isinstance(sent.ret("pi2"), dict), sent
    mid = sent.ret("pi2").get("message_id", "").strip("<>")
    assert mid and fleet_peers.mailu_direct.mailbox.wait_for_ids([mid], timeout=60), sent
    flushed = ssh_fleet.ssh("pi1", "mailstack.flush")
    assert flushed.returncode == 0, flushed


def test_nothing_secret_is_left_in_salt_ssh_temporary_directories(ssh_fleet, applied):
    """salt-ssh leaves <thin_dir>/salt_state.tgz (pillar.json inside) after each state run;
    the formula's first state removes it. Nothing else of salt-ssh's holds a password."""
    nop = ssh_fleet.ssh("pi1", "state.apply", "ssh_nop")
    assert nop.returncode == 0, nop
    left = ssh_fleet.targets["pi1"].sh("ls /var/tmp/.*_salt/salt_state.tgz").stdout.split()
    assert len(left) == 1, left  # Salt's own mechanics: any state run leaves one
    run = ssh_fleet.ssh("*", "state.apply", "mail")
    for name, machine in ssh_fleet.targets.items():
        assert run.failed(name) == {}, run
        packages = machine.sh("ls /var/tmp/.*_salt/salt_state.tgz 2>/dev/null || true").stdout.split()
        assert packages == [], (name, packages)
        found = machine.sh(
            f"grep -rlF -e '{RELAY_PASSWORD}' -e '{MAILU_PASSWORD}' /var/tmp /tmp /root /home || true"
        ).stdout.split()
        assert found == [], (name, found)


def test_invalid_pillar_stops_with_the_one_clear_state(ssh_fleet, applied):
    good = ssh_fleet.control.pillar("pi1")
    ssh_fleet.control.set_pillar("pi1", {**good, "timeout": "soon"})
    try:
        run = ssh_fleet.ssh("pi1", "state.apply", "mail")
        assert set(run.states("pi1")) == {"mail-error"}, run
        assert "timeout" in run.failed("pi1")["mail-error"], run
    finally:
        ssh_fleet.control.set_pillar("pi1", good)


def test_a_file_in_the_way_is_caught_on_the_target_and_nothing_changes(ssh_fleet, applied):
    machine = ssh_fleet.targets["pi1"]
    machine.write("/etc/postfix/recipient_canonical", "# not the formula's\n")
    try:
        run = ssh_fleet.ssh("pi1", "state.apply", "mail")
        assert set(run.states("pi1")) == {"mail-ssh-plan-checked"}, run
        assert "recipient_canonical" in run.failed("pi1")["mail-ssh-plan-checked"], run
    finally:
        machine.run(["rm", "/etc/postfix/recipient_canonical"])


def test_mail_clean_removes_what_the_formula_installed(ssh_fleet, applied):
    run = ssh_fleet.ssh("*", "state.apply", "mail.clean")
    for target, machine in ssh_fleet.targets.items():
        assert run.failed(target) == {}, (target, run)
        assert machine.run(["dpkg", "-s", "postfix"], check=False).returncode != 0
        assert machine.run(["dpkg", "-s", "msmtp"], check=False).returncode != 0
        assert not (machine.root / "etc/msmtprc").exists()
