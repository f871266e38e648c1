"""Broken and hostile pillar stops the run before any change, naming the key.

The second half (issue 12) is pillar a careless operator could write that would
make the formula touch what is not its own: system files through a log path, a
group of the system, main.cf parameters that divert or copy mail or log the
password, clean's reach, values that reach a shell or a unit file; then
addresses that read as paths or table syntax, a system file as msmtp's aliases,
the formula's directories where others may write, programs root runs from
anywhere, another Postfix instance, main.cf values that weaken TLS, and a
take-over that is not a boolean. Each is applied for real and must change
nothing: not the formula's files, not the watched system files (content, owner
and mode).
"""

import copy
import grp
import hashlib
import os
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
    (
        "tofs-template-from-the-web",
        {"tofs": {"source_files": {"main.cf.jinja": ["https://example.net/main.cf"]}}},
        "mail:tofs:source_files:main.cf.jinja",
        None,
    ),
    (
        "tofs-template-from-a-local-file",
        {"tofs": {"source_files": {"msmtprc.jinja": ["file:///etc/shadow"]}}},
        "mail:tofs:source_files:msmtprc.jinja",
        None,
    ),
    (
        "tofs-template-out-of-the-file-root",
        {"tofs": {"source_files": {"sasl_passwd.jinja": ["salt://../../etc/shadow"]}}},
        "mail:tofs:source_files:sasl_passwd.jinja",
        None,
    ),
]


# Someone else's mail log, as rsyslog leaves it: the formula must never touch it.
FOREIGN_LOG = pathlib.Path("/var/log/mail.log")
WATCHED = [
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/aliases",
    "/etc/msmtprc",
    str(FOREIGN_LOG),
    "/usr/local/bin",
    "/var/lib",
    "/tmp/mailstack-hostile-ran",
    # Where the hostile cases of lookup would write.
    "/etc/ld.so.preload",
    "/etc/sudoers.d",
    "/etc/postfix-x",
    "/tmp/mailstack",
    "/dev/shm/mailstack",
    "/var/tmp/mailstack",
]
SHELL_PROOF = "/tmp/mailstack-hostile-ran"


def _fingerprint(path):
    info = os.lstat(path)
    content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else sorted(os.listdir(path))
    return (content, info.st_uid, info.st_gid, oct(info.st_mode))


def _checksums():
    files = sorted(p for p in pathlib.Path("/etc/postfix").rglob("*") if p.is_file())
    files += [pathlib.Path(p) for p in WATCHED]
    state = {str(p): _fingerprint(p) for p in files if os.path.lexists(p)}
    state["groups"] = sorted((g.gr_name, tuple(g.gr_mem)) for g in grp.getgrall())
    return state


MAILU = {"host": "mail.example.org", "user": "alerts@example.org", "password": SECRET}
# (id, pillar mail:, the key the message must name, the value it must not echo): by class.
HOSTILE = [
    # 1. The msmtp log file.
    (
        "logfile-etc-passwd",
        {"mailu": MAILU, "msmtp": {"logfile": "/etc/passwd"}},
        "mail:msmtp:logfile",
        SECRET,
    ),
    (
        "logfile-someone-elses-log",
        {"mailu": MAILU, "msmtp": {"logfile": str(FOREIGN_LOG)}},
        "mail:msmtp:logfile",
        SECRET,
    ),
    (
        "logfile-where-every-user-sends",
        {"msmtp": {"logfile": "/var/log/msmtp.log"}},
        "mail:msmtp:logfile",
        None,
    ),
    (
        "logfile-through-dotdot",
        {"mailu": MAILU, "msmtp": {"logfile": "/var/log/../../etc/passwd"}},
        "mail:msmtp:logfile",
        SECRET,
    ),
    # 2. Groups of the system.
    (
        "group-sudo-without-password",
        {"lookup": {"msmtp": {"group": "sudo"}}},
        "mail:lookup:msmtp:group",
        None,
    ),
    (
        "group-shadow-with-password",
        {"mailu": MAILU, "senders": ["nobody"], "lookup": {"msmtp": {"group": "shadow"}}},
        "mail:lookup:msmtp:group",
        SECRET,
    ),
    # 3. main.cf parameters that copy, divert or deliver mail, or run programs.
    *[
        (f"main-cf-{name}", {"postfix": {"main_cf": {name: value}}}, f"mail:postfix:main_cf:{name}", None)
        for name, value in (
            ("content_filter", "smtp:[evil.example]:25"),
            ("always_bcc", "copy@evil.example"),
            ("sender_bcc_maps", "static:copy@evil.example"),
            ("recipient_bcc_maps", "static:copy@evil.example"),
            ("canonical_maps", "static:evil@evil.example"),
            ("sender_dependent_relayhost_maps", "static:[evil.example]"),
            ("sender_dependent_default_transport_maps", "static:smtp:[evil.example]"),
            ("smtp_fallback_relay", "[evil.example]"),
            ("virtual_mailbox_maps", "static:x"),
            ("virtual_transport", "smtp:[evil.example]"),
            ("daemon_directory", "/tmp"),
            ("smtp_tls_trust_anchor_file", "/tmp/evil-ca.pem"),
            ("tls_append_default_CA", "yes"),
            ("mailbox_command", "/bin/sh -c id"),
            # 4. What would log or mail the AUTH PLAIN line.
            ("debug_peer_list", "0.0.0.0/0"),
            ("debug_peer_level", "5"),
            ("notify_classes", "protocol"),
            ("error_notice_recipient", "evil@evil.example"),
            ("smtp_tls_loglevel", "4"),
        )
    ],
    # 5. Clean's reach.
    ("state-dir-var-lib", {"lookup": {"state_dir": "/var/lib"}}, "mail:lookup:state_dir", None),
    (
        "libexec-dir-usr-local-bin",
        {"lookup": {"libexec_dir": "/usr/local/bin"}},
        "mail:lookup:libexec_dir",
        None,
    ),
    (
        "msmtp-aliases-etc-aliases",
        {"lookup": {"msmtp": {"aliases": "/etc/aliases"}}},
        "mail:lookup:msmtp:aliases",
        None,
    ),
    (
        "msmtp-config-etc-passwd",
        {"lookup": {"msmtp": {"config": "/etc/passwd"}}},
        "mail:lookup:msmtp:config",
        None,
    ),
    (
        "postfix-config-dir-etc",
        {"lookup": {"postfix": {"config_dir": "/etc"}}},
        "mail:lookup:postfix:config_dir",
        None,
    ),
    ("unit-dir-etc", {"lookup": {"systemd_unit_dir": "/etc"}}, "mail:lookup:systemd_unit_dir", None),
    # 7. A trailing newline.
    ("unit-trailing-newline", {"alerts": {"units": ["cron.service\n"]}}, "mail:alerts:units", None),
    ("alias-name-trailing-newline", {"aliases": {"www-data\n": "web@example.org"}}, "mail:aliases", None),
    (
        "package-trailing-newline",
        {"lookup": {"postfix": {"pkgs": ["postfix\n"]}}},
        "mail:lookup:postfix:pkgs",
        None,
    ),
    # 8. Shell metacharacters in paths.
    (
        "sendmail-runs-a-command",
        {"lookup": {"msmtp": {"sendmail": "/usr/sbin/sendmail;touch${IFS}" + SHELL_PROOF}}},
        "mail:lookup:msmtp:sendmail",
        None,
    ),
    (
        "libexec-dir-command-substitution",
        {"lookup": {"libexec_dir": "/usr/local/lib/$(touch " + SHELL_PROOF + ")/mailstack"}},
        "mail:lookup:libexec_dir",
        None,
    ),
    (
        "msmtp-binary-backticks",
        {"lookup": {"msmtp": {"binary": "/usr/bin/`touch " + SHELL_PROOF + "`"}}},
        "mail:lookup:msmtp:binary",
        None,
    ),
    # 9. Units whose drop-in would apply to the alerts themselves.
    ("unit-prefix-drop-in-mail", {"alerts": {"units": ["mail-.service"]}}, "mail:alerts:units", None),
    (
        "unit-prefix-drop-in-mail-alert",
        {"alerts": {"units": ["mail-alert-.service"]}},
        "mail:alerts:units",
        None,
    ),
    ("unit-option-like", {"alerts": {"units": ["--help.service"]}}, "mail:alerts:units", None),
    # 11. prestart through a shell.
    (
        "prestart-shell-string",
        {"lookup": {"postfix": {"prestart": "/bin/true; touch " + SHELL_PROOF}}},
        "mail:lookup:postfix:prestart",
        None,
    ),
    # 12. Addresses that would read as a path, or as syntax in Postfix's and msmtp's tables.
    (
        "admin-a-path-written-into-ld-so-preload",
        {"admin": "/tmp/x.so@example.org", "lookup": {"msmtp": {"aliases": "/etc/ld.so.preload"}}},
        "mail:admin",
        None,
    ),
    ("admin-a-path", {"mailu": MAILU, "admin": "/tmp/x.so@example.org"}, "mail:admin", SECRET),
    (
        "alias-target-postfix-substitution",
        {"aliases": {"www-data": "web${1}@example.org"}},
        "mail:aliases:www-data",
        None,
    ),
    (
        "alias-target-dollar",
        {"aliases": {"root": ["ops@example.org", "ops$x@example.org"]}},
        "mail:aliases:root",
        None,
    ),
    ("from-with-a-colon", {"from": "cron:x@example.org"}, "mail:from", None),
    (
        "relay-sender-with-a-slash",
        {"relay": {"relayhost": "smtp.example.net", "sender": "../x@example.org"}},
        "mail:relay:sender",
        None,
    ),
    # 13. A file of the system as msmtp's aliases file.
    (
        "msmtp-aliases-ld-so-preload",
        {"admin": "ops@example.org", "lookup": {"msmtp": {"aliases": "/etc/ld.so.preload"}}},
        "mail:lookup:msmtp:aliases",
        None,
    ),
    # 14. The formula's directories where others may write.
    ("state-dir-tmp", {"lookup": {"state_dir": "/tmp/mailstack"}}, "mail:lookup:state_dir", None),
    ("state-dir-dev-shm", {"lookup": {"state_dir": "/dev/shm/mailstack"}}, "mail:lookup:state_dir", None),
    (
        "libexec-dir-var-tmp",
        {"lookup": {"libexec_dir": "/var/tmp/mailstack"}},
        "mail:lookup:libexec_dir",
        None,
    ),
    # 15. Programs root runs, from where anyone could have put them.
    (
        "prestart-runs-a-shell",
        {"lookup": {"postfix": {"prestart": ["/bin/sh", "-c", "touch " + SHELL_PROOF]}}},
        "mail:lookup:postfix:prestart",
        None,
    ),
    (
        "msmtp-binary-in-a-home",
        {"lookup": {"msmtp": {"binary": "/home/eve/msmtp"}}},
        "mail:lookup:msmtp:binary",
        None,
    ),
    (
        "sendmail-into-sudoers-d",
        {"lookup": {"msmtp": {"sendmail": "/etc/sudoers.d/sendmail"}}},
        "mail:lookup:msmtp:sendmail",
        None,
    ),
    # 16. A Postfix instance the running Postfix never reads.
    (
        "postfix-config-dir-another-instance",
        {"lookup": {"postfix": {"config_dir": "/etc/postfix-x"}}},
        "mail:lookup:postfix:config_dir",
        None,
    ),
    # 17. main.cf TLS values that weaken TLS.
    *[
        (
            f"main-cf-weak-{name}",
            {"postfix": {"main_cf": {name: value}}},
            f"mail:postfix:main_cf:{name}",
            None,
        )
        for name, value in (
            ("smtp_tls_mandatory_ciphers", "null"),
            ("smtp_tls_ciphers", "export"),
            ("smtp_tls_mandatory_protocols", "<=TLSv1"),
            ("smtp_tls_protocols", "!SSLv2, !SSLv3"),
            ("tls_high_cipherlist", "aNULL:eNULL"),
            ("tls_medium_cipherlist", "aNULL:eNULL"),
            ("tls_ssl_options", "0x40000000"),
        )
    ],
    # 18. Taking over what is not the formula's, unless a boolean says so.
    ("take-over-postfix-string", {"take_over": {"postfix": "yes"}}, "mail:take_over:postfix", None),
    (
        "take-over-senders-group-number",
        {"take_over": {"senders_group": 1}},
        "mail:take_over:senders_group",
        None,
    ),
    ("take-over-not-a-mapping", {"take_over": "all"}, "mail:take_over", None),
]


@pytest.fixture(scope="module")
def configured(minion):
    """A working relay configuration that every bad pillar then tries to change."""
    made_log = not FOREIGN_LOG.exists()
    if made_log:
        FOREIGN_LOG.write_text("Dec  2 09:00:00 host postfix/qmgr[1]: someone else's log\n")
        os.chown(FOREIGN_LOG, 0, grp.getgrnam("adm").gr_gid)
        FOREIGN_LOG.chmod(0o640)
    minion.set_pillar(with_base(admin="ops@example.org"))
    applied = minion.apply()
    assert applied.returncode == 0, applied.output
    before = _checksums()
    assert "/etc/postfix/main.cf" in before and "/etc/msmtprc" in before
    yield minion, before
    minion.set_pillar(with_base())
    assert minion.apply("mail.clean").returncode == 0
    if made_log:
        FOREIGN_LOG.unlink()


ALL_CASES = CASES + HOSTILE


@pytest.mark.parametrize("mail, key, secret", [c[1:] for c in ALL_CASES], ids=[c[0] for c in ALL_CASES])
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
    assert not os.path.lexists(SHELL_PROOF)
    assert mailhost.postfix_running()


def test_a_pillar_that_is_not_a_mapping_is_rejected(configured):
    minion, before = configured
    minion.set_pillar("on")

    result = minion.apply()

    assert result.returncode != 0
    assert "Invalid pillar mail:" in result.states["mail-error"]["comment"]
    assert _checksums() == before
