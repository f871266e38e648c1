"""Real applies on this machine: root, apt, real Postfix and msmtp daemons.

Every test starts from a machine without the formula's packages and leaves it
that way (mail.clean), so tests do not depend on each other's order.
"""

import copy
import os

import pytest
import salt.utils.dictupdate

from tests.support import mailhost
from tests.support.salt_local import LocalMinion

pytestmark = pytest.mark.e2e

# Forced: this machine has /.dockerenv, which would otherwise mean "container".
BASE_PILLAR = {
    "container": False,
    "lookup": {"postfix": {"maillog_file": "/var/log/postfix-e2e.log"}},
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def minion(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail(
            "the e2e tests apply the formula for real and need root (deselect them with -m 'not e2e')"
        )
    directory = tmp_path_factory.mktemp("minion")
    local = LocalMinion(directory)
    synced = local.sync()
    assert synced.returncode == 0, synced.output
    local.set_pillar(BASE_PILLAR)
    cleaned = local.apply("mail.clean")
    assert cleaned.returncode == 0, cleaned.output
    return local


@pytest.fixture
def clean_machine(minion):
    """Leave the machine as found: the formula's packages and files removed."""
    yield minion
    minion.set_pillar(BASE_PILLAR)
    result = minion.apply("mail.clean")
    assert result.returncode == 0, result.output
    assert not mailhost.postfix_running()
    assert mailhost.tcp_listeners(25) == []


def with_base(**mail):
    """The e2e pillar: BASE_PILLAR with ``mail`` merged on top (``lookup`` deeply)."""
    lookup = mail.pop("lookup", {})
    merged = {**copy.deepcopy(BASE_PILLAR), **mail}
    merged["lookup"] = salt.utils.dictupdate.merge(merged["lookup"], lookup)
    return merged
