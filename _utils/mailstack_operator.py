"""
The operator's tools of the ``mail`` formula, behind ``mailstack.status``,
``mailstack.send_test`` and ``mailstack.flush``: Postfix's daemon, queue and
log, msmtp's report of a send, what an interrupted run left behind.

They act on the running system through a ``Node`` (Salt's execution functions,
the formula's utils, the file system root and the formula's state
directory); the plan and the settings come from the module. Errors are
``CommandExecutionError``s, as Salt shows them.
"""

import email.message
import email.policy
import email.utils
import os
import time

from salt.exceptions import CommandExecutionError

MSMTP_LOG_TO_STDOUT = "--logfile=-"
# Keeps the Message-ID on one line, as Postfix logs it.
UNFOLDED = email.policy.default.clone(max_line_length=None)
FOLLOW_INTERVAL = 0.5


def node(utils, salt, fs_root, state_dir):
    """The running system as the operator's tools see it (Salt's loader
    hands out functions, not classes)."""
    return Node(utils, salt, fs_root, state_dir)


class Node:
    """The running system as the operator's tools see it."""

    def __init__(self, utils, salt, fs_root, state_dir):
        self.utils, self.salt, self.fs_root = utils, salt, fs_root
        self.state_dir = os.path.join(fs_root, state_dir.lstrip("/"))

    def command(self, cmd, stdin=None, timeout=None):
        """Run ``cmd`` (a list); return Salt's ``cmd.run_all`` dict."""
        return self.utils["mailstack_system.run"](self.salt, cmd, stdin=stdin, timeout=timeout)

    def systemd_booted(self):
        return self.utils["mailstack_system.systemd_booted"](self.fs_root)

    def postconf_value(self, parameter):
        return self.utils["mailstack_system.postconf"](self.salt, parameter) or ""


class PostfixLog:
    """New lines of Postfix's log since this object was made."""

    def __init__(self, node):
        self.node = node
        self.started = int(time.time()) - 1
        self.file = self.node.postconf_value("maillog_file") or (
            "/var/log/mail.log" if not self.node.systemd_booted() else ""
        )
        self.offset = os.path.getsize(self.file) if self.file and os.path.exists(self.file) else 0

    @property
    def readable(self):
        return self.node.systemd_booted() or bool(self.file and os.path.exists(self.file))

    def lines(self):
        if self.file:
            if not os.path.exists(self.file):
                return []
            with open(self.file, encoding="utf-8", errors="replace") as handle:
                handle.seek(self.offset)
                return handle.read().splitlines()
        listed = self.node.command(
            [
                "journalctl",
                "--quiet",
                "--no-pager",
                "--output=cat",
                f"--since=@{self.started}",
                "SYSLOG_FACILITY=2",
            ]
        )
        return listed["stdout"].splitlines()


def _postfix_daemon(node, settings):
    installed = bool(node.salt["cmd.which"]("postfix"))
    running = installed and node.command(["postfix", "status"])["retcode"] == 0
    enabled = None
    if installed and node.systemd_booted():
        enabled = bool(node.salt["service.enabled"](settings["lookup"]["postfix"]["service"]))
    return {"installed": installed, "running": running, "enabled": enabled}


def _queue_messages(node):
    listed = node.command(["postqueue", "-j"])
    if listed["retcode"] != 0:
        raise CommandExecutionError(f"postqueue -j failed, the queue could not be read: {listed['stderr']}")
    try:
        return node.utils["mailstack_queue.parse_postqueue_json"](listed["stdout"])
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from None


def _queue_summary(node):
    messages = _queue_messages(node)
    summary = node.utils["mailstack_queue.summarize"](messages, time.time())
    summary["deferral_reasons"] = node.utils["mailstack_queue.deferral_reasons"](messages)
    return summary


def _queue_or_why_not(node):
    """The queue's summary; where it cannot be read (Postfix half-installed by an
    interrupted run), why, so that the rest of the status still shows."""
    try:
        return _queue_summary(node)
    except CommandExecutionError as exc:
        return {"error": str(exc)}


def _last_health_send(node, state_file):
    """The last run of the health mail: ``{"time", "result", "detail"}``, or ``None``."""
    try:
        with open(os.path.join(node.fs_root, state_file.lstrip("/")), encoding="utf-8") as handle:
            when, result, *detail = handle.read().split(maxsplit=2)
        return {"time": int(when), "result": result, "detail": " ".join(detail).strip()}
    except (OSError, ValueError):
        return None


def _interrupted(node, settings):
    """What was cut off and not finished yet: dpkg's run (its journal) and the
    formula's own last apply (its marker); ``comment`` says what to expect."""
    system = "mailstack_system"
    dpkg = node.utils[f"{system}.interrupted_dpkg"](node.fs_root)
    marker = node.utils[f"{system}.apply_marker"](node.state_dir, node.fs_root)
    apply = marker if marker and marker["interrupted"] else None
    record = node.utils["mailstack_owned.record_problem"](node.state_dir)
    notes = []
    if dpkg:
        notes.append(
            f"dpkg was interrupted ({', '.join(dpkg['packages']) or 'packages it did not name'}):"
            " the next apply that installs or removes a package, or whose packages these are,"
            " runs `dpkg --configure -a`"
        )
    if apply:
        notes.append(f"the apply of mail started at {apply['started_at']} never finished: apply again")
    elif marker:
        notes.append(
            f"an apply of mail is under way (started at {marker['started_at']}, pid {marker['pid']})"
        )
    if record:
        notes.append(
            f"the formula's record {record}: applies are refused until it is restored or moved aside"
        )
    return {
        "dpkg": dpkg["packages"] if dpkg else None,
        "apply": {"started_at": apply["started_at"], "pid": apply["pid"]} if apply else None,
        "record": record,
        "comment": "; ".join(notes) or "nothing interrupted",
    }


def _test_recipient(node, plan, to):
    recipient = to or plan["alerts"]["recipient"]
    is_address, is_user_name = (
        node.utils["mailstack_settings.is_address"],
        node.utils["mailstack_settings.is_user_name"],
    )
    if not isinstance(recipient, str) or not (is_address(recipient) or is_user_name(recipient)):
        raise CommandExecutionError(
            f"send_test: to={recipient!r} is neither an e-mail address nor a local user name"
        )
    return recipient


def _test_message(recipient, sender, host):
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"mailstack test from {host}"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid("mailstack-test", domain=host)
    message.set_content(f"A test message from {host}, sent by `salt-call mailstack.send_test`.\n")
    return message


def _follow_in_postfix(node, log, message_id, wait):
    """Follow a submitted message through Postfix's log until it leaves or ``wait`` runs out."""
    deadline = time.monotonic() + wait
    queue_id, outcome = None, None
    while True:
        lines = log.lines()
        queue_id = queue_id or node.utils["mailstack_queue.queue_id_of"](lines, message_id)
        if queue_id:
            outcome = node.utils["mailstack_queue.delivery_outcome"](lines, queue_id)
        if (outcome and outcome["result"] != "deferred") or time.monotonic() >= deadline:
            break
        time.sleep(FOLLOW_INTERVAL)
    if outcome:
        return queue_id, outcome
    return queue_id, {"result": "queued", "detail": f"still in Postfix's queue after {wait} s, not yet tried"}


def _send_through_postfix(node, sendmail, message, recipient, wait, timeout):
    log = PostfixLog(node)
    submitted = node.command(
        [sendmail, "-i", "--", recipient], stdin=message.as_string(policy=UNFOLDED), timeout=timeout
    )
    if submitted["retcode"] != 0:
        return None, {"result": "failed", "detail": f"sendmail refused the message: {submitted['stderr']}"}
    if not log.readable:
        return None, {
            "result": "queued",
            "detail": "Postfix's log is not readable here, so it was not followed",
        }
    return _follow_in_postfix(node, log, message["Message-ID"], wait)


def _send_through_msmtp(node, sendmail, message, recipient, timeout):
    submitted = node.command(
        [sendmail, MSMTP_LOG_TO_STDOUT, "-i", "--", recipient],
        stdin=message.as_string(policy=UNFOLDED),
        timeout=timeout,
    )
    fields = {}
    for line in submitted["stdout"].splitlines():
        fields.update(node.utils["mailstack_queue.msmtp_log_fields"](line))
    reply = fields.get("smtpmsg", "")
    if submitted["retcode"] == 0:
        return {"result": "delivered", "detail": reply or "accepted"}
    reason = fields.get("errormsg") or submitted["stderr"].strip() or f"exit code {submitted['retcode']}"
    return {"result": "failed", "detail": f"{reason} {reply}".strip()}


def status(node, settings, plan, hop):
    """``mailstack.status`` of ``plan``, with ``hop`` (``mailstack.probe``'s answer)."""
    daemon = _postfix_daemon(node, settings)
    return {
        "interrupted": _interrupted(node, settings),
        "health": _last_health_send(node, plan["health"]["state_file"]),
        "mode": plan["mode"],
        "sendmail": plan["sendmail"],
        "postfix": daemon,
        "queue": _queue_or_why_not(node) if daemon["installed"] else None,
        "next_hop": plan["next_hop"],
        "next_hop_answers": hop["reachable"],
        "next_hop_comment": hop["comment"],
    }


def send_test(node, settings, plan, host, to, wait):
    """``mailstack.send_test`` through this node's ``sendmail`` as ``plan`` has it."""
    try:
        wait = max(0, int(wait))
    except (TypeError, ValueError):
        raise CommandExecutionError(f"send_test: wait={wait!r} is not a number of seconds") from None
    recipient = _test_recipient(node, plan, to)
    message = _test_message(recipient, plan["summary"]["sender"], host)
    sendmail = settings["lookup"]["msmtp"]["sendmail"]
    timeout = settings["timeout"] * 3
    queue_id = None
    if plan["postfix"]:
        queue_id, outcome = _send_through_postfix(node, sendmail, message, recipient, wait, timeout)
    else:
        outcome = _send_through_msmtp(node, sendmail, message, recipient, timeout)
    return {
        "result": outcome["result"],
        "message_id": message["Message-ID"],
        "to": recipient,
        "path": f"sendmail ({'Postfix' if plan['postfix'] else 'msmtp'}) -> {plan['next_hop']}",
        "queue_id": queue_id,
        "detail": outcome["detail"],
    }


def flush(node, wait):
    """``mailstack.flush``: ``postqueue -f``, and the queue before and after."""
    before = _queue_summary(node)
    flushed = node.command(["postqueue", "-f"])
    if flushed["retcode"] != 0:
        raise CommandExecutionError(f"postqueue -f failed: {flushed['stderr']}")
    deadline = time.monotonic() + max(0, int(wait))
    after = _queue_summary(node)
    while after["total"] and after["total"] >= before["total"] and time.monotonic() < deadline:
        time.sleep(FOLLOW_INTERVAL)
        after = _queue_summary(node)
    return {"before": before, "after": after}
