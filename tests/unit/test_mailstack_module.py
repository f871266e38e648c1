"""Unit tests for the execution module ``_modules/mailstack.py``.

The module file is imported directly and its Salt dunders are injected as
module attributes. ``cp.list_master`` and ``cp.get_file_str`` are served from
the real ``mail/parameters`` files of this repository, so the tests exercise
the real defaults and per-OS maps. Container detection reads a fake root
(``FS_ROOT``), never the machine running the tests.
"""

from __future__ import annotations

import copy
import pathlib
import re
import socket
import threading
import time

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.loader import load_salt_module, load_utils

REPO = pathlib.Path(__file__).resolve().parents[2]
HEADER = "# Managed by Salt (mail formula). Local changes are overwritten.\n"
MODULE_FILE = REPO / "_modules" / "mailstack.py"

FQDN = "node1.example.org"
MAILU_HOST = "mail.example.org"
MAILU_USER = "alice@example.org"
RELAY_HOST = "smtp.example.net"
SECRET = "S3cr3t-Token-9f2c"  # distinctive, to search for it in output
DEBIAN_CA = "/etc/ssl/certs/ca-certificates.crt"
REDHAT_CA = "/etc/pki/tls/certs/ca-bundle.crt"
NULL_CLIENT = {
    "inet_interfaces": "loopback-only",
    "mydestination": "",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "local_transport": "error:local delivery disabled",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
}


# ---------------------------------------------------------------- fixtures ---


class FakeFileServer:
    """``cp.list_master`` and ``cp.get_file_str`` over the repository."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.calls: list[tuple[str, str]] = []

    def list_master(self, prefix=""):
        self.calls.append(("list_master", prefix))
        return sorted(
            str(path.relative_to(self.root)) for path in (self.root / prefix).rglob("*") if path.is_file()
        )

    def get_file_str(self, url):
        self.calls.append(("get_file_str", url))
        assert url.startswith("salt://"), url
        path = self.root / url[len("salt://") :]
        return path.read_text(encoding="utf-8") if path.is_file() else False


def load_module():
    module = load_salt_module(MODULE_FILE, "mailstack_module_under_test")
    module.__utils__ = load_utils()
    return module


@pytest.fixture
def fake_root(tmp_path):
    """An empty file system root: no container signal unless a test adds one."""
    root = tmp_path / "root"
    (root / "proc" / "1").mkdir(parents=True)
    (root / "run").mkdir()
    return root


@pytest.fixture
def fileserver():
    return FakeFileServer(REPO)


@pytest.fixture
def mailstack(fake_root, fileserver):
    module = load_module()
    module.__grains__ = {
        "os_family": "Debian",
        "os": "Debian",
        "osfinger": "Debian-12",
        "fqdn": FQDN,
        "host": "node1",
        "virtual": "physical",
    }
    module.__pillar__ = {}
    module.__salt__ = {
        "cp.list_master": fileserver.list_master,
        "cp.get_file_str": fileserver.get_file_str,
        # No Postfix installed, unless a test installs a fake postconf.
        "cmd.which": lambda name: None,
    }
    module.__context__ = {}
    module.__opts__ = {"test": False}
    module.FS_ROOT = str(fake_root)
    return module


@pytest.fixture
def configure(mailstack):
    """Set pillar ``mail`` (and optionally grains) before the first call."""

    def _configure(mail=None, **grains):
        mailstack.__pillar__ = {"mail": copy.deepcopy(mail)} if mail is not None else {}
        mailstack.__grains__.update(grains)
        mailstack.__context__.clear()
        return mailstack

    return _configure


def mailu(**overrides):
    """Pillar ``mail:mailu`` for a configured Mailu server."""
    return {"host": MAILU_HOST, "user": MAILU_USER, "password": SECRET, **overrides}


def relay(**overrides):
    """Pillar ``mail:relay`` for an authenticated relayhost."""
    return {"relayhost": RELAY_HOST, "user": "bob", "password": SECRET, **overrides}


def main_cf(plan):
    return plan["files"]["main_cf"]


def msmtprc(plan):
    """The msmtprc lines as a dict (keys are unique in one account)."""
    return dict(plan["files"]["msmtprc"])


# ---------------------------------------------------------------- settings ---


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
    assert conf["relay"]["host"] == RELAY_HOST
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


def test_settings_are_cached_in_context_and_the_fileserver_is_read_once(configure, fileserver):
    mailstack = configure({"mailu": mailu()})
    first = mailstack.settings()
    reads = len(fileserver.calls)
    assert reads > 0

    second = mailstack.settings()

    assert len(fileserver.calls) == reads
    assert second == first
    assert "mailstack.settings" in mailstack.__context__


def test_settings_are_recomputed_when_the_pillar_changed_in_a_long_lived_minion(configure):
    mailstack = configure({"mailu": mailu()})
    assert mailstack.settings()["timeout"] == 10

    mailstack.__pillar__ = {"mail": {"timeout": 99}}

    assert mailstack.settings()["timeout"] == 99


def test_settings_results_do_not_share_state_with_the_cache(configure):
    mailstack = configure({"mailu": mailu()})
    mailstack.settings(include_secrets=True)["mailu"]["host"] = "changed.example.org"
    mailstack.settings()["lookup"]["msmtp"]["pkgs"].append("junk")

    again = mailstack.settings(include_secrets=True)
    assert again["mailu"]["host"] == MAILU_HOST
    assert again["lookup"]["msmtp"]["pkgs"] == ["msmtp"]


def test_settings_fails_clearly_when_defaults_are_not_on_the_fileserver(configure):
    mailstack = configure()
    mailstack.__salt__["cp.list_master"] = lambda prefix="": []

    with pytest.raises(CommandExecutionError, match="defaults.yaml is not on the Salt file server"):
        mailstack.settings()


# -------------------------------------------------------------- validation ---


def names_key(message: str, key: str) -> bool:
    """True when ``key`` is named as a whole pillar key (not a prefix of one)."""
    return re.search(rf"{re.escape(key)}(?=:? |:?$)", message) is not None


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
    assert configure(pillar).settings()["relay"]["host"] == host


def test_password_with_inner_space_and_quotes_is_accepted(configure):
    password = 'a "b" \\c d'
    conf = configure({"relay": relay(password=password)}).settings(include_secrets=True)
    assert conf["relay"]["password"] == password


# ---------------------------------------------------------------- container ---


def test_no_container_signal_means_not_a_container(configure):
    assert configure().is_container() == {"container": False, "reason": "no container signal found"}


def test_dockerenv_file_means_container(configure, fake_root):
    (fake_root / ".dockerenv").touch()

    result = configure().is_container()

    assert result["container"] is True
    assert "/.dockerenv exists" in result["reason"]


def test_podman_containerenv_file_means_container(configure, fake_root):
    (fake_root / "run" / ".containerenv").touch()

    result = configure().is_container()

    assert result["container"] is True
    assert "/run/.containerenv exists" in result["reason"]


def test_container_variable_in_pid1_environment_means_container(configure, fake_root):
    (fake_root / "proc" / "1" / "environ").write_bytes(b"PATH=/usr/bin\0container=podman\0HOME=/\0")

    result = configure().is_container()

    assert result["container"] is True
    assert "container=podman" in result["reason"]


def test_pid1_environment_without_container_variable_is_no_signal(configure, fake_root):
    (fake_root / "proc" / "1" / "environ").write_bytes(b"PATH=/usr/bin\0notcontainer=x\0HOME=/\0")

    assert configure().is_container()["container"] is False


@pytest.mark.parametrize(
    ("cgroup", "word"),
    [
        pytest.param("12:memory:/docker/0123456789abcdef\n", "docker", id="docker"),
        pytest.param("0::/kubepods/besteffort/pod1234/abcd\n", "kubepods", id="kubepods"),
        pytest.param("1:name=systemd:/lxc/web01\n", "lxc", id="lxc"),
    ],
)
def test_container_cgroup_of_pid1_means_container(configure, fake_root, cgroup, word):
    (fake_root / "proc" / "1" / "cgroup").write_text(cgroup)

    result = configure().is_container()

    assert result["container"] is True
    assert f"mentions {word}" in result["reason"]


def test_host_cgroup_of_pid1_is_no_signal(configure, fake_root):
    (fake_root / "proc" / "1" / "cgroup").write_text("0::/init.scope\n")

    assert configure().is_container()["container"] is False


@pytest.mark.parametrize("virtual", ["container", "LXC"])
def test_container_virtual_grain_means_container(configure, virtual):
    result = configure(virtual=virtual).is_container()

    assert result["container"] is True
    assert f"virtual grain says {virtual.lower()}" in result["reason"]


def test_vm_virtual_grain_is_no_signal(configure):
    assert configure(virtual="kvm").is_container()["container"] is False


def test_all_signals_are_reported_together(configure, fake_root):
    (fake_root / ".dockerenv").touch()
    (fake_root / "proc" / "1" / "cgroup").write_text("12:memory:/docker/abc\n")

    reason = configure().is_container()["reason"]

    assert "/.dockerenv exists" in reason and "mentions docker" in reason


def test_pillar_container_true_overrides_detection(configure):
    assert configure({"container": True}).is_container() == {
        "container": True,
        "reason": "pillar mail:container is true",
    }


def test_pillar_container_false_overrides_detected_signals(configure, fake_root):
    (fake_root / ".dockerenv").touch()
    (fake_root / "proc" / "1" / "environ").write_bytes(b"container=docker\0")

    assert configure({"container": False}, virtual="container").is_container() == {
        "container": False,
        "reason": "pillar mail:container is false",
    }


# --------------------------------------------------------------------- mode ---


def test_auto_mode_chooses_mailu_when_mailu_host_is_set(configure):
    result = configure({"mailu": mailu()}).mode()

    assert result["mode"] == "mailu"
    assert "mail:mailu:host is set" in result["reason"]


def test_auto_mode_chooses_relay_when_no_mailu_host_is_set(configure):
    assert configure({"relay": relay()}).mode()["mode"] == "relay"


def test_auto_mode_chooses_relay_with_empty_pillar(configure):
    assert configure().mode()["mode"] == "relay"


def test_forced_relay_mode_wins_over_a_configured_mailu(configure):
    result = configure({"mode": "relay", "mailu": mailu()}).mode()

    assert result == {"mode": "relay", "reason": "pillar mail:mode is relay"}


def test_forced_mailu_mode_is_used(configure):
    assert configure({"mode": "mailu", "mailu": mailu()}).mode()["mode"] == "mailu"


@pytest.mark.parametrize("forced", ["auto", "mailu", "relay"])
def test_enabled_false_means_disabled_whatever_the_mode(configure, forced):
    result = configure({"enabled": False, "mode": forced, "mailu": mailu()}).mode()

    assert result == {"mode": "disabled", "reason": "pillar mail:enabled is false"}


def test_auto_mode_does_not_touch_the_network(configure, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("mode() must not open connections")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)

    assert configure({"mailu": mailu()}).mode()["mode"] == "mailu"


# --------------------------------------------------------------------- plan ---


def test_plan_is_disabled_and_empty_when_mail_is_disabled(configure):
    result = configure({"enabled": False}).plan()

    assert result["mode"] == "disabled"
    assert "postfix" not in result and "files" not in result


def test_plan_mailu_direct_uses_msmtp_straight_to_mailu(configure):
    result = configure({"mailu": mailu(), "container": False}).plan()

    assert result["mode"] == "mailu"
    assert result["postfix"] is False
    assert result["sendmail"] == "msmtp"
    assert result["packages"] == {"install": ["msmtp", "msmtp-mta"], "remove": ["postfix"]}
    assert result["postfix_upstream"] is None
    target = result["msmtp"]
    assert (target["host"], target["port"], target["tls"], target["user"]) == (
        MAILU_HOST,
        465,
        "implicit",
        MAILU_USER,
    )
    assert target["ca_file"] == DEBIAN_CA
    assert main_cf(result) == {}
    assert result["files"]["sasl_passwd"] == ""


def test_plan_mailu_direct_msmtprc_authenticates_with_implicit_tls(configure):
    rc = msmtprc(configure({"mailu": mailu(), "container": False}).plan())

    assert rc["host"] == MAILU_HOST
    assert rc["port"] == "465"
    assert rc["tls"] == "on"
    assert rc["tls_starttls"] == "off"
    assert rc["tls_trust_file"] == DEBIAN_CA
    assert rc["auth"] == "on"
    assert rc["user"] == MAILU_USER
    assert rc["from"] == MAILU_USER
    assert rc["allow_from_override"] == "off"
    assert rc["timeout"] == "10"


def test_plan_mailu_starttls_msmtprc_turns_starttls_on(configure):
    rc = msmtprc(configure({"mailu": mailu(port=587, tls="starttls"), "container": False}).plan())

    assert (rc["port"], rc["tls"], rc["tls_starttls"]) == ("587", "on", "on")


def test_plan_mailu_uses_its_own_ca_file_when_given(configure):
    result = configure({"mailu": mailu(ca_file="/etc/mail/mailu-ca.pem"), "container": False}).plan()

    assert result["msmtp"]["ca_file"] == "/etc/mail/mailu-ca.pem"
    assert msmtprc(result)["tls_trust_file"] == "/etc/mail/mailu-ca.pem"


def test_plan_mailu_with_queue_outside_a_container_queues_in_postfix(configure):
    result = configure({"mailu": mailu(queue=True), "container": False}).plan()

    assert result["postfix"] is True
    assert result["sendmail"] == "postfix"
    assert result["packages"] == {
        "install": ["msmtp", "postfix", "libsasl2-modules"],
        "remove": ["msmtp-mta"],
    }
    assert result["msmtp"] == {
        "host": "127.0.0.1",
        "port": 25,
        "tls": "none",
        "user": "",
        "password": "",
        "ca_file": "",
        "tls_name": "",
    }
    upstream = result["postfix_upstream"]
    assert (upstream["host"], upstream["port"], upstream["tls"], upstream["user"]) == (
        MAILU_HOST,
        465,
        "implicit",
        MAILU_USER,
    )


def test_plan_mailu_with_queue_main_cf_relays_to_mailu_with_tls_and_sasl(configure):
    cf = main_cf(configure({"mailu": mailu(queue=True), "container": False}).plan())

    assert cf["relayhost"] == f"[{MAILU_HOST}]:465"
    assert cf["smtp_tls_wrappermode"] == "yes"
    assert cf["smtp_tls_security_level"] == "secure"
    assert cf["smtp_tls_CAfile"] == DEBIAN_CA
    assert cf["smtp_sasl_auth_enable"] == "yes"
    assert cf["smtp_sasl_password_maps"] == "hash:/etc/postfix/sasl_passwd"
    assert cf["sender_canonical_maps"] == f"static:{MAILU_USER}"
    assert cf["sender_canonical_classes"] == "envelope_sender"


def test_plan_mailu_with_queue_sasl_passwd_is_masked(configure):
    result = configure({"mailu": mailu(queue=True), "container": False}).plan()

    assert result["files"]["sasl_passwd"] == f"[{MAILU_HOST}]:465 {MAILU_USER}:********\n"


def test_plan_mailu_with_queue_msmtprc_submits_to_loopback_without_auth(configure):
    rc = msmtprc(configure({"mailu": mailu(queue=True), "container": False}).plan())

    assert (rc["host"], rc["port"], rc["tls"], rc["auth"]) == ("127.0.0.1", "25", "off", "off")
    assert "password" not in rc and "tls_trust_file" not in rc
    assert rc["from"] == MAILU_USER
    assert rc["allow_from_override"] == "off"


def test_plan_mailu_with_queue_in_a_container_sends_directly(configure):
    result = configure({"mailu": mailu(queue=True), "container": True}).plan()

    assert result["postfix"] is False
    assert result["sendmail"] == "msmtp"
    assert result["postfix_upstream"] is None
    assert result["msmtp"]["host"] == MAILU_HOST
    assert result["packages"] == {"install": ["msmtp", "msmtp-mta"], "remove": ["postfix"]}
    assert "container" in result["postfix_reason"]
    assert main_cf(result) == {}


def test_plan_relay_with_relayhost_outside_a_container_uses_postfix(configure):
    result = configure({"relay": relay(), "container": False}).plan()

    assert result["mode"] == "relay"
    assert result["postfix"] is True
    assert result["sendmail"] == "postfix"
    assert result["packages"]["remove"] == ["msmtp-mta"]
    assert result["msmtp"]["host"] == "127.0.0.1"
    upstream = result["postfix_upstream"]
    assert (upstream["host"], upstream["port"], upstream["tls"], upstream["user"]) == (
        RELAY_HOST,
        587,
        "starttls",
        "bob",
    )
    cf = main_cf(result)
    assert cf["relayhost"] == f"[{RELAY_HOST}]:587"
    assert cf["smtp_tls_security_level"] == "secure"
    assert cf["smtp_tls_CAfile"] == DEBIAN_CA
    assert "smtp_tls_wrappermode" not in cf
    assert cf["smtp_sasl_password_maps"] == "hash:/etc/postfix/sasl_passwd"
    assert "sender_canonical_maps" not in cf
    assert result["files"]["sasl_passwd"] == f"[{RELAY_HOST}]:587 bob:********\n"


def test_plan_with_a_relayhost_or_mailu_resolves_the_next_hop_like_the_system(configure):
    # /etc/hosts first: with "dns, native" a DNS failure defers mail that
    # /etc/hosts could route.
    relayed = main_cf(configure({"relay": relay(), "container": False}).plan())
    queued = main_cf(configure({"mailu": mailu(queue=True), "container": False}).plan())

    assert relayed["smtp_host_lookup"] == "native"
    assert queued["smtp_host_lookup"] == "native"


def test_plan_without_relayhost_looks_up_mx_in_dns(configure):
    assert main_cf(configure({"container": False}).plan())["smtp_host_lookup"] == "dns, native"


def test_plan_relay_with_implicit_tls_sets_wrappermode(configure):
    cf = main_cf(configure({"relay": relay(port=465, tls="implicit"), "container": False}).plan())

    assert cf["relayhost"] == f"[{RELAY_HOST}]:465"
    assert cf["smtp_tls_wrappermode"] == "yes"


def test_plan_relay_without_credentials_has_no_sasl(configure):
    result = configure({"relay": {"relayhost": RELAY_HOST}, "container": False}).plan()

    cf = main_cf(result)
    assert cf["smtp_tls_security_level"] == "secure"
    assert not any(name.startswith("smtp_sasl") for name in cf)
    assert result["files"]["sasl_passwd"] == ""


def test_plan_relay_with_tls_none_sets_security_level_none(configure):
    cf = main_cf(
        configure({"relay": {"relayhost": RELAY_HOST, "port": 25, "tls": "none"}, "container": False}).plan()
    )

    assert cf["relayhost"] == f"[{RELAY_HOST}]:25"
    assert cf["smtp_tls_security_level"] == "none"
    assert "smtp_tls_CAfile" not in cf and "smtp_tls_wrappermode" not in cf


def test_plan_relay_without_relayhost_delivers_to_mx_with_opportunistic_tls(configure):
    result = configure({"container": False}).plan()

    assert result["postfix"] is True
    assert result["postfix_upstream"] is None
    assert result["summary"]["postfix relays to"] == "the recipient's MX, found through DNS"
    cf = main_cf(result)
    assert cf["relayhost"] == ""
    assert cf["smtp_tls_security_level"] == "may"
    assert "smtp_tls_CAfile" not in cf
    assert not any(name.startswith("smtp_sasl") for name in cf)


def test_plan_relay_in_a_container_with_relayhost_sends_directly_with_msmtp(configure):
    result = configure({"relay": relay(), "container": True}).plan()

    assert result["postfix"] is False
    assert result["sendmail"] == "msmtp"
    assert result["postfix_upstream"] is None
    assert result["packages"] == {"install": ["msmtp", "msmtp-mta"], "remove": ["postfix"]}
    rc = msmtprc(result)
    assert (rc["host"], rc["port"], rc["tls"], rc["tls_starttls"]) == (RELAY_HOST, "587", "on", "on")
    assert (rc["auth"], rc["user"]) == ("on", "bob")
    assert rc["from"] == f"root@{FQDN}"
    assert "allow_from_override" not in rc
    assert main_cf(result) == {}


def test_plan_relay_in_a_container_without_relayhost_sends_to_loopback_port_25(configure):
    result = configure({"container": True}).plan()

    assert result["postfix"] is False
    assert result["msmtp"]["host"] == "127.0.0.1" and result["msmtp"]["port"] == 25
    rc = msmtprc(result)
    assert (rc["host"], rc["port"], rc["tls"], rc["auth"]) == ("127.0.0.1", "25", "off", "off")
    assert result["summary"]["postfix relays to"] == "(no postfix)"


def test_plan_detects_the_container_when_pillar_says_auto(configure, fake_root):
    (fake_root / ".dockerenv").touch()

    result = configure({"relay": relay()}).plan()

    assert result["container"] is True
    assert result["postfix"] is False


POSTFIX_PATHS = [
    pytest.param({"mailu": mailu(queue=True), "container": False}, id="mailu_queue"),
    pytest.param({"relay": relay(), "container": False}, id="relay_with_relayhost"),
    pytest.param({"container": False}, id="relay_to_mx"),
]


@pytest.mark.parametrize("pillar", POSTFIX_PATHS)
def test_plan_postfix_is_a_loopback_only_null_client(configure, pillar):
    cf = main_cf(configure(pillar).plan())

    for name, value in NULL_CLIENT.items():
        assert cf[name] == value, name
    assert cf["myhostname"] == FQDN


@pytest.mark.parametrize("pillar", POSTFIX_PATHS)
def test_plan_recipient_canonical_only_with_admin(configure, pillar):
    without = configure(pillar).plan()
    assert "recipient_canonical_maps" not in main_cf(without)
    assert without["files"]["recipient_canonical"] == ""

    with_admin = configure({**pillar, "admin": "ops@example.org"}).plan()
    assert main_cf(with_admin)["recipient_canonical_maps"] == "regexp:/etc/postfix/recipient_canonical"
    assert with_admin["summary"]["mail for root goes to"] == "ops@example.org"


def test_plan_recipient_canonical_rewrites_local_names_to_admin(configure):
    table = configure({"admin": "ops@example.org", "container": False}).plan()["files"]["recipient_canonical"]

    assert table == HEADER + (
        r"/^[^@]+@(node1\.example\.org|node1|localhost|localhost\.localdomain)$/ ops@example.org"
        "\n"
        "/^[^@]+$/ ops@example.org\n"
    )


def test_plan_admin_adds_msmtp_aliases(configure):
    result = configure({"admin": "ops@example.org", "mailu": mailu(), "container": False}).plan()

    assert msmtprc(result)["aliases"] == "/etc/aliases.msmtp"
    assert result["files"]["msmtp_aliases"] == HEADER + "default: ops@example.org\n"


def test_plan_without_admin_has_no_msmtp_aliases(configure):
    result = configure({"mailu": mailu(), "container": False}).plan()

    assert "aliases" not in msmtprc(result)
    assert result["files"]["msmtp_aliases"] == ""


def test_plan_on_redhat_uses_a_sendmail_symlink_instead_of_an_mta_package(configure):
    direct = configure({"mailu": mailu(), "container": False}, os_family="RedHat").plan()
    assert direct["packages"] == {"install": ["msmtp"], "remove": ["postfix"]}
    assert direct["msmtp"]["ca_file"] == REDHAT_CA

    queued = configure({"mailu": mailu(queue=True), "container": False}, os_family="RedHat").plan()
    assert queued["packages"] == {"install": ["msmtp", "postfix", "cyrus-sasl-plain"], "remove": []}
    assert main_cf(queued)["smtp_tls_CAfile"] == REDHAT_CA


def test_plan_on_alpine_uses_lmdb_for_the_sasl_map(configure):
    cf = main_cf(configure({"relay": relay(), "container": False}, os_family="Alpine").plan())

    assert cf["smtp_sasl_password_maps"] == "lmdb:/etc/postfix/sasl_passwd"
    assert cf["compatibility_level"] == "3.6"


PASSWORD_PATHS = [
    pytest.param({"mailu": mailu(), "container": False}, id="mailu_direct"),
    pytest.param({"mailu": mailu(queue=True), "container": False}, id="mailu_queue"),
    pytest.param({"relay": relay(), "container": False}, id="relay_postfix"),
    pytest.param({"relay": relay(), "container": True}, id="relay_container"),
]


@pytest.mark.parametrize("pillar", PASSWORD_PATHS)
def test_plan_never_shows_the_password_by_default(configure, pillar):
    mailstack = configure(pillar)

    assert SECRET not in repr(mailstack.plan())
    assert SECRET not in repr(mailstack.plan(include_secrets=False))


@pytest.mark.parametrize("pillar", PASSWORD_PATHS)
def test_plan_shows_the_password_with_include_secrets(configure, pillar):
    assert SECRET in repr(configure(pillar).plan(include_secrets=True))


def test_plan_masking_does_not_damage_the_cached_secrets(configure):
    mailstack = configure({"mailu": mailu(queue=True), "container": False})
    mailstack.plan()

    assert mailstack.settings(include_secrets=True)["mailu"]["password"] == SECRET
    assert mailstack.plan(include_secrets=True)["files"]["sasl_passwd"].endswith(f":{SECRET}\n")


def test_plan_msmtprc_wraps_password_in_quotes_verbatim_as_msmtp_reads_it(configure):
    password = 'pa"ss\\word x'
    rc = msmtprc(
        configure({"mailu": mailu(password=password), "container": False}).plan(include_secrets=True)
    )

    assert rc["password"] == '"pa"ss\\word x"'


def test_plan_masked_msmtprc_password_is_quoted_mask(configure):
    rc = msmtprc(configure({"mailu": mailu(), "container": False}).plan())

    assert rc["password"] == '"********"'


def test_plan_queued_mailu_with_non_address_user_has_no_sender_rewrite(configure):
    result = configure({"mailu": mailu(user="alice", queue=True), "container": False}).plan()

    assert "sender_canonical_maps" not in main_cf(result)
    assert "allow_from_override" not in msmtprc(result)


# -------------------------------------------------------------------- probe ---


class LoopbackServer:
    """A TCP server on 127.0.0.1 that greets each client with ``banner``."""

    def __init__(self, banner: bytes | None = b"220 hi\r\n"):
        self.banner = banner
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.clients.append(client)
            if self.banner is not None:
                client.sendall(self.banner)

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=2)
        for client in self.clients:
            client.close()
        self.sock.close()


@pytest.fixture
def loopback_server():
    servers: list[LoopbackServer] = []

    def start(**kwargs):
        server = LoopbackServer(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def relay_to(port, **extra):
    return {"relay": {"relayhost": "127.0.0.1", "port": port, "tls": "none"}, "container": False, **extra}


def test_probe_reports_a_reachable_server_with_its_greeting(configure, loopback_server):
    server = loopback_server()

    result = configure(relay_to(server.port)).probe()

    assert result == {"reachable": True, "target": f"127.0.0.1:{server.port}", "comment": "220 hi"}


def test_probe_targets_msmtp_directly_in_a_container(configure, loopback_server):
    server = loopback_server()

    result = configure({**relay_to(server.port), "container": True}).probe()

    assert result["reachable"] is True
    assert result["target"] == f"127.0.0.1:{server.port}"


def test_probe_reports_a_closed_port_as_unreachable(configure):
    port = closed_port()
    start = time.monotonic()

    result = configure(relay_to(port, timeout=2)).probe()

    assert time.monotonic() - start < 2.5
    assert result["reachable"] is False
    assert result["target"] == f"127.0.0.1:{port}"
    assert "did not answer" in result["comment"]


def test_probe_of_a_silent_server_is_bounded_by_the_timeout(configure, loopback_server):
    server = loopback_server(banner=None)
    start = time.monotonic()

    result = configure(relay_to(server.port, timeout=1)).probe()

    assert time.monotonic() - start < 2.0
    assert result["reachable"] is False


def test_probe_rejects_a_non_smtp_greeting(configure, loopback_server):
    server = loopback_server(banner=b"SSH-2.0-OpenSSH_9.2\r\n")

    result = configure(relay_to(server.port)).probe()

    assert result["reachable"] is False
    assert "unexpected greeting" in result["comment"]


def test_probe_runs_once_per_run_and_is_cached_in_context(configure, loopback_server):
    server = loopback_server()
    mailstack = configure(relay_to(server.port))

    first = mailstack.probe()
    second = mailstack.probe()

    assert server.accepted == 1
    assert second == first
    assert mailstack.__context__["mailstack.probe"] == first


def test_probe_has_nothing_to_probe_when_postfix_delivers_to_mx(configure):
    assert configure({"container": False}).probe() == {
        "reachable": None,
        "target": None,
        "comment": "nothing to probe",
    }


def test_probe_has_nothing_to_probe_when_disabled(configure):
    assert configure({"enabled": False}).probe()["reachable"] is None


def test_unreachable_mailu_does_not_change_the_mode(configure):
    pillar = {"mailu": mailu(host="127.0.0.1", port=closed_port(), tls="starttls"), "container": False}
    mailstack = configure(pillar)

    assert mailstack.probe()["reachable"] is False
    assert mailstack.mode()["mode"] == "mailu"
    assert mailstack.plan()["msmtp"]["host"] == "127.0.0.1"


# ------------------------------------------------------------ msmtp limits ---

LONG_LOCAL = "a" * 490
TOO_LONG_FOR_MSMTP = [
    pytest.param({"from": f"{LONG_LOCAL}@example.org"}, "mail:from", id="from"),
    pytest.param({"admin": f"{LONG_LOCAL}@example.org"}, "mail:admin", id="admin"),
    pytest.param({"mailu": mailu(user="u" * 495)}, "mail:mailu:user", id="mailu_user"),
    pytest.param({"mailu": mailu(password="p" * 489)}, "mail:mailu:password", id="mailu_password"),
    pytest.param({"relay": relay(password="p" * 489)}, "mail:relay:password", id="relay_password"),
    pytest.param({"relay": relay(ca_file="/" + "c" * 484)}, "mail:relay:ca_file", id="relay_ca_file"),
    pytest.param({"lookup": {"ca_bundle": "/" + "c" * 484}}, "mail:lookup:ca_bundle", id="ca_bundle"),
    pytest.param(
        {"lookup": {"msmtp": {"aliases": "/etc/" + "a" * 488}}},
        "mail:lookup:msmtp:aliases",
        id="aliases_path",
    ),
]


@pytest.mark.parametrize(("pillar", "key"), TOO_LONG_FOR_MSMTP)
def test_value_making_an_msmtp_line_longer_than_499_characters_is_rejected(configure, pillar, key):
    with pytest.raises(CommandExecutionError) as raised:
        configure(pillar).settings()

    message = str(raised.value)
    assert names_key(message, key), message
    assert "too long for msmtp" in message
    assert "p" * 100 not in message


def test_password_making_an_msmtp_line_of_exactly_499_characters_is_accepted(configure):
    password = "p" * 488  # 'password "' + 488 + '"' = 499
    conf = configure({"mailu": mailu(password=password)})

    line = dict(conf.plan(include_secrets=True)["files"]["msmtprc"])["password"]
    assert len(f"password {line}") == 499
    assert conf.settings(include_secrets=True)["mailu"]["password"] == password


# ------------------------------------------------------------------ aliases ---

ALIASES = {"www-data": ["web@example.org", "dev@example.org"], "backup.job": "ops@example.net"}


def test_aliases_are_normalized_to_sorted_lists(configure):
    conf = configure({"aliases": ALIASES}).settings()

    assert conf["aliases"] == {
        "backup.job": ["ops@example.net"],
        "www-data": ["web@example.org", "dev@example.org"],
    }


def test_empty_or_null_aliases_mean_none(configure):
    assert configure({"aliases": None}).settings()["aliases"] == {}
    assert configure({}).settings()["aliases"] == {}


def test_plan_postfix_expands_aliases_through_virtual_alias_maps(configure):
    result = configure({"aliases": ALIASES, "container": False}).plan()

    assert main_cf(result)["virtual_alias_maps"] == "regexp:/etc/postfix/virtual_alias"
    domains = r"node1\.example\.org|node1|localhost|localhost\.localdomain"
    assert result["files"]["virtual_alias"] == HEADER + (
        rf"/^(backup\.job(@({domains}))?)$/ ops@example.net" + "\n"
        rf"/^(www-data(@({domains}))?)$/ web@example.org, dev@example.org" + "\n"
    )


def test_plan_postfix_keeps_aliased_names_out_of_the_admin_rewrite(configure):
    result = configure({"admin": "ops@example.org", "aliases": ALIASES, "container": False}).plan()

    lines = result["files"]["recipient_canonical"].removeprefix(HEADER).splitlines()
    domains = r"node1\.example\.org|node1|localhost|localhost\.localdomain"
    assert lines == [
        rf"/^(backup\.job(@({domains}))?)$/ ${{1}}",
        rf"/^(www-data(@({domains}))?)$/ ${{1}}",
        rf"/^[^@]+@({domains})$/ ops@example.org",
        "/^[^@]+$/ ops@example.org",
    ]


def test_plan_without_aliases_has_no_virtual_alias_map(configure):
    result = configure({"admin": "ops@example.org", "container": False}).plan()

    assert "virtual_alias_maps" not in main_cf(result)
    assert result["files"]["virtual_alias"] == ""


def test_plan_msmtp_aliases_file_lists_aliases_then_the_admin_default(configure):
    result = configure({"admin": "ops@example.org", "aliases": ALIASES, "mailu": mailu()}).plan()

    assert msmtprc(result)["aliases"] == "/etc/aliases.msmtp"
    assert result["files"]["msmtp_aliases"] == HEADER + (
        "backup.job: ops@example.net\nwww-data: web@example.org, dev@example.org\ndefault: ops@example.org\n"
    )


def test_plan_msmtp_uses_the_aliases_file_for_aliases_without_admin(configure):
    result = configure({"aliases": {"root": "ops@example.org"}, "mailu": mailu()}).plan()

    assert msmtprc(result)["aliases"] == "/etc/aliases.msmtp"
    assert result["files"]["msmtp_aliases"] == HEADER + "root: ops@example.org\n"


# ------------------------------------------------------- extra main.cf ---

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


def test_every_tunable_main_cf_parameter_is_known_to_postfix_3_7():
    shipped = (REPO / "mail/files/postfix-parameters.txt").read_text().split()
    settings = load_salt_module(REPO / "_utils/mailstack_settings.py", "settings_under_test")

    assert set(settings.POSTFIX_TUNABLE) <= set(shipped)
    assert not set(settings.POSTFIX_TUNABLE) & set(settings.POSTFIX_MANAGED)


EXTRA = {
    "message_size_limit": 20480000,
    "maximal_queue_lifetime": "2d",
    "smtp_tls_mandatory_protocols": ["!SSLv2", "!SSLv3"],
    "smtputf8_enable": False,
    "bounce_queue_lifetime": 1.5,
}


@pytest.mark.parametrize("pillar", POSTFIX_PATHS)
def test_plan_main_cf_merges_extra_parameters_as_postfix_values(configure, pillar):
    result = configure({**pillar, "postfix": {"main_cf": EXTRA}}).plan()

    params = main_cf(result)
    assert params["message_size_limit"] == "20480000"
    assert params["maximal_queue_lifetime"] == "2d"
    assert params["smtp_tls_mandatory_protocols"] == "!SSLv2, !SSLv3"
    assert params["smtputf8_enable"] == "no"
    assert params["bounce_queue_lifetime"] == "1.5"
    assert {key: params[key] for key in NULL_CLIENT} == NULL_CLIENT


def test_main_cf_names_are_checked_against_postconf_when_postfix_is_installed(configure):
    calls = []

    def run_all(cmd, **kwargs):
        calls.append(cmd)
        return {"retcode": 0, "stdout": "message_size_limit = 10240000\nsmtputf8_enable = yes\n"}

    mailstack = configure({"postfix": {"main_cf": {"smtputf8_enable": "yes"}}})
    mailstack.__salt__["cmd.which"] = lambda name: f"/usr/sbin/{name}"
    mailstack.__salt__["cmd.run_all"] = run_all

    assert mailstack.settings()["postfix"]["main_cf"] == {"smtputf8_enable": "yes"}
    assert calls == [["postconf", "-d"]]

    mailstack = configure({"postfix": {"main_cf": {"maximal_queue_lifetime": "2d"}}})
    with pytest.raises(
        CommandExecutionError, match=r"main_cf:maximal_queue_lifetime: is not a parameter"
    ) as raised:
        mailstack.settings()
    assert "postconf -d on this minion" in str(raised.value)


def test_main_cf_names_are_checked_against_the_shipped_list_without_postfix(configure, monkeypatch):
    mailstack = configure({"postfix": {"main_cf": {"smtputf8_enable": "yes"}}})
    real_get = mailstack.__salt__["cp.get_file_str"]

    def without_smtputf8(url, **kwargs):
        text = real_get(url, **kwargs)
        return text.replace("smtputf8_enable\n", "") if url.endswith("postfix-parameters.txt") else text

    mailstack.__salt__["cp.get_file_str"] = without_smtputf8
    with pytest.raises(CommandExecutionError) as raised:
        mailstack.settings()

    assert "Postfix is not installed" in str(raised.value)
    assert configure({"postfix": {"main_cf": {"maximal_queue_lifetime": "2d"}}}).settings()


def test_empty_main_cf_does_not_run_postconf(configure):
    mailstack = configure({"postfix": {"main_cf": {}}})
    mailstack.__salt__["cmd.which"] = lambda name: pytest.fail("postconf was asked")

    assert mailstack.settings()["postfix"]["main_cf"] == {}


# ------------------------------------------------------------ relay sender ---

SMARTHOST_ACCOUNT = "account@smarthost.example.net"


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


def test_plan_relay_sender_rewrites_envelope_and_from_header_in_postfix(configure):
    result = configure({"relay": relay(sender=SMARTHOST_ACCOUNT), "container": False}).plan()

    params = main_cf(result)
    assert params["sender_canonical_maps"] == f"static:{SMARTHOST_ACCOUNT}"
    assert params["sender_canonical_classes"] == "envelope_sender, header_sender"
    assert result["summary"]["sender"] == SMARTHOST_ACCOUNT
    # msmtp talks to the local Postfix, which rewrites: msmtp leaves the sender alone.
    assert "set_from_header" not in msmtprc(result)


def test_plan_relay_sender_sets_msmtp_from_and_from_header_where_msmtp_talks_to_the_relayhost(configure):
    result = configure({"relay": relay(sender=SMARTHOST_ACCOUNT), "container": True}).plan()

    lines = msmtprc(result)
    assert lines["host"] == RELAY_HOST
    assert lines["from"] == SMARTHOST_ACCOUNT
    assert lines["set_from_header"] == "on"
    assert lines["allow_from_override"] == "off"


def test_plan_relay_sender_is_ignored_in_mailu_mode(configure):
    result = configure(
        {"relay": relay(sender=SMARTHOST_ACCOUNT), "mailu": mailu(queue=True), "container": False}
    ).plan()

    assert main_cf(result)["sender_canonical_maps"] == f"static:{MAILU_USER}"
    assert main_cf(result)["sender_canonical_classes"] == "envelope_sender"


# --------------------------------------------------------------- msmtp log ---


def test_msmtp_logs_to_syslog_mail_facility_where_dev_log_exists(configure, fake_root):
    (fake_root / "dev").mkdir()
    (fake_root / "dev" / "log").touch()

    result = configure({"container": False}).plan()

    assert result["files"]["msmtprc"][2] == ("syslog", "LOG_MAIL")
    assert result["files"]["msmtp_log"] == {"logfile": ""}
    assert result["summary"]["msmtp logs to"] == "syslog (facility LOG_MAIL)"


def test_msmtp_does_not_log_without_syslog_or_logfile_and_says_so(configure):
    result = configure({"container": False}).plan()

    keys = [key for key, _ in result["files"]["msmtprc"]]
    assert "syslog" not in keys and "logfile" not in keys
    assert "mail:msmtp:logfile is empty" in result["summary"]["msmtp logs to"]


def test_msmtp_logfile_is_refused_where_every_local_user_may_send(configure):
    message = configure({"msmtp": {"logfile": "/var/log/msmtp.log"}, "container": False}).validation_error()

    assert names_key(message, "mail:msmtp:logfile"), message
    assert "every local user may send" in message and "syslog" in message


def test_msmtp_logfile_is_refused_where_mail_senders_may_send_too(configure, fake_root):
    (fake_root / "var" / "log").mkdir(parents=True)
    pillar = {"msmtp": {"logfile": "/var/log/msmtp.log"}, "mailu": mailu(), "senders": ["root"]}

    message = configure(pillar).validation_error()

    assert "mail:senders may send too" in message


def test_msmtp_logfile_is_roots_alone_where_only_root_sends(configure, fake_root):
    (fake_root / "dev").mkdir()
    (fake_root / "dev" / "log").touch()
    (fake_root / "var" / "log").mkdir(parents=True)

    result = configure({"msmtp": {"logfile": "/var/log/msmtp.log"}, "mailu": mailu()}).plan()

    assert ("logfile", "/var/log/msmtp.log") in result["files"]["msmtprc"]
    assert ("syslog", "LOG_MAIL") not in result["files"]["msmtprc"]
    assert result["files"]["msmtp_log"] == {"logfile": "/var/log/msmtp.log", "mode": "0600"}


@pytest.mark.parametrize("existing", ["file", "symlink"], ids=["someone-elses-file", "symlink-to-passwd"])
def test_msmtp_logfile_that_exists_and_is_not_the_formulas_is_refused(configure, fake_root, existing):
    log_dir = fake_root / "var" / "log"
    log_dir.mkdir(parents=True)
    if existing == "file":
        (log_dir / "mail.log").write_text("rsyslog's\n")
    else:
        (log_dir / "mail.log").symlink_to("/etc/passwd")

    message = configure({"msmtp": {"logfile": "/var/log/mail.log"}, "mailu": mailu()}).validation_error()

    assert names_key(message, "mail:msmtp:logfile"), message
    assert "was not created by the mail formula" in message or "symbolic link" in message


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


# ---------------------------------------------------- IPv6 and IP next hops ---


def test_ipv6_relayhost_is_bracketed_alike_in_relayhost_and_the_sasl_map(configure):
    result = configure(
        {"relay": relay(relayhost="2001:db8::25", tls_name=RELAY_HOST), "container": False}
    ).plan(include_secrets=True)

    assert main_cf(result)["relayhost"] == "[2001:db8::25]:587"
    assert result["files"]["sasl_passwd"] == f"[2001:db8::25]:587 bob:{SECRET}\n"
    assert main_cf(result)["smtp_tls_secure_cert_match"] == RELAY_HOST


def test_queued_ipv6_mailu_is_bracketed_alike_in_relayhost_and_the_sasl_map(configure):
    result = configure(
        {"mailu": mailu(host="::1", tls_name=MAILU_HOST, queue=True), "container": False}
    ).plan(include_secrets=True)

    assert main_cf(result)["relayhost"] == "[::1]:465"
    assert result["files"]["sasl_passwd"].startswith("[::1]:465 ")
    assert main_cf(result)["smtp_tls_secure_cert_match"] == MAILU_HOST


def test_direct_ipv6_mailu_lets_msmtp_verify_the_address_or_the_tls_name(configure):
    plain = msmtprc(configure({"mailu": mailu(host="::1")}).plan())
    named = msmtprc(configure({"mailu": mailu(host="::1", tls_name=MAILU_HOST)}).plan())

    assert plain["host"] == "::1" and "tls_host_override" not in plain
    assert named["tls_host_override"] == MAILU_HOST


def test_hostname_next_hop_keeps_matching_the_nexthop_name(configure):
    result = configure({"relay": relay(), "container": False}).plan()

    assert main_cf(result)["smtp_tls_secure_cert_match"] == "nexthop, dot-nexthop"


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


# ------------------------------------------- pillar never widens what is touched ---

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

    conf = configure({"lookup": {"postfix": {"prestart": ["/usr/sbin/x", "a b;c"]}}}).settings()
    assert conf["lookup"]["postfix"]["prestart"] == ["/usr/sbin/x", "a b;c"]


def test_a_group_the_formula_did_not_create_is_refused(configure):
    message = configure({"mailu": mailu(), "lookup": {"msmtp": {"group": "root"}}}).validation_error()

    assert names_key(message, "mail:lookup:msmtp:group"), message
    assert "was not created by the mail formula" in message


def test_a_file_the_formula_would_write_that_it_did_not_write_is_refused(configure, fake_root):
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "msmtprc").write_text("account default\nhost mine.example\n")

    message = configure({}).validation_error()

    assert names_key(message, "mail:lookup:msmtp:config"), message
    assert "was not written by the mail formula" in message


def test_a_file_the_formula_wrote_may_be_written_again(configure, fake_root):
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "msmtprc").write_text("# Managed by Salt (mail formula, mode relay).\n")

    assert configure({}).settings()


def test_a_path_through_a_symbolic_link_is_refused(configure, fake_root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "postfix").symlink_to(tmp_path / "elsewhere")

    message = configure({"admin": "ops@example.org"}).validation_error()

    assert names_key(message, "mail:lookup:postfix:config_dir"), message
    assert "symbolic link" in message


def test_clean_is_not_refused_for_a_file_it_will_leave_alone(configure, fake_root):
    (fake_root / "etc").mkdir()
    (fake_root / "etc" / "msmtprc").write_text("account default\n")
    mailstack = configure({})

    assert "mail:lookup:msmtp:config" in mailstack.validation_error()
    assert mailstack.validation_error(writes=False) == ""
