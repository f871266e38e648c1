"""Self-tests for the loopback SMTP peers, driven by the stdlib smtplib client."""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
import stat
import threading

import pytest
import trustme

from tests.support.smtp_peers import SmtpPeer

ALICE = "alice@example.test"
BOB = "bob@example.test"
USERS = {ALICE: "alice-secret"}


def message(message_id: str, sender: str = ALICE) -> bytes:
    return (
        f"From: {sender}\r\nTo: {BOB}\r\nSubject: test\r\nMessage-ID: <{message_id}>\r\n\r\nbody\r\n"
    ).encode()


def trusting(ca_file) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def untrusting() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trustme.CA().configure_trust(context)
    return context


def client(peer: SmtpPeer) -> smtplib.SMTP:
    return smtplib.SMTP(peer.host, peer.port, timeout=5)


def test_plain_peer_stores_message_by_message_id(smtp_peer_factory):
    peer = smtp_peer_factory()
    with client(peer) as smtp:
        smtp.sendmail(ALICE, [BOB], message("one@test"))

    [received] = peer.mailbox.messages()
    assert received.message_id == "one@test"
    assert received.mail_from == ALICE
    assert received.rcpt_tos == [BOB]
    assert received.login is None
    assert b"Subject: test" in received.data
    assert peer.mailbox.count("one@test") == 1
    assert peer.mailbox.count("other@test") == 0


def test_repeated_delivery_is_counted(smtp_peer_factory):
    peer = smtp_peer_factory()
    with client(peer) as smtp:
        smtp.sendmail(ALICE, [BOB], message("dup@test"))
        smtp.sendmail(ALICE, [BOB], message("dup@test"))

    assert peer.mailbox.count("dup@test") == 2
    peer.mailbox.clear()
    assert peer.mailbox.messages() == []


def test_wait_for_ids_sees_message_delivered_from_another_thread(smtp_peer_factory):
    peer = smtp_peer_factory()

    def deliver():
        with client(peer) as smtp:
            smtp.sendmail(ALICE, [BOB], message("late@test"))

    sender = threading.Timer(0.1, deliver)
    sender.start()
    try:
        assert peer.mailbox.wait_for_ids(["late@test"], timeout=5)
    finally:
        sender.join()


def test_wait_for_ids_times_out_when_an_id_is_missing(smtp_peer_factory):
    peer = smtp_peer_factory()
    with client(peer) as smtp:
        smtp.sendmail(ALICE, [BOB], message("here@test"))

    assert peer.mailbox.wait_for_ids(["here@test"], timeout=0)
    assert not peer.mailbox.wait_for_ids(["here@test", "absent@test"], timeout=0.1)


def test_plain_peer_with_users_accepts_auth_without_tls(smtp_peer_factory):
    peer = smtp_peer_factory(users=USERS)
    with client(peer) as smtp:
        smtp.login(ALICE, USERS[ALICE])
        smtp.sendmail(ALICE, [BOB], message("auth@test"))

    [received] = peer.mailbox.messages()
    assert received.login == ALICE


def test_peer_with_users_refuses_mail_before_auth(smtp_peer_factory):
    peer = smtp_peer_factory(users=USERS)
    with client(peer) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail(ALICE, [BOB], message("anon@test"))

    assert refused.value.smtp_code == 530
    assert peer.mailbox.messages() == []


def test_wrong_password_is_rejected_with_535(smtp_peer_factory):
    peer = smtp_peer_factory(users=USERS)
    with client(peer) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as denied:
        smtp.login(ALICE, "wrong")

    assert denied.value.smtp_code == 535


def test_unknown_user_is_rejected_with_535(smtp_peer_factory):
    peer = smtp_peer_factory(users=USERS)
    with client(peer) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as denied:
        smtp.login(BOB, USERS[ALICE])

    assert denied.value.smtp_code == 535


def test_sender_differing_from_login_is_rejected(smtp_peer_factory):
    peer = smtp_peer_factory(users=USERS, sender_must_match_login=True)
    with client(peer) as smtp:
        smtp.login(ALICE, USERS[ALICE])
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail(BOB, [BOB], message("forged@test", sender=BOB))
        smtp.sendmail(ALICE, [BOB], message("genuine@test"))

    assert refused.value.smtp_code in (550, 553)
    assert ALICE.encode() in refused.value.smtp_error
    assert [m.message_id for m in peer.mailbox.messages()] == ["genuine@test"]


def test_starttls_peer_requires_tls_before_auth(smtp_peer_factory, test_ca):
    peer = smtp_peer_factory(tls="starttls", users=USERS)
    credentials = base64.b64encode(f"\0{ALICE}\0{USERS[ALICE]}".encode()).decode()
    with client(peer) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        code, _ = smtp.docmd("AUTH", f"PLAIN {credentials}")
        assert code == 530

        smtp.starttls(context=trusting(test_ca.ca_file))
        smtp.ehlo()
        assert smtp.has_extn("auth")
        smtp.login(ALICE, USERS[ALICE])
        smtp.sendmail(ALICE, [BOB], message("tls@test"))

    [received] = peer.mailbox.messages()
    assert received.login == ALICE


def test_starttls_peer_refuses_mail_without_tls(smtp_peer_factory):
    peer = smtp_peer_factory(tls="starttls")
    with client(peer) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail(ALICE, [BOB], message("clear@test"))

    assert refused.value.smtp_code == 530
    assert peer.mailbox.messages() == []


def test_implicit_tls_peer_accepts_client_trusting_test_ca(smtp_peer_factory, test_ca):
    peer = smtp_peer_factory(tls="implicit", users=USERS)
    context = trusting(test_ca.ca_file)
    with smtplib.SMTP_SSL(peer.host, peer.port, context=context, timeout=5) as smtp:
        assert smtp.sock.version() is not None
        smtp.login(ALICE, USERS[ALICE])
        smtp.sendmail(ALICE, [BOB], message("implicit@test"))

    [received] = peer.mailbox.messages()
    assert received.message_id == "implicit@test"
    assert received.login == ALICE


def test_untrusted_client_fails_tls_handshake(smtp_peer_factory):
    implicit = smtp_peer_factory(tls="implicit")
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(implicit.host, implicit.port, context=untrusting(), timeout=5)

    starttls = smtp_peer_factory(tls="starttls")
    with client(starttls) as smtp, pytest.raises(ssl.SSLCertVerificationError):
        smtp.starttls(context=untrusting())


def tls_handshake(server_context, client_context, server_hostname):
    """Handshake over a socketpair; raises the client's TLS error, if any."""
    server_sock, client_sock = socket.socketpair()

    def serve():
        try:
            server_context.wrap_socket(server_sock, server_side=True).close()
        except (ssl.SSLError, OSError):
            server_sock.close()

    server = threading.Thread(target=serve)
    server.start()
    try:
        client_context.wrap_socket(client_sock, server_hostname=server_hostname).close()
    finally:
        client_sock.close()
        server.join()


def test_server_context_certifies_exactly_the_given_names(test_ca):
    server_context = test_ca.server_context("mx.example.test")
    client_context = trusting(test_ca.ca_file)

    tls_handshake(server_context, client_context, "mx.example.test")
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(server_context, client_context, "localhost")


def test_server_context_defaults_to_loopback_names(test_ca):
    server_context = test_ca.server_context()
    client_context = trusting(test_ca.ca_file)

    tls_handshake(server_context, client_context, "localhost")
    tls_handshake(server_context, client_context, "127.0.0.1")
    tls_handshake(server_context, client_context, "::1")


def test_stop_frees_port(smtp_peer_factory):
    peer = smtp_peer_factory()
    port = peer.port
    assert port != 0
    peer.stop()
    peer.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((peer.host, port), timeout=5)
    with SmtpPeer(port=port) as successor:
        assert successor.port == port


def test_peer_listens_on_ipv6_loopback(smtp_peer_factory):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    peer = smtp_peer_factory(host="::1")
    with client(peer) as smtp:
        smtp.sendmail(ALICE, [BOB], message("v6@test"))

    assert peer.mailbox.count("v6@test") == 1


def test_ca_file_is_readable_by_other_users(test_ca):
    assert stat.S_IMODE(test_ca.ca_file.stat().st_mode) == 0o644
    for directory in test_ca.ca_file.parents:
        assert directory.stat().st_mode & stat.S_IXOTH, directory
    assert test_ca.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize(
    "kwargs",
    [{"tls": "smtps"}, {"tls": "starttls"}, {"sender_must_match_login": True}],
)
def test_inconsistent_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        SmtpPeer(**kwargs)
