"""The fixtures of the unit tests, from ``tests/support``: the execution module
on a fake root (``mailstack``, ``configure``), on a modelled node
(``operator``), and TCP servers on loopback for the probe."""

from tests.support.loopback import loopback_server
from tests.support.mailstack_unit import configure, fake_root, fileserver, mailstack
from tests.support.unit_node import node, operator

__all__ = ["configure", "fake_root", "fileserver", "loopback_server", "mailstack", "node", "operator"]
