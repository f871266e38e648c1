"""
``salt '*' state.apply mail`` from a real master to Debian 12 and 13 machines
booted with systemd (issue 7). The tests run in this order and share the
fleet: each starts from what the one before left.
"""

from __future__ import annotations

import json
import statistics
import time

from tests.fleet.conftest import (
    ADMIN,
    RECIPIENT,
    assert_clean,
    deliver_and_count,
    journal,
    mailu_direct_pillar,
    master_pid,
    message,
    record,
    relay_pillar,
    send,
    smtp_listeners,
    unit_state,
)

POSTFIX_NODES = ("n1", "n3")
# Where each node's mail must arrive.
UPSTREAM = {"n1": "smarthost", "n2": "mailu_direct", "n3": "mailu_queue", "n4": "smarthost"}
LOOPBACK_ONLY = {"127.0.0.1:25", "[::1]:25"}


# ------------------------------------------------- 1. one command, four nodes ---


def test_one_apply_from_the_master_sets_up_each_node_by_its_own_pillar(fleet, first_apply):
    assert first_apply.returncode == 0, first_apply
    assert_clean(first_apply, fleet.ids)

    plans = fleet.salt("*", "mailstack.plan").data
    decided = {minion: (p["mode"], p["container"], p["postfix"]) for minion, p in plans.items()}
    assert decided == {
        "n1": ("relay", False, True),
        "n2": ("mailu", False, False),
        "n3": ("mailu", False, True),
        "n4": ("relay", True, False),
    }
    # n4 was not told: the formula found the nspawn container by itself.
    assert "systemd-nspawn" in plans["n4"]["container_reason"], plans["n4"]["container_reason"]
    for minion, machine in fleet.machines.items():
        installed = machine.run(
            ["dpkg-query", "-W", "-f=${Package} ${Status}\\n", "postfix", "msmtp-mta"], check=False
        )
        has_postfix = "postfix install ok installed" in installed.stdout
        assert has_postfix is decided[minion][2], (minion, installed.stdout)


def test_mail_from_every_node_as_root_and_www_data_arrives_once_and_root_mail_reaches_admin(
    fleet, first_apply, fleet_peers
):
    sent = []
    for minion, machine in sorted(fleet.machines.items()):
        for user in (None, "www-data"):
            msg = message(minion, subject=f"sendmail -t as {user or 'root'}")
            sent.append((minion, send(machine, msg, user=user), RECIPIENT))
        to_root = message(minion, to="root", subject="to root")
        sent.append((minion, send(machine, to_root, recipients=["root"]), ADMIN))

    for minion, mid, _recipient in sent:
        peer = getattr(fleet_peers, UPSTREAM[minion])
        assert peer.mailbox.wait_for_ids([mid], timeout=90), (minion, journal(fleet.machines[minion]))
    time.sleep(2)
    for minion, mid, recipient in sent:
        assert fleet_peers.count(mid) == 1, (minion, mid)
        peer = getattr(fleet_peers, UPSTREAM[minion])
        (got,) = [m for m in peer.mailbox.messages() if m.message_id == mid]
        assert got.rcpt_tos == [recipient], (minion, got.rcpt_tos)
    record(
        "scenario 1 messages", f"{len(sent)} sent, {sum(fleet_peers.count(m) for _, m, _ in sent)} delivered"
    )


# ----------------------------------------------------- 2. idempotent fleet ---


def test_second_apply_over_the_fleet_changes_nothing_on_any_node(fleet, first_apply):
    again = fleet.salt("*", "state.apply", "mail")

    assert_clean(again, fleet.ids)
    assert {minion: again.changed(minion) for minion in fleet.ids} == {minion: {} for minion in fleet.ids}
    record("idempotent state.apply mail, 4 nodes", f"{again.seconds:.1f} s")


# ---------------------------------------------------------- 6. fleet figures ---


BENCH_RUNS = 7


def _timed_salt_call(machine, *args):
    started = time.monotonic()
    done = machine.run(["salt-call", "--out=json", *args], timeout=600)
    return time.monotonic() - started, json.loads(done.stdout)["local"]


def test_fleet_figures_idempotent_apply_against_a_one_nop_state_per_node(fleet, first_apply):
    """What bin/bench measures, per node: medians of alternating idempotent
    applies and one-test.nop runs, and their ratio (issue 15 wants <= 1.3)."""
    for minion, machine in sorted(fleet.machines.items()):
        applies, floors = [], []
        for _ in range(BENCH_RUNS):
            seconds, mail_states = _timed_salt_call(machine, "state.apply", "mail")
            assert {
                s["__id__"] for s in mail_states.values() if s["result"] is not True or s["changes"]
            } == set()
            applies.append(seconds)
            seconds, nop_states = _timed_salt_call(machine, "state.apply", "fleet_nop")
            assert [(s["result"], s["changes"]) for s in nop_states.values()] == [(True, {})]
            floors.append(seconds)
        assert len(mail_states) > 5, minion
        apply, floor = statistics.median(applies), statistics.median(floors)
        in_states = sum(s["duration"] for s in mail_states.values()) / 1000
        slowest = max(mail_states.values(), key=lambda s: s["duration"])
        record(
            f"{minion} ({machine.release}) salt-call",
            f"idempotent state.apply mail {apply:.2f} s against one test.nop {floor:.2f} s: ratio"
            f" {apply / floor:.2f} (medians of {BENCH_RUNS}; {len(mail_states)} states, {in_states:.2f} s in"
            f" states, slowest {slowest['__id__']} {slowest['duration']:.0f} ms)",
        )


def test_dry_run_before_a_pillar_change_predicts_exactly_what_the_apply_then_changes(fleet, first_apply):
    for minion in sorted(fleet.ids):
        fleet.set_pillar(minion, {**fleet.pillars[minion], "admin": "oncall@fleet.test"})

    predicted = fleet.salt("*", "state.apply", "mail", "test=True")
    applied = fleet.salt("*", "state.apply", "mail")

    assert_clean(predicted, fleet.ids)
    assert_clean(applied, fleet.ids)
    for minion in sorted(fleet.ids):
        assert predicted.predicted(minion), minion
        assert set(predicted.predicted(minion)) == set(applied.changed(minion)), minion
    for minion in sorted(fleet.ids):
        fleet.set_pillar(minion, {**fleet.pillars[minion], "admin": ADMIN})
    restored = fleet.salt("*", "state.apply", "mail")
    assert_clean(restored, fleet.ids)


# ------------------------------------------------- 3. systemd, not bypassed ---


def test_postfix_nodes_run_postfix_as_an_active_and_enabled_systemd_unit(fleet, first_apply):
    for minion in POSTFIX_NODES:
        machine = fleet.machines[minion]
        assert unit_state(machine) == ("active", "enabled"), minion
        assert unit_state(machine, "postfix@-")[0] == "active", minion
        # The master runs in the unit's cgroup: systemd started it, not `postfix start`.
        cgroup = machine.run(["cat", f"/proc/{master_pid(machine)}/cgroup"]).stdout
        assert "/system.slice/system-postfix.slice/postfix@-.service" in cgroup, (minion, cgroup)
        assert smtp_listeners(machine) <= LOOPBACK_ONLY, minion


def test_main_cf_change_reloads_postfix_whose_master_keeps_its_pid_and_uses_the_new_setting(
    fleet, first_apply, fleet_peers
):
    machine = fleet.machines["n1"]
    before = master_pid(machine)
    log = "/var/log/postfix-fleet.log"
    fleet.set_pillar("n1", relay_pillar(lookup={"postfix": {"maillog_file": log}}))

    predicted = fleet.salt("n1", "state.apply", "mail", "test=True")
    applied = fleet.salt("n1", "state.apply", "mail")

    assert_clean(applied, {"n1"})
    changed = applied.changed("n1")
    assert set(predicted.predicted("n1")) == set(changed)
    assert "mail-smtp-config-main-cf" in changed
    assert changed["mail-smtp-service-running"] == {"postfix": "reloaded"}
    assert master_pid(machine) == before
    assert unit_state(machine) == ("active", "enabled")
    got = deliver_and_count(fleet, fleet_peers, machine, message("n1", subject="after reload"), "smarthost")
    logged = machine.run(["cat", log], check=False).stdout
    assert got.message_id.split("@")[0] in logged or "status=sent" in logged, logged[-2000:]


def test_twenty_pillar_changes_in_a_row_each_reload_postfix_through_systemd(fleet, first_apply):
    # On this host's cgroup v1, systemd now and then fails the reload of Debian's
    # exited postfix.service at attaching to its cgroup: about one reload in ten.
    masters = {minion: master_pid(fleet.machines[minion]) for minion in POSTFIX_NODES}
    for change in range(20):
        for minion in sorted(fleet.ids):
            fleet.set_pillar(minion, {**fleet.pillars[minion], "admin": f"oncall{change}@fleet.test"})
        applied = fleet.salt("*", "state.apply", "mail")

        assert_clean(applied, fleet.ids)
        reloaded = {minion: applied.changed(minion)["mail-smtp-service-running"] for minion in POSTFIX_NODES}
        assert reloaded == {minion: {"postfix": "reloaded"} for minion in POSTFIX_NODES}, change
    assert {minion: master_pid(fleet.machines[minion]) for minion in POSTFIX_NODES} == masters
    for minion in sorted(fleet.ids):
        fleet.set_pillar(minion, {**fleet.pillars[minion], "admin": ADMIN})
    assert_clean(fleet.salt("*", "state.apply", "mail"), fleet.ids)


def test_inet_interfaces_change_restarts_postfix_under_systemd(fleet, first_apply):
    machine = fleet.machines["n1"]
    # Someone widened Postfix by hand and restarted it through systemd.
    machine.run(["postconf", "-e", "inet_interfaces = all"])
    machine.run(["systemctl", "restart", "postfix"])
    assert not smtp_listeners(machine) <= LOOPBACK_ONLY
    before = master_pid(machine)

    predicted = fleet.salt("n1", "state.apply", "mail", "test=True")
    applied = fleet.salt("n1", "state.apply", "mail")

    assert_clean(applied, {"n1"})
    changed = applied.changed("n1")
    assert set(predicted.predicted("n1")) == set(changed)
    assert changed["mail-smtp-service-running"]["postfix"].startswith("restarted"), changed
    assert master_pid(machine) != before
    assert smtp_listeners(machine) <= LOOPBACK_ONLY
    assert unit_state(machine) == ("active", "enabled")


def test_disabled_and_stopped_postfix_is_started_and_enabled_again_as_predicted(fleet, first_apply):
    machine = fleet.machines["n3"]
    machine.run(["systemctl", "disable", "--now", "postfix"])
    assert unit_state(machine) == ("inactive", "disabled")

    predicted = fleet.salt("n3", "state.apply", "mail", "test=True")
    applied = fleet.salt("n3", "state.apply", "mail")

    assert_clean(applied, {"n3"})
    expected = {
        "mail-smtp-service-running": {"postfix": "started"},
        "mail-smtp-service-enabled": {"enabled": "postfix"},
    }
    assert predicted.predicted("n3") == expected
    assert applied.changed("n3") == expected
    assert unit_state(machine) == ("active", "enabled")
    cgroup = machine.run(["cat", f"/proc/{master_pid(machine)}/cgroup"]).stdout
    assert "postfix@-.service" in cgroup


# ------------------------------------------------ 5. switching under systemd ---


def test_switching_relay_to_mailu_direct_and_back_stops_and_removes_postfix_through_systemd(
    fleet, first_apply, fleet_peers
):
    machine = fleet.machines["n1"]
    steps = [
        ("mailu direct", mailu_direct_pillar(), "mailu_direct", False),
        ("relay again", relay_pillar(), "smarthost", True),
    ]
    for name, pillar, peer, postfix in steps:
        fleet.set_pillar("n1", pillar)
        stop_jobs = _stop_jobs(machine)
        applied = fleet.salt("n1", "state.apply", "mail")
        assert_clean(applied, {"n1"})
        status = machine.run(["dpkg-query", "-W", "-f=${Status}", "postfix"], check=False).stdout
        if postfix:
            assert status.endswith("ok installed"), name
            assert unit_state(machine) == ("active", "enabled"), name
            assert smtp_listeners(machine) <= LOOPBACK_ONLY, name
        else:
            assert applied.changed("n1")["mail-smtp-service-dead"] == {"postfix": "stopped"}
            assert not status.endswith("ok installed"), (name, status)
            assert smtp_listeners(machine) == set(), name
            # systemd stopped it (a stop job ran) and finished: inactive, not failed.
            assert _stop_jobs(machine) > stop_jobs, journal(machine)
            assert unit_state(machine, "postfix@-")[0] == "inactive", name
        deliver_and_count(
            fleet, fleet_peers, machine, message("n1", subject=f"after switching to {name}"), peer
        )
        again = fleet.salt("n1", "state.apply", "mail")
        assert_clean(again, {"n1"})
        assert again.changed("n1") == {}, (name, again.changed("n1"))


def _stop_jobs(machine) -> int:
    """How often systemd has started stopping postfix@- so far."""
    log = machine.run(["journalctl", "-q", "-o", "cat", "-u", "postfix@-"], check=False).stdout
    return sum(line.startswith("Stopping postfix@-.service") for line in log.splitlines())


# --------------------------------------------------------------- 4. reboot ---


def test_mail_queued_across_a_reboot_arrives_once_when_mailu_returns(fleet, first_apply, fleet_peers):
    machine = fleet.machines["n3"]
    fleet_peers.mailu_queue.stop()
    msg = message("n3", subject="queued across a reboot")
    mid = send(machine, msg)
    deadline = time.monotonic() + 60
    while '"queue_id"' not in machine.run(["postqueue", "-j"]).stdout:
        assert time.monotonic() < deadline, journal(machine)
        time.sleep(1)

    machine.poweroff()
    assert not machine.running
    booted = machine.boot()
    fleet.wait_for_minions({"n3"}, time.monotonic() + 120)
    record("n3 boot after poweroff, to systemd running", f"{booted:.1f} s")

    assert unit_state(machine) == ("active", "enabled")
    assert '"queue_id"' in machine.run(["postqueue", "-j"]).stdout, (
        "the queued mail did not survive the reboot"
    )
    fleet_peers.mailu_queue.start()
    machine.run(["postqueue", "-f"])
    assert fleet_peers.mailu_queue.mailbox.wait_for_ids([mid], timeout=90), journal(machine)
    time.sleep(2)
    assert fleet_peers.count(mid) == 1
