"""Broken and hostile pillar stops the run before any change, naming the key."""

import copy
import hashlib
import pathlib

import pytest

from tests.e2e.conftest import with_base
from tests.support import mailhost

SECRET = "s3cret-never-shown"
INJECT = "\ninet_interfaces = all\nmynetworks = 0.0.0.0/0"

# (id, pillar mail:, the key the message must name, the value it must not echo)
CASES = [
    ("enabled-string", {"enabled": "yes"}, "mail:enabled", None),
    ("mode-unknown", {"mode": "smtp"}, "mail:mode", None),
    ("mode-number", {"mode": 1}, "mail:mode", None),
    ("container-maybe", {"container": "maybe"}, "mail:container", None),
    ("from-not-an-address", {"from": "root"}, "mail:from", None),
    ("from-injects-a-header", {"from": "a@example.org\nBcc: all@example.org"}, "mail:from", None),
    ("admin-two-addresses", {"admin": "ops@example.org, evil@example.net"}, "mail:admin", None),
    ("timeout-zero", {"timeout": 0}, "mail:timeout", None),
    ("timeout-string", {"timeout": "10"}, "mail:timeout", None),
    ("timeout-bool", {"timeout": True}, "mail:timeout", None),
    ("mailu-host-injects-main-cf", {"mailu": {"host": "mail.example.org" + INJECT}}, "mail:mailu:host", None),
    (
        "mailu-host-option-like",
        {"mailu": {"host": "-oProxyCommand=x", "user": "a@b.org", "password": "p"}},
        "mail:mailu:host",
        None,
    ),
    ("mailu-port-zero", {"mailu": {"port": 0}}, "mail:mailu:port", None),
    ("mailu-port-too-big", {"mailu": {"port": 65536}}, "mail:mailu:port", None),
    ("mailu-port-string", {"mailu": {"port": "465"}}, "mail:mailu:port", None),
    ("mailu-tls-none", {"mailu": {"tls": "none"}}, "mail:mailu:tls", None),
    (
        "mailu-user-injects-msmtprc",
        {"mailu": {"host": "m.example.org", "user": "a@b.org\nhost evil.example", "password": SECRET}},
        "mail:mailu:user",
        SECRET,
    ),
    (
        "mailu-password-injects-msmtprc",
        {"mailu": {"host": "m.example.org", "user": "a@b.org", "password": SECRET + "\nhost evil.example"}},
        "mail:mailu:password",
        SECRET,
    ),
    (
        "mailu-password-number",
        {"mailu": {"host": "m.example.org", "user": "a@b.org", "password": 123456}},
        "mail:mailu:password",
        None,
    ),
    ("mailu-host-without-user", {"mailu": {"host": "m.example.org"}}, "mail:mailu:user", None),
    ("mailu-queue-string", {"mailu": {"queue": "yes"}}, "mail:mailu:queue", None),
    ("mailu-ca-file-relative", {"mailu": {"ca_file": "certs/ca.pem"}}, "mail:mailu:ca_file", None),
    ("mode-mailu-without-host", {"mode": "mailu"}, "mail:mailu:host", None),
    (
        "relayhost-injects-main-cf",
        {"relay": {"relayhost": "smtp.example.net" + INJECT}},
        "mail:relay:relayhost",
        None,
    ),
    ("relayhost-with-space", {"relay": {"relayhost": "smtp example"}}, "mail:relay:relayhost", None),
    ("relayhost-list", {"relay": {"relayhost": ["a.example", "b.example"]}}, "mail:relay:relayhost", None),
    ("relayhost-bad-ip", {"relay": {"relayhost": "10.0.0.999"}}, "mail:relay:relayhost", None),
    ("relay-port-negative", {"relay": {"port": -1}}, "mail:relay:port", None),
    ("relay-tls-ssl", {"relay": {"tls": "ssl"}}, "mail:relay:tls", None),
    (
        "relay-user-without-password",
        {"relay": {"relayhost": "s.example", "user": "u"}},
        "mail:relay:password",
        None,
    ),
    (
        "relay-password-without-user",
        {"relay": {"relayhost": "s.example", "password": SECRET}},
        "mail:relay:user",
        SECRET,
    ),
    (
        "relay-credentials-in-clear",
        {"relay": {"relayhost": "s.example", "tls": "none", "user": "u", "password": SECRET}},
        "mail:relay:tls",
        SECRET,
    ),
    (
        "relay-credentials-without-relayhost",
        {"relay": {"user": "u", "password": SECRET}},
        "mail:relay:relayhost",
        SECRET,
    ),
    (
        "relay-password-nul",
        {"relay": {"relayhost": "s.example", "user": "u", "password": SECRET + "\x00x"}},
        "mail:relay:password",
        SECRET,
    ),
    (
        "relay-password-carriage-return",
        {"relay": {"relayhost": "s.example", "user": "u", "password": SECRET + "\rrelayhost = evil"}},
        "mail:relay:password",
        SECRET,
    ),
    (
        "relay-password-escape",
        {"relay": {"relayhost": "s.example", "user": "u", "password": SECRET + "\x1b[2J"}},
        "mail:relay:password",
        SECRET,
    ),
    (
        "relay-user-with-colon",
        {"relay": {"relayhost": "s.example", "user": "us:er", "password": SECRET}},
        "mail:relay:user",
        SECRET,
    ),
    (
        "mailu-password-too-long-for-msmtp",
        {"mailu": {"host": "m.example.org", "user": "a@b.org", "password": SECRET + "x" * 480}},
        "mail:mailu:password",
        SECRET,
    ),
    ("alias-without-domain", {"aliases": {"root": "ops"}}, "mail:aliases:root", None),
    (
        "alias-injects-a-line",
        {"aliases": {"www-data": ["a@example.org\nroot: evil@example.net"]}},
        "mail:aliases:www-data",
        None,
    ),
    (
        "main-cf-opens-inet-interfaces",
        {"postfix": {"main_cf": {"inet_interfaces": "all"}}},
        "mail:postfix:main_cf:inet_interfaces",
        None,
    ),
    (
        "main-cf-widens-mynetworks",
        {"postfix": {"main_cf": {"mynetworks": "0.0.0.0/0"}}},
        "mail:postfix:main_cf:mynetworks",
        None,
    ),
    (
        "main-cf-turns-tls-off",
        {"postfix": {"main_cf": {"smtp_tls_security_level": "none"}}},
        "mail:postfix:main_cf:smtp_tls_security_level",
        None,
    ),
    (
        "main-cf-unknown-to-installed-postfix",
        {"postfix": {"main_cf": {"message_size_limt": 1000}}},
        "mail:postfix:main_cf:message_size_limt",
        None,
    ),
    (
        "main-cf-value-injects-a-line",
        {"postfix": {"main_cf": {"maximal_queue_lifetime": "2d" + INJECT}}},
        "mail:postfix:main_cf:maximal_queue_lifetime",
        None,
    ),
    (
        "relayhost-ipv6-with-tls-but-no-name",
        {"relay": {"relayhost": "::1", "tls": "starttls"}},
        "mail:relay:tls_name",
        None,
    ),
    ("relay-sender-without-relayhost", {"relay": {"sender": "a@example.org"}}, "mail:relay:sender", None),
    ("msmtp-logfile-relative", {"msmtp": {"logfile": "msmtp.log"}}, "mail:msmtp:logfile", None),
    ("relay-unknown-key", {"relay": {"relay_host": "s.example"}}, "mail:relay:relay_host", None),
    ("unknown-top-key", {"mailuu": {"host": "m.example.org"}}, "mail:mailuu", None),
    ("relay-not-a-mapping", {"relay": "smtp.example.net"}, "mail:relay", None),
    (
        "lookup-config-dir-relative",
        {"lookup": {"postfix": {"config_dir": "etc/postfix"}}},
        "mail:lookup:postfix:config_dir",
        None,
    ),
    ("lookup-pkgs-not-a-list", {"lookup": {"msmtp": {"pkgs": "msmtp"}}}, "mail:lookup:msmtp:pkgs", None),
    (
        "lookup-pkgs-inject-option",
        {"lookup": {"postfix": {"pkgs": ["postfix", "--allow-unauthenticated"]}}},
        "mail:lookup:postfix:pkgs",
        None,
    ),
]


def _checksums():
    files = sorted(p for p in pathlib.Path("/etc/postfix").rglob("*") if p.is_file())
    files += [pathlib.Path("/etc/msmtprc")]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.exists()}


@pytest.fixture(scope="module")
def configured(minion):
    """A working relay configuration that every bad pillar then tries to change."""
    minion.set_pillar(with_base(admin="ops@example.org"))
    applied = minion.apply()
    assert applied.returncode == 0, applied.output
    before = _checksums()
    assert "/etc/postfix/main.cf" in before and "/etc/msmtprc" in before
    yield minion, before
    minion.set_pillar(with_base())
    assert minion.apply("mail.clean").returncode == 0


@pytest.mark.parametrize("mail, key, secret", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_pillar_fails_before_any_change_with_one_message_naming_the_key(configured, mail, key, secret):
    minion, before = configured
    minion.set_pillar(with_base(**copy.deepcopy(mail)))

    result = minion.apply()

    assert result.returncode != 0
    assert list(result.states) == ["mail-error"], result.output
    message = result.states["mail-error"]["comment"]
    assert f"{key}:" in message or f"{key} " in message, message
    assert result.data and all(not value["changes"] for value in result.data.values())
    if secret:
        assert secret not in result.output
    assert _checksums() == before
    assert mailhost.postfix_running()


def test_a_pillar_that_is_not_a_mapping_is_rejected(configured):
    minion, before = configured
    minion.set_pillar("on")

    result = minion.apply()

    assert result.returncode != 0
    assert "Invalid pillar mail:" in result.states["mail-error"]["comment"]
    assert _checksums() == before
