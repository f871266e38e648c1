"""Which RFC 5737 documentation ranges the tests may give to links they make.

A range is taken only when this host neither routes it already nor reaches a
package registry through it: in some sandboxes the registries resolve to an
address in a documentation range, and a test link on that range would cut
apt and pip off for as long as it exists.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess

DOCUMENTATION_PREFIXES = ("198.51.100", "203.0.113", "192.0.2")
REGISTRY_HOSTS = ("deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org")


def _registry_addresses() -> set[str]:
    found = set()
    for host in REGISTRY_HOSTS:
        try:
            found |= {info[4][0] for info in socket.getaddrinfo(host, 443, socket.AF_INET)}
        except OSError:
            continue
    return found


def conflict(prefix: str) -> str | None:
    """Why ``prefix`` (``198.51.100``) must not be used here, or None."""
    network = ipaddress.ip_network(f"{prefix}.0/24")
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    if f"{prefix}." in routes:
        return f"{network} is already routed on this host (`ip -4 route show table all`)"
    registries = sorted(a for a in _registry_addresses() if ipaddress.ip_address(a) in network)
    if registries:
        return f"{network} holds the package registries' address {', '.join(registries)}"
    return None


def free_prefix() -> str:
    """The first documentation range this host may route for a test."""
    reasons = {prefix: conflict(prefix) for prefix in DOCUMENTATION_PREFIXES}
    for prefix, reason in reasons.items():
        if reason is None:
            return prefix
    raise RuntimeError(f"no documentation range is free on this host: {reasons}")
