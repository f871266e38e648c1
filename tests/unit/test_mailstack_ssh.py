"""The pure parts of the formula's salt-ssh support: the ``mailstack_host``
grain (``_grains/mailstack_ssh.py``), ``_utils/mailstack_ssh.py`` and the
wrapper's refusal of a Salt whose salt-ssh does not ship ``_utils``."""

import json
import os

import pytest

from tests.support.loader import REPO, load_salt_module

grain = load_salt_module(REPO / "_grains/mailstack_ssh.py", "mailstack_ssh_grain_under_test")
ssh = load_salt_module(REPO / "_utils/mailstack_ssh.py", "mailstack_ssh_utils_under_test")
owned = load_salt_module(REPO / "_utils/mailstack_owned.py", "mailstack_owned_for_ssh_test")
plan = load_salt_module(REPO / "_utils/mailstack_plan.py", "mailstack_plan_for_ssh_test")


def write(root, path, content, mode=0o644):
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    target.chmod(mode)


def test_the_grain_uses_the_formulas_own_marker_record_and_dropin_names():
    assert grain.MARKER == owned.MARKER
    assert grain.RECORD == owned.RECORD
    assert f"{{u}}/{grain.ALERT_DROPINS}".format(u="X") == plan.alert_dropin_glob("X")


def test_the_grain_reduces_a_secret_bearing_file_to_its_marker(tmp_path):
    write(tmp_path, "/etc/msmtprc", "# Managed by Salt (mail formula). x\npassword s3cret-pw\n", 0o600)
    write(tmp_path, "/etc/postfix/main.cf", "# someone else's\n")
    facts = grain.gather(str(tmp_path))
    assert "s3cret-pw" not in json.dumps(facts)
    assert owned.MARKER.decode() in facts["files"]["/etc/msmtprc"]
    assert facts["files"]["/etc/postfix/main.cf"] == ""


def test_the_grain_copies_the_record_and_notes_units_dropins_systemd_and_syslog(tmp_path):
    write(tmp_path, "/var/lib/mailstack/owned.json", '{"files": ["/var/log/msmtp.log"]}')
    write(tmp_path, "/etc/systemd/system/mail-health.timer", "")
    write(tmp_path, "/etc/systemd/system/cron.service.d/50-mail-alert.conf", "")
    (tmp_path / "run/systemd/system").mkdir(parents=True)
    write(tmp_path, "/dev/log", "")
    facts = grain.gather(str(tmp_path))
    assert facts["files"]["/var/lib/mailstack/owned.json"] == '{"files": ["/var/log/msmtp.log"]}'
    assert "/etc/systemd/system/mail-health.timer" in facts["files"]
    assert "/etc/systemd/system/mail-metrics.timer" not in facts["files"]
    assert "/etc/systemd/system/cron.service.d/50-mail-alert.conf" in facts["files"]
    assert "/run/systemd/system" in facts["dirs"] and "/dev/log" in facts["files"]


def test_the_control_hosts_copy_answers_the_formulas_checks_as_the_target_would(tmp_path):
    target = tmp_path / "target"
    write(target, "/var/lib/mailstack/owned.json", '{"files": [], "packages": ["postfix"]}')
    write(target, "/etc/postfix/main.cf", "# Managed by Salt (mail formula). Do not edit.\n")
    write(target, "/etc/msmtprc", "no marker\n")
    (target / "run/systemd/system").mkdir(parents=True)
    copy = tmp_path / "copy"
    copy.mkdir()
    ssh.materialize(grain.gather(str(target)), str(copy))
    for path in ("/etc/postfix/main.cf", "/etc/msmtprc"):
        assert owned.carries_marker(str(copy) + path) == owned.carries_marker(str(target) + path)
    assert owned.load(str(copy / "var/lib/mailstack")) == owned.load(str(target / "var/lib/mailstack"))
    assert owned.records_packages(str(copy / "var/lib/mailstack"))
    assert os.path.isdir(copy / "run/systemd/system")


def test_a_record_that_is_not_a_regular_file_stays_one_that_is_not(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    ssh.materialize({"files": {"/var/lib/mailstack/owned.json": None}}, str(copy))
    assert owned.record_problem(str(copy / "var/lib/mailstack"))


def test_paths_moved_by_the_pillar_are_named():
    facts = {"paths": dict(grain.PATHS)}
    lookup = {
        "state_dir": "/var/lib/mailstack",
        "systemd_unit_dir": "/etc/systemd/system",
        "postfix": {"config_dir": "/etc/postfix"},
        "msmtp": {"config": "/etc/msmtprc"},
    }
    assert ssh.uncovered_paths(lookup, facts) == []
    lookup["msmtp"]["config"] = "/etc/msmtp/msmtprc"
    assert ssh.uncovered_paths(lookup, facts) == [("msmtp:config", "/etc/msmtp/msmtprc", "/etc/msmtprc")]


def test_the_digest_ignores_key_order_and_sees_any_change():
    data = {"error": "", "blocked": "", "mail": {"a": 1, "b": [1, 2]}, "plan": {"mode": "relay"}}
    same = {
        "plan": {"mode": "relay"},
        "mail": {"b": [1, 2], "a": 1},
        "blocked": "",
        "error": "",
    }
    assert ssh.digest(data) == ssh.digest(same)
    assert ssh.digest(data) != ssh.digest({**data, "plan": {"mode": "mailu"}})


def test_users_answer_as_pwd_does():
    users = ssh.Users(["root", "www-data"])
    assert users.getpwnam("www-data")
    with pytest.raises(KeyError):
        users.getpwnam("nobody-here")


class _Version:
    def __init__(self, major):
        self.info = (major, 0)


@pytest.mark.parametrize(("major", "refused"), [(3006, True), (3007, False), (3008, False)])
def test_the_wrapper_refuses_a_salt_whose_salt_ssh_ships_no_utils(monkeypatch, major, refused):
    wrapper = load_salt_module(REPO / "_wrapper/mailstack.py", "mailstack_wrapper_under_test")
    monkeypatch.setattr(wrapper.salt.version, "__saltstack_version__", _Version(major))
    message = wrapper._unsupported_salt()
    assert bool(message) is refused
    if refused:
        wrapper.__context__ = {}
        result = wrapper.mapdata("mail", "mail")
        assert result["blocked"] == "mail.error" and "_utils" in result["error"]
