"""Facts about this machine's mail set-up, and ways to send through it."""

from __future__ import annotations

import email.message
import email.utils
import json
import os
import pathlib
import subprocess

SENDMAIL = "/usr/sbin/sendmail"
MSMTP = "/usr/bin/msmtp"


def message(to: str, sender: str = "", subject: str = "e2e") -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["To"] = to
    if sender:
        msg["From"] = sender
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="e2e.test")
    msg.set_content(f"{subject}\n")
    return msg


def message_id(msg: email.message.EmailMessage) -> str:
    return msg["Message-ID"].strip("<>")


def send(
    program: str, msg: email.message.EmailMessage, *args: str, user: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Pipe ``msg`` into ``program -t`` (sendmail or msmtp), optionally as another user."""
    cmd = [program, "-t", *args]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, input=msg.as_bytes(), capture_output=True, timeout=timeout, check=False)


def package_installed(name: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", name], capture_output=True, text=True, check=False
    )
    return result.stdout.endswith("ok installed")


def tcp_listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = pathlib.Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def postfix_running() -> bool:
    if not os.path.exists("/usr/sbin/postfix"):
        return False
    return subprocess.run(["postfix", "status"], capture_output=True, check=False).returncode == 0


def postqueue_ids() -> list[str]:
    """Queue IDs of messages waiting in Postfix's queue."""
    result = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, check=False)
    return [json.loads(line)["queue_id"] for line in result.stdout.splitlines() if line.strip()]


def send_with_arguments(
    program: str, msg: email.message.EmailMessage, *recipients: str
) -> subprocess.CompletedProcess:
    """Submit as mail(1) does: recipients on the command line, no -t."""
    return subprocess.run(
        [program, "-oi", *recipients], input=msg.as_bytes(), capture_output=True, timeout=60, check=False
    )


POSTFIX_LOG = pathlib.Path("/var/log/postfix-e2e.log")


def postfix_log_tail(lines: int = 40) -> str:
    """The end of Postfix's log (the e2e pillar sets maillog_file), for failure messages."""
    if not POSTFIX_LOG.exists():
        return "(no postfix log)"
    return "\n".join(POSTFIX_LOG.read_text(errors="replace").splitlines()[-lines:])


def flush_queue() -> None:
    """Ask Postfix to retry every deferred message now."""
    subprocess.run(["postqueue", "-f"], check=True, capture_output=True)


def file_fingerprints(
    paths=("/etc/postfix", "/etc/msmtprc", "/etc/aliases", "/etc/group", "/var/lib"),
) -> dict:
    """Content, owner and mode of the files under ``paths`` (a directory: its
    direct entries), to show that a refused apply changed nothing."""
    found = {}
    for top in map(pathlib.Path, paths):
        if not os.path.lexists(top):
            continue
        entries = [top] + (sorted(top.iterdir()) if top.is_dir() and not top.is_symlink() else [])
        for path in entries:
            info = os.lstat(path)
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            found[str(path)] = (content, info.st_uid, info.st_gid, info.st_mode)
    return found
