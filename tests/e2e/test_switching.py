"""Switching modes in turn, with a dry run before and a re-apply after each step."""

from tests.e2e.conftest import with_base
from tests.support import mailhost

LOGIN, PASSWORD = "alerts@example.test", "mailu-token"
LOOPBACK_25 = {"0100007F", "00000000000000000000000001000000"}


def _would_change(result):
    return {key for key, value in result.data.items() if value["result"] is None or value["changes"]}


def _changed(result):
    return {key for key, value in result.data.items() if value["changes"]}


def test_relay_mailu_queued_relay_in_turn_each_predicted_idempotent_and_delivering(
    clean_machine, smtp_peer_factory, test_ca
):
    minion = clean_machine
    smarthost = smtp_peer_factory(tls="none")
    mailu = smtp_peer_factory(tls="implicit", users={LOGIN: PASSWORD}, sender_must_match_login=True)
    relay = with_base(relay={"relayhost": "127.0.0.1", "port": smarthost.port, "tls": "none"})
    mailu_direct = with_base(
        mailu={
            "host": "localhost",
            "port": mailu.port,
            "tls": "implicit",
            "user": LOGIN,
            "password": PASSWORD,
            "ca_file": str(test_ca.ca_file),
        }
    )
    mailu_queued = with_base(mailu={**mailu_direct["mailu"], "queue": True})
    steps = [
        ("relay", relay, smarthost, True),
        ("mailu", mailu_direct, mailu, False),
        ("mailu+queue", mailu_queued, mailu, True),
        ("relay again", relay, smarthost, True),
    ]

    for name, pillar, peer, postfix in steps:
        minion.set_pillar(pillar)
        predicted = minion.apply(test=True)
        applied = minion.apply()
        again = minion.apply()

        assert applied.returncode == 0, (name, applied.output)
        assert _would_change(predicted) == _changed(applied), name
        assert again.changed == {}, (name, again.changed)
        assert mailhost.package_installed("postfix") is postfix, name
        assert mailhost.package_installed("msmtp-mta") is not postfix, name
        assert mailhost.postfix_running() is postfix, name
        assert (
            set(mailhost.tcp_listeners(25)) <= LOOPBACK_25 if postfix else mailhost.tcp_listeners(25) == []
        ), name

        msg = mailhost.message("someone@example.test", subject=f"after switching to {name}")
        result = mailhost.send(mailhost.SENDMAIL, msg)
        assert result.returncode == 0, (name, result.stderr)
        assert peer.mailbox.wait_for_ids([mailhost.message_id(msg)], timeout=60), (
            name,
            mailhost.postfix_log_tail(),
        )
