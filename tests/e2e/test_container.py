"""The container guard: no Postfix daemon inside a container; msmtp sends directly."""

from tests.e2e.conftest import with_base
from tests.support import mailhost

CONTAINER_REASON = "no Postfix daemon inside a container"


def _apply_in_container(minion, **mail):
    minion.set_pillar(with_base(container=True, **mail))
    result = minion.apply()
    assert result.returncode == 0, result.output
    again = minion.apply()
    assert again.returncode == 0 and again.changed == {}, again.changed
    return result


def _assert_no_postfix_and_says_why(result):
    assert not mailhost.package_installed("postfix")
    assert not mailhost.postfix_running()
    assert mailhost.tcp_listeners(25) == []
    assert mailhost.package_installed("msmtp-mta")
    assert CONTAINER_REASON in result.states["mail-smtp-service-not-wanted"]["comment"]


def test_container_relay_sends_with_msmtp_straight_to_the_relayhost(clean_machine, smtp_peer_factory):
    relayhost = smtp_peer_factory(tls="none")
    result = _apply_in_container(
        clean_machine, relay={"relayhost": "127.0.0.1", "port": relayhost.port, "tls": "none"}
    )
    _assert_no_postfix_and_says_why(result)

    msg = mailhost.message("someone@example.test", subject="from a container")
    sent = mailhost.send(mailhost.SENDMAIL, msg)

    assert sent.returncode == 0, sent.stderr
    assert relayhost.mailbox.wait_for_ids([mailhost.message_id(msg)], timeout=30)


def test_container_without_relayhost_sends_to_the_hosts_relay_on_loopback_port_25(
    clean_machine, smtp_peer_factory
):
    result = _apply_in_container(clean_machine)
    _assert_no_postfix_and_says_why(result)
    host_relay = smtp_peer_factory(tls="none", port=25)

    msg = mailhost.message("someone@example.test", subject="to the host's relay")
    sent = mailhost.send(mailhost.SENDMAIL, msg)

    assert sent.returncode == 0, sent.stderr
    assert host_relay.mailbox.wait_for_ids([mailhost.message_id(msg)], timeout=30)
