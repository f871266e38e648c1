"""A modelled node for the unit tests of the operator functions and alerts
(``status``, ``send_test``, ``flush``): ``FakeNode`` answers the commands they
run (Postfix's queue and log, msmtp's log line), and the ``operator`` fixture
gives the execution module on a Debian node without systemd, whose next hop
answers. The ``node`` and ``operator`` fixtures are declared to pytest by
``tests/unit/conftest.py``."""

from __future__ import annotations

import email
import json

import pytest

from tests.support.loader import REPO
from tests.support.mailstack_unit import FQDN, FakeFileServer, load_module

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
        module.__context__ = {}
        module.__opts__ = {"test": False}
        root = tmp_path / "root"
        (root / "proc" / "1").mkdir(parents=True, exist_ok=True)
        module.FS_ROOT = str(root)
        module.FOLLOW_INTERVAL = 0.01
        monkeypatch.setattr(module, "_probe_once", lambda *args: "220 sink ESMTP")
        return module

    return _operator
