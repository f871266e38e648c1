"""
A node killed or cut off in the middle of an apply heals itself at the next
apply: one Debian 12 machine booted with systemd, the formula applied
masterless inside (``salt-call --local``, as on a Raspberry Pi in a cupboard),
killed at points chosen by what is running in it (never by a sleep): a
watcher inside polls ``/proc`` until the process of the kill point exists,
freezes the whole ``salt-call`` tree (SIGSTOP, so nothing finishes meanwhile),
then SIGKILLs it (a killed apply: the OOM killer, a timeout) or leaves it
frozen for the host to cut the power (SIGKILL to the machine's PID 1: every
process in it dies at once, with no shutdown). Then one apply must converge:
every state succeeds, dpkg reports nothing pending, Postfix or msmtp as the
pillar says (Postfix active and enabled), the formula's files whole, a second
apply changes nothing, and mail sent then arrives exactly once (counted by
Message-ID at the SMTP peers on the host's bridge address).

The machine's shared kernel keeps what was written before the cut (see
DESIGN.md), so a power cut here tests a killed apply plus a reboot; that the
formula's own writes survive a real cut is proven by the unit tests of
``write_atomically``.

The tests share one machine and run in order; each starts by converging the
mode it switches from.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import signal
import subprocess
import tempfile
import time

import pytest
import salt.utils.yaml

from tests.fleet.conftest import (
    CA_PATH,
    HOST,
    MAILU_NAME,
    PREFIX,
    SMARTHOST_NAME,
    journal,
    mailu_direct_pillar,
    message,
    record,
    relay_pillar,
    send,
    unit_state,
)
from tests.support import machines

NAME = "crash1"
ADDRESS = f"{PREFIX}.31"
UPSTREAM = "/srv/upstream/mail"
FORMULA_DIRS = ("mail", "_modules", "_states", "_utils", "_beacons")
MINION_CONF = """\
file_client: local
file_roots:
  base: [/srv/formula]
file_ignore_glob: ['*/__pycache__', '*.pyc']
pillar_roots:
  base: [/srv/pillar]
"""
TOP = "base:\n  '*':\n    - mail\n"
STATE_DIR = "/var/lib/mailstack"

# Runs inside the machine: wait until a process whose command line matches
# argv[1] exists, then freeze every process of the salt-call tree and (argv[3]
# == "kill") SIGKILL them. Prints what matched and what was stopped.
WATCHER = r"""
import os, re, signal, sys, time

pattern, deadline, how = re.compile(sys.argv[1]), time.time() + float(sys.argv[2]), sys.argv[3]
me = os.getpid()


def table():
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(pid)] = (ppid, cmd)
    return out


def salt_tree(procs):
    tree = {pid for pid, (_, cmd) in procs.items() if "salt-call" in cmd}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


seen_salt = False
while time.time() < deadline:
    procs = table()
    salt = any("salt-call" in cmd for _, cmd in procs.values())
    if seen_salt and not salt:
        print("salt-call ended before any process matched")
        sys.exit(4)
    seen_salt = seen_salt or salt
    hit = [cmd for pid, (_, cmd) in procs.items() if pattern.search(cmd)]
    if hit:
        stopped = {}
        for _ in range(3):  # what forked meanwhile is frozen by the next pass
            procs = table()
            for pid in salt_tree(procs) - set(stopped):
                try:
                    os.kill(pid, signal.SIGSTOP)
                    stopped[pid] = procs[pid][1]
                except ProcessLookupError:
                    pass
        if how == "kill":
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        print(hit[0])
        print(" | ".join(sorted({cmd.split()[0].rsplit("/", 1)[-1] for cmd in stopped.values() if cmd})))
        sys.exit(0)
    time.sleep(0.003)
sys.exit(3)
"""


class CrashNode:
    """One machine booted from the cached Debian 12 image, Salt masterless inside."""

    def __init__(self, machine: machines.Machine, peers):
        self.machine = machine
        self.peers = peers

    def set_pillar(self, mail: dict) -> None:
        self.machine.write("/srv/pillar/mail.sls", salt.utils.yaml.safe_dump({"mail": mail}))

    def salt_call(self, *args, timeout=900) -> subprocess.CompletedProcess:
        return self.machine.run(["salt-call", "--local", "--out=json", *args], check=False, timeout=timeout)

    def apply(self, timeout=900) -> dict:
        done = self.salt_call("state.apply", "mail", timeout=timeout)
        try:
            states = json.loads(done.stdout)["local"]
        except (ValueError, KeyError, TypeError):
            pytest.fail(
                f"no state return (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        assert isinstance(states, dict), states
        return {state["__id__"]: state for state in states.values()}

    def start_apply(self) -> subprocess.Popen:
        """``salt-call state.apply mail`` in the background (to be killed)."""
        return subprocess.Popen(
            [
                "nsenter",
                "-t",
                str(self.machine.leader),
                "-a",
                "env",
                "-i",
                f"PATH={machines.MACHINE_PATH}",
                "LANG=C.UTF-8",
                "HOME=/root",
                "salt-call",
                "--local",
                "--out=json",
                "state.apply",
                "mail",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def watch(self, pattern: str, how: str, applying: subprocess.Popen, timeout: float = 300):
        """Until a process matching ``pattern`` runs; then the salt-call tree is frozen
        (and killed with ``how == "kill"``). Returns what matched and what was stopped."""
        done = self.machine.run(
            ["python3", "/root/watcher.py", pattern, str(timeout), how], check=False, timeout=timeout + 30
        )
        # nsenter stops itself when its child is stopped (job control) and stays
        # stopped: it must go on to reap the killed salt-call.
        with contextlib.suppress(ProcessLookupError):
            applying.send_signal(signal.SIGCONT)
        lines = done.stdout.splitlines()
        if done.returncode != 0 or len(lines) != 2:
            if applying.poll() is None:
                applying.kill()
            out, err = applying.communicate(timeout=60)
            pytest.fail(f"no process matched {pattern!r}: {done!r}\napply: {out[-3000:]}\n{err[-2000:]}")
        return lines[0], lines[1]

    def status(self) -> dict:
        """``mailstack.status`` (no probe of the next hop)."""
        done = self.salt_call("mailstack.status", "check_next_hop=False")
        try:
            return json.loads(done.stdout)["local"]
        except (ValueError, KeyError, TypeError):
            pytest.fail(
                f"mailstack.status failed (exit {done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )

    def power_cut(self) -> None:
        """The machine stops at once, without a shutdown: SIGKILL to its PID 1 makes
        the kernel kill every process in it; systemd-nspawn then exits."""
        machine = self.machine
        subprocess.run(["kill", "-KILL", str(machine.leader)], check=True)
        machine.process.wait(60)
        machine.leader = None

    def converge(self, pillar: dict) -> None:
        """Apply ``pillar`` with no kill: the starting point of a scenario."""
        self.set_pillar(pillar)
        states = self.apply()
        failed = {sid: s["comment"] for sid, s in states.items() if s["result"] is not True}
        assert failed == {}, failed


@pytest.fixture(scope="module")
def crash_node(fleet_images, fleet_bridge, fleet_peers, test_ca):
    """A fresh machine of the cached Debian 12 image with this checkout at UPSTREAM
    (read-only) as its file root; removed at the end."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="mc", dir="/tmp"))
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: subprocess.run(["rm", "-rf", str(workdir)], check=False))
        machine = machines.Machine(
            NAME,
            "bookworm",
            ADDRESS,
            fleet_bridge,
            workdir,
            read_only_binds={str(machines.REPO_ROOT): UPSTREAM},
        )
        stack.callback(machine.destroy)
        machine.create(
            fleet_images["bookworm"],
            {
                "/etc/hosts": (
                    f"127.0.0.1 localhost\n127.0.1.1 {NAME}.fleet.test {NAME}\n"
                    f"{HOST} {SMARTHOST_NAME} {MAILU_NAME}\n"
                ),
                "/etc/salt/minion.d/local.conf": MINION_CONF,
                "/srv/pillar/top.sls": TOP,
                "/root/watcher.py": WATCHER,
                CA_PATH: pathlib.Path(test_ca.ca_file).read_text(),
            },
        )
        # Masterless: no minion looking for a master.
        (machine.root / "etc/systemd/system/multi-user.target.wants/salt-minion.service").unlink()
        formula = machine.root / "srv/formula"
        formula.mkdir(parents=True)
        for directory in FORMULA_DIRS:
            (formula / directory).symlink_to(f"{UPSTREAM}/{directory}")
        machine.boot()
        node = CrashNode(machine, fleet_peers)
        synced = node.salt_call("saltutil.sync_all")
        assert synced.returncode == 0, synced
        yield node


# kill point id -> (mode before, mode after, what must be running, how it ends)
RELAY, MAILU = "relay", "mailu direct"
PILLARS = {RELAY: relay_pillar, MAILU: mailu_direct_pillar}
KILL_POINTS = {
    "first-apply-killed-while-dpkg-unpacks-postfix": (None, RELAY, r"dpkg-deb .*postfix_", "kill"),
    "switch-to-msmtp-killed-while-dpkg-removes-postfix": (
        RELAY,
        MAILU,
        r"dpkg .*--(remove|purge) .*postfix",
        "kill",
    ),
    "switch-to-postfix-killed-while-apt-updates-its-lists-before-the-package-step": (
        MAILU,
        RELAY,
        r"apt-get .*update",
        "kill",
    ),
    "switch-to-msmtp-killed-while-dpkg-unpacks-msmtp-mta": (
        RELAY,
        MAILU,
        r"dpkg-deb .*msmtp-mta_",
        "kill",
    ),
    "switch-to-postfix-killed-while-postfix-postinst-configures": (
        MAILU,
        RELAY,
        r"postfix\.postinst configure",
        "kill",
    ),
    "switch-to-postfix-killed-while-postfix-postinst-has-systemd-start-postfix": (
        MAILU,
        RELAY,
        r"systemctl --quiet --system start postfix",
        "kill",
    ),
    # After the package step: the formula's own states at work.
    "switch-to-postfix-killed-after-the-package-step-while-postmap-builds-sasl-passwd": (
        MAILU,
        RELAY,
        r"postmap hash:/etc/postfix/sasl_passwd",
        "kill",
    ),
    "switch-to-postfix-power-cut-while-dpkg-unpacks-postfix": (
        MAILU,
        RELAY,
        r"dpkg-deb .*postfix_",
        "power",
    ),
    "switch-to-msmtp-power-cut-while-dpkg-removes-postfix": (
        RELAY,
        MAILU,
        r"dpkg .*--(remove|purge) .*postfix",
        "power",
    ),
}
UPSTREAM_PEER = {RELAY: "smarthost", MAILU: "mailu_direct"}


def assert_converged(node: CrashNode, mode: str, states: dict) -> None:
    machine = node.machine
    failed = {sid: s["comment"] for sid, s in states.items() if s["result"] is not True}
    if failed:
        pytest.fail(
            "the apply did not converge:\n" + "\n".join(f"{k}: {v[-2500:]}" for k, v in failed.items())
        )
    assert machine.run(["dpkg", "--audit"], check=False).stdout.strip() == ""
    assert machine.run(["ls", "-A", "/var/lib/dpkg/updates"]).stdout.strip() == ""
    status = machine.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\\n", "postfix", "msmtp-mta"], check=False
    ).stdout
    installed = {line.split()[0] for line in status.splitlines() if line.endswith(" installed")}
    record_text = machine.run(["cat", f"{STATE_DIR}/owned.json"]).stdout
    owned = json.loads(record_text)  # whole: never half-written
    if mode == RELAY:
        assert installed == {"postfix"}, status
        assert unit_state(machine) == ("active", "enabled"), journal(machine)
        main_cf = machine.run(["cat", "/etc/postfix/main.cf"]).stdout
        assert main_cf.startswith("# Managed by Salt (mail formula"), main_cf[:200]
        assert "relayhost" in main_cf
        assert "postfix" in owned["packages"], owned
    else:
        assert installed == {"msmtp-mta"}, status
        msmtprc = machine.run(["cat", "/etc/msmtprc"]).stdout
        assert msmtprc.startswith("# Managed by Salt (mail formula"), msmtprc[:200]
        assert "msmtp-mta" in owned["packages"], owned
    assert "installing" not in owned, owned
    again = node.apply()
    changed = {sid: s["changes"] for sid, s in again.items() if s["changes"] or s["result"] is not True}
    assert changed == {}, changed
    interrupted = node.status()["interrupted"]
    assert (interrupted["dpkg"], interrupted["apply"], interrupted["record"]) == (None, None, None), (
        interrupted
    )


def deliver_once(node: CrashNode, mode: str, subject: str) -> None:
    peer = getattr(node.peers, UPSTREAM_PEER[mode])
    mid = send(node.machine, message(NAME, subject=subject))
    assert peer.mailbox.wait_for_ids([mid], timeout=90), journal(node.machine)
    time.sleep(1)  # a duplicate would arrive right after
    assert node.peers.count(mid) == 1


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_one_apply_after_an_apply_killed_or_cut_off_converges_and_mail_arrives_once(crash_node, point):
    before, after, pattern, how = KILL_POINTS[point]
    node = crash_node
    if before is not None:
        node.converge(PILLARS[before]())
    node.set_pillar(PILLARS[after]())

    started = time.monotonic()
    applying = node.start_apply()
    matched, stopped = node.watch(pattern, how, applying)
    if how == "power":
        node.power_cut()
        applying.wait(60)
        node.machine.boot()
    else:
        applying.wait(60)
    left = node.machine.run(["ls", "-A", "/var/lib/dpkg/updates"]).stdout.split()
    marker = node.machine.run(["test", "-e", f"{STATE_DIR}/apply-in-progress"], check=False).returncode == 0
    status = node.status()

    states = node.apply()
    took = time.monotonic() - started
    dpkg_comments = [s["comment"] for s in states.values() if "dpkg" in (s.get("comment") or "")]
    assert_converged(node, after, states)
    deliver_once(node, after, f"after {point}")
    record(
        f"kill point {point}",
        f"matched `{matched[:90]}`, stopped [{stopped}], {'power cut' if how == 'power' else 'SIGKILL'};"
        f" dpkg journal left: {len(left)} file(s), apply marker left: {marker};"
        f" status said: {status['interrupted']['comment'][:160]};"
        f" one apply converged ({took:.0f} s in all){'; ' + dpkg_comments[0][:160] if dpkg_comments else ''}",
    )
    if left:
        assert status["interrupted"]["dpkg"] is not None, status["interrupted"]
        assert dpkg_comments, "the state that finished dpkg's run did not say so"
    if marker:
        assert status["interrupted"]["apply"] is not None, status["interrupted"]


def test_mail_accepted_by_postfix_right_before_a_power_cut_arrives_exactly_once_after_boot(crash_node):
    node = crash_node
    node.converge(relay_pillar())
    peer = node.peers.smarthost
    # The smarthost is down: the messages are still in Postfix's queue when the power goes.
    peer.stop()
    try:
        sent = [send(node.machine, message(NAME, subject=f"before the cut {n}")) for n in range(5)]
        queued = _queued_ids(node)
        node.power_cut()  # right after the last sendmail returned
    finally:
        peer.start()
    before = [node.peers.count(mid) for mid in sent]

    node.machine.boot()
    states = node.apply()

    assert_converged(node, RELAY, states)
    if not peer.mailbox.wait_for_ids(sent, timeout=30):
        node.machine.run(["postqueue", "-f"], check=False)
    assert peer.mailbox.wait_for_ids(sent, timeout=180), journal(node.machine)
    time.sleep(2)
    counts = [node.peers.count(mid) for mid in sent]
    record(
        "power cut right after 5 messages were accepted",
        f"{queued} in Postfix's queue at the cut (smarthost down), delivered before the cut {before},"
        f" after boot and one apply {counts} times each",
    )
    assert before == [0] * len(sent) and queued == len(sent)
    assert counts == [1] * len(sent)


def _queued_ids(node, wanted=5, timeout=30):
    """How many messages Postfix's queue holds, once the five are in it (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        out = node.machine.run(["postqueue", "-j"], check=False).stdout
        count = len([line for line in out.splitlines() if line.strip()])
        if count >= wanted or time.monotonic() > deadline:
            return count
        time.sleep(0.5)
