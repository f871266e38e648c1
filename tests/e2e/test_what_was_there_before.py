"""What was on the host before the formula stays the operator's: a Postfix
installed and configured by hand is neither taken over nor purged unless
pillar hands it over (mail:take_over:postfix), a group of the formula's name
is not adopted, and a password table made by hand is made private."""

import grp
import hashlib
import os
import pathlib
import pwd
import subprocess

import pytest

from tests.e2e.conftest import BASE_PILLAR, with_base
from tests.support import mailhost

MAIN_CF = pathlib.Path("/etc/postfix/main.cf")
KEPT = pathlib.Path("/etc/postfix/main.cf.before-mail-formula")
OPERATORS_MAIN_CF = "# the operator's own\nmyhostname = theirs.example\ninet_interfaces = loopback-only\n"
SECRET = "t0ken-" + os.urandom(4).hex()


def _apt(*args):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "-q", "-y", *args], check=True, env=env, capture_output=True)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def operators_postfix(minion):
    """Postfix installed and configured by hand, before the formula ever ran here."""
    subprocess.run(
        ["debconf-set-selections"],
        input=(
            "postfix postfix/main_mailer_type select Local only\n"
            "postfix postfix/mailname string theirs.example\n"
        ),
        text=True,
        check=True,
    )
    _apt("install", "postfix")
    MAIN_CF.write_text(OPERATORS_MAIN_CF)
    yield minion
    _apt("purge", "postfix")
    KEPT.unlink(missing_ok=True)
    minion.set_pillar(BASE_PILLAR)
    assert minion.apply("mail.clean").returncode == 0


def test_a_postfix_installed_and_configured_by_hand_is_refused_and_left_by_clean(operators_postfix):
    minion = operators_postfix
    before = _digest(MAIN_CF)
    minion.set_pillar(with_base(admin="ops@example.org"))

    applied = minion.apply()

    assert applied.returncode != 0
    assert list(applied.states) == ["mail-error"], applied.output
    assert "mail:take_over:postfix" in applied.states["mail-error"]["comment"]
    assert _digest(MAIN_CF) == before

    cleaned = minion.apply("mail.clean")

    assert cleaned.returncode == 0, cleaned.output
    assert mailhost.package_installed("postfix")
    assert _digest(MAIN_CF) == before
    assert not mailhost.package_installed("msmtp")


def test_take_over_hands_the_operators_postfix_to_the_formula_and_keeps_its_main_cf(operators_postfix):
    minion = operators_postfix
    minion.set_pillar(with_base(take_over={"postfix": True}))

    applied = minion.apply()

    assert applied.returncode == 0, applied.output
    assert KEPT.read_text() == OPERATORS_MAIN_CF
    assert "Managed by Salt (mail formula" in MAIN_CF.read_text()
    assert mailhost.postfix_running()
    again = minion.apply()
    assert again.returncode == 0 and again.changed == {}, again.changed

    cleaned = minion.apply("mail.clean")

    assert cleaned.returncode == 0, cleaned.output
    assert not mailhost.package_installed("postfix")
    assert KEPT.read_text() == OPERATORS_MAIN_CF


def test_a_password_table_made_by_hand_with_postmap_is_made_private_by_the_next_apply(
    clean_machine, smtp_peer_factory
):
    smarthost = smtp_peer_factory(tls="starttls", users={"relay-user": SECRET})
    relay = {"relayhost": "localhost", "port": smarthost.port, "user": "relay-user", "password": SECRET}
    clean_machine.set_pillar(with_base(relay=relay))
    assert clean_machine.apply().returncode == 0
    table = pathlib.Path("/etc/postfix/sasl_passwd.db")
    table.unlink()
    # Rebuilt by hand as Postfix's documentation says, then left readable (a restore, a chmod).
    subprocess.run(["postmap", "/etc/postfix/sasl_passwd"], check=True)
    table.chmod(0o644)

    applied = clean_machine.apply()

    assert applied.returncode == 0, applied.output
    assert table.stat().st_mode & 0o777 == 0o600
    assert (table.stat().st_uid, table.stat().st_gid) == (0, 0)
    assert SECRET not in applied.output


@pytest.fixture
def eve_in_a_group_of_the_formulas_name(clean_machine):
    """A group named like the formula's senders' group, and a user whose primary group it is."""
    subprocess.run(["groupadd", "mail-senders"], check=True)
    subprocess.run(["useradd", "--no-create-home", "--gid", "mail-senders", "eve"], check=True)
    yield clean_machine
    subprocess.run(["userdel", "eve"], check=True)
    subprocess.run(["groupdel", "mail-senders"], check=False)


@pytest.mark.parametrize("take_over", [False, True], ids=["not-taken-over", "taken-over"])
def test_a_user_whose_primary_group_is_the_senders_group_never_reads_the_token(
    eve_in_a_group_of_the_formulas_name, take_over
):
    minion = eve_in_a_group_of_the_formulas_name
    mailu = {"host": "mail.example.org", "user": "alerts@example.org", "password": SECRET}
    minion.set_pillar(with_base(mailu=mailu, take_over={"senders_group": take_over}))

    applied = minion.apply()

    assert applied.returncode != 0
    message = applied.states["mail-error"]["comment"]
    assert ("mail:senders" if take_over else "mail:lookup:msmtp:group") in message, message
    assert SECRET not in applied.output
    read = subprocess.run(
        ["runuser", "-u", "eve", "--", "cat", "/etc/msmtprc"], capture_output=True, text=True, check=False
    )
    assert SECRET not in read.stdout
    assert grp.getgrnam("mail-senders").gr_mem == []
    assert pwd.getpwnam("eve").pw_gid == grp.getgrnam("mail-senders").gr_gid
