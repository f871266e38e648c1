"""A throw-away network namespace joined to this host by a veth pair.

The addresses come from a documentation range (RFC 5737) that no route of
this machine uses, and exist only on the two ends of the pair, which the
context manager creates and deletes.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import addresses

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(f"error: {exc}")
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class TestNetwork:
    __test__ = False

    def __init__(self):
        prefix = addresses.free_prefix()
        self.host_address = f"{prefix}.1"
        self.namespace_address = f"{prefix}.2"
        suffix = os.getpid() % 100000
        self.namespace = f"mailtest{suffix}"
        self.host_link = f"vmh{suffix}"
        self.namespace_link = f"vmn{suffix}"

    def __enter__(self) -> TestNetwork:
        _ip("netns", "add", self.namespace)
        try:
            _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.namespace_link)
            _ip("link", "set", self.namespace_link, "netns", self.namespace)
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.host_link)
            _ip("link", "set", self.host_link, "up")
            _ip(
                "-n",
                self.namespace,
                "addr",
                "add",
                f"{self.namespace_address}/24",
                "dev",
                self.namespace_link,
            )
            _ip("-n", self.namespace, "link", "set", self.namespace_link, "up")
            _ip("-n", self.namespace, "link", "set", "lo", "up")
        except subprocess.CalledProcessError:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, check=False)

    def connect_from_namespace(self, address: str, port: int) -> str:
        """'connected', 'refused' or 'error: ...' for TCP from inside the namespace."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", CONNECT, address, str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout.strip() or result.stderr.strip()
