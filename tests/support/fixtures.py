"""Pytest plugin providing the test CA and loopback SMTP peers."""

from __future__ import annotations

import pathlib
import shutil
import tempfile

import pytest

from tests.support.smtp_peers import SmtpPeer, TestCA


@pytest.fixture(scope="session")
def test_ca():
    """The test CA, in a directory every local user can read: non-root senders
    (www-data) verify the peers' certificates with it. Not under pytest's
    basetemp, whose parent pytest makes 0700 again whenever a session starts."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="mail-test-ca-"))
    directory.chmod(0o755)
    yield TestCA(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def smtp_peer_factory(test_ca):
    """Call with ``SmtpPeer`` keyword arguments; ``ca`` defaults to ``test_ca``."""
    peers: list[SmtpPeer] = []

    def start_peer(**kwargs) -> SmtpPeer:
        kwargs.setdefault("ca", test_ca)
        peer = SmtpPeer(**kwargs)
        peers.append(peer)
        return peer.start()

    yield start_peer
    for peer in peers:
        peer.stop()
