"""Each sub-state of the formula renders and dry-runs on its own."""

import pytest

from tests.integration.conftest import MAILU_PASSWORD, assert_no_secret

PILLARS = {
    "relay": {"container": False},
    "mailu": {
        "container": False,
        "mailu": {"host": "mail.mailu.test", "user": "noreply@mailu.test", "password": MAILU_PASSWORD},
    },
}


@pytest.fixture(scope="module")
def minion(masterless_minion_factory):
    return masterless_minion_factory("m-substates", profile="debian12")


@pytest.mark.parametrize("sls", ["mail.msmtp", "mail.smtp", "mail.clean"])
@pytest.mark.parametrize("mode", list(PILLARS))
def test_sub_state_applies_on_its_own_in_test_mode(minion, sls, mode):
    minion.write_pillar(PILLARS[mode])

    result = minion.call("state.apply", sls, "test=True")

    assert_no_secret(result.output)
    assert result.returncode == 0, result
    states = result.states()
    assert states and all(state["result"] is not False for state in states.values()), states
    prefix = {"mail.msmtp": "mail-msmtp-", "mail.smtp": "mail-smtp-", "mail.clean": "mail-clean-"}[sls]
    assert any(state_id.startswith(prefix) for state_id in states), list(states)
