"""
Alerts, the health mail, the operator functions and the beacon (issue 8) on
the systemd machines, against the SMTP peers on the host. Runs after
test_fleet.py, on the fleet it leaves: n1 relays through its Postfix to the
STARTTLS smarthost, n2 submits to the Mailu stand-in with msmtp.
"""

from __future__ import annotations

import email.parser
import json
import time

from tests.fleet.conftest import ADMIN, assert_clean, journal, mailu_direct_pillar, relay_pillar

FAILING_UNIT = "fleet-fails.service"
FAILING_UNIT_FILE = "[Unit]\nDescription=A unit that fails\n\n[Service]\nType=oneshot\nExecStart=/bin/false\n"
DROPIN = f"/etc/systemd/system/{FAILING_UNIT}.d/50-mail-alert.conf"
ALERTS = {"units": [FAILING_UNIT], "interval": 300}
HEALTH = {"enabled": True, "randomized_delay": 0}


def _apply(fleet, minion):
    applied = fleet.salt(minion, "state.apply", "mail")
    assert_clean(applied, {minion})
    return applied


def _subjects(peer, subject):
    """The messages ``peer`` received with this Subject."""
    parse = email.parser.BytesHeaderParser().parsebytes
    return [m for m in peer.mailbox.messages() if parse(m.data)["Subject"] == subject]


def _fail(machine):
    machine.run(["systemctl", "start", FAILING_UNIT], check=False)


def _wait_for_alert_runs(machine, runs, timeout=60):
    """Until mail-alert@ for the failing unit has finished ``runs`` times."""
    unit = f"mail-alert@{FAILING_UNIT}.service"
    deadline = time.monotonic() + timeout
    while True:
        log = machine.run(["journalctl", "-q", "-o", "cat", "-u", unit], check=False).stdout
        finished = log.count(f"alert for {FAILING_UNIT} sent") + log.count(f"no alert for {FAILING_UNIT}")
        if finished >= runs:
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.5)


def test_a_failing_unit_mails_one_alert_naming_unit_and_host_and_no_second_within_the_interval(
    fleet, first_apply, fleet_peers
):
    expected = {"n1": fleet_peers.smarthost, "n2": fleet_peers.mailu_direct}
    fleet.set_pillar("n1", relay_pillar(alerts=ALERTS, health=HEALTH))
    fleet.set_pillar("n2", mailu_direct_pillar(alerts=ALERTS))
    for minion, machine in fleet.machines.items():
        if minion in expected:
            machine.write(f"/etc/systemd/system/{FAILING_UNIT}", FAILING_UNIT_FILE)
            machine.run(["systemctl", "daemon-reload"])
    for minion in expected:
        applied = _apply(fleet, minion)
        assert f"mail-alerts-dropin-{FAILING_UNIT}" in applied.changed(minion)
        assert fleet.machines[minion].run(["systemctl", "show", "-p", "OnFailure", FAILING_UNIT]).stdout == (
            f"OnFailure=mail-alert@{FAILING_UNIT}.service\n"
        )

    for minion, peer in expected.items():
        machine = fleet.machines[minion]
        subject = f"[{minion}.fleet.test] {FAILING_UNIT} failed"
        _fail(machine)
        arrived = peer.mailbox.wait_for(lambda _, p=peer, s=subject: _subjects(p, s), timeout=90)
        assert arrived, journal(machine, f"mail-alert@{FAILING_UNIT}.service")
        (alert,) = _subjects(peer, subject)
        assert alert.rcpt_tos == [ADMIN]
        assert b"Last journal lines" in alert.data and b"/bin/false" in alert.data

        _fail(machine)
        log = _wait_for_alert_runs(machine, runs=2)
        assert f"no alert for {FAILING_UNIT}" in log
        time.sleep(2)
        assert len(_subjects(peer, subject)) == 1, (minion, log)


def test_a_second_apply_changes_nothing_and_removing_the_unit_from_the_list_removes_its_dropin(
    fleet, first_apply
):
    machine = fleet.machines["n2"]
    assert _apply(fleet, "n2").changed("n2") == {}

    fleet.set_pillar("n2", mailu_direct_pillar(alerts={"units": []}))
    predicted = fleet.salt("n2", "state.apply", "mail", "test=True").predicted("n2")
    applied = _apply(fleet, "n2").changed("n2")
    assert set(predicted) == set(applied)
    assert f"mail-alerts-stale-dropin-{DROPIN}" in applied
    assert machine.run(["test", "-e", DROPIN], check=False).returncode == 1
    assert machine.run(["systemctl", "show", "-p", "OnFailure", FAILING_UNIT]).stdout == "OnFailure=\n"


def test_the_health_timer_is_enabled_and_its_service_started_by_hand_delivers_is_alive(
    fleet, first_apply, fleet_peers
):
    machine = fleet.machines["n1"]
    assert (
        machine.run(["systemctl", "is-enabled", "mail-health.timer"], check=False).stdout.strip() == "enabled"
    )
    assert (
        machine.run(["systemctl", "is-active", "mail-health.timer"], check=False).stdout.strip() == "active"
    )

    machine.run(["systemctl", "start", "mail-health.service"], timeout=120)

    subject = "n1.fleet.test is alive"
    peer = fleet_peers.smarthost
    assert peer.mailbox.wait_for(lambda _: _subjects(peer, subject), timeout=90), journal(
        machine, "mail-health"
    )
    status = fleet.salt("n1", "mailstack.status").data["n1"]
    assert status["health"]["result"] == "ok", status


def test_send_test_is_delivered_then_deferred_when_upstream_stops_and_status_counts_it(
    fleet, first_apply, fleet_peers
):
    sent = fleet.salt("n1", "mailstack.send_test").data["n1"]
    assert sent["result"] == "delivered" and sent["detail"].startswith("250"), sent
    assert fleet_peers.smarthost.mailbox.wait_for_ids([sent["message_id"].strip("<>")], timeout=30)

    fleet_peers.smarthost.stop()
    stuck = fleet.salt("n1", "mailstack.send_test", "wait=15").data["n1"]
    assert stuck["result"] == "deferred" and "Connection refused" in stuck["detail"], stuck

    status = fleet.salt("n1", "mailstack.status").data["n1"]
    assert status["postfix"] == {"installed": True, "running": True, "enabled": True}
    assert status["queue"]["deferred"] >= 1, status
    assert "Connection refused" in status["queue"]["deferral_reasons"][0]["reason"]
    assert status["next_hop_answers"] is False


def test_with_upstream_down_the_beacon_fires_and_the_master_receives_the_event(
    fleet, first_apply, fleet_peers
):
    listener = fleet.master.listen("salt/beacon/n1/mailstack/deferred")
    try:
        added = fleet.salt("n1", "beacons.add", "mailstack", "[{interval: 2}, {deferred: 0}]")
        assert added.data["n1"]["result"] is True, added
        out, err = listener.communicate(timeout=120)
    finally:
        listener.kill()
        fleet.salt("n1", "beacons.delete", "mailstack")
    # state.event prints "<tag>\t<data>" per event, then the runner's return.
    tag, data = out.splitlines()[0].split("\t", 1)
    event = json.loads(data)
    assert tag == "salt/beacon/n1/mailstack/deferred", (out, err)
    assert event["id"] == "n1" and event["queue"]["deferred"] >= 1
    assert "deferred messages" in event["problem"]


def test_flush_after_upstream_returns_delivers_the_deferred_mail_once(fleet, first_apply, fleet_peers):
    fleet_peers.smarthost.start()
    flushed = fleet.salt("n1", "mailstack.flush", "wait=60").data["n1"]
    assert flushed["before"]["deferred"] >= 1 and flushed["after"]["total"] == 0, flushed


def test_mail_clean_removes_the_alerts_and_the_health_timer_through_systemd(fleet, first_apply):
    machine = fleet.machines["n1"]
    cleaned = fleet.salt("n1", "state.apply", "mail.clean")
    assert_clean(cleaned, {"n1"})

    for path in (
        DROPIN,
        "/etc/systemd/system/mail-alert@.service",
        "/etc/systemd/system/mail-health.timer",
        "/usr/local/lib/mailstack",
    ):
        assert machine.run(["test", "-e", path], check=False).returncode == 1, path
    assert (
        machine.run(["systemctl", "is-active", "mail-health.timer"], check=False).stdout.strip() != "active"
    )
    assert machine.run(["systemctl", "show", "-p", "OnFailure", FAILING_UNIT]).stdout == "OnFailure=\n"
    installed = machine.run(["dpkg-query", "-W", "-f=${Status}", "postfix"], check=False).stdout
    assert "ok installed" not in installed
