"""TCP servers on 127.0.0.1 for the unit tests of ``mailstack.probe``: one that
greets each client with a banner (or stays silent), and a port nobody listens
on. The ``loopback_server`` fixture is declared to pytest by
``tests/unit/conftest.py``."""

from __future__ import annotations

import socket
import threading

import pytest


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
