"""Unit tests for ``_utils/mailstack_settings.py``, through the execution
module: the parameter files and pillar merged into the settings, the derived
defaults, masked passwords, and the validation of every pillar key (bad pillar
raises an error naming the key, and changes nothing).

``cp.list_master`` and ``cp.get_file_str`` are served from the real
``mail/parameters`` files of this repository (``tests/support/mailstack_unit.py``),
so the tests exercise the real defaults and per-OS maps.
"""

from __future__ import annotations

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.mailstack_unit import (
    ALIASES,
    DEBIAN_CA,
    FQDN,
    MAILU_HOST,
    MAILU_USER,
    REDHAT_CA,
    RELAY_HOST,
    SECRET,
    SMARTHOST_ACCOUNT,
    mailu,
    names_key,
    relay,
)

# ----------------------------------------------------------------- settings ---


def test_settings_uses_the_defaults_file_when_pillar_is_empty(configure):
    conf = configure().settings()

    assert conf["mode"] == "auto"
    assert conf["timeout"] == 10
    assert conf["mailu"]["port"] == 465 and conf["mailu"]["tls"] == "implicit"
    assert conf["relay"]["port"] == 587 and conf["relay"]["tls"] == "starttls"
    assert conf["lookup"]["ca_bundle"] == DEBIAN_CA


def test_settings_merges_the_debian_os_family_map_over_the_defaults(configure):
    conf = configure(os_family="Debian").settings()

    assert conf["lookup"]["postfix"]["pkgs"] == ["postfix", "libsasl2-modules"]
    assert conf["lookup"]["postfix"]["prestart"] == ["/usr/lib/postfix/configure-instance.sh", "-"]
    assert conf["lookup"]["msmtp"]["mta_pkg"] == "msmtp-mta"  # from defaults, untouched


def test_settings_merges_the_redhat_os_family_map_over_the_defaults(configure):
    conf = configure(os_family="RedHat", os="Fedora", osfinger="Fedora-40").settings()

    assert conf["lookup"]["ca_bundle"] == REDHAT_CA
    assert conf["lookup"]["msmtp"]["mta_pkg"] == ""
    assert conf["lookup"]["postfix"]["pkgs"] == ["postfix", "cyrus-sasl-plain"]
    assert conf["lookup"]["msmtp"]["binary"] == "/usr/bin/msmtp"  # default kept


def test_settings_pillar_lookup_overrides_the_os_family_map(configure):
    conf = configure(
        {"lookup": {"ca_bundle": "/opt/ca.pem", "msmtp": {"mta_pkg": "msmtp-sendmail"}}},
        os_family="RedHat",
    ).settings()

    assert conf["lookup"]["ca_bundle"] == "/opt/ca.pem"
    assert conf["lookup"]["msmtp"]["mta_pkg"] == "msmtp-sendmail"
    assert conf["lookup"]["postfix"]["pkgs"] == ["postfix", "cyrus-sasl-plain"]  # still RedHat


def test_settings_pillar_mail_overrides_the_defaults_key_by_key(configure):
    conf = configure({"timeout": 30, "relay": {"relayhost": RELAY_HOST, "port": 25}}).settings()

    assert conf["timeout"] == 30
    assert conf["relay"]["relayhost"] == RELAY_HOST
    assert conf["relay"]["port"] == 25
    assert conf["relay"]["tls"] == "starttls"  # sibling default kept


def test_settings_from_defaults_to_root_at_the_fqdn_grain(configure):
    assert configure().settings()["from"] == f"root@{FQDN}"


def test_settings_from_defaults_to_the_mailu_user_when_it_is_an_address(configure):
    assert configure({"mailu": mailu()}).settings()["from"] == MAILU_USER


def test_settings_from_ignores_a_mailu_user_that_is_not_an_address(configure):
    assert configure({"mailu": mailu(user="alice")}).settings()["from"] == f"root@{FQDN}"


def test_settings_explicit_from_wins_over_derived_defaults(configure):
    conf = configure({"from": "cron@example.org", "mailu": mailu()}).settings()
    assert conf["from"] == "cron@example.org"


def test_settings_masks_passwords_by_default(configure):
    conf = configure({"mailu": mailu(), "relay": relay()}).settings()

    assert conf["mailu"]["password"] == "********"
    assert conf["relay"]["password"] == "********"
    assert SECRET not in repr(conf)


def test_settings_leaves_empty_passwords_empty_when_masking(configure):
    assert configure().settings()["relay"]["password"] == ""


def test_settings_returns_passwords_with_include_secrets(configure):
    conf = configure({"mailu": mailu(), "relay": relay()}).settings(include_secrets=True)

    assert conf["mailu"]["password"] == SECRET
    assert conf["relay"]["password"] == SECRET


# --------------------------------------------------------------- validation ---


INVALID = [
    # wrong types
    pytest.param({"relay": {"port": True}}, "mail:relay:port", id="port_is_a_bool"),
    pytest.param({"mailu": {"port": "465"}}, "mail:mailu:port", id="port_is_a_string"),
    pytest.param({"timeout": "10"}, "mail:timeout", id="timeout_is_a_string"),
    pytest.param(
        {"relay": {"relayhost": ["a.example.net", "b.example.net"]}},
        "mail:relay:relayhost",
        id="relayhost_is_a_list",
    ),
    pytest.param({"mailu": {"host": {"name": MAILU_HOST}}}, "mail:mailu:host", id="mailu_host_is_a_mapping"),
    pytest.param({"enabled": "yes"}, "mail:enabled", id="enabled_is_a_string"),
    pytest.param({"mailu": mailu(queue="true")}, "mail:mailu:queue", id="queue_is_a_string"),
    # unknown enum values
    pytest.param({"mode": "smarthost"}, "mail:mode", id="mode_unknown"),
    pytest.param({"mailu": {"tls": "none"}}, "mail:mailu:tls", id="mailu_tls_none_not_allowed"),
    pytest.param({"mailu": {"tls": "ssl"}}, "mail:mailu:tls", id="mailu_tls_unknown"),
    pytest.param({"relay": {"tls": "ssl"}}, "mail:relay:tls", id="relay_tls_unknown"),
    pytest.param({"container": "yes-please"}, "mail:container", id="container_unknown"),
    pytest.param({"container": "true"}, "mail:container", id="container_quoted_true"),
    # ranges
    pytest.param({"relay": {"port": 0}}, "mail:relay:port", id="relay_port_0"),
    pytest.param({"relay": {"port": 65536}}, "mail:relay:port", id="relay_port_65536"),
    pytest.param({"mailu": {"port": 0}}, "mail:mailu:port", id="mailu_port_0"),
    pytest.param({"mailu": {"port": 65536}}, "mail:mailu:port", id="mailu_port_65536"),
    pytest.param({"timeout": 0}, "mail:timeout", id="timeout_0"),
    pytest.param({"timeout": 301}, "mail:timeout", id="timeout_301"),
    # host names
    pytest.param(
        {"relay": {"relayhost": "smtp.example.net\nrelayhost = evil.example"}},
        "mail:relay:relayhost",
        id="relayhost_with_newline",
    ),
    pytest.param(
        {"relay": {"relayhost": "smtp example.net"}}, "mail:relay:relayhost", id="relayhost_with_space"
    ),
    pytest.param(
        {"relay": {"relayhost": "-smtp.example.net"}},
        "mail:relay:relayhost",
        id="relayhost_with_leading_dash",
    ),
    pytest.param(
        {"relay": {"relayhost": "1.2.3.999"}}, "mail:relay:relayhost", id="relayhost_all_digit_name"
    ),
    pytest.param(
        {"relay": {"relayhost": "smtp.example.net:587"}}, "mail:relay:relayhost", id="relayhost_with_port"
    ),
    pytest.param({"mailu": mailu(host="mail.example.org\r\n")}, "mail:mailu:host", id="mailu_host_with_crlf"),
    pytest.param({"mailu": mailu(host="-mail.example.org")}, "mail:mailu:host", id="mailu_host_leading_dash"),
    # users
    pytest.param({"relay": relay(user="bob:admin")}, "mail:relay:user", id="relay_user_with_colon"),
    pytest.param({"relay": relay(user="bob smith")}, "mail:relay:user", id="relay_user_with_space"),
    pytest.param({"relay": relay(user="bob\tsmith")}, "mail:relay:user", id="relay_user_with_tab"),
    pytest.param({"mailu": mailu(user="alice:x@example.org")}, "mail:mailu:user", id="mailu_user_with_colon"),
    pytest.param(
        {"mailu": mailu(user=" alice@example.org")}, "mail:mailu:user", id="mailu_user_with_leading_space"
    ),
    # addresses
    pytest.param({"from": "root"}, "mail:from", id="from_without_domain"),
    pytest.param({"from": "root@-bad.example"}, "mail:from", id="from_with_bad_domain"),
    pytest.param({"from": "root@example.org\nBcc: x@example.org"}, "mail:from", id="from_with_newline"),
    pytest.param({"admin": "admin"}, "mail:admin", id="admin_without_domain"),
    pytest.param({"admin": "ad min@example.org"}, "mail:admin", id="admin_with_space"),
    # paths
    pytest.param({"mailu": mailu(ca_file="certs/ca.pem")}, "mail:mailu:ca_file", id="mailu_ca_file_relative"),
    pytest.param({"relay": relay(ca_file="ca.pem")}, "mail:relay:ca_file", id="relay_ca_file_relative"),
    # unknown keys and shapes
    pytest.param(
        {"relay": {"relay_host": RELAY_HOST}}, "mail:relay:relay_host", id="unknown_key_relay_host_typo"
    ),
    pytest.param({"mailu": {"hostname": MAILU_HOST}}, "mail:mailu:hostname", id="unknown_key_mailu_hostname"),
    pytest.param({"form": "root@example.org"}, "mail:form", id="unknown_key_top_level"),
    pytest.param({"lookup": "Debian"}, "mail:lookup", id="lookup_not_a_mapping"),
    pytest.param({"relay": RELAY_HOST}, "mail:relay", id="relay_section_not_a_mapping"),
    pytest.param({"mailu": [MAILU_HOST]}, "mail:mailu", id="mailu_section_not_a_mapping"),
    # credentials
    pytest.param({"relay": relay(user="")}, "mail:relay:user", id="relay_password_without_user"),
    pytest.param({"relay": relay(password="")}, "mail:relay:password", id="relay_user_without_password"),
    pytest.param(
        {"relay": relay(relayhost="")}, "mail:relay:relayhost", id="relay_credentials_without_relayhost"
    ),
    pytest.param({"relay": relay(tls="none")}, "mail:relay:tls", id="relay_credentials_with_tls_none"),
    pytest.param({"mailu": mailu(user="", password="")}, "mail:mailu:user", id="mailu_host_without_user"),
    pytest.param({"mailu": mailu(host="")}, "mail:mailu:host", id="mailu_credentials_without_host"),
    pytest.param({"mode": "mailu"}, "mail:mailu:host", id="mode_mailu_without_mailu_host"),
    # lookup
    pytest.param(
        {"lookup": {"ca_bundle": "ca.pem"}}, "mail:lookup:ca_bundle", id="lookup_ca_bundle_relative"
    ),
    pytest.param(
        {"lookup": {"msmtp": {"pkgs": "msmtp"}}}, "mail:lookup:msmtp:pkgs", id="lookup_msmtp_pkgs_not_a_list"
    ),
    pytest.param(
        {"lookup": {"postfix": "postfix"}}, "mail:lookup:postfix", id="lookup_postfix_not_a_mapping"
    ),
    pytest.param(
        {"lookup": {"postfix": {"pkgs": []}}}, "mail:lookup:postfix:pkgs", id="lookup_postfix_pkgs_empty"
    ),
    # aliases
    # extra main.cf parameters
    pytest.param(
        {"postfix": {"main_cf": "message_size_limit = 0"}}, "mail:postfix:main_cf", id="main_cf_string"
    ),
    pytest.param(
        {"postfix": {"main_cf": {"message size limit": 0}}}, "mail:postfix:main_cf", id="main_cf_name_space"
    ),
    pytest.param(
        {"postfix": {"main_cf": {"biff\ninet_interfaces": "no"}}},
        "mail:postfix:main_cf",
        id="main_cf_name_newline",
    ),
    pytest.param(
        {"postfix": {"main_cf": {"message_size_limt": 0}}},
        "mail:postfix:main_cf:message_size_limt",
        id="main_cf_unknown_name",
    ),
    pytest.param(
        {"postfix": {"main_cf": {"maximal_queue_lifetime": "5d\ninet_interfaces = all"}}},
        "mail:postfix:main_cf:maximal_queue_lifetime",
        id="main_cf_value_newline",
    ),
    pytest.param(
        {"postfix": {"main_cf": {"maximal_queue_lifetime": "5d\x00"}}},
        "mail:postfix:main_cf:maximal_queue_lifetime",
        id="main_cf_value_nul",
    ),
    pytest.param(
        {"postfix": {"main_cf": {"smtp_tls_mandatory_protocols": ["!SSLv2", "!SSLv3\rx"]}}},
        "mail:postfix:main_cf:smtp_tls_mandatory_protocols",
        id="main_cf_list_item_carriage_return",
    ),
    pytest.param(
        {"postfix": {"main_cf": {"message_size_limit": None}}},
        "mail:postfix:main_cf:message_size_limit",
        id="main_cf_value_null",
    ),
    pytest.param(
        {"postfix": {"main_cf": {"message_size_limit": {"max": 1}}}},
        "mail:postfix:main_cf:message_size_limit",
        id="main_cf_value_mapping",
    ),
    pytest.param({"postfix": {"main_cff": {}}}, "mail:postfix:main_cff", id="postfix_unknown_key"),
    pytest.param({"aliases": ["root"]}, "mail:aliases", id="aliases_not_a_mapping"),
    pytest.param({"aliases": {"Root Name": "a@example.org"}}, "mail:aliases", id="alias_name_with_space"),
    pytest.param({"aliases": {"root\nbcc": "a@example.org"}}, "mail:aliases", id="alias_name_newline"),
    pytest.param({"aliases": {"default": "a@example.org"}}, "mail:aliases", id="alias_name_default"),
    pytest.param({"aliases": {1000: "a@example.org"}}, "mail:aliases", id="alias_name_number"),
    pytest.param({"aliases": {"root": "ops"}}, "mail:aliases:root", id="alias_without_domain"),
    pytest.param({"aliases": {"root": ""}}, "mail:aliases:root", id="alias_empty"),
    pytest.param({"aliases": {"root": []}}, "mail:aliases:root", id="alias_empty_list"),
    pytest.param({"aliases": {"root": None}}, "mail:aliases:root", id="alias_null"),
    pytest.param(
        {"aliases": {"www-data": ["web@example.org", "a@example.org, b@example.org"]}},
        "mail:aliases:www-data",
        id="alias_list_item_with_two_addresses",
    ),
    pytest.param(
        {"aliases": {"www-data": ["web@example.org", "x@example.org\nBcc: y@example.org"]}},
        "mail:aliases:www-data",
        id="alias_list_item_with_newline",
    ),
    pytest.param(
        {"aliases": {"www-data": ["web@example.org", 7]}}, "mail:aliases:www-data", id="alias_number"
    ),
    pytest.param(
        {"aliases": {"www-data": [f"{n:03}{'a' * 40}@example.org" for n in range(10)]}},
        "mail:aliases:www-data",
        id="alias_line_too_long_for_msmtp",
    ),
    pytest.param({"tofs": {"source_files": ["salt://x"]}}, "mail:tofs:source_files", id="tofs_not_a_mapping"),
    pytest.param(
        {"tofs": {"source_files": {"passwd": ["salt://site/passwd"]}}},
        "mail:tofs:source_files",
        id="tofs_unknown_template",
    ),
    pytest.param(
        {"tofs": {"source_files": {"msmtprc.jinja": ["http://example.org/msmtprc"]}}},
        "mail:tofs:source_files:msmtprc.jinja",
        id="tofs_http_source",
    ),
    pytest.param(
        {"tofs": {"source_files": {"msmtprc.jinja": ["/etc/shadow"]}}},
        "mail:tofs:source_files:msmtprc.jinja",
        id="tofs_local_path",
    ),
    pytest.param(
        {"tofs": {"source_files": {"main.cf.jinja": ["salt://site/../../etc/shadow"]}}},
        "mail:tofs:source_files:main.cf.jinja",
        id="tofs_dot_dot",
    ),
    pytest.param(
        {"tofs": {"source_files": {"main.cf.jinja": []}}},
        "mail:tofs:source_files:main.cf.jinja",
        id="tofs_empty",
    ),
]


@pytest.mark.parametrize(("pillar", "key"), INVALID)
def test_invalid_pillar_raises_an_error_naming_the_key(configure, pillar, key):
    mailstack = configure(pillar)

    with pytest.raises(CommandExecutionError) as raised:
        mailstack.settings()

    assert names_key(str(raised.value), key), str(raised.value)


def test_pillar_mail_that_is_not_a_mapping_is_rejected(mailstack):
    mailstack.__pillar__ = {"mail": ["relay"]}

    with pytest.raises(CommandExecutionError, match=r"pillar mail: must be a mapping"):
        mailstack.settings()


def test_integer_password_error_says_it_must_be_a_string(configure):
    mailstack = configure({"relay": relay(password=123456)})

    with pytest.raises(CommandExecutionError) as raised:
        mailstack.settings()

    message = str(raised.value)
    assert names_key(message, "mail:relay:password")
    assert "must be a string" in message
    assert "123456" not in message


def test_unknown_key_error_lists_the_known_keys(configure):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"relay": {"relay_host": RELAY_HOST}}).settings()

    assert "relayhost" in str(raised.value).split("known keys:")[1]


BAD_PASSWORDS = [
    pytest.param(f"{SECRET}\nrelayhost = evil", id="newline"),
    pytest.param(f"{SECRET}\0", id="nul"),
    pytest.param(f"{SECRET}\x1b[2J", id="escape"),
    pytest.param(f"{SECRET}\r", id="carriage_return"),
    pytest.param(f" {SECRET}", id="leading_space"),
    pytest.param(f"{SECRET}\t", id="trailing_tab"),
]


@pytest.mark.parametrize("password", BAD_PASSWORDS)
@pytest.mark.parametrize("section", ["relay", "mailu"])
def test_bad_password_is_rejected_without_showing_it(configure, section, password):
    pillar = (
        {"relay": relay(password=password)} if section == "relay" else {"mailu": mailu(password=password)}
    )
    mailstack = configure(pillar)

    with pytest.raises(CommandExecutionError) as raised:
        mailstack.settings()

    message = str(raised.value)
    assert names_key(message, f"mail:{section}:password"), message
    assert SECRET not in message


@pytest.mark.parametrize(
    "host",
    ["smtp.example.net", "smtp.example.net.", "localhost", "192.0.2.10", "2001:db8::25", "mx_1.example.net"],
)
def test_valid_relayhost_is_accepted(configure, host):
    pillar = {"relay": {"relayhost": host, "tls_name": "smtp.example.net"}}
    assert configure(pillar).settings()["relay"]["relayhost"] == host


def test_password_with_inner_space_and_quotes_is_accepted(configure):
    password = 'a "b" \\c d'
    conf = configure({"relay": relay(password=password)}).settings(include_secrets=True)
    assert conf["relay"]["password"] == password


# ------------------------------------------------------------------ aliases ---


def test_aliases_are_normalized_to_sorted_lists(configure):
    conf = configure({"aliases": ALIASES}).settings()

    assert conf["aliases"] == {
        "backup.job": ["ops@example.net"],
        "www-data": ["web@example.org", "dev@example.org"],
    }


def test_empty_or_null_aliases_mean_none(configure):
    assert configure({"aliases": None}).settings()["aliases"] == {}
    assert configure({}).settings()["aliases"] == {}


# ------------------------------------------------------------ extra main.cf ---


MANAGED = [
    "inet_interfaces",
    "mynetworks",
    "mydestination",
    "local_transport",
    "default_transport",
    "smtpd_relay_restrictions",
    "relayhost",
    "smtp_sasl_auth_enable",
    "smtp_sasl_password_maps",
    "smtp_sasl_security_options",
    "smtp_tls_security_level",
    "smtp_tls_CAfile",
    "smtp_tls_wrappermode",
    "smtp_tls_secure_cert_match",
    "sender_canonical_maps",
    "recipient_canonical_maps",
    "virtual_alias_maps",
]


@pytest.mark.parametrize("name", MANAGED)
def test_main_cf_cannot_set_what_the_formula_manages(configure, name):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"postfix": {"main_cf": {name: "all"}}}).settings()

    message = str(raised.value)
    assert names_key(message, f"mail:postfix:main_cf:{name}"), message
    assert "managed by the formula" in message


# Parameters that divert, copy or deliver mail, log a session, run programs or
# read other files: none is on the tunable list (issue 12 reproduced each).
DIVERTING = [
    "mynetworks_style",
    "smtpd_recipient_restrictions",
    "relay_domains",
    "transport_maps",
    "smtp_generic_maps",
    "content_filter",
    "always_bcc",
    "sender_bcc_maps",
    "recipient_bcc_maps",
    "canonical_maps",
    "sender_dependent_relayhost_maps",
    "sender_dependent_default_transport_maps",
    "smtp_fallback_relay",
    "virtual_mailbox_maps",
    "virtual_transport",
    "daemon_directory",
    "smtp_tls_trust_anchor_file",
    "tls_append_default_CA",
    "debug_peer_list",
    "debug_peer_level",
    "notify_classes",
    "error_notice_recipient",
    "smtp_tls_loglevel",
    "header_checks",
    "mailbox_command",
    "import_environment",
]


@pytest.mark.parametrize("name", DIVERTING)
def test_main_cf_refuses_every_parameter_not_on_the_tunable_list(configure, name):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"postfix": {"main_cf": {name: "x"}}}).settings()

    message = str(raised.value)
    assert names_key(message, f"mail:postfix:main_cf:{name}"), message
    assert "not one of the parameters pillar may tune" in message or "managed by the formula" in message


def test_empty_main_cf_does_not_run_postconf(configure):
    mailstack = configure({"postfix": {"main_cf": {}}})
    mailstack.__salt__["cmd.which"] = lambda name: pytest.fail("postconf was asked")

    assert mailstack.settings()["postfix"]["main_cf"] == {}


# ------------------------------------------------------------- relay sender ---


def test_relay_sender_must_be_an_address(configure):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"relay": relay(sender="account")}).settings()

    assert names_key(str(raised.value), "mail:relay:sender"), str(raised.value)


def test_relay_sender_needs_a_relayhost(configure):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"relay": {"sender": SMARTHOST_ACCOUNT}}).settings()

    assert names_key(str(raised.value), "mail:relay:sender"), str(raised.value)
    assert "relayhost is empty" in str(raised.value)


def test_relay_sender_with_a_newline_is_rejected(configure):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"relay": relay(sender=SMARTHOST_ACCOUNT + "\nBcc: x@example.org")}).settings()

    assert names_key(str(raised.value), "mail:relay:sender"), str(raised.value)


# ---------------------------------------------------------------- msmtp log ---


@pytest.mark.parametrize(
    "logfile", ["/etc/passwd", "/var/log", "/var/logs/x.log", "/var/log/../../etc/shadow"]
)
def test_msmtp_logfile_outside_var_log_is_refused(configure, logfile):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"msmtp": {"logfile": logfile}, "mailu": mailu()}).settings()

    assert names_key(str(raised.value), "mail:msmtp:logfile"), str(raised.value)


@pytest.mark.parametrize(
    "logfile", ["msmtp.log", "/var/log/msmtp\n.log", "/var/log/msmtp .log", 7, "/" + "l" * 491]
)
def test_bad_msmtp_logfile_is_rejected(configure, logfile):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"msmtp": {"logfile": logfile}}).settings()

    assert names_key(str(raised.value), "mail:msmtp:logfile"), str(raised.value)


# ------------------------------------------------------------- IP next hops ---


@pytest.mark.parametrize(
    "pillar",
    [
        {"relay": relay(relayhost="192.0.2.10")},
        {"relay": {"relayhost": "2001:db8::25", "tls": "implicit"}},
        {"mailu": mailu(host="::1", queue=True)},
    ],
    ids=["relay_ipv4", "relay_ipv6_no_credentials", "queued_mailu_ipv6"],
)
def test_ip_next_hop_with_tls_through_postfix_needs_a_tls_name(configure, pillar):
    with pytest.raises(CommandExecutionError) as raised:
        configure({**pillar, "container": False}).settings()

    section = "relay" if "relay" in pillar else "mailu"
    assert names_key(str(raised.value), f"mail:{section}:tls_name"), str(raised.value)
    assert "verifies a certificate by name only" in str(raised.value)


def test_ip_next_hop_without_postfix_needs_no_tls_name(configure):
    assert configure({"relay": relay(relayhost="192.0.2.10"), "container": True}).settings()
    assert configure({"mailu": mailu(host="::1")}).settings()
    assert configure({"relay": {"relayhost": "::1", "tls": "none"}, "container": False}).settings()


@pytest.mark.parametrize(
    ("pillar", "key"),
    [
        ({"relay": relay(tls_name="192.0.2.10")}, "mail:relay:tls_name"),
        ({"mailu": mailu(tls_name="::1")}, "mail:mailu:tls_name"),
        ({"relay": {"relayhost": RELAY_HOST, "tls": "none", "tls_name": RELAY_HOST}}, "mail:relay:tls_name"),
        ({"mailu": mailu(tls_name="mail example.org")}, "mail:mailu:tls_name"),
        ({"mailu": mailu(tls_name="mail.example.org\nhost x")}, "mail:mailu:tls_name"),
    ],
    ids=["address", "ipv6_address", "without_tls", "space", "newline"],
)
def test_bad_tls_name_is_rejected(configure, pillar, key):
    with pytest.raises(CommandExecutionError) as raised:
        configure(pillar).settings()

    assert names_key(str(raised.value), key), str(raised.value)


# -------------------------------------- pillar never widens what is touched ---


TRAILING_NEWLINE = [
    pytest.param({"alerts": {"units": ["cron.service\n"]}}, "mail:alerts:units", id="unit"),
    pytest.param({"aliases": {"www-data\n": "web@example.org"}}, "mail:aliases", id="alias-name"),
    pytest.param({"lookup": {"postfix": {"pkgs": ["postfix\n"]}}}, "mail:lookup:postfix:pkgs", id="package"),
    pytest.param({"senders": ["root\n"]}, "mail:senders", id="sender"),
    pytest.param({"admin": "ops@example.org\n"}, "mail:admin", id="admin"),
    pytest.param({"lookup": {"msmtp": {"group": "mail-senders\n"}}}, "mail:lookup:msmtp:group", id="group"),
    pytest.param({"health": {"on_calendar": "daily\n"}}, "mail:health:on_calendar", id="calendar"),
    pytest.param({"relay": {"relayhost": "smtp.example.net\n"}}, "mail:relay:relayhost", id="relayhost"),
]


@pytest.mark.parametrize("pillar, key", TRAILING_NEWLINE)
def test_a_value_with_a_trailing_newline_is_refused_naming_the_key(configure, pillar, key):
    with pytest.raises(CommandExecutionError) as raised:
        configure(pillar).settings()

    assert names_key(str(raised.value), key), str(raised.value)


CONFINED_PATHS = [
    pytest.param({"lookup": {"state_dir": "/var/lib"}}, "mail:lookup:state_dir", id="state-dir-var-lib"),
    pytest.param({"lookup": {"libexec_dir": "/usr/local/bin"}}, "mail:lookup:libexec_dir", id="libexec-bin"),
    pytest.param({"lookup": {"state_dir": "/mailstack"}}, "mail:lookup:state_dir", id="state-dir-top"),
    pytest.param({"lookup": {"systemd_unit_dir": "/etc"}}, "mail:lookup:systemd_unit_dir", id="unit-dir"),
    pytest.param({"lookup": {"cron_dir": "/etc/cron.daily"}}, "mail:lookup:cron_dir", id="cron-dir"),
    pytest.param({"lookup": {"postfix": {"config_dir": "/etc"}}}, "mail:lookup:postfix:config_dir", id="etc"),
    pytest.param({"lookup": {"msmtp": {"config": "/etc/passwd"}}}, "mail:lookup:msmtp:config", id="passwd"),
    pytest.param(
        {"lookup": {"msmtp": {"aliases": "/etc/aliases"}}}, "mail:lookup:msmtp:aliases", id="aliases"
    ),
    pytest.param(
        {"lookup": {"msmtp": {"aliases": "/etc/ssh/sshd_config"}}}, "mail:lookup:msmtp:aliases", id="deeper"
    ),
    pytest.param(
        {"lookup": {"msmtp": {"sendmail": "/usr/sbin/sendmail;touch${IFS}/tmp/x"}}},
        "mail:lookup:msmtp:sendmail",
        id="sendmail-shell",
    ),
    pytest.param(
        {"lookup": {"msmtp": {"sendmail": "/usr/bin/passwd"}}}, "mail:lookup:msmtp:sendmail", id="sm"
    ),
    pytest.param(
        {"lookup": {"msmtp": {"binary": "/usr/bin/msmtp $(id)"}}}, "mail:lookup:msmtp:binary", id="bin"
    ),
    pytest.param({"lookup": {"ca_bundle": "/etc/ssl/../shadow"}}, "mail:lookup:ca_bundle", id="dotdot"),
    pytest.param(
        {"lookup": {"postfix": {"maillog_file": "/etc/passwd"}}}, "mail:lookup:postfix:maillog_file", id="log"
    ),
]


@pytest.mark.parametrize("pillar, key", CONFINED_PATHS)
def test_a_path_outside_what_the_formula_owns_is_refused(configure, pillar, key):
    with pytest.raises(CommandExecutionError) as raised:
        configure(pillar).settings()

    assert names_key(str(raised.value), key), str(raised.value)


@pytest.mark.parametrize("unit", ["mail-.service", "mail-alert-.service", "cron-.service", "-.mount"])
def test_an_alert_unit_that_is_a_prefix_drop_in_is_refused(configure, unit):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"alerts": {"units": [unit]}}).settings()

    assert names_key(str(raised.value), "mail:alerts:units"), str(raised.value)


def test_prestart_is_an_argument_list_and_a_shell_string_is_refused(configure):
    with pytest.raises(CommandExecutionError) as raised:
        configure({"lookup": {"postfix": {"prestart": "/usr/lib/postfix/x.sh; id"}}}).settings()
    assert "run without a shell" in str(raised.value)

    program = "/usr/lib/postfix/configure-instance.sh"
    conf = configure({"lookup": {"postfix": {"prestart": [program, "a b;c"]}}}).settings()
    assert conf["lookup"]["postfix"]["prestart"] == [program, "a b;c"]


def test_tofs_source_given_as_one_string_is_a_list_of_one(configure):
    settings = configure(
        {"tofs": {"source_files": {"msmtprc.jinja": "salt://site/msmtprc.jinja"}}}
    ).settings()

    assert settings["tofs"] == {"source_files": {"msmtprc.jinja": ["salt://site/msmtprc.jinja"]}}


def refused(configure, pillar, key):
    """The one message of the error ``pillar`` raises; it must name ``key``."""
    with pytest.raises(CommandExecutionError) as raised:
        configure(pillar).settings()
    message = str(raised.value)
    assert names_key(message, key), message
    return message


# ---------------------------------------------------------------- addresses ---


ADDRESS_KEYS = [
    pytest.param(lambda address: {"from": address}, "mail:from", id="from"),
    pytest.param(lambda address: {"admin": address}, "mail:admin", id="admin"),
    pytest.param(
        lambda address: {"aliases": {"www-data": ["web@example.org", address]}},
        "mail:aliases:www-data",
        id="alias-target",
    ),
    pytest.param(lambda address: {"relay": relay(sender=address)}, "mail:relay:sender", id="relay-sender"),
]


@pytest.mark.parametrize("pillar, key", ADDRESS_KEYS)
def test_an_address_with_a_slash_is_refused_naming_the_key(configure, pillar, key):
    message = refused(configure, pillar("/tmp/x.so@example.org"), key)

    assert "letters, digits and . _ % + = -" in message


@pytest.mark.parametrize("character", list("/${}:\"'|#!&*?^`~") + ["${1}"])
@pytest.mark.parametrize("pillar, key", ADDRESS_KEYS)
def test_an_address_with_punctuation_other_than_dot_underscore_percent_plus_equals_dash_is_refused(
    configure, pillar, key, character
):
    message = refused(configure, pillar(f"web{character}x@example.org"), key)

    assert "the part before @ may contain only letters, digits and . _ % + = -" in message


@pytest.mark.parametrize("address", ["o.brien+ops@example.org", "ops_1%relay=x-y@mail.example.org"])
def test_an_address_of_letters_digits_and_dot_underscore_percent_plus_equals_dash_is_accepted(
    configure, address
):
    conf = configure(
        {"from": address, "admin": address, "aliases": {"root": address}, "relay": relay(sender=address)}
    ).settings()

    assert conf["from"] == conf["admin"] == conf["relay"]["sender"] == address
    assert conf["aliases"] == {"root": [address]}


def test_a_mailu_login_with_a_slash_is_not_taken_for_an_address(configure):
    assert configure({"mailu": mailu(user="ops/x@example.org")}).settings()["from"] == f"root@{FQDN}"
    assert configure({"mailu": mailu(user="o.brien+ops@example.org")}).settings()["from"] == (
        "o.brien+ops@example.org"
    )


# ------------------------------------------------- the formula's own places ---


@pytest.mark.parametrize(
    "aliases", ["/etc/ld.so.preload", "/etc/aliases.msmtp.d", "/etc/sudoers", "/usr/local/etc/ld.so.preload"]
)
def test_an_msmtp_aliases_file_other_than_the_formulas_own_is_refused(configure, aliases):
    message = refused(configure, {"lookup": {"msmtp": {"aliases": aliases}}}, "mail:lookup:msmtp:aliases")

    assert "/etc/aliases.msmtp" in message


@pytest.mark.parametrize("aliases", ["/etc/aliases.msmtp", "/usr/local/etc/aliases.msmtp"])
def test_the_formulas_own_msmtp_aliases_files_are_accepted(configure, aliases):
    conf = configure({"lookup": {"msmtp": {"aliases": aliases}}}).settings()

    assert conf["lookup"]["msmtp"]["aliases"] == aliases


WRITABLE_BY_OTHERS = ["/tmp/mailstack", "/dev/shm/mailstack", "/var/tmp/mailstack", "/home/eve/mailstack"]


@pytest.mark.parametrize("directory", [*WRITABLE_BY_OTHERS, "/var/lib/mailstack/mailstack", "/opt/mailstack"])
@pytest.mark.parametrize("key", ["state_dir", "libexec_dir"])
def test_a_directory_named_mailstack_outside_the_root_owned_system_places_is_refused(
    configure, key, directory
):
    message = refused(configure, {"lookup": {key: directory}}, f"mail:lookup:{key}")

    assert "only root may write to" in message


@pytest.mark.parametrize(
    "key, directory",
    [
        ("state_dir", "/var/lib/mailstack"),
        ("state_dir", "/var/local/lib/mailstack"),
        ("libexec_dir", "/usr/local/lib/mailstack"),
        ("libexec_dir", "/usr/lib/mailstack"),
        ("libexec_dir", "/usr/local/libexec/mailstack"),
        ("libexec_dir", "/usr/libexec/mailstack"),
    ],
)
def test_the_formulas_directories_at_the_system_places_are_accepted(configure, key, directory):
    assert configure({"lookup": {key: directory}}).settings()["lookup"][key] == directory


@pytest.mark.parametrize("config_dir", ["/etc/postfix-x", "/etc/postfix-out", "/etc/postfix/x"])
def test_a_postfix_instance_other_than_the_default_is_refused(configure, config_dir):
    message = refused(
        configure, {"lookup": {"postfix": {"config_dir": config_dir}}}, "mail:lookup:postfix:config_dir"
    )

    assert "Postfix instances other than the default are not supported" in message


# ------------------------------------------------------ programs root runs ---


@pytest.mark.parametrize(
    "program",
    [
        "/bin/sh",
        "/usr/sbin/postfix",
        "/usr/lib/postfix",
        "/usr/lib/postfixx/configure-instance.sh",
        "/tmp/usr/lib/postfix/x",
        "/usr/lib/postfix/../../../bin/sh",
    ],
)
def test_a_prestart_program_outside_postfixs_daemon_directories_is_refused(configure, program):
    message = refused(
        configure,
        {"lookup": {"postfix": {"prestart": [program, "-c", "touch /tmp/x"]}}},
        "mail:lookup:postfix:prestart",
    )

    assert "touch" not in message


@pytest.mark.parametrize(
    "prestart", [["/usr/lib/postfix/configure-instance.sh", "-"], ["/usr/libexec/postfix/chroot-update"]]
)
def test_a_prestart_program_of_postfixs_own_is_accepted(configure, prestart):
    conf = configure({"lookup": {"postfix": {"prestart": prestart}}}).settings()

    assert conf["lookup"]["postfix"]["prestart"] == prestart


def test_a_prestart_argument_with_a_control_character_is_still_refused(configure):
    refused(
        configure,
        {"lookup": {"postfix": {"prestart": ["/usr/lib/postfix/configure-instance.sh", "-\nx"]}}},
        "mail:lookup:postfix:prestart:1",
    )


@pytest.mark.parametrize(
    "binary", ["/home/eve/msmtp", "/tmp/msmtp", "/usr/sbin/msmtp", "/usr/bin/msmtp-evil", "/usr/bin/sh"]
)
def test_an_msmtp_binary_outside_the_system_bin_directories_is_refused(configure, binary):
    message = refused(configure, {"lookup": {"msmtp": {"binary": binary}}}, "mail:lookup:msmtp:binary")

    assert "/usr/bin/msmtp" in message


@pytest.mark.parametrize("binary", ["/usr/bin/msmtp", "/bin/msmtp", "/usr/local/bin/msmtp"])
def test_an_msmtp_binary_in_a_system_bin_directory_is_accepted(configure, binary):
    conf = configure({"lookup": {"msmtp": {"binary": binary}}}).settings()

    assert conf["lookup"]["msmtp"]["binary"] == binary


@pytest.mark.parametrize(
    "sendmail", ["/etc/sudoers.d/sendmail", "/tmp/sendmail", "/etc/cron.d/sendmail", "/usr/sbin/sendmail2"]
)
def test_a_sendmail_outside_the_system_sendmail_directories_is_refused(configure, sendmail):
    message = refused(configure, {"lookup": {"msmtp": {"sendmail": sendmail}}}, "mail:lookup:msmtp:sendmail")

    assert "/usr/sbin/sendmail" in message


@pytest.mark.parametrize(
    "sendmail",
    [
        "/usr/sbin/sendmail",
        "/usr/bin/sendmail",
        "/usr/lib/sendmail",
        "/sbin/sendmail",
        "/usr/local/sbin/sendmail",
    ],
)
def test_a_sendmail_in_a_system_sendmail_directory_is_accepted(configure, sendmail):
    conf = configure({"lookup": {"msmtp": {"sendmail": sendmail}}}).settings()

    assert conf["lookup"]["msmtp"]["sendmail"] == sendmail


@pytest.mark.parametrize("os_family", ["Debian", "RedHat", "Arch", "Suse", "Alpine"])
def test_the_shipped_per_os_defaults_pass_validation(configure, os_family):
    lookup = configure(os_family=os_family).settings()["lookup"]

    assert lookup["state_dir"] == "/var/lib/mailstack"
    assert lookup["libexec_dir"] == "/usr/local/lib/mailstack"
    assert lookup["postfix"]["config_dir"] == "/etc/postfix"
    assert lookup["msmtp"]["binary"] == "/usr/bin/msmtp"
    assert lookup["msmtp"]["sendmail"] == "/usr/sbin/sendmail"


# ------------------------------------------------------- TLS only hardens ---


@pytest.mark.parametrize("name", ["smtp_tls_ciphers", "smtp_tls_mandatory_ciphers"])
@pytest.mark.parametrize("grade", ["null", "export", "low", "HIGH", "high:low", ""])
def test_a_tls_cipher_grade_below_medium_is_refused(configure, name, grade):
    message = refused(configure, {"postfix": {"main_cf": {name: grade}}}, f"mail:postfix:main_cf:{name}")

    assert "medium or high" in message


@pytest.mark.parametrize("name", ["smtp_tls_ciphers", "smtp_tls_mandatory_ciphers"])
@pytest.mark.parametrize("grade", ["medium", "high"])
def test_a_tls_cipher_grade_of_medium_or_high_is_accepted(configure, name, grade):
    conf = configure({"postfix": {"main_cf": {name: grade}}}).settings()

    assert conf["postfix"]["main_cf"] == {name: grade}


WEAK_PROTOCOLS = [
    "<=TLSv1",
    "<=TLSv1.3",
    ">=TLSv1",
    ">=TLSv1.1",
    ">=SSLv3",
    "!SSLv2, !SSLv3",
    "!SSLv2, !SSLv3, !TLSv1",
    "TLSv1.2",
    "TLSv1, !SSLv2, !SSLv3, !TLSv1.1",
    "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, <=TLSv1",
    "",
    ["!SSLv2", "!SSLv3"],
]


@pytest.mark.parametrize("name", ["smtp_tls_protocols", "smtp_tls_mandatory_protocols"])
@pytest.mark.parametrize("protocols", WEAK_PROTOCOLS)
def test_tls_protocols_that_allow_an_old_protocol_are_refused(configure, name, protocols):
    message = refused(configure, {"postfix": {"main_cf": {name: protocols}}}, f"mail:postfix:main_cf:{name}")

    assert ">=TLSv1.2" in message and "!TLSv1.1" in message


@pytest.mark.parametrize("name", ["smtp_tls_protocols", "smtp_tls_mandatory_protocols"])
@pytest.mark.parametrize(
    "protocols, written",
    [
        (">=TLSv1.2", ">=TLSv1.2"),
        (">=TLSv1.3", ">=TLSv1.3"),
        ("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"),
        (["!SSLv2", "!SSLv3", "!TLSv1", "!TLSv1.1"], "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"),
        ("!SSLv2:!SSLv3:!TLSv1:!TLSv1.1", "!SSLv2:!SSLv3:!TLSv1:!TLSv1.1"),
        ("!SSLv2 !SSLv3 !TLSv1 !TLSv1.1 !TLSv1.2", "!SSLv2 !SSLv3 !TLSv1 !TLSv1.1 !TLSv1.2"),
    ],
)
def test_tls_protocols_from_tls_1_2_up_are_accepted(configure, name, protocols, written):
    conf = configure({"postfix": {"main_cf": {name: protocols}}}).settings()

    assert conf["postfix"]["main_cf"] == {name: written}


@pytest.mark.parametrize("name", ["tls_high_cipherlist", "tls_medium_cipherlist", "tls_ssl_options"])
def test_a_tls_parameter_that_could_weaken_tls_unchecked_is_not_tunable(configure, name):
    message = refused(configure, {"postfix": {"main_cf": {name: "ALL"}}}, f"mail:postfix:main_cf:{name}")

    assert "not one of the parameters pillar may tune" in message


# ----------------------------------------------------------------- take over ---


NOTHING_TAKEN_OVER = {"postfix": False, "senders_group": False}


def test_take_over_defaults_to_nothing(configure):
    assert configure().settings()["take_over"] == NOTHING_TAKEN_OVER
    assert configure({"take_over": None}).settings()["take_over"] == NOTHING_TAKEN_OVER


def test_take_over_is_returned_in_the_settings(configure):
    conf = configure({"take_over": {"postfix": True, "senders_group": True}}).settings()

    assert conf["take_over"] == {"postfix": True, "senders_group": True}


@pytest.mark.parametrize(
    "take_over, key",
    [
        ({"postfix": "yes"}, "mail:take_over:postfix"),
        ({"postfix": 1}, "mail:take_over:postfix"),
        ({"senders_group": "true"}, "mail:take_over:senders_group"),
        ({"senders_group": None}, "mail:take_over:senders_group"),
        ({"group": True}, "mail:take_over:group"),
        ("yes", "mail:take_over"),
    ],
)
def test_take_over_that_is_not_true_or_false_is_refused_naming_the_key(configure, take_over, key):
    refused(configure, {"take_over": take_over}, key)
