"""The plan is built once per run: every state file of an apply asks
``mailstack.mapdata`` (and the ownership check builds the plan it checks),
and the two templates that hold a password ask
``mailstack.plan(include_secrets=True)``; the module builds each once and
serves the rest from ``__context__`` (``_modules/mailstack.py``,
``_FormulaUtils.built_once``)."""

import re

import pytest

from tests.integration.conftest import MAILU_PASSWORD, assert_no_secret

BUILT = re.compile(r"mailstack: built the plan \((\d+) in this run\)")

PILLARS = {
    "relay": {"container": False, "relay": {"relayhost": "smtp.relay.test", "user": "u", "password": "p"}},
    "mailu": {
        "container": False,
        "mailu": {"host": "mail.mailu.test", "user": "noreply@mailu.test", "password": MAILU_PASSWORD},
    },
}


@pytest.fixture(scope="module")
def minion(masterless_minion_factory):
    return masterless_minion_factory("m-planbuilds", profile="debian12")


@pytest.mark.parametrize("sls", ["mail", "mail.smtp,mail.msmtp,mail.health,mail.metrics"])
@pytest.mark.parametrize("mode", list(PILLARS))
def test_one_apply_builds_the_plan_once_masked_and_once_with_passwords(minion, mode, sls):
    """``mail`` renders one state file; the sub-states in the second case, ten."""
    minion.write_pillar(PILLARS[mode])

    result = minion.call("state.apply", sls, "test=True", "--log-level=debug")

    assert_no_secret(result.output)
    assert result.returncode == 0, result
    builds = BUILT.findall(result.stderr)
    # The state file and the ownership check share the masked plan; the two
    # templates that hold a password share the plan with the passwords.
    assert len(builds) == 2, builds
