"""
Invalid pillar stops ``state.apply mail`` before anything is changed, with one
message that names the pillar key, and never echoes a password.
"""

import pytest

from tests.integration.conftest import PASSWORD, assert_no_secret

RELAY_WITH_AUTH = {"relayhost": "smtp.relay.test", "user": "relayuser", "password": PASSWORD}

BAD_PILLARS = {
    "port-not-a-number": ({"container": False, "relay": {"port": "abc"}}, "mail:relay:port"),
    "unknown-mode": ({"container": False, "mode": "smtp"}, "mail:mode"),
    "password-with-newline": (
        {
            "container": False,
            "relay": {**RELAY_WITH_AUTH, "password": PASSWORD + "\nrelayhost = [evil.test]"},
        },
        "mail:relay:password",
    ),
    "relayhost-injecting-a-line": (
        {"container": False, "relay": {"relayhost": "smtp.relay.test\nmydestination = evil.test"}},
        "mail:relay:relayhost",
    ),
    "credentials-in-clear-text": (
        {"container": False, "relay": {**RELAY_WITH_AUTH, "tls": "none"}},
        "mail:relay:tls",
    ),
    "container-not-a-boolean": ({"container": "maybe"}, "mail:container"),
    "misspelled-key": ({"container": False, "relay": {"passwd": PASSWORD}}, "mail:relay:passwd"),
}


@pytest.fixture(scope="module")
def bad_pillar_minion(masterless_minion_factory):
    return masterless_minion_factory("m-badpillar", profile="debian12")


@pytest.mark.parametrize("case", list(BAD_PILLARS))
def test_bad_pillar_stops_the_run_with_one_message_naming_the_key(bad_pillar_minion, case):
    pillar, key = BAD_PILLARS[case]
    bad_pillar_minion.write_pillar(pillar)
    result = bad_pillar_minion.call("state.apply", "mail", "test=True")
    assert_no_secret(result.output)
    assert "Traceback" not in result.output
    assert result.returncode != 0, result
    states = result.states()
    assert list(states) == ["mail-error"], states
    comment = states["mail-error"]["comment"]
    assert states["mail-error"]["result"] is False
    assert states["mail-error"]["changes"] == {}
    assert key in comment, comment
    # The same one message from the module, for operators who ask directly.
    check = bad_pillar_minion.call("mailstack.validation_error")
    assert_no_secret(check.output)
    assert check.data == comment
