"""IPv6 literals as next hops: peers listen on [::1] only."""

import pathlib
import subprocess

import pytest

from tests.e2e.conftest import with_base
from tests.support import mailhost

LOGIN = "alerts@example.test"
PASSWORD = "ipv6-token"


def _postconf(name):
    return subprocess.run(["postconf", "-h", name], capture_output=True, text=True, check=True).stdout.strip()


def _apply(minion, pillar):
    minion.set_pillar(pillar)
    result = minion.apply()
    assert result.returncode == 0, result.output
    again = minion.apply()
    assert again.returncode == 0 and again.changed == {}, again.changed


def _send_and_wait(peer):
    msg = mailhost.message("someone@example.test", subject="over IPv6")
    sent = mailhost.send(mailhost.SENDMAIL, msg)
    assert sent.returncode == 0, sent.stderr
    assert peer.mailbox.wait_for_ids([mailhost.message_id(msg)], timeout=60), mailhost.postfix_log_tail()
    return [m for m in peer.mailbox.messages() if m.message_id == mailhost.message_id(msg)]


def test_relayhost_ipv6_literal_delivers_through_postfix(clean_machine, smtp_peer_factory):
    peer = smtp_peer_factory(tls="none", host="::1")
    _apply(clean_machine, with_base(relay={"relayhost": "::1", "port": peer.port, "tls": "none"}))

    assert len(_send_and_wait(peer)) == 1


def test_relayhost_ipv6_literal_with_starttls_and_sasl_finds_its_credentials(
    clean_machine, smtp_peer_factory, test_ca
):
    peer = smtp_peer_factory(tls="starttls", host="::1", users={LOGIN: PASSWORD})
    relay = {
        "relayhost": "::1",
        "port": peer.port,
        "tls": "starttls",
        "tls_name": "localhost",  # a name in the peer's certificate
        "user": LOGIN,
        "password": PASSWORD,
        "ca_file": str(test_ca.ca_file),
    }
    _apply(clean_machine, with_base(relay=relay))

    sasl_key = pathlib.Path("/etc/postfix/sasl_passwd").read_text().split("\n")[1].split(" ")[0]
    assert sasl_key == _postconf("relayhost") == f"[::1]:{peer.port}"
    [received] = _send_and_wait(peer)
    assert received.login == LOGIN


@pytest.mark.parametrize("queue", [False, True], ids=["direct-msmtp", "queued-postfix"])
def test_mailu_host_ipv6_literal_delivers_with_tls_and_authentication(
    clean_machine, smtp_peer_factory, test_ca, queue
):
    tls = "starttls" if queue else "implicit"
    mailu = smtp_peer_factory(tls=tls, host="::1", users={LOGIN: PASSWORD}, sender_must_match_login=True)
    _apply(
        clean_machine,
        with_base(
            mailu={
                "host": "::1",
                "port": mailu.port,
                "tls": tls,
                "user": LOGIN,
                "password": PASSWORD,
                "ca_file": str(test_ca.ca_file),
                "queue": queue,
                # Postfix verifies names only: the queued path needs the certificate's name.
                **({"tls_name": "localhost"} if queue else {}),
            }
        ),
    )
    assert mailhost.postfix_running() is queue

    [received] = _send_and_wait(mailu)
    assert received.login == LOGIN and received.mail_from == LOGIN
    if queue:
        assert _postconf("relayhost") == f"[::1]:{mailu.port}"
