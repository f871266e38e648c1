"""
The mail metrics on a machine booted with systemd: on n1 (Debian 12, the
local Postfix relay), mail-metrics.timer is enabled and active and rewrites
the metrics file in node_exporter's textfile directory by itself, with what
Postfix logged to the journal; switched off, the timer and the file go.
The machine has no node_exporter: the textfile directory is just a directory.
"""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.fleet.conftest import assert_clean, journal, relay_pillar

TEXTFILE = "/var/lib/prometheus/node-exporter/mailstack.prom"
METRICS = {"enabled": True, "interval": 60}


def _samples(machine):
    text = machine.run(["cat", TEXTFILE]).stdout
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _last_run(machine):
    return _samples(machine)["mailstack_collector_last_run_timestamp_seconds"][()]


def test_the_metrics_timer_rewrites_the_file_by_itself_and_switching_off_removes_both(
    fleet, first_apply, fleet_peers
):
    machine = fleet.machines["n1"]
    fleet.set_pillar("n1", relay_pillar(metrics=METRICS))
    applied = fleet.salt("n1", "state.apply", "mail")
    assert_clean(applied, {"n1"})
    assert "mail-metrics-timer-running" in applied.changed("n1")
    for query in ("is-enabled", "is-active"):
        state = machine.run(["systemctl", query, "mail-metrics.timer"], check=False).stdout.strip()
        assert state in ("enabled", "active"), (query, state)

    written_by_apply = _last_run(machine)
    message = "To: root\nSubject: metrics on the fleet\nMessage-ID: <metrics.n1@fleet.test>\n\nhello\n"
    machine.run(["/usr/sbin/sendmail", "-t"], input=message)
    peer = fleet_peers.smarthost
    assert peer.mailbox.wait_for_ids(["metrics.n1@fleet.test"], timeout=60), journal(machine)
    delivered = time.time() + 1
    deadline = time.monotonic() + 150
    while _last_run(machine) <= max(written_by_apply, delivered):
        assert time.monotonic() < deadline, journal(machine, "mail-metrics.service")
        time.sleep(2)
    runs = machine.run(["journalctl", "-q", "-o", "cat", "-u", "mail-metrics.service"], check=False).stdout
    assert "mail-metrics.service: Deactivated successfully" in runs or "Finished" in runs, runs

    samples = _samples(machine)
    assert samples["mailstack_info"] == {(("mode", "relay"), ("sendmail", "postfix")): 1}
    assert samples["mailstack_collector_success"] == {(): 1}, samples
    assert samples["mailstack_collector_source_success"][(("source", "log"),)] == 1
    assert samples["mailstack_queue_messages"][(("queue", "deferred"),)] == 0
    # Postfix logged the delivery to the journal, which the timer's run read.
    assert samples["mailstack_last_delivery_success_timestamp_seconds"][()] >= written_by_apply - 1
    mode = machine.run(["stat", "-c", "%U %a", TEXTFILE]).stdout.split()
    assert mode == ["root", "644"]
    again = fleet.salt("n1", "state.apply", "mail")
    assert_clean(again, {"n1"})
    assert again.changed("n1") == {}

    fleet.set_pillar("n1", relay_pillar())
    switched = fleet.salt("n1", "state.apply", "mail")
    assert_clean(switched, {"n1"})
    assert (
        machine.run(["systemctl", "is-active", "mail-metrics.timer"], check=False).stdout.strip() != "active"
    )
    for path in (TEXTFILE, "/etc/systemd/system/mail-metrics.timer", "/usr/local/lib/mailstack/mail-metrics"):
        assert machine.run(["test", "-e", path], check=False).returncode == 1, path
