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


SUB_STATES = [
    "mail.smtp",
    "mail.smtp.config",
    "mail.smtp.package",
    "mail.smtp.service",
    "mail.msmtp",
    "mail.msmtp.package",
    "mail.msmtp.config",
    "mail.msmtp.sendmail",
    "mail.alerts",
    "mail.health",
    "mail.metrics",
]
# Where the plan has Postfix, sendmail is Postfix's: mail.msmtp.sendmail only includes msmtp.
NOTHING_OF_ITS_OWN = {("relay", "mail.msmtp.sendmail")}
CLEAN_STATES = [
    "mail.clean",
    "mail.smtp.clean",
    "mail.msmtp.clean",
    "mail.alerts.clean",
    "mail.health.clean",
    "mail.metrics.clean",
]


@pytest.mark.parametrize("sls", SUB_STATES + CLEAN_STATES)
@pytest.mark.parametrize("mode", list(PILLARS))
def test_sub_state_applies_on_its_own_in_test_mode(minion, sls, mode):
    minion.write_pillar(PILLARS[mode])

    result = minion.call("state.apply", sls, "test=True")

    assert_no_secret(result.output)
    assert result.returncode == 0, result
    states = result.states()
    assert states and all(state["result"] is not False for state in states.values()), states
    own = [state_id for state_id in states if state_id.startswith(sls.replace(".", "-"))]
    assert bool(own) is ((mode, sls) not in NOTHING_OF_ITS_OWN), list(states)


@pytest.mark.parametrize("mode", list(PILLARS))
def test_only_clean_states_remove_packages_and_a_normal_apply_names_its_removals(minion, mode):
    minion.write_pillar(PILLARS[mode])

    states = minion.call("state.apply", "mail", "test=True").states()

    assert not [state_id for state_id in states if "clean" in state_id]
    if mode == "mailu":
        assert {
            "mail-smtp-package-removed",
            "mail-smtp-service-dead",
            "mail-smtp-config-secrets-absent",
        } <= set(states)


def test_mail_clean_includes_the_clean_state_of_every_concern(minion):
    minion.write_pillar(PILLARS["relay"])

    states = minion.call("state.apply", "mail.clean", "test=True").states()

    sls_of = {state["__sls__"] for state in states.values()}
    assert sls_of == set(CLEAN_STATES)


def test_a_pillar_template_source_is_tried_before_the_formulas_own(minion):
    minion.write_pillar(
        {**PILLARS["relay"], "tofs": {"source_files": {"main.cf.jinja": "salt://site/main.cf"}}}
    )

    result = minion.call("state.show_sls", "mail.smtp.config")

    assert result.returncode == 0, result
    main_cf = result.data["mail-smtp-config-main-cf"]["mailstack"]
    file = next(arg["file"] for arg in main_cf if isinstance(arg, dict) and "file" in arg)
    assert file["sources"] == ["salt://site/main.cf", "salt://mail/files/main.cf.jinja"]
