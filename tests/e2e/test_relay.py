"""The local Postfix relay: delivery through a smarthost, bursts, and a closed relay."""

import concurrent.futures
import smtplib
import socket

import pytest

from tests.e2e.conftest import with_base
from tests.support import mailhost, netns

ADMIN = "ops@example.test"
USER, PASSWORD = "relay-user", 'rel"ay pa\\ss#word'


def _senders(sink_recipient):
    """(name, message, command) for each way a local program submits mail."""
    by_sendmail = mailhost.message(sink_recipient, subject="sendmail -t")
    by_msmtp = mailhost.message(sink_recipient, sender="app@example.test", subject="msmtp -t")
    by_mailx = mailhost.message(sink_recipient, subject="mail-style: recipients as arguments")
    return [
        (by_sendmail, lambda m: mailhost.send(mailhost.SENDMAIL, m)),
        (by_msmtp, lambda m: mailhost.send(mailhost.MSMTP, m)),
        (by_mailx, lambda m: mailhost.send_with_arguments(mailhost.SENDMAIL, m, sink_recipient)),
    ]


def _apply_relay(minion, **relay):
    minion.set_pillar(with_base(admin=ADMIN, relay=relay))
    result = minion.apply()
    assert result.returncode == 0, result.output
    return result


@pytest.mark.parametrize("secured", [False, True], ids=["plain-smarthost", "starttls-sasl-smarthost"])
def test_relay_through_smarthost_delivers_every_local_submission_and_root_mail_to_admin(
    clean_machine, smtp_peer_factory, test_ca, secured
):
    if secured:
        smarthost = smtp_peer_factory(tls="starttls", users={USER: PASSWORD})
        _apply_relay(
            clean_machine,
            relayhost="localhost",
            port=smarthost.port,
            tls="starttls",
            user=USER,
            password=PASSWORD,
            ca_file=str(test_ca.ca_file),
        )
    else:
        smarthost = smtp_peer_factory(tls="none")
        _apply_relay(clean_machine, relayhost="127.0.0.1", port=smarthost.port, tls="none")

    sent = []
    for msg, submit in _senders("someone@example.test"):
        result = submit(msg)
        assert result.returncode == 0, result.stderr
        sent.append(mailhost.message_id(msg))
    to_root = mailhost.message("root", subject="to root")
    assert mailhost.send_with_arguments(mailhost.SENDMAIL, to_root, "root").returncode == 0

    assert smarthost.mailbox.wait_for_ids(sent + [mailhost.message_id(to_root)], timeout=60), (
        mailhost.postfix_log_tail()
    )
    assert all(smarthost.mailbox.count(i) == 1 for i in sent)
    root_mail = [m for m in smarthost.mailbox.messages() if m.message_id == mailhost.message_id(to_root)]
    assert root_mail[0].rcpt_tos == [ADMIN]
    if secured:
        assert {m.login for m in smarthost.mailbox.messages()} == {USER}


def test_burst_of_1000_messages_from_8_senders_arrives_exactly_once(clean_machine, smtp_peer_factory):
    sink = smtp_peer_factory(tls="none")
    _apply_relay(clean_machine, relayhost="127.0.0.1", port=sink.port, tls="none")
    messages = [mailhost.message("burst@example.test", subject=f"burst {n}") for n in range(1000)]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda m: mailhost.send(mailhost.SENDMAIL, m).returncode, messages))

    assert results == [0] * 1000
    ids = [mailhost.message_id(m) for m in messages]
    assert sink.mailbox.wait_for_ids(ids, timeout=180), mailhost.postfix_log_tail()
    counts = [sink.mailbox.count(i) for i in ids]
    assert counts.count(1) == 1000, "lost or duplicated messages"
    assert len(sink.mailbox.messages()) == 1000


def test_relay_is_closed_to_the_network_and_open_only_to_the_host_itself(clean_machine, smtp_peer_factory):
    sink = smtp_peer_factory(tls="none")
    _apply_relay(clean_machine, relayhost="127.0.0.1", port=sink.port, tls="none")

    with netns.TestNetwork() as network:
        assert network.connect_from_namespace(network.host_address, 25) == "refused"
        assert network.connect_from_namespace(network.host_address, sink.port) == "refused"

        with smtplib.SMTP("127.0.0.1", 25, timeout=10) as client:
            client.ehlo("localhost")
            client.mail("root@example.test")
            assert client.rcpt("someone@outside.example")[0] == 250

        foreign = socket.create_connection(
            ("127.0.0.1", 25), timeout=10, source_address=(network.host_address, 0)
        )
        with smtplib.SMTP(timeout=10) as client:
            client.sock = foreign
            client.file = None
            assert client.getreply()[0] == 220
            client.ehlo("foreign.example")
            client.mail("spam@foreign.example")
            code, text = client.rcpt("someone@outside.example")
        assert code == 454 or code == 554, (code, text)
        assert b"Relay access denied" in text
