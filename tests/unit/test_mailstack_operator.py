"""Unit tests for the operator functions of ``_modules/mailstack.py``:
``status``, ``send_test`` and ``flush``.

``cmd.run_all`` is answered by a small model of a node (Postfix's queue and
log, msmtp's log line on standard output), so each test proves what the
functions conclude from what Postfix and msmtp report.
"""

from __future__ import annotations

import email
import json

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.loader import load_salt_module
from tests.unit.test_mailstack_module import FQDN, REPO, SECRET, FakeFileServer, load_module

mailqueue = load_salt_module(REPO / "_utils" / "mailqueue.py", "mailqueue_for_operator_tests")
UTILS = {f"mailqueue.{name}": getattr(mailqueue, name) for name in dir(mailqueue) if not name.startswith("_")}

SINK = "127.0.0.1[127.0.0.1]:2525"
SENT = "250 2.0.0 Ok: queued as 7F3E1"
REFUSED = f"connect to {SINK}: Connection refused"


class FakeNode:
    """Answers the commands the operator functions run, like a node would."""

    def __init__(self, log_file):
        self.log_file = log_file
        self.installed = True
        self.running = True
        self.enabled = True
        self.queue: list[dict] = []
        self.postfix_outcome = "sent"  # sent | deferred | none
        self.msmtp_exit = 0
        self.commands: list[list[str]] = []
        self.stdin: list[str] = []

    @staticmethod
    def _out(retcode=0, stdout="", stderr=""):
        return {"retcode": retcode, "stdout": stdout, "stderr": stderr, "pid": 1}

    def which(self, name):
        return f"/usr/sbin/{name}" if self.installed else None

    def service_enabled(self, name):
        return self.enabled

    def run_all(self, cmd, stdin=None, **kwargs):
        self.commands.append(cmd)
        if stdin is not None:
            self.stdin.append(stdin)
        if cmd == ["postfix", "status"]:
            return self._out(0 if self.running else 1)
        if cmd == ["postqueue", "-j"]:
            return self._out(stdout="".join(json.dumps(message) + "\n" for message in self.queue))
        if cmd == ["postqueue", "-f"]:
            self.queue = [message for message in self.queue if message["queue_name"] != "deferred"]
            return self._out()
        if cmd == ["postconf", "-h", "maillog_file"]:
            return self._out(stdout=str(self.log_file))
        if cmd[0] == "/usr/sbin/sendmail" and cmd[1] == "--logfile=-":
            return self._msmtp(cmd[-1])
        if cmd[0] == "/usr/sbin/sendmail":
            return self._postfix_pickup(cmd[-1], stdin)
        raise AssertionError(f"unexpected command {cmd}")

    def _postfix_pickup(self, recipient, message):
        message_id = email.message_from_string(message)["Message-ID"]
        lines = [f"postfix/cleanup[11]: 7F3E0: message-id={message_id}"]
        if self.postfix_outcome == "sent":
            lines.append(
                f"postfix/smtp[12]: 7F3E0: to=<{recipient}>, relay={SINK}, dsn=2.0.0, status=sent ({SENT})"
            )
        elif self.postfix_outcome == "deferred":
            lines.append(
                f"postfix/smtp[12]: 7F3E0: to=<{recipient}>, relay=none, dsn=4.4.1,"
                f" status=deferred ({REFUSED})"
            )
        with open(self.log_file, "a", encoding="utf-8") as log:
            log.write("".join(f"Nov 26 12:00:00 node1 {line}\n" for line in lines))
        return self._out()

    def _msmtp(self, recipient):
        if self.msmtp_exit == 0:
            line = (
                "host=mail.example.org tls=on auth=on user=alice from=alice"
                f" recipients={recipient} smtpstatus=250 smtpmsg='{SENT}' exitcode=EX_OK"
            )
            return self._out(stdout=line + "\n")
        line = (
            f"host=mail.example.org tls=on auth=on recipients={recipient}"
            " errormsg='the server sent an empty reply' exitcode=EX_TEMPFAIL"
        )
        return self._out(75, stdout=line + "\n", stderr="msmtp: the server sent an empty reply")


@pytest.fixture
def node(tmp_path):
    return FakeNode(tmp_path / "postfix.log")


@pytest.fixture
def operator(tmp_path, node, monkeypatch):
    """The module on a Debian node without systemd, whose next hop answers."""

    def _operator(mail=None):
        module = load_module()
        module.__grains__ = {"os_family": "Debian", "os": "Debian", "osfinger": "Debian-12", "fqdn": FQDN}
        module.__pillar__ = {"mail": {"container": False, "admin": "ops@example.org", **(mail or {})}}
        fileserver = FakeFileServer(REPO)
        module.__salt__ = {
            "cp.list_master": fileserver.list_master,
            "cp.get_file_str": fileserver.get_file_str,
            "cmd.run_all": node.run_all,
            "cmd.which": node.which,
            "service.enabled": node.service_enabled,
        }
        module.__utils__ = UTILS
        module.__context__ = {}
        module.__opts__ = {"test": False}
        root = tmp_path / "root"
        (root / "proc" / "1").mkdir(parents=True, exist_ok=True)
        module.FS_ROOT = str(root)
        module.FOLLOW_INTERVAL = 0.01
        monkeypatch.setattr(module, "_probe_once", lambda *args: "220 sink ESMTP")
        return module

    return _operator


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


def test_status_shows_mode_postfix_the_queue_and_whether_the_next_hop_answers(operator, node):
    node.queue = [_queued("deferred", 600, REFUSED), _queued("deferred", 60, REFUSED), _queued("active", 5)]
    module = operator({"relay": {"relayhost": "127.0.0.1", "port": 2525, "tls": "none"}})
    module.time.time = lambda: 1_700_000_000

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
    assert status["next_hop"] == "127.0.0.1:2525" and status["next_hop_answers"] is True


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
    with pytest.raises(CommandExecutionError, match="line 1"):
        module.status()


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
