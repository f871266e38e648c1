"""The formula's promise, end to end: apply, send, re-apply, clean."""

from tests.e2e.conftest import with_base
from tests.support import mailhost


def test_relay_mode_delivers_sendmail_and_msmtp_mail_then_is_idempotent_and_cleans_up(
    clean_machine, smtp_peer_factory
):
    minion = clean_machine
    sink = smtp_peer_factory(tls="none")
    minion.set_pillar(with_base(relay={"relayhost": "127.0.0.1", "port": sink.port, "tls": "none"}))

    first = minion.apply()
    assert first.returncode == 0, first.output
    assert mailhost.package_installed("postfix")
    assert mailhost.package_installed("msmtp")
    assert not mailhost.package_installed("msmtp-mta")
    assert mailhost.postfix_running()
    assert set(mailhost.tcp_listeners(25)) <= {"0100007F", "00000000000000000000000001000000"}

    by_sendmail = mailhost.message("ops@example.test", subject="via sendmail")
    by_msmtp = mailhost.message("ops@example.test", sender="root@example.test", subject="via msmtp")
    assert mailhost.send(mailhost.SENDMAIL, by_sendmail).returncode == 0
    sent = mailhost.send(mailhost.MSMTP, by_msmtp)
    assert sent.returncode == 0, sent.stderr
    ids = [mailhost.message_id(by_sendmail), mailhost.message_id(by_msmtp)]
    assert sink.mailbox.wait_for_ids(ids, timeout=30), sink.mailbox.messages()
    assert [sink.mailbox.count(i) for i in ids] == [1, 1]

    second = minion.apply()
    assert second.returncode == 0, second.output
    assert second.changed == {}

    cleaned = minion.apply("mail.clean")
    assert cleaned.returncode == 0, cleaned.output
    assert not mailhost.package_installed("postfix")
    assert not mailhost.package_installed("msmtp")
    assert mailhost.tcp_listeners(25) == []
