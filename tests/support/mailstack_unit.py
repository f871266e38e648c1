"""The execution module ``_modules/mailstack.py`` under unit test, on a fake
root: loaded from its file with the Salt dunders injected as module
attributes, ``cp.list_master`` and ``cp.get_file_str`` served from the real
``mail/parameters`` files of this repository (so the tests exercise the real
defaults and per-OS maps), and the pillar builders and constants the unit
tests share. Container detection reads the fake root (``FS_ROOT``), never the
machine running the tests.

The fixtures (``fake_root``, ``fileserver``, ``mailstack``, ``configure``) are
declared to pytest by ``tests/unit/conftest.py``.
"""

from __future__ import annotations

import copy
import pathlib
import re

import pytest

from tests.support.loader import REPO, load_salt_module, load_utils

MODULE_FILE = REPO / "_modules" / "mailstack.py"

FQDN = "node1.example.org"
MAILU_HOST = "mail.example.org"
MAILU_USER = "alice@example.org"
RELAY_HOST = "smtp.example.net"
SECRET = "S3cr3t-Token-9f2c"  # distinctive, to search for it in output
DEBIAN_CA = "/etc/ssl/certs/ca-certificates.crt"
REDHAT_CA = "/etc/pki/tls/certs/ca-bundle.crt"

# Pillar values that tests of more than one file use.
ALIASES = {"www-data": ["web@example.org", "dev@example.org"], "backup.job": "ops@example.net"}
SMARTHOST_ACCOUNT = "account@smarthost.example.net"


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


# ------------------------------------------------------ pillar and results ---


# The first line of the files the formula writes with content.
HEADER = "# Managed by Salt (mail formula). Local changes are overwritten.\n"
NULL_CLIENT = {
    "inet_interfaces": "loopback-only",
    "mydestination": "",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "local_transport": "error:local delivery disabled",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
}


def mailu(**overrides):
    """Pillar ``mail:mailu`` for a configured Mailu server."""
    return {"host": MAILU_HOST, "user": MAILU_USER, "password": SECRET, **overrides}


def relay(**overrides):
    """Pillar ``mail:relay`` for an authenticated relayhost."""
    return {"relayhost": RELAY_HOST, "user": "bob", "password": SECRET, **overrides}


# Pillars of each way the local Postfix relays: to Mailu, to a relayhost, to the MX.
POSTFIX_PATHS = [
    pytest.param({"mailu": mailu(queue=True), "container": False}, id="mailu_queue"),
    pytest.param({"relay": relay(), "container": False}, id="relay_with_relayhost"),
    pytest.param({"container": False}, id="relay_to_mx"),
]


def main_cf(plan):
    return plan["files"]["main_cf"]


def msmtprc(plan):
    """The msmtprc lines as a dict (keys are unique in one account)."""
    return dict(plan["files"]["msmtprc"])


def names_key(message: str, key: str) -> bool:
    """True when ``key`` is named as a whole pillar key (not a prefix of one)."""
    return re.search(rf"{re.escape(key)}(?=:? |:?$)", message) is not None


def install_and_unwanted(plan):
    """The packages a plan installs and has no use for (removed where the
    formula installed them), without which state does it."""
    return {key: plan["packages"][key] for key in ("install", "unwanted")}
