"""Mailu: direct submission by msmtp on both ports, and queued through Postfix."""

import time

import pytest

from tests.e2e.conftest import with_base
from tests.support import mailhost
from tests.support.smtp_peers import SmtpPeer, TestCA

LOGIN = "alerts@example.test"
PASSWORD = 'to"ken with \\ and # in it'
PORT_STYLES = {"465-implicit": "implicit", "587-starttls": "starttls"}


def _mailu(port, tls, ca_file, password=PASSWORD, **extra):
    return with_base(
        mailu={
            "host": "localhost",
            "port": port,
            "tls": tls,
            "user": LOGIN,
            "password": password,
            "ca_file": str(ca_file),
            **extra,
        }
    )


def _apply(minion, pillar):
    minion.set_pillar(pillar)
    result = minion.apply()
    assert result.returncode == 0, result.output
    return result


def _mailu_standin(factory, tls):
    return factory(tls=tls, users={LOGIN: PASSWORD}, sender_must_match_login=True)


@pytest.mark.parametrize("tls", PORT_STYLES.values(), ids=PORT_STYLES.keys())
def test_mailu_direct_delivers_from_sendmail_and_msmtp_with_the_login_as_sender(
    clean_machine, smtp_peer_factory, test_ca, tls
):
    mailu = _mailu_standin(smtp_peer_factory, tls)
    _apply(clean_machine, _mailu(mailu.port, tls, test_ca.ca_file))
    assert not mailhost.package_installed("postfix")
    assert mailhost.package_installed("msmtp-mta")
    assert mailhost.tcp_listeners(25) == []

    plain = mailhost.message("someone@example.test", subject="sendmail -t")
    other_sender = mailhost.message("someone@example.test", sender="app@example.test", subject="msmtp -f")
    assert mailhost.send(mailhost.SENDMAIL, plain).returncode == 0
    sent = mailhost.send(mailhost.MSMTP, other_sender, "-f", "app@example.test")
    assert sent.returncode == 0, sent.stderr

    ids = [mailhost.message_id(plain), mailhost.message_id(other_sender)]
    assert mailu.mailbox.wait_for_ids(ids, timeout=30)
    assert {m.mail_from for m in mailu.mailbox.messages()} == {LOGIN}
    assert {m.login for m in mailu.mailbox.messages()} == {LOGIN}


def test_mailu_direct_with_a_wrong_password_fails_clearly_and_delivers_nothing(
    clean_machine, smtp_peer_factory, test_ca
):
    mailu = _mailu_standin(smtp_peer_factory, "implicit")
    _apply(clean_machine, _mailu(mailu.port, "implicit", test_ca.ca_file, password="not-the-token"))

    result = mailhost.send(mailhost.SENDMAIL, mailhost.message("someone@example.test"))

    assert result.returncode != 0
    assert b"authentication failed" in result.stderr.lower(), result.stderr
    assert b"not-the-token" not in result.stderr
    time.sleep(1)
    assert mailu.mailbox.messages() == []


def test_mailu_direct_refuses_a_certificate_from_an_untrusted_ca(clean_machine, smtp_peer_factory, tmp_path):
    mailu = _mailu_standin(smtp_peer_factory, "implicit")
    other_ca = TestCA(tmp_path)
    _apply(clean_machine, _mailu(mailu.port, "implicit", other_ca.ca_file))

    result = mailhost.send(mailhost.SENDMAIL, mailhost.message("someone@example.test"))

    assert result.returncode != 0
    assert b"certificate" in result.stderr.lower(), result.stderr
    time.sleep(1)
    assert mailu.mailbox.messages() == []


def test_mailu_queued_keeps_50_messages_while_mailu_is_down_and_delivers_each_once(
    clean_machine, smtp_peer_factory, test_ca
):
    mailu = _mailu_standin(smtp_peer_factory, "starttls")
    port = mailu.port
    _apply(clean_machine, _mailu(port, "starttls", test_ca.ca_file, queue=True))
    assert mailhost.postfix_running()
    assert not mailhost.package_installed("msmtp-mta")
    mailu.stop()

    messages = [mailhost.message("someone@example.test", subject=f"queued {n}") for n in range(50)]
    for msg in messages:
        assert mailhost.send(mailhost.SENDMAIL, msg).returncode == 0
    deadline = time.monotonic() + 60
    while len(mailhost.postqueue_ids()) < 50 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(mailhost.postqueue_ids()) == 50, mailhost.postfix_log_tail()

    with SmtpPeer(
        tls="starttls", ca=test_ca, users={LOGIN: PASSWORD}, sender_must_match_login=True, port=port
    ) as back:
        mailhost.flush_queue()
        ids = [mailhost.message_id(m) for m in messages]
        assert back.mailbox.wait_for_ids(ids, timeout=120), mailhost.postfix_log_tail()
        time.sleep(1)
        assert [back.mailbox.count(i) for i in ids] == [1] * 50
        assert len(back.mailbox.messages()) == 50
        assert {m.mail_from for m in back.mailbox.messages()} == {LOGIN}
    assert mailhost.postqueue_ids() == []
