"""Operator functions, alerts and the health mail on a host where systemd does
not run: real Postfix and msmtp, SMTP peers on loopback."""

import json
import pathlib
import subprocess
import time

from tests.e2e.conftest import with_base

ADMIN = "ops@example.test"
HEALTH_SCRIPT = pathlib.Path("/usr/local/lib/mailstack/mail-health")
HEALTH_CRON = pathlib.Path("/etc/cron.d/mail-health")


def _apply(minion, **mail):
    minion.set_pillar(with_base(admin=ADMIN, **mail))
    result = minion.apply()
    assert result.returncode == 0, result.output
    return result


def _relay_to(peer, **mail):
    return {"relay": {"relayhost": "127.0.0.1", "port": peer.port, "tls": "none"}, **mail}


def _received_once(peer, message_id, timeout=30):
    bare = message_id.strip("<>")
    return peer.mailbox.wait_for(lambda _: peer.mailbox.count(bare) >= 1, timeout) and (
        peer.mailbox.count(bare) == 1
    )


def test_send_test_through_postfix_is_delivered_then_deferred_and_status_and_flush_follow_it(
    clean_machine, smtp_peer_factory
):
    sink = smtp_peer_factory(tls="none")
    _apply(clean_machine, **_relay_to(sink))

    sent = clean_machine.run("mailstack.send_test", "wait=30")
    assert sent.returncode == 0, sent.output
    assert sent.data["result"] == "delivered" and sent.data["detail"].startswith("250"), sent.data
    assert sent.data["to"] == ADMIN and sent.data["queue_id"]
    assert _received_once(sink, sent.data["message_id"])

    sink.stop()
    stuck = clean_machine.run("mailstack.send_test", "wait=10")
    assert stuck.returncode != 0
    assert stuck.data["result"] == "deferred", stuck.data
    assert "Connection refused" in stuck.data["detail"]

    status = clean_machine.run("mailstack.status")
    assert status.returncode == 0, status.output
    assert status.data["postfix"] == {"installed": True, "running": True, "enabled": None}
    assert status.data["queue"]["deferred"] == 1 and status.data["queue"]["total"] == 1
    assert "Connection refused" in status.data["queue"]["deferral_reasons"][0]["reason"]
    assert status.data["next_hop_answers"] is False

    sink.start()
    flushed = clean_machine.run("mailstack.flush", "wait=30")
    assert flushed.returncode == 0, flushed.output
    assert flushed.data["before"]["deferred"] == 1 and flushed.data["after"]["total"] == 0
    assert _received_once(sink, stuck.data["message_id"])


def test_send_test_through_msmtp_reports_the_servers_reply_or_fails_the_call(
    clean_machine, smtp_peer_factory
):
    relayhost = smtp_peer_factory(tls="none")
    _apply(clean_machine, container=True, **_relay_to(relayhost))

    sent = clean_machine.run("mailstack.send_test")
    assert sent.returncode == 0, sent.output
    assert sent.data["result"] == "delivered" and sent.data["detail"].startswith("250"), sent.data
    assert "msmtp" in sent.data["path"]
    assert _received_once(relayhost, sent.data["message_id"])

    relayhost.stop()
    failed = clean_machine.run("mailstack.send_test")
    assert failed.returncode != 0
    assert failed.data["result"] == "failed" and failed.data["detail"], failed.data


def test_without_systemd_alerts_change_nothing_and_the_health_mail_is_a_cron_entry(
    clean_machine, smtp_peer_factory
):
    sink = smtp_peer_factory(tls="none")
    pillar = _relay_to(sink, alerts={"units": ["cron.service"]}, health={"enabled": True})
    applied = _apply(clean_machine, **pillar)
    skipped = applied.states["mail-alerts-skipped"]
    assert "systemd does not run here" in skipped["comment"] and not skipped["changes"]
    assert not pathlib.Path("/etc/systemd/system/cron.service.d/50-mail-alert.conf").exists()
    assert f" root {HEALTH_SCRIPT}\n" in HEALTH_CRON.read_text()
    assert clean_machine.apply().changed == {}

    alive = subprocess.run([str(HEALTH_SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert alive.returncode == 0, alive.stderr
    assert sink.mailbox.wait_for(lambda messages: any(b"is alive" in m.data for m in messages), 30)
    health = clean_machine.run("mailstack.status", "check_next_hop=False").data["health"]
    assert health["result"] == "ok" and time.time() - health["time"] < 120

    cleaned = clean_machine.apply("mail.clean")
    assert cleaned.returncode == 0, cleaned.output
    assert not HEALTH_CRON.exists() and not HEALTH_SCRIPT.exists()


def test_a_health_mail_that_cannot_be_sent_is_retried_then_fails_and_status_says_so(
    clean_machine, smtp_peer_factory
):
    relayhost = smtp_peer_factory(tls="none")
    port = relayhost.port
    relayhost.stop()
    _apply(
        clean_machine,
        container=True,
        relay={"relayhost": "127.0.0.1", "port": port, "tls": "none"},
        health={"enabled": True, "retries": 1, "retry_delay": 1},
    )

    started = time.monotonic()
    run = subprocess.run([str(HEALTH_SCRIPT)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "health mail to ops@example.test failed" in run.stderr

    health = json.loads(clean_machine.run("mailstack.status", "check_next_hop=False").stdout)["local"][
        "health"
    ]
    # msmtp exits 75 (EX_TEMPFAIL) when it cannot connect: retried once, a second later.
    assert health["result"] == "failed", health
    assert health["detail"] == "sendmail exited 75 after 2 attempts"
    assert time.monotonic() - started >= 1
