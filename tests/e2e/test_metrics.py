"""The mail metrics for Prometheus, for real: the formula applied on this host,
Debian's prometheus-node-exporter reading the metrics file with its textfile
collector on a loopback port, its /metrics scraped over HTTP and read with the
Prometheus client's parser; promtool checks the example alerting rules."""

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import with_base
from tests.support import mailhost

REPO = pathlib.Path(__file__).resolve().parents[2]
ADMIN = "ops@example.test"
LOGIN = "alerts@example.test"
TOKEN = "metrics-e2e-token"
# node_exporter, promtool, and GNU time to measure one refresh.
PACKAGES = ("prometheus-node-exporter", "prometheus", "time")
TEXTFILE_DIR = pathlib.Path("/var/lib/prometheus/node-exporter")
TEXTFILE = TEXTFILE_DIR / "mailstack.prom"
COLLECTOR = pathlib.Path("/usr/local/lib/mailstack/mail-metrics")
CRON = pathlib.Path("/etc/cron.d/mail-metrics")
HEALTH_SCRIPT = pathlib.Path("/usr/local/lib/mailstack/mail-health")
MSMTP_LOG = pathlib.Path("/var/log/mailstack-metrics-e2e.log")
# Root trusts a CA file only in a directory root alone may change.
CA_DIR = pathlib.Path("/var/lib/mailstack-metrics-e2e")


@pytest.fixture(scope="module")
def prometheus_packages():
    """Debian's node_exporter and promtool, installed with apt where missing."""
    missing = [name for name in PACKAGES if not mailhost.package_installed(name)]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True, timeout=600)
        installed = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NodeExporter:
    """prometheus-node-exporter on loopback with only its textfile collector."""

    def __init__(self):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                "/usr/bin/prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={TEXTFILE_DIR}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.scrape_text()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"node_exporter did not answer: {self.process.stderr.read().decode()[-2000:]}")

    def scrape_text(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            return response.read().decode()

    def scrape(self):
        """``{sample name: {labels: value}}`` of the mail metrics and the textfile collector's error."""
        samples = {}
        for family in text_string_to_metric_families(self.scrape_text()):
            for sample in family.samples:
                if sample.name.startswith("mailstack_") or sample.name == "node_textfile_scrape_error":
                    samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        assert samples.get("node_textfile_scrape_error") == {(): 0.0}, samples
        return samples

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def root_ca_file(test_ca):
    CA_DIR.mkdir(mode=0o755, exist_ok=True)
    ca_file = CA_DIR / "ca.pem"
    ca_file.write_bytes(test_ca.ca_file.read_bytes())
    yield ca_file
    ca_file.unlink()
    CA_DIR.rmdir()


@pytest.fixture
def node_exporter(prometheus_packages):
    exporter = NodeExporter()
    yield exporter
    exporter.stop()


def _apply(minion, pillar):
    minion.set_pillar(pillar)
    first = minion.apply()
    assert first.returncode == 0, first.output
    again = minion.apply()
    assert again.returncode == 0 and again.changed == {}, again.changed
    return first


def _refresh():
    """One refresh, as the timer or cron runs it."""
    run = subprocess.run([str(COLLECTOR)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr


@contextlib.contextmanager
def _postqueue_replaced_by(script):
    """Postfix's postqueue swapped for a shell script while the block runs (a queue that cannot be read)."""
    real = pathlib.Path("/usr/sbin/postqueue")
    aside = real.with_name("postqueue.metrics-e2e")
    real.rename(aside)
    try:
        real.write_text(f"#!/bin/sh\n{script}\n")
        real.chmod(0o755)
        yield
    finally:
        real.unlink(missing_ok=True)
        aside.rename(real)


def _value(samples, name, **labels):
    return samples[name][tuple(sorted(labels.items()))]


def _wait_for_queue(queue, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, check=False).stdout
        queues = [json.loads(line)["queue_name"] for line in listed.splitlines() if line.strip()]
        if queues.count(queue) == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"postqueue never showed {count} message(s) in {queue}: {listed}")


def test_promtool_accepts_the_example_alerting_rules_and_each_alert_fires_as_its_test_says(
    prometheus_packages,
):
    examples = REPO / "examples"
    checked = subprocess.run(
        ["promtool", "check", "rules", "mailstack-rules.yml"], cwd=examples, capture_output=True, text=True
    )
    assert checked.returncode == 0 and "SUCCESS: 6 rules found" in checked.stdout, (
        checked.stdout + checked.stderr
    )
    tested = subprocess.run(
        ["promtool", "test", "rules", "mailstack-rules.test.yml"],
        cwd=examples,
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_relay_metrics_scraped_from_node_exporter_follow_a_delivery_a_deferral_and_a_stopped_queue(
    clean_machine, smtp_peer_factory, node_exporter
):
    sink = smtp_peer_factory(tls="none")
    relay = {"relayhost": "127.0.0.1", "port": sink.port, "tls": "none"}
    applied = _apply(clean_machine, with_base(admin=ADMIN, relay=relay, metrics={"enabled": True}))
    assert "mail-metrics-refreshed" in str(applied.changed), applied.changed
    assert f"* * * * * root {COLLECTOR}\n" in CRON.read_text()
    info = TEXTFILE.stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (0, "0o644")

    samples = node_exporter.scrape()
    assert _value(samples, "mailstack_info", mode="relay", sendmail="postfix") == 1
    assert _value(samples, "mailstack_collector_success") == 1
    assert {_value(samples, "mailstack_queue_messages", queue=q) for q in ("active", "deferred", "hold")} == {
        0
    }

    before = time.time()
    sent = mailhost.message(ADMIN, subject="metrics delivered")
    assert mailhost.send(mailhost.SENDMAIL, sent).returncode == 0
    assert sink.mailbox.wait_for_ids([mailhost.message_id(sent)], 30)
    _wait_for_queue("active", 0)
    time.sleep(1)
    _refresh()
    samples = node_exporter.scrape()
    delivered_at = _value(samples, "mailstack_last_delivery_success_timestamp_seconds")
    assert before - 1 <= delivered_at <= time.time(), (before, delivered_at)

    sink.stop()
    stuck = mailhost.message(ADMIN, subject="metrics deferred")
    assert mailhost.send(mailhost.SENDMAIL, stuck).returncode == 0
    _wait_for_queue("deferred", 1)
    _refresh()
    samples = node_exporter.scrape()
    assert _value(samples, "mailstack_queue_messages", queue="deferred") == 1
    assert _value(samples, "mailstack_last_delivery_failure_timestamp_seconds") >= delivered_at >= before - 1
    first_age = _value(samples, "mailstack_queue_oldest_message_age_seconds")
    time.sleep(3)
    _refresh()
    samples = node_exporter.scrape()
    assert _value(samples, "mailstack_queue_oldest_message_age_seconds") >= first_age + 2
    assert _value(samples, "mailstack_collector_success") == 1

    for fake in ("echo 'postqueue: fatal: Queue report unavailable' >&2; exit 75", "echo 'not a queue'"):
        with _postqueue_replaced_by(fake):
            _refresh()
        samples = node_exporter.scrape()
        assert _value(samples, "mailstack_collector_success") == 0, fake
        assert _value(samples, "mailstack_collector_source_success", source="queue") == 0, fake
        assert "mailstack_queue_messages" not in samples, "an unreadable queue must not read as an empty one"
    _refresh()
    assert _value(node_exporter.scrape(), "mailstack_collector_success") == 1
    assert ADMIN not in node_exporter.scrape_text()

    off = clean_machine
    off.set_pillar(with_base(admin=ADMIN, relay=relay, metrics={"enabled": False}))
    switched = off.apply()
    assert switched.returncode == 0, switched.output
    assert not TEXTFILE.exists() and not COLLECTOR.exists() and not CRON.exists()
    assert off.apply().changed == {}
    assert TEXTFILE_DIR.is_dir(), "node_exporter's directory stays"


def test_msmtp_metrics_show_deliveries_from_its_log_and_a_failed_health_mail_and_clean_removes_them(
    clean_machine, smtp_peer_factory, root_ca_file, node_exporter
):
    mailu = smtp_peer_factory(tls="implicit", users={LOGIN: TOKEN}, sender_must_match_login=True)
    pillar = with_base(
        admin=ADMIN,
        msmtp={"logfile": str(MSMTP_LOG)},
        mailu={
            "host": "localhost",
            "port": mailu.port,
            "user": LOGIN,
            "password": TOKEN,
            "ca_file": str(root_ca_file),
        },
        health={"enabled": True, "retries": 0},
        metrics={"enabled": True, "interval": 120},
    )
    _apply(clean_machine, pillar)
    assert f"*/2 * * * * root {COLLECTOR}\n" in CRON.read_text()

    sent = mailhost.message(ADMIN, subject="metrics through msmtp")
    assert mailhost.send(mailhost.SENDMAIL, sent).returncode == 0
    time.sleep(1)
    _refresh()
    samples = node_exporter.scrape()
    assert _value(samples, "mailstack_info", mode="mailu", sendmail="msmtp") == 1
    assert (
        "mailstack_queue_messages" not in samples
        and "mailstack_queue_oldest_message_age_seconds" not in samples
    )
    delivered_at = _value(samples, "mailstack_last_delivery_success_timestamp_seconds")
    assert time.time() - 120 <= delivered_at <= time.time()

    mailu.stop()
    health = subprocess.run([str(HEALTH_SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert health.returncode == 1, health.stdout + health.stderr
    _refresh()
    samples = node_exporter.scrape()
    assert _value(samples, "mailstack_health_last_run_success") == 0
    assert time.time() - 120 <= _value(samples, "mailstack_health_last_run_timestamp_seconds") <= time.time()
    assert _value(samples, "mailstack_last_delivery_failure_timestamp_seconds") >= delivered_at
    assert _value(samples, "mailstack_collector_success") == 1
    text = node_exporter.scrape_text()
    assert TOKEN not in text and LOGIN not in text and ADMIN not in text

    cleaned = clean_machine.apply("mail.clean")
    assert cleaned.returncode == 0, cleaned.output
    assert not TEXTFILE.exists() and not COLLECTOR.exists() and not CRON.exists()
    assert not pathlib.Path("/var/lib/mailstack/metrics.json").exists()


def _cost(command):
    """CPU seconds (user + system) and peak RSS in MB of ``command`` and what it runs, measured by
    GNU time: a child of this (large) process would carry its peak RSS across exec."""
    timed = subprocess.run(
        ["/usr/bin/time", "-f", "%U %S %M", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert timed.returncode == 0, timed.stderr
    user, system, peak_kb = timed.stderr.strip().splitlines()[-1].split()
    return float(user) + float(system), int(peak_kb) / 1024


def test_one_refresh_costs_a_small_fraction_of_a_salt_call(
    clean_machine, smtp_peer_factory, prometheus_packages
):
    sink = smtp_peer_factory(tls="none")
    relay = {"relayhost": "127.0.0.1", "port": sink.port, "tls": "none"}
    _apply(clean_machine, with_base(relay=relay, metrics={"enabled": True}))
    refreshes = [_cost([str(COLLECTOR)]) for _ in range(5)]
    salt_calls = [
        _cost([str(clean_machine.salt_call), "--local", "-c", str(clean_machine.directory), "test.true"])
        for _ in range(3)
    ]
    refresh_cpu = sorted(cpu for cpu, _ in refreshes)[2]
    refresh_rss = max(rss for _, rss in refreshes)
    salt_cpu = sorted(cpu for cpu, _ in salt_calls)[1]
    salt_rss = max(rss for _, rss in salt_calls)
    print(
        f"one refresh: {refresh_cpu * 1000:.0f} ms CPU, {refresh_rss:.1f} MB peak RSS;"
        f" salt-call test.true: {salt_cpu * 1000:.0f} ms CPU, {salt_rss:.1f} MB peak RSS"
    )
    assert refresh_cpu * 5 < salt_cpu, (refreshes, salt_calls)
    assert refresh_rss * 3 < salt_rss, (refreshes, salt_calls)
