"""
The Salt fleets run (issue 14): n1 is a Debian 12 minion on Salt 3006 LTS under
the 3008 master, next to 3008 minions; test_fleet.py and test_operations.py
have configured it from the master, delivered its mail, fired its beacon on
the master's bus. Here, last, it is upgraded in place to 3008 (the minion's
Salt replaced from the wheelhouse its image holds, the formula unchanged): the
next apply changes nothing and mail still flows.
"""

from __future__ import annotations

import time

from tests.fleet.conftest import assert_clean, deliver_and_count, message, relay_pillar
from tests.support.machines import SALT_VENV, UPGRADE_DIR


def _versions(fleet):
    return {minion: str(version) for minion, version in fleet.salt("*", "test.version").data.items()}


def _restart_minion(machine):
    """Stop the old minion with every process it left (its unit kills only the
    main one), then start the new one."""
    machine.run(["systemctl", "stop", "salt-minion"])
    machine.run(["pkill", "-KILL", "-f", f"{SALT_VENV}/bin/salt-minion"], check=False)
    machine.run(["systemctl", "start", "salt-minion"])


def _wait_until_it_answers(fleet, machine, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        pinged = fleet.salt(machine.name, "test.ping", timeout=15)
        if (pinged.data or {}).get(machine.name) is True:
            return
        journal = machine.run(["journalctl", "-q", "-n", "30", "-u", "salt-minion"], check=False).stdout
        assert time.monotonic() < deadline, (pinged, journal)
        time.sleep(2)


def test_the_fleet_mixes_salt_3006_and_3008_minions_under_one_3008_master(fleet, first_apply):
    versions = _versions(fleet)

    assert versions["n1"].startswith("3006."), versions
    assert all(v.startswith("3008.") for minion, v in versions.items() if minion != "n1"), versions


def test_a_3006_node_upgraded_in_place_to_3008_changes_nothing_and_still_delivers(
    fleet, first_apply, fleet_peers
):
    machine = fleet.machines["n1"]
    fleet.set_pillar("n1", relay_pillar())
    configured = fleet.salt("n1", "state.apply", "mail")
    assert_clean(configured, {"n1"})
    deliver_and_count(fleet, fleet_peers, machine, message("n1", subject="on 3006"), "smarthost")

    upgraded = machine.run(
        [
            f"{SALT_VENV}/bin/pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            UPGRADE_DIR,
            "-c",
            f"{UPGRADE_DIR}/constraints.txt",
            "salt",
        ],
        timeout=600,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    _restart_minion(machine)
    _wait_until_it_answers(fleet, machine)
    assert _versions(fleet)["n1"].startswith("3008."), _versions(fleet)

    synced = fleet.salt("n1", "saltutil.sync_all")
    assert synced.returncode == 0 and set(synced.data) == {"n1"}, synced
    again = fleet.salt("n1", "state.apply", "mail")
    assert_clean(again, {"n1"})
    assert again.changed("n1") == {}
    deliver_and_count(fleet, fleet_peers, machine, message("n1", subject="on 3008"), "smarthost")
