"""Passwords stay secret: not in output, logs or readable files; non-root users still send."""

import base64
import os
import pathlib
import secrets
import stat
import subprocess
import time

import pytest

from tests.e2e.conftest import with_base
from tests.support import mailhost

LOGIN = "alerts@example.test"
# Made at run time, so that no file (not even this one) holds it beforehand.
PASSWORD = "Pw-" + secrets.token_hex(12)
SEARCHED = ["/etc", "/var", "/tmp", "/run", "/srv", "/root", "/home", "/opt"]
NON_ROOT = "www-data"


def _pillars(peer, ca_file):
    mailu = {
        "host": "localhost",
        "port": peer.port,
        "tls": "starttls",
        "user": LOGIN,
        "password": PASSWORD,
        "ca_file": str(ca_file),
    }
    relay = {
        "relayhost": "localhost",
        "port": peer.port,
        "tls": "starttls",
        "user": LOGIN,
        "password": PASSWORD,
        "ca_file": str(ca_file),
    }
    senders = [NON_ROOT]
    return {
        "mailu-direct": with_base(mailu=mailu, senders=senders),
        "mailu-queued": with_base(mailu={**mailu, "queue": True}),
        "relay-sasl": with_base(mode="relay", relay=relay),
        "container-relay-sasl": with_base(mode="relay", relay=relay, container=True, senders=senders),
    }


def _readable_by(user, paths):
    """Files under ``paths`` that ``user`` can read and that contain PASSWORD."""
    result = subprocess.run(
        ["runuser", "-u", user, "--", "grep", "-rlFa", "--devices=skip", "-e", PASSWORD, *paths],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result.stdout.split()


def _secret_file_modes():
    modes = {}
    for path in ("/etc/msmtprc", "/etc/postfix/sasl_passwd", "/etc/postfix/sasl_passwd.db"):
        if os.path.exists(path) and PASSWORD.encode() in pathlib.Path(path).read_bytes():
            info = os.stat(path)
            modes[path] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    return modes


@pytest.mark.parametrize("mode", ["mailu-direct", "mailu-queued", "relay-sasl", "container-relay-sasl"])
def test_password_never_leaks_and_a_non_root_user_can_still_send(
    clean_machine, smtp_peer_factory, test_ca, mode
):
    minion = clean_machine
    mailu = mode.startswith("mailu")
    peer = smtp_peer_factory(tls="starttls", users={LOGIN: PASSWORD}, sender_must_match_login=mailu)
    minion.set_pillar(_pillars(peer, test_ca.ca_file)[mode])
    outputs = [minion.apply(test=True, out=out) for out in ("highstate", "json")]
    applied = minion.apply(out="highstate")
    assert applied.returncode == 0, applied.output
    outputs += [applied, minion.apply(test=True, out="yaml"), minion.apply(out="json")]
    outputs += [
        minion.run("state.show_sls", "mail", out="yaml"),
        minion.run("mailstack.plan", out="yaml"),
        minion.run("mailstack.settings", out="json"),
    ]

    for result in outputs:
        assert PASSWORD not in result.output
    minion.run("log.warning", "secrets test: the minion log is this file")
    log = minion.log_file.read_text()
    assert "the minion log is this file" in log
    assert PASSWORD not in log
    assert _readable_by("nobody", SEARCHED) == []

    modes = _secret_file_modes()
    assert modes, "the password is in none of the files that should hold it"
    for path, (mode_bits, uid, _gid) in modes.items():
        assert uid == 0 and mode_bits & 0o007 == 0, path
        assert mode_bits in (0o600, 0o640), (path, oct(mode_bits))

    msg = mailhost.message("someone@example.test", subject=f"from {NON_ROOT} in {mode}")
    sent = mailhost.send(mailhost.SENDMAIL, msg, user=NON_ROOT)
    assert sent.returncode == 0, sent.stderr
    assert peer.mailbox.wait_for_ids([mailhost.message_id(msg)], timeout=60), mailhost.postfix_log_tail()


def test_a_user_not_in_senders_can_neither_read_nor_use_the_mailu_password(
    clean_machine, smtp_peer_factory, test_ca
):
    peer = smtp_peer_factory(tls="starttls", users={LOGIN: PASSWORD}, sender_must_match_login=True)
    clean_machine.set_pillar(_pillars(peer, test_ca.ca_file)["mailu-direct"])
    assert clean_machine.apply().returncode == 0

    msg = mailhost.message("someone@example.test", subject="from nobody")
    sent = mailhost.send(mailhost.SENDMAIL, msg, "--debug", user="nobody")

    assert sent.returncode != 0
    shown = sent.stdout + sent.stderr
    assert b"/etc/msmtprc: Permission denied" in shown, shown
    assert PASSWORD.encode() not in shown
    assert base64.b64encode(f"\0{LOGIN}\0{PASSWORD}".encode()) not in shown
    time.sleep(1)
    assert peer.mailbox.messages() == []
