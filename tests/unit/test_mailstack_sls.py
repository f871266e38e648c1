"""The plan's fields the state files are generated from (``needs``,
``timer_wanted``, ``sendmail_link_removed``) and the states
``_utils/mailstack_states.py`` makes of them (``mailstack.mapdata``'s ``sls``)."""

from __future__ import annotations

import pytest

from tests.support.mailstack_unit import mailu, relay

NO_NEEDS = {
    "package": False,
    "postmap": False,
    "daemon_reload": False,
    "postfix_watches": False,
    "timer_stopped": False,
}


@pytest.fixture
def systemd(fake_root):
    (fake_root / "run" / "systemd" / "system").mkdir(parents=True)


def _states(mapdata):
    return {state_id: state for state_id, state in mapdata["sls"].items() if state_id != "include"}


def _args(state):
    ((function, args),) = ((key, value) for key, value in state.items() if not key.startswith("__"))
    return function, {name: value for arg in args for name, value in arg.items()}


def _of(mapdata, sls):
    """The states ``mapdata`` holds for the state file ``sls``."""
    return {state_id for state_id, state in _states(mapdata).items() if state["__sls__"] == sls}


def test_the_password_map_needs_the_package_and_its_table_and_postfix_watches_every_file(configure):
    smtp = configure({"relay": relay(), "container": False}).plan()["layout"]["smtp"]

    assert smtp["sasl-passwd"]["needs"] == {
        **NO_NEEDS,
        "package": True,
        "postmap": True,
        "postfix_watches": True,
    }
    assert smtp["main-cf"]["needs"] == {**NO_NEEDS, "postfix_watches": True}


def test_msmtps_configuration_needs_its_package(configure):
    msmtp = configure({"mailu": mailu()}).plan()["layout"]["msmtp"]

    assert msmtp["msmtprc"]["needs"] == {**NO_NEEDS, "package": True}
    assert msmtp["aliases"]["needs"] == NO_NEEDS


def test_unit_files_need_a_daemon_reload_and_the_alert_script_does_not(configure, systemd):
    plan = configure({"alerts": {"units": ["cron.service"]}, "container": False}).plan()

    alerts = plan["layout"]["alerts"]
    assert alerts["script"]["needs"]["daemon_reload"] is False
    assert alerts["unit"]["needs"]["daemon_reload"] is True
    assert alerts["dropin-cron.service"]["needs"]["daemon_reload"] is True
    assert plan["layout"]["health"]["timer"]["needs"] == {**NO_NEEDS, "daemon_reload": True}


def test_the_timer_runs_where_systemd_does_and_an_installed_one_stops_when_turned_off(
    configure, systemd, fake_root
):
    assert (
        configure({"container": False, "health": {"enabled": True}}).plan()["health"]["timer_wanted"]
        == "running"
    )
    assert configure({"container": False}).plan()["metrics"]["timer_wanted"] == ""

    unit_dir = fake_root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    (unit_dir / "mail-health.timer").touch()
    plan = configure({"container": False, "health": {"enabled": False}}).plan()

    assert plan["health"]["timer_wanted"] == "dead"
    assert plan["layout"]["health"]["timer"]["needs"]["timer_stopped"] is True


def test_no_timer_is_managed_without_systemd(configure):
    plan = configure({"container": False}).plan()

    assert (plan["health"]["timer_wanted"], plan["metrics"]["timer_wanted"]) == ("", "")


def test_the_sendmail_link_is_removed_before_postfix_only_where_msmtp_has_no_mta_package(configure):
    assert configure({"container": False}).plan()["sendmail_link_removed"] is None

    plan = configure({"container": False}, os_family="RedHat", os="Fedora", osfinger="Fedora Linux-40").plan()

    assert plan["sendmail_link_removed"] == plan["clean"]["msmtp"]["sendmail_link"]
    assert plan["sendmail_link_removed"]["path"]


def test_postfix_is_reloaded_when_a_file_or_the_password_table_changes(configure):
    mapdata = configure({"relay": relay(), "container": False}).mapdata("mail.smtp.service")

    function, args = _args(_states(mapdata)["mail-smtp-service-running"])
    assert function == "mailstack.postfix_running"
    assert "mail-smtp-config-sasl-passwd-table" in args["watch"]
    assert "mail-smtp-config-main-cf" in args["watch"]


def test_without_the_local_relay_postfix_is_stopped_and_removed(configure):
    mailstack = configure({"mailu": mailu(), "container": False})

    service = mailstack.mapdata("mail.smtp.service")
    package = mailstack.mapdata("mail.smtp.package")

    assert _of(service, "mail.smtp.service") == {"mail-smtp-service-not-wanted", "mail-smtp-service-dead"}
    assert _of(package, "mail.smtp.package") == {"mail-smtp-package-removed"}
    assert _of(package, "mail.smtp.service") == _of(service, "mail.smtp.service")


def test_the_password_map_is_postmapped_only_where_it_is_written(configure):
    with_password = _states(configure({"relay": relay(), "container": False}).mapdata("mail.smtp.config"))
    without = _states(configure({"container": False}).mapdata("mail.smtp.config"))

    assert "mail-smtp-config-sasl-passwd-table" in with_password
    assert _args(with_password["mail-smtp-config-sasl-passwd"])[1]["require"] == [
        {"mailstack": "mail-smtp-package-installed"}
    ]
    assert "mail-smtp-config-sasl-passwd-table" not in without


def test_every_state_file_is_blocked_by_the_error_alone(configure):
    mailstack = configure({"mode": "nonsense"})

    for sls in ("mail", "mail.smtp.config", "mail.health", "mail.clean", "mail.disabled"):
        assert mailstack.mapdata(sls)["sls"] == {"include": ["mail.error"]}
    assert mailstack.mapdata("mail.error")["sls"] == {}


def test_a_disabled_formula_includes_the_notice_except_in_its_clean_states(configure):
    mailstack = configure({"enabled": False})

    assert mailstack.mapdata("mail.msmtp.config")["sls"] == {"include": ["mail.disabled"]}
    notice = _args(mailstack.mapdata("mail.disabled")["sls"]["mail-disabled"])[1]["text"]
    assert "mail:enabled is false" in notice
    assert "mail-msmtp-clean-files-absent" in mailstack.mapdata("mail.msmtp.clean")["sls"]


def test_every_state_passes_the_state_directory_it_uses(configure):
    mailstack = configure({"relay": relay(), "container": False, "lookup": {"state_dir": "/var/lib/other"}})

    for sls in ("mail", "mail.smtp.package", "mail.msmtp.config", "mail.msmtp.clean", "mail.smtp.clean"):
        for state in _states(mailstack.mapdata(sls)).values():
            function, args = _args(state)
            if function.split(".")[1] in ("packages_installed", "owned_group", "formula_files_absent"):
                assert args["state_dir"] == "/var/lib/other", (sls, function)


@pytest.mark.parametrize("pillar", [{"relay": relay(), "container": False}, {"mailu": mailu()}])
def test_mail_holds_the_states_of_every_state_file_it_includes_each_under_its_own_name(configure, pillar):
    mailstack = configure(pillar)

    init = mailstack.mapdata("mail")["sls"]

    assert "include" not in init
    leaves = ("mail.smtp.config", "mail.smtp.package", "mail.smtp.service", "mail.msmtp.package")
    leaves += ("mail.msmtp.config", "mail.alerts", "mail.health", "mail.metrics")
    for leaf in leaves:
        assert _of({"sls": init}, leaf) == _of(mailstack.mapdata(leaf), leaf), leaf
    assert _of({"sls": init}, "mail") == {"mail-apply-started", "mail-apply-finished"}


def test_each_included_state_names_the_files_that_include_it_as_salt_would(configure):
    states = _states(configure({"relay": relay(), "container": False}).mapdata("mail"))

    assert states["mail-smtp-config-main-cf"]["__sls_included_from__"] == ["mail.smtp", "mail"]
    assert states["mail-health-cron"]["__sls_included_from__"] == ["mail"]
    assert "__sls_included_from__" not in states["mail-apply-started"]


def test_a_state_file_leaves_out_the_states_one_rendered_before_it_in_the_run_holds(configure):
    mailstack = configure({"relay": relay(), "container": False})
    smtp = set(_states(mailstack.mapdata("mail.smtp")))

    after_smtp = set(_states(mailstack.mapdata("mail", rendered=["base:mail.smtp"])))
    after_other_formulas = set(_states(mailstack.mapdata("mail", rendered=["base:other", "base:other.mail"])))

    assert smtp and not smtp & after_smtp
    assert after_smtp | smtp == after_other_formulas == set(_states(mailstack.mapdata("mail")))


def test_the_states_of_included_files_come_first_as_salt_orders_an_include(configure):
    states = list(_states(configure({"relay": relay(), "container": False}).mapdata("mail.smtp.service")))

    assert states.index("mail-smtp-config-main-cf") < states.index("mail-smtp-service-running")


def test_state_files_rendered_before_but_blocked_hold_nothing(configure):
    mailstack = configure({"enabled": False})
    earlier = ["base:mail", "base:mail.metrics", "base:mail.smtp"]

    notice = mailstack.mapdata("mail.disabled", rendered=earlier)["sls"]
    clean = set(_states(mailstack.mapdata("mail.clean", rendered=earlier)))

    assert set(_states({"sls": notice})) == {"mail-disabled"}
    assert clean == set(_states(mailstack.mapdata("mail.clean")))
