"""Unit tests for the operator functions of ``_modules/mailstack.py``:
``status``, ``send_test`` and ``flush``.

``cmd.run_all`` is answered by a small model of a node (Postfix's queue and
log, msmtp's log line on standard output), so each test proves what the
functions conclude from what Postfix and msmtp report.
"""

from __future__ import annotations

import json
import time

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.mailstack_unit import SECRET
from tests.support.unit_node import REFUSED, SENT


def _queued(queue_name, age, reason=None):
    recipient = {"address": "ops@example.org"}
    if reason:
        recipient["delay_reason"] = reason
    return {
        "queue_name": queue_name,
        "queue_id": "A1",
        "arrival_time": 1_700_000_000 - age,
        "recipients": [recipient],
    }


# ------------------------------------------------------------------ status ---


def test_status_shows_mode_postfix_the_queue_and_whether_the_next_hop_answers(operator, node, monkeypatch):
    node.queue = [_queued("deferred", 600, REFUSED), _queued("deferred", 60, REFUSED), _queued("active", 5)]
    module = operator({"relay": {"relayhost": "127.0.0.1", "port": 2525, "tls": "none"}})
    # The module's time is the process's: patched for this test only (later tests compare real times).
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000)

    status = module.status()

    assert status["mode"] == "relay" and status["sendmail"] == "postfix"
    assert status["postfix"] == {"installed": True, "running": True, "enabled": None}
    assert status["queue"] == {
        "total": 3,
        "active": 1,
        "deferred": 2,
        "hold": 0,
        "oldest_age": 600,
        "deferral_reasons": [{"reason": REFUSED, "count": 2}],
    }
    assert status["next_hop"] == "127.0.0.1:2525 (TLS: none)" and status["next_hop_answers"] is True


def test_status_says_whether_postfix_is_enabled_where_systemd_runs(operator, node, tmp_path):
    module = operator()
    (tmp_path / "root" / "run" / "systemd" / "system").mkdir(parents=True)
    node.enabled = False
    assert module.status()["postfix"] == {"installed": True, "running": True, "enabled": False}


def test_status_of_a_node_without_postfix_has_no_queue(operator, node):
    node.installed = False
    status = operator(
        {"mailu": {"host": "mail.example.org", "user": "alice@example.org", "password": SECRET}}
    ).status()
    assert status["sendmail"] == "msmtp"
    assert status["postfix"] == {"installed": False, "running": False, "enabled": None}
    assert status["queue"] is None
    assert SECRET not in json.dumps(status)


def test_status_reports_a_next_hop_that_does_not_answer(operator, monkeypatch):
    module = operator({"relay": {"relayhost": "127.0.0.1", "port": 2525, "tls": "none"}})

    def refused(*args):
        raise ConnectionRefusedError("Connection refused")

    monkeypatch.setattr(module, "_probe_once", refused)
    status = module.status()
    assert status["next_hop_answers"] is False and "Connection refused" in status["next_hop_comment"]


def test_status_names_the_line_postqueue_printed_that_is_not_json(operator, node):
    module = operator()
    node.run_all_original = node.run_all
    node.queue = []
    module.__salt__["cmd.run_all"] = lambda cmd, **kw: (
        node._out(stdout="not json\n") if cmd == ["postqueue", "-j"] else node.run_all_original(cmd, **kw)
    )
    status = module.status()

    # The rest of the status still shows (a half-installed Postfix has no readable queue).
    assert "line 1" in status["queue"]["error"] and status["mode"] == "relay"


# --------------------------------------------------------------- send_test ---


def test_send_test_through_postfix_reports_delivered_with_the_remote_reply(operator, node):
    module = operator()
    result = module.send_test(wait=5)

    assert result["result"] == "delivered" and result["detail"] == SENT
    assert result["to"] == "ops@example.org" and result["queue_id"] == "7F3E0"
    assert result["message_id"].startswith("<") and result["message_id"] in node.stdin[0]
    assert "Postfix" in result["path"]
    assert "retcode" not in module.__context__


def test_send_test_gives_every_message_its_own_message_id(operator):
    module = operator()
    assert module.send_test(wait=1)["message_id"] != module.send_test(wait=1)["message_id"]


def test_send_test_reports_deferred_with_the_reason_and_fails_the_call(operator, node):
    node.postfix_outcome = "deferred"
    module = operator()
    result = module.send_test(to="someone@example.net", wait=0.2)

    assert result["result"] == "deferred" and result["detail"] == REFUSED
    assert result["to"] == "someone@example.net"
    assert module.__context__["retcode"] == 1


def test_send_test_reports_queued_when_postfix_has_not_tried_yet(operator, node):
    node.postfix_outcome = "none"
    module = operator()
    result = module.send_test(wait=0)
    assert result["result"] == "queued" and result["queue_id"] == "7F3E0"
    assert module.__context__["retcode"] == 1


def test_send_test_through_msmtp_reports_the_servers_reply_and_hides_the_password(operator, node):
    module = operator(
        {"mailu": {"host": "mail.example.org", "user": "alice@example.org", "password": SECRET}}
    )
    result = module.send_test()

    assert result["result"] == "delivered" and result["detail"] == SENT
    assert result["queue_id"] is None and "msmtp" in result["path"]
    assert ["/usr/sbin/sendmail", "--logfile=-", "-i", "--", "ops@example.org"] in node.commands
    assert "From: alice@example.org" in node.stdin[0]
    assert SECRET not in json.dumps(result)


def test_send_test_through_msmtp_reports_a_failure_with_msmtps_reason(operator, node):
    node.msmtp_exit = 75
    module = operator(
        {"mailu": {"host": "mail.example.org", "user": "alice@example.org", "password": SECRET}}
    )
    result = module.send_test()
    assert result["result"] == "failed" and "empty reply" in result["detail"]
    assert module.__context__["retcode"] == 1


@pytest.mark.parametrize("to", ["ops@example.org\nBcc: x@example.net", "not an address", "@example.org"])
def test_send_test_refuses_a_recipient_that_is_no_address_or_user_name(operator, node, to):
    with pytest.raises(CommandExecutionError, match="neither an e-mail address nor a local user name"):
        operator().send_test(to=to)
    assert node.stdin == []


def test_send_test_without_admin_goes_to_root(operator):
    assert operator({"admin": ""}).send_test(wait=1)["to"] == "root"


def test_send_test_refuses_when_mail_is_disabled(operator):
    with pytest.raises(CommandExecutionError, match="disabled"):
        operator({"enabled": False}).send_test()


# ------------------------------------------------------------------- flush ---


def test_flush_retries_deferred_mail_and_shows_the_queue_before_and_after(operator, node):
    node.queue = [_queued("deferred", 60, REFUSED), _queued("deferred", 30, REFUSED)]
    result = operator().flush(wait=1)
    assert ["postqueue", "-f"] in node.commands
    assert result["before"]["deferred"] == 2 and result["after"]["total"] == 0


def test_flush_refuses_on_a_node_whose_msmtp_sends_directly(operator):
    module = operator(
        {"mailu": {"host": "mail.example.org", "user": "alice@example.org", "password": SECRET}}
    )
    with pytest.raises(CommandExecutionError, match="no Postfix queue"):
        module.flush()
