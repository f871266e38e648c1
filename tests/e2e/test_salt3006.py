"""The formula on Salt 3006 LTS, masterless, for real (issue 14): the line most
fleets run. A second virtualenv holds Salt 3006 from constraints-3006.txt; its
``salt-call`` applies the formula exactly as the 3008 tests do."""

import pytest

from tests.e2e.conftest import BASE_PILLAR, with_base
from tests.support import mailhost
from tests.support.salt_local import LocalMinion, salt_3006_call

ADMIN = "ops@example.test"
LOGIN, TOKEN = "alerts@example.test", "token-3006-never-shown"


@pytest.fixture(scope="module")
def minion3006(tmp_path_factory):
    salt_call = salt_3006_call()
    minion = LocalMinion(tmp_path_factory.mktemp("minion3006"), salt_call=salt_call)
    version = minion.run("test.version")
    assert version.returncode == 0 and str(version.data).startswith("3006."), version.output
    synced = minion.sync()
    assert synced.returncode == 0, synced.output
    minion.set_pillar(BASE_PILLAR)
    assert minion.apply("mail.clean").returncode == 0
    yield minion
    minion.set_pillar(BASE_PILLAR)
    cleaned = minion.apply("mail.clean")
    assert cleaned.returncode == 0, cleaned.output


@pytest.fixture
def clean3006(minion3006):
    yield minion3006
    minion3006.set_pillar(BASE_PILLAR)
    result = minion3006.apply("mail.clean")
    assert result.returncode == 0, result.output
    assert not mailhost.postfix_running()


def _apply(minion, pillar, *, test=False):
    minion.set_pillar(pillar)
    result = minion.apply(test=test)
    assert result.returncode == 0, result.output
    return result


def _changed_ids(result):
    return sorted(value["__id__"] for value in result.data.values() if value["changes"])


def test_salt_3006_relay_delivers_reapplies_with_no_change_and_predicts_a_pillar_change_exactly(
    clean3006, smtp_peer_factory
):
    sink = smtp_peer_factory(tls="none")
    relay = {"relayhost": "127.0.0.1", "port": sink.port, "tls": "none"}
    _apply(clean3006, with_base(admin=ADMIN, relay=relay))

    message = mailhost.message("root", subject="3006 relay")
    assert mailhost.send_with_arguments(mailhost.SENDMAIL, message, "root").returncode == 0
    assert sink.mailbox.wait_for_ids([mailhost.message_id(message)], timeout=60), mailhost.postfix_log_tail()
    assert sink.mailbox.messages()[0].rcpt_tos == [ADMIN]

    again = _apply(clean3006, with_base(admin=ADMIN, relay=relay))
    assert _changed_ids(again) == []

    changed_pillar = with_base(admin="other@example.test", relay=relay)
    predicted = _apply(clean3006, changed_pillar, test=True)
    applied = _apply(clean3006, changed_pillar)
    predicted_ids = sorted(
        v["__id__"] for v in predicted.data.values() if v["result"] is None or v["changes"]
    )
    assert predicted_ids == _changed_ids(applied) != []


def test_salt_3006_mailu_direct_delivers_with_the_token_in_no_output(clean3006, smtp_peer_factory, test_ca):
    mailu = smtp_peer_factory(tls="implicit", users={LOGIN: TOKEN}, sender_must_match_login=True)
    pillar = with_base(
        mailu={
            "host": "localhost",
            "port": mailu.port,
            "user": LOGIN,
            "password": TOKEN,
            "ca_file": str(test_ca.ca_file),
        }
    )
    applied = _apply(clean3006, pillar)
    assert TOKEN not in applied.output
    assert mailhost.package_installed("msmtp-mta") and not mailhost.package_installed("postfix")

    message = mailhost.message("someone@example.test", subject="3006 mailu")
    assert mailhost.send(mailhost.SENDMAIL, message).returncode == 0
    assert mailu.mailbox.wait_for_ids([mailhost.message_id(message)], timeout=30)
    assert {m.login for m in mailu.mailbox.messages()} == {LOGIN}
    assert _changed_ids(_apply(clean3006, pillar)) == []


def test_salt_3006_status_and_send_test_report_a_delivery(clean3006, smtp_peer_factory):
    sink = smtp_peer_factory(tls="none")
    _apply(
        clean3006, with_base(admin=ADMIN, relay={"relayhost": "127.0.0.1", "port": sink.port, "tls": "none"})
    )

    sent = clean3006.run("mailstack.send_test", "wait=30")
    assert sent.returncode == 0, sent.output
    assert sent.data["result"] == "delivered" and sent.data["detail"].startswith("250"), sent.data
    assert sink.mailbox.wait_for_ids([sent.data["message_id"].strip("<>")], timeout=30)

    status = clean3006.run("mailstack.status")
    assert status.returncode == 0, status.output
    assert status.data["mode"] == "relay" and status.data["postfix"]["running"] is True
    assert status.data["queue"]["total"] == 0 and status.data["next_hop_answers"] is True


def test_salt_3006_refuses_a_hostile_pillar_with_nothing_changed(clean3006):
    _apply(clean3006, with_base(admin=ADMIN))
    before = mailhost.file_fingerprints()
    clean3006.set_pillar(with_base(lookup={"state_dir": "/var/lib"}))

    refused = clean3006.apply()

    assert refused.returncode != 0
    assert list(refused.states) == ["mail-error"], refused.output
    assert "mail:lookup:state_dir" in refused.states["mail-error"]["comment"]
    assert all(not value["changes"] for value in refused.data.values())
    # 3006's test states cannot fail in test mode: the dry run shows the message.
    dry = clean3006.apply(test=True)
    assert list(dry.states) == ["mail-error"], dry.output
    assert "mail:lookup:state_dir" in dry.states["mail-error"]["comment"]
    assert mailhost.file_fingerprints() == before
