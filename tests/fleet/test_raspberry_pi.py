"""
The README's "Masterless on a Raspberry Pi" recipe, run word for word inside
ARM machines booted with systemd under qemu-user emulation (issue 13):
``pi64`` is Raspberry Pi OS's 64-bit flavour (Debian 12 arm64), ``pi32`` its
32-bit one (Debian 12 armhf whose /etc/os-release says Raspbian).

Each machine clones this checkout (mounted read-only at UPSTREAM), copies
pillar.example to /srv/pillar and edits it, writes top.sls and runs
``sudo bin/apply``, which builds its virtualenv from the wheel index the host
serves (the machine reaches no registry). Mail is counted by Message-ID at
the fleet's SMTP peers on the host.
"""

from __future__ import annotations

import json
import pathlib
import re
import time

import pytest
import yaml

from tests.fleet.conftest import (
    HOST,
    MAILU_DIRECT,
    MAILU_QUEUED,
    UPSTREAM,
    deliver_and_count,
    journal,
    mailu_direct_pillar,
    message,
    pi_machine,
    record,
    relay_pillar,
    send,
    unit_state,
)
from tests.support.machines import REPO_ROOT

CHECKOUT = "/srv/formulas/mail"
PI_USER = "pi"
SALT_CALL = [f"{CHECKOUT}/.venv/bin/salt-call", "--local", "-c", f"{CHECKOUT}/.salt-local", "--out=json"]
HEALTH = {"enabled": True, "randomized_delay": 0}
# A Pi Zero 2 has 512 MB; the bound for salt-call (qemu's share included).
MEMORY_LIMIT_MB = 200
# systemd 252 cannot set up LoadCredential= under qemu-user: these fail with
# status 243 on every emulated boot, and on no real Pi.
FAILING_UNDER_EMULATION = {
    "systemd-sysctl.service",
    "systemd-sysusers.service",
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
}
# Peak resident memory of the processes a command starts (bin/apply and its
# salt-calls): the largest child waited for.
PEAK_RSS = """\
import resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.returncode, round(time.monotonic() - started, 1),
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
"""


def readme_recipe() -> list[str]:
    """The command lines of the README's Raspberry Pi section, as printed there."""
    section = (REPO_ROOT / "README.md").read_text().split("## Masterless on a Raspberry Pi\n", 1)[1]
    lines = []
    for line in section.split("\n## ", 1)[0].splitlines():
        if line.startswith("    "):
            lines.append(line[4:])
        elif lines:
            break
    return lines


def edit_pillar(machine, **mail) -> None:
    """What the user does at "# edit it": change keys of the copied pillar.example."""
    path = machine.root / "srv/pillar/mail.sls"
    pillar = yaml.safe_load(path.read_text())
    for key, value in mail.items():
        if isinstance(value, dict) and isinstance(pillar["mail"].get(key), dict):
            pillar["mail"][key].update(value)
        else:
            pillar["mail"][key] = value
    path.write_text(yaml.safe_dump(pillar))


def add_pi_user(machine) -> None:
    """Raspberry Pi OS's first user: a login with sudo and no password to type."""
    machine.run(["useradd", "--create-home", "--groups", "sudo", "--shell", "/bin/bash", PI_USER])
    machine.write(f"/etc/sudoers.d/010_{PI_USER}-nopasswd", f"{PI_USER} ALL=(ALL) NOPASSWD: ALL\n", 0o440)


def as_pi_user(machine, script, **kwargs):
    return machine.run(
        ["env", f"HOME=/home/{PI_USER}", "/bin/sh", "-c", f"set -e\ncd\n{script}"], user=PI_USER, **kwargs
    )


def run_recipe(machine, **mail):
    """The recipe as the Pi's user: up to the pillar edit, the edit, then ``sudo bin/apply``."""
    add_pi_user(machine)
    *setup, apply_line = readme_recipe()
    assert apply_line == "sudo bin/apply", readme_recipe()
    as_pi_user(machine, "\n".join(line.replace("<this repository>", UPSTREAM) for line in setup), timeout=300)
    edit_pillar(machine, **mail)
    started = time.monotonic()
    applied = as_pi_user(machine, f"cd {CHECKOUT}\n{apply_line}", check=False, timeout=1800)
    return applied, time.monotonic() - started


def measured(machine, *command):
    """Run ``command`` in ``machine``: (its output, seconds, peak RSS in MB)."""
    done = machine.run(["python3", "-c", PEAK_RSS, *command], check=False, timeout=1800)
    header, _, output = done.stdout.partition("\n")
    returncode, seconds, peak_kb = header.split()
    assert returncode == "0", (done.stdout[-3000:], done.stderr[-3000:])
    return output, float(seconds), int(peak_kb) / 1024


def state_results(output):
    states = {state["__id__"]: state for state in json.loads(output)["local"].values()}
    failed = {sid: state["comment"] for sid, state in states.items() if state["result"] is not True}
    assert failed == {}, failed
    return states


def bin_apply(machine, *args):
    """``sudo bin/apply --out=json``: (state results by ID, seconds, peak RSS in MB)."""
    output, seconds, peak_mb = measured(machine, "sudo", f"{CHECKOUT}/bin/apply", *args, "--out=json")
    return state_results(output), seconds, peak_mb


def salt_call(machine, *args):
    return json.loads(machine.run([*SALT_CALL, *args], timeout=600).stdout)["local"]


def no_state_failed(highstate_output: str) -> bool:
    """The summary salt-call prints: "Failed:" and, right-aligned, 0."""
    return re.search(r"^Failed:\s+0$", highstate_output, re.M) is not None


def changed(states):
    return {sid: state["changes"] for sid, state in states.items() if state["changes"]}


def failed_units(machine) -> set[str]:
    out = machine.run(["systemctl", "--failed", "--plain", "--no-legend"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def emulator_rss_mb(machine) -> float:
    """Peak RSS of an emulated ``python3 -c pass``: qemu's own share of every process."""
    return measured(machine, "python3", "-c", "pass")[2]


def record_idempotent_figures(name, machine):
    """An idempotent ``bin/apply``, then ``bin/bench``: times and peak memory.
    Returns the apply's state results and salt-call's peak RSS in MB."""
    states, seconds, _ = bin_apply(machine)
    record(f"{name} idempotent sudo bin/apply (saltutil.sync_all, then state.apply)", f"{seconds:.1f} s")
    bench = json.loads(measured(machine, "sudo", f"{CHECKOUT}/bin/bench", "--runs", "3")[0])
    record(
        f"{name} bin/bench --runs 3",
        f"idempotent apply {bench['idempotent apply median s']:.1f} s, one test.nop"
        f" {bench['one test.nop median s']:.1f} s, ratio {bench['ratio']:.2f}, {bench['states']} states",
    )
    peak_mb = bench["peak RSS of a salt-call MB"]
    qemu_mb = emulator_rss_mb(machine)
    record(
        f"{name} peak RSS of a salt-call (bin/bench)",
        f"{peak_mb} MB under qemu; an emulated `python3 -c pass` peaks at {qemu_mb:.0f} MB",
    )
    return states, peak_mb


def subjects(peer, subject):
    return [m for m in peer.mailbox.messages() if f"Subject: {subject}".encode() in m.data]


@pytest.fixture(scope="module")
def pi64(fleet_bridge, fleet_peers, test_ca):
    with pi_machine("pi64", fleet_bridge, test_ca) as machine:
        yield machine


@pytest.fixture(scope="module")
def pi32(fleet_bridge, fleet_peers, test_ca):
    with pi_machine("pi32", fleet_bridge, test_ca) as machine:
        yield machine


# ------------------------------------------------------------------ arm64 ---


def test_readme_recipe_on_arm64_builds_salt_from_the_hosts_wheels_and_relays_mail_through_postfix(
    pi64, fleet_peers
):
    assert pi64.run(["uname", "-m"]).stdout.strip() == "aarch64"
    assert failed_units(pi64) <= FAILING_UNDER_EMULATION, failed_units(pi64)

    applied, seconds = run_recipe(pi64, **relay_pillar(health=HEALTH))
    record("pi64 README recipe: first sudo bin/apply, virtualenv included", f"{seconds:.0f} s")
    assert applied.returncode == 0 and no_state_failed(applied.stdout), applied.stdout[-3000:]

    assert salt_call(pi64, "test.version") == "3008.4"
    grains = salt_call(pi64, "grains.item", "os", "os_family", "osarch")
    assert grains == {"os": "Debian", "os_family": "Debian", "osarch": "arm64"}
    assert unit_state(pi64) == ("active", "enabled")
    for user in (None, "www-data"):
        got = deliver_and_count(None, fleet_peers, pi64, message("pi64"), "smarthost", user=user)
        assert got.login == "relay-user"


def test_second_apply_on_arm64_changes_nothing_and_records_time_and_peak_memory(pi64):
    states, peak_mb = record_idempotent_figures("pi64", pi64)
    assert changed(states) == {}
    assert peak_mb < MEMORY_LIMIT_MB, "salt-call's peak grew: see the memory figures in docs/raspberry-pi.md"


def test_postfix_on_arm64_is_enabled_at_boot_and_keeps_its_queue_across_a_reboot(pi64, fleet_peers):
    fleet_peers.smarthost.stop()
    try:
        mid = send(pi64, message("pi64", subject="queued across a reboot"))
        deadline = time.monotonic() + 60
        while '"queue_id"' not in pi64.run(["postqueue", "-j"]).stdout:
            assert time.monotonic() < deadline, journal(pi64)
            time.sleep(1)
        pi64.poweroff()
        booted = pi64.boot(timeout=300)
        record("pi64 reboot to systemd up", f"{booted:.1f} s")
        assert unit_state(pi64) == ("active", "enabled")
        assert '"queue_id"' in pi64.run(["postqueue", "-j"]).stdout, "the queue did not survive the reboot"
    finally:
        fleet_peers.smarthost.start()
    pi64.run(["postqueue", "-f"])
    assert fleet_peers.smarthost.mailbox.wait_for_ids([mid], timeout=120), journal(pi64)
    time.sleep(2)
    assert fleet_peers.count(mid) == 1


def test_health_timer_on_arm64_mails_is_alive_and_status_and_send_test_report_mail_working(pi64, fleet_peers):
    assert pi64.run(["systemctl", "is-enabled", "mail-health.timer"], check=False).stdout.strip() == "enabled"
    pi64.run(["systemctl", "start", "mail-health.service"], timeout=300)
    peer = fleet_peers.smarthost
    assert peer.mailbox.wait_for(lambda _: subjects(peer, "pi64.fleet.test is alive"), timeout=120), journal(
        pi64, "mail-health"
    )

    status = salt_call(pi64, "mailstack.status")
    assert status["postfix"] == {"installed": True, "running": True, "enabled": True}, status
    assert status["health"]["result"] == "ok", status
    sent = salt_call(pi64, "mailstack.send_test")
    assert sent["result"] == "delivered", sent
    assert peer.mailbox.wait_for_ids([sent["message_id"].strip("<>")], timeout=60)


def test_mailu_queued_on_arm64_delivers_through_postfix_to_mailu(pi64, fleet_peers):
    edit_pillar(pi64, mode="auto", mailu=MAILU_QUEUED)
    states, _, _ = bin_apply(pi64)
    assert changed(states), "switching to Mailu queued changed nothing"
    assert unit_state(pi64) == ("active", "enabled")
    got = deliver_and_count(None, fleet_peers, pi64, message("pi64", subject="queued"), "mailu_queue")
    assert got.login == MAILU_QUEUED["user"]


def test_mailu_direct_on_arm64_delivers_with_msmtp_and_removes_postfix(pi64, fleet_peers):
    pillar = mailu_direct_pillar(health=HEALTH)
    edit_pillar(pi64, mode="auto", mailu=dict(MAILU_DIRECT, queue=False), senders=pillar["senders"])
    states, _, _ = bin_apply(pi64)
    assert changed(states)
    installed = pi64.run(["dpkg-query", "-W", "-f=${Status}", "postfix"], check=False).stdout
    assert "ok installed" not in installed
    assert pi64.run(["readlink", "-f", "/usr/sbin/sendmail"]).stdout.strip() == "/usr/bin/msmtp"
    for user in (None, "www-data"):
        msg = message("pi64", subject="direct")
        got = deliver_and_count(None, fleet_peers, pi64, msg, "mailu_direct", user=user)
        assert got.login == MAILU_DIRECT["user"]


# ------------------------------------------------------------------ armhf ---


def test_readme_recipe_on_armhf_raspberry_pi_os_relays_mail_and_a_second_apply_changes_nothing(
    pi32, fleet_peers
):
    assert pi32.run(["uname", "-m"]).stdout.strip() == "armv7l"
    assert failed_units(pi32) <= FAILING_UNDER_EMULATION, failed_units(pi32)

    applied, seconds = run_recipe(pi32, **relay_pillar())
    record("pi32 README recipe: first sudo bin/apply, virtualenv included", f"{seconds:.0f} s")
    assert applied.returncode == 0 and no_state_failed(applied.stdout), applied.stdout[-3000:]
    grains = salt_call(pi32, "grains.item", "os", "os_family", "osarch", "osfinger")
    assert grains == {"os": "Raspbian", "os_family": "Debian", "osarch": "armhf", "osfinger": "Raspbian-12"}
    assert unit_state(pi32) == ("active", "enabled")
    deliver_and_count(None, fleet_peers, pi32, message("pi32"), "smarthost", user="www-data")

    states, peak_mb = record_idempotent_figures("pi32", pi32)
    assert changed(states) == {}
    assert peak_mb < MEMORY_LIMIT_MB, "salt-call's peak grew: see the memory figures in docs/raspberry-pi.md"


def test_the_wheel_index_is_the_machines_only_package_source(pi32):
    """The recipe ran with the registries out of reach: the machine has no route beyond the host."""
    routes = pi32.run(["ip", "route"]).stdout
    assert "default" not in routes, routes
    assert pi32.run(["cat", "/etc/pip.conf"]).stdout.count(HOST) == 2
    assert pathlib.Path(pi32.root, "srv/formulas/mail/.venv/bin/salt-call").exists()
