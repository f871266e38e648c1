"""Unit tests for the alert and health parts of the plan, their pillar
validation, and the last health result in ``mailstack.status``."""

import shlex
import subprocess

import pytest
from salt.exceptions import CommandExecutionError

UNIT_DIR = "/etc/systemd/system"


@pytest.fixture
def systemd(tmp_path):
    """Make the modelled node's PID 1 systemd."""
    (tmp_path / "root" / "run" / "systemd" / "system").mkdir(parents=True)


def test_alerts_get_one_onfailure_dropin_per_listed_unit_where_systemd_runs(operator, systemd):
    alerts = operator({"alerts": {"units": ["cron.service", "backup@daily.service"]}}).plan()["alerts"]

    assert alerts["systemd"] is True and alerts["active"] is True
    assert alerts["dropins"] == {
        "backup@daily.service": f"{UNIT_DIR}/backup@daily.service.d/50-mail-alert.conf",
        "cron.service": f"{UNIT_DIR}/cron.service.d/50-mail-alert.conf",
    }
    assert alerts["unit_file"] == f"{UNIT_DIR}/mail-alert@.service"
    assert alerts["shell_vars"]["recipient"] == "ops@example.org"
    assert alerts["shell_vars"]["interval"] == "300"


def test_a_unit_removed_from_the_list_leaves_a_stale_dropin_to_remove(operator, systemd, tmp_path):
    old = tmp_path / "root" / "etc/systemd/system/old.service.d/50-mail-alert.conf"
    old.parent.mkdir(parents=True)
    old.write_text("[Unit]\n")
    module = operator({"alerts": {"units": ["cron.service"]}})

    assert module.plan()["alerts"]["stale_dropins"] == [f"{UNIT_DIR}/old.service.d/50-mail-alert.conf"]
    assert module.alert_dropins() == [f"{UNIT_DIR}/old.service.d/50-mail-alert.conf"]


def test_without_systemd_alerts_change_nothing_and_say_why(operator):
    alerts = operator({"alerts": {"units": ["cron.service"]}}).plan()["alerts"]
    assert alerts["systemd"] is False and alerts["active"] is False
    assert alerts["dropins"] == {} and "systemd does not run here" in alerts["reason"]


def test_health_needs_the_alert_unit_even_without_listed_units(operator, systemd):
    plan = operator({"health": {"enabled": True}}).plan()
    assert plan["alerts"]["active"] is True
    assert plan["health"]["timer"] == "mail-health.timer"
    assert plan["health"]["on_calendar"] == "daily" and plan["health"]["randomized_delay"] == 3600


def test_health_without_systemd_is_a_cron_entry_at_a_fixed_time_per_host(operator):
    health = operator({"health": {"enabled": True}}).plan()["health"]
    assert "cron entry" in health["reason"] and health["cron_file"] == "/etc/cron.d/mail-health"
    assert 0 <= health["cron_time"]["minute"] < 60 and 0 <= health["cron_time"]["hour"] < 24
    assert operator({"health": {"enabled": True}}).plan()["health"]["cron_time"] == health["cron_time"]


def test_shell_values_are_quoted_so_an_unusual_address_stays_one_word(operator, systemd):
    admin = "ops%relay=x+y@example.org"
    shell_vars = operator({"admin": admin, "health": {"enabled": True}}).plan()["health"]["shell_vars"]
    assert shell_vars["recipient"] == shlex.quote(admin)
    echoed = subprocess.run(
        ["sh", "-c", f'recipient={shell_vars["recipient"]}; printf %s "$recipient"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert echoed.stdout == admin


@pytest.mark.parametrize(
    "mail, key",
    [
        ({"alerts": {"units": "cron.service"}}, "alerts:units"),
        ({"alerts": {"units": ["cron"]}}, "alerts:units"),
        ({"alerts": {"units": ["cron.service\nExecStart=/bin/sh"]}}, "alerts:units"),
        ({"alerts": {"units": ["mail-alert@cron.service.service"]}}, "alerts:units"),
        ({"alerts": {"interval": -1}}, "alerts:interval"),
        ({"alerts": {"interval": "5m"}}, "alerts:interval"),
        ({"health": {"enabled": "yes"}}, "health:enabled"),
        ({"health": {"on_calendar": "daily\nExecStart=/bin/sh"}}, "health:on_calendar"),
        ({"health": {"on_calendar": "daily; rm -rf /"}}, "health:on_calendar"),
        ({"health": {"retries": 11}}, "health:retries"),
        ({"health": {"retry_delay": 0}}, "health:retry_delay"),
        ({"health": {"randomized_delay": 90000}}, "health:randomized_delay"),
        ({"alerts": {"sms": True}}, "alerts:sms"),
    ],
)
def test_invalid_alert_and_health_pillar_is_refused_naming_the_key(operator, mail, key):
    with pytest.raises(CommandExecutionError, match=f"mail:{key}"):
        operator(mail).plan()


def test_status_shows_the_last_health_mail(operator, node, tmp_path):
    state = tmp_path / "root" / "var/lib/mailstack/health.last"
    state.parent.mkdir(parents=True)
    state.write_text("1700000000 failed sendmail exited 69 after 1 attempts\n")
    health = operator().status()["health"]
    assert health == {
        "time": 1_700_000_000,
        "result": "failed",
        "detail": "sendmail exited 69 after 1 attempts",
    }


def test_status_without_a_health_mail_yet_shows_none(operator):
    assert operator().status()["health"] is None


def test_a_health_timer_left_installed_is_known_so_that_turning_health_off_removes_it(
    operator, systemd, tmp_path
):
    assert operator().plan()["health"]["timer_installed"] is False
    timer = tmp_path / "root" / "etc/systemd/system/mail-health.timer"
    timer.parent.mkdir(parents=True, exist_ok=True)
    timer.write_text("[Timer]\n")
    assert operator().plan()["health"]["timer_installed"] is True


def _alert_script(tmp_path, state_dir):
    """The installed mail-alert script, rendered as the formula renders it; mail goes to a file."""
    import jinja2  # noqa: PLC0415

    from tests.support.loader import REPO  # noqa: PLC0415

    sendmail = tmp_path / "sendmail"
    sendmail.write_text(f"#!/bin/sh\ncat >> {tmp_path / 'sent'}\n")
    sendmail.chmod(0o755)
    template = (REPO / "mail/files/mail-alert.sh.jinja").read_text()
    shell_vars = {
        "recipient": "ops@example.org",
        "sendmail": shlex.quote(str(sendmail)),
        "state_dir": shlex.quote(str(state_dir)),
        "interval": "300",
    }
    script = tmp_path / "mail-alert"
    script.write_text(jinja2.Template(template).render(shell_vars=shell_vars, marker="# Managed by Salt"))
    return script


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_the_alert_script_treats_its_stamp_file_as_data_not_as_arithmetic(tmp_path, shell):
    state_dir = tmp_path / "alerts"
    state_dir.mkdir()
    proof = tmp_path / "ran"
    (state_dir / "cron.service").write_text(f"x[$(touch {proof})]\n")
    script = _alert_script(tmp_path, state_dir)

    subprocess.run([shell, str(script), "cron.service"], capture_output=True, text=True, timeout=60)

    assert not proof.exists(), "the stamp's content ran as a command"
    assert "Subject: [" in (tmp_path / "sent").read_text()


@pytest.mark.parametrize("unit", ["../../etc/passwd", "-rf", "a b.service", ""])
def test_the_alert_script_refuses_a_unit_name_systemd_would_never_pass(tmp_path, unit):
    state_dir = tmp_path / "alerts"
    script = _alert_script(tmp_path, state_dir)

    ran = subprocess.run(["sh", str(script), unit], capture_output=True, text=True, timeout=60)

    assert ran.returncode == 2, ran.stderr
    assert not (tmp_path / "sent").exists() and not state_dir.exists()
