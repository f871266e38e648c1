"""Pillar that operators ask for (issue 9), applied for real: aliases, extra
Postfix parameters, sender rewriting, msmtp's log."""

import email.parser
import pathlib
import subprocess

import pytest

from tests.e2e.conftest import with_base
from tests.support import mailhost

ADMIN = "ops@example.test"
WEB_ALIAS = ["web@example.test", "dev@example.test"]

# relay: Postfix rewrites local names; container: msmtp's aliases file does.
PATHS = {"postfix": False, "msmtp": True}


def _apply_twice(minion, pillar):
    """Apply, then check that a second apply changes nothing."""
    minion.set_pillar(pillar)
    result = minion.apply()
    assert result.returncode == 0, result.output
    again = minion.apply()
    assert again.returncode == 0 and again.changed == {}, again.changed
    return result


def _received_by_id(peer, msg):
    wanted = mailhost.message_id(msg)
    return [m for m in peer.mailbox.messages() if m.message_id == wanted]


@pytest.mark.parametrize("container", PATHS.values(), ids=PATHS.keys())
def test_aliases_send_a_local_name_to_its_addresses_and_other_names_to_admin(
    clean_machine, smtp_peer_factory, container
):
    smarthost = smtp_peer_factory(tls="none")
    _apply_twice(
        clean_machine,
        with_base(
            container=container,
            admin=ADMIN,
            aliases={"www-data": WEB_ALIAS},
            relay={"relayhost": "127.0.0.1", "port": smarthost.port, "tls": "none"},
        ),
    )
    assert mailhost.package_installed("postfix") is not container

    to_web = mailhost.message("www-data", subject="to www-data")
    to_cron = mailhost.message("cron", subject="to cron")
    for msg, name in ((to_web, "www-data"), (to_cron, "cron")):
        sent = mailhost.send_with_arguments(mailhost.SENDMAIL, msg, name)
        assert sent.returncode == 0, sent.stderr

    ids = [mailhost.message_id(to_web), mailhost.message_id(to_cron)]
    assert smarthost.mailbox.wait_for_ids(ids, timeout=60), mailhost.postfix_log_tail()
    web_rcpts = sorted(r for m in _received_by_id(smarthost, to_web) for r in m.rcpt_tos)
    assert web_rcpts == sorted(WEB_ALIAS)
    assert [m.rcpt_tos for m in _received_by_id(smarthost, to_cron)] == [[ADMIN]]


def _postconf(name):
    return subprocess.run(["postconf", "-h", name], capture_output=True, text=True, check=True).stdout.strip()


def test_extra_main_cf_parameters_reach_postfix_and_mail_still_flows(clean_machine, smtp_peer_factory):
    smarthost = smtp_peer_factory(tls="none")
    extra = {
        "message_size_limit": 20480000,
        "maximal_queue_lifetime": "2d",
        "smtp_tls_mandatory_protocols": ["!SSLv2", "!SSLv3", "!TLSv1", "!TLSv1.1"],
    }
    _apply_twice(
        clean_machine,
        with_base(
            relay={"relayhost": "127.0.0.1", "port": smarthost.port, "tls": "none"},
            postfix={"main_cf": extra},
        ),
    )

    assert _postconf("message_size_limit") == "20480000"
    assert _postconf("maximal_queue_lifetime") == "2d"
    assert _postconf("smtp_tls_mandatory_protocols") == "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"
    assert _postconf("inet_interfaces") == "loopback-only"
    msg = mailhost.message("someone@example.test", subject="with extra main.cf")
    assert mailhost.send(mailhost.SENDMAIL, msg).returncode == 0
    assert smarthost.mailbox.wait_for_ids([mailhost.message_id(msg)], timeout=30), mailhost.postfix_log_tail()


def test_a_misspelt_main_cf_parameter_is_rejected_before_postfix_is_installed(clean_machine):
    assert not mailhost.package_installed("postfix")
    clean_machine.set_pillar(with_base(postfix={"main_cf": {"message_size_limt": 1000}}))

    result = clean_machine.apply()

    assert result.returncode != 0
    assert list(result.states) == ["mail-error"], result.output
    message = result.states["mail-error"]["comment"]
    assert "mail:postfix:main_cf:message_size_limt:" in message
    assert "not one of the parameters pillar may tune" in message
    assert not mailhost.package_installed("postfix")
    assert not mailhost.package_installed("msmtp")


SMARTHOST_ACCOUNT = "account@smarthost.test"
SMARTHOST_PASSWORD = "account-pass-ph3r"


@pytest.mark.parametrize("container", PATHS.values(), ids=PATHS.keys())
def test_relay_sender_gets_roots_cron_mail_past_a_smarthost_that_accepts_only_its_account(
    clean_machine, smtp_peer_factory, test_ca, container
):
    smarthost = smtp_peer_factory(
        tls="starttls", users={SMARTHOST_ACCOUNT: SMARTHOST_PASSWORD}, sender_must_match_login=True
    )
    _apply_twice(
        clean_machine,
        with_base(
            container=container,
            admin=ADMIN,
            relay={
                "relayhost": "localhost",
                "port": smarthost.port,
                "tls": "starttls",
                "user": SMARTHOST_ACCOUNT,
                "password": SMARTHOST_PASSWORD,
                "ca_file": str(test_ca.ca_file),
                "sender": SMARTHOST_ACCOUNT,
            },
        ),
    )
    cron_mail = mailhost.message("root", sender="root (Cron Daemon)", subject="Cron <root@e2e> run-parts")

    # How cron submits: sendmail -FCronDaemon -i -B8BITMIME -oem root
    sent = subprocess.run(
        [mailhost.SENDMAIL, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        input=cron_mail.as_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert sent.returncode == 0, sent.stderr
    assert smarthost.mailbox.wait_for_ids([mailhost.message_id(cron_mail)], timeout=60), (
        mailhost.postfix_log_tail()
    )
    [received] = _received_by_id(smarthost, cron_mail)
    assert received.mail_from == SMARTHOST_ACCOUNT
    assert received.rcpt_tos == [ADMIN]
    headers = email.parser.BytesHeaderParser().parsebytes(received.data)
    assert SMARTHOST_ACCOUNT in headers["From"], headers["From"]
    assert "root@" not in headers["From"], headers["From"]


MSMTP_LOG = pathlib.Path("/var/log/msmtp-e2e.log")
LOGIN = "alerts@example.test"


def test_failing_msmtp_submissions_leave_a_line_in_msmtps_log_that_only_root_reads_and_writes(
    clean_machine, smtp_peer_factory, test_ca
):
    mailu = smtp_peer_factory(tls="implicit", users={LOGIN: "right"}, sender_must_match_login=True)
    pillar = with_base(
        msmtp={"logfile": str(MSMTP_LOG)},
        mailu={
            "host": "localhost",
            "port": mailu.port,
            "user": LOGIN,
            "password": "wrong-password-for-the-log",
            "ca_file": str(test_ca.ca_file),
        },
    )
    _apply_twice(clean_machine, pillar)
    stat = MSMTP_LOG.stat()
    assert (stat.st_uid, stat.st_gid, oct(stat.st_mode & 0o777)) == (0, 0, "0o600")

    first = mailhost.send(mailhost.SENDMAIL, mailhost.message("someone@example.test", subject="one"))
    second = mailhost.send(mailhost.SENDMAIL, mailhost.message("someone@example.test", subject="two"))

    assert first.returncode != 0 and second.returncode != 0
    lines = MSMTP_LOG.read_text().splitlines()
    assert len(lines) == 2, lines
    assert all("exitcode=EX_" in line and "recipients=someone@example.test" in line for line in lines), lines
    assert "wrong-password-for-the-log" not in MSMTP_LOG.read_text()
    peek = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(MSMTP_LOG)], capture_output=True)
    assert peek.returncode != 0 and b"Permission denied" in peek.stderr
    assert mailu.mailbox.messages() == []

    clean_machine.set_pillar(pillar)
    assert clean_machine.apply("mail.clean").returncode == 0
    assert not MSMTP_LOG.exists()
