"""Pytest plugin providing the test CA and loopback SMTP peers."""

from __future__ import annotations

import pathlib

import pytest

from tests.support.smtp_peers import SmtpPeer, TestCA


def _make_traversable(directory: pathlib.Path, up_to: pathlib.Path) -> None:
    """Let other users reach ``directory`` by adding o+x/g+x up to ``up_to``."""
    for path in (directory, *directory.parents):
        mode = path.stat().st_mode
        if mode & 0o011 != 0o011:
            path.chmod(mode | 0o011)
        if path == up_to:
            break


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> TestCA:
    directory = tmp_path_factory.mktemp("test-ca")
    directory.chmod(0o755)
    _make_traversable(directory, up_to=tmp_path_factory.getbasetemp().parent)
    return TestCA(directory)


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
