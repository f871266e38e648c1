"""Unit tests for the pure parts of the state module ``_states/mailstack.py``.

``cmd.run_all`` is faked by a tiny Postfix model (running or not, listening
settings, ``postfix check`` result, ``postmap``), so the tests prove which
commands the states choose without touching the machine.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import pytest
import salt.config
from salt.exceptions import CommandExecutionError

from tests.support.loader import load_salt_module, load_utils

REPO = pathlib.Path(__file__).resolve().parents[2]
STATE_FILE = REPO / "_states" / "mailstack.py"
PRESTART = ["/usr/lib/postfix/configure-instance.sh", "-"]
LOOPBACK = "loopback-only\nall"


SETTINGS_QUERY = (
    "postconf",
    "queue_directory",
    "data_directory",
    "config_directory",
    "inet_interfaces",
    "inet_protocols",
)


class FakePostfix:
    """Answers ``cmd.run_all`` like Postfix would, keeps its master's pid file
    and its entry in a fake ``/proc``, and records every command."""

    def __init__(self, root: pathlib.Path):
        self.data_dir = root / "var-lib-postfix"
        self.queue_dir = root / "var-spool-postfix"
        self.config_dir = root / "etc-postfix"
        self.proc = root / "proc"
        for directory in (self.data_dir, self.queue_dir / "pid", self.config_dir, self.proc):
            directory.mkdir(parents=True)
        (self.config_dir / "main.cf").write_text("", encoding="utf-8")
        self.installed = True
        self.listen = LOOPBACK
        self.check_ok = True
        self.postmap_ok = True
        self.commands: list = []
        self.master_pid = None
        self.next_pid = 4242
        self.start_master()

    @property
    def running(self) -> bool:
        return self.master_pid is not None

    @running.setter
    def running(self, running: bool) -> None:
        if running and not self.running:
            self.start_master()
        elif not running:
            self.stop_master()

    def start_master(self):
        self.master_pid, self.next_pid = self.next_pid, self.next_pid + 1
        (self.queue_dir / "pid" / "master.pid").write_text(f"{self.master_pid:11d}\n", encoding="utf-8")
        self.run_process(self.master_pid, "master")

    def stop_master(self):
        """The master exits; its pid file stays, as Postfix leaves it."""
        if self.master_pid is not None:
            shutil.rmtree(self.proc / str(self.master_pid))
        self.master_pid = None

    def run_process(self, pid, command):
        (self.proc / str(pid)).mkdir()
        (self.proc / str(pid) / "comm").write_text(command + "\n", encoding="utf-8")

    def parameters(self):
        interfaces, protocols = self.listen.split("\n")
        return {
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "config_directory": str(self.config_dir),
            "inet_interfaces": interfaces,
            "inet_protocols": protocols,
        }

    @staticmethod
    def _out(ok=True, stdout="", stderr=""):
        return {"retcode": 0 if ok else 1, "stdout": stdout, "stderr": stderr, "pid": 1}

    def _postconf(self, names):
        known = self.parameters()
        lines = [f"{name} = {known[name]}" for name in names if name in known]
        unknown = [f"postconf: warning: {name}: unknown parameter" for name in names if name not in known]
        return self._out(stdout="\n".join(lines), stderr="\n".join(unknown))

    def run_all(self, cmd, python_shell=False, **kwargs):
        assert not python_shell and not isinstance(cmd, str), f"{cmd!r} would run through a shell"
        self.commands.append(tuple(cmd))
        if list(cmd) == PRESTART:
            return self._out()
        if not self.installed and cmd[0] in ("postfix", "postconf", "postmap"):
            # What salt's cmd.run_all does for a missing executable.
            raise CommandExecutionError(f"Unable to run command '{cmd}', reason: [Errno 2] No such file")
        if cmd[0] == "postconf" and not any(arg.startswith("-") for arg in cmd[1:]):
            return self._postconf(cmd[1:])
        if cmd == ["postfix", "check"]:
            return self._out(self.check_ok, stderr="" if self.check_ok else "postfix: fatal: bad main.cf")
        if cmd in (["postfix", "start"], ["postfix", "stop"], ["postfix", "reload"]):
            self.running = cmd[1] != "stop"
            return self._out()
        if cmd[0] == "postmap":
            map_type, source = cmd[1].split(":", 1)
            if not self.postmap_ok:
                return self._out(False, stderr="postmap: fatal: bad table")
            suffix = {"hash": ".db", "lmdb": ".lmdb"}[map_type]
            pathlib.Path(source + suffix).write_bytes(b"table")
            return self._out()
        raise AssertionError(f"unexpected command {cmd!r}")

    def ran(self, *cmd) -> bool:
        return tuple(cmd) in self.commands

    def postfix_actions(self):
        return [c[1] for c in self.commands if isinstance(c, tuple) and c[0] == "postfix"]


def load_module():
    module = load_salt_module(STATE_FILE, "mailstack_states_under_test")
    module.__utils__ = load_utils()
    return module


@pytest.fixture
def postfix(tmp_path):
    return FakePostfix(tmp_path / "postfix")


@pytest.fixture
def states(postfix, tmp_path, monkeypatch):
    module = load_module()
    module.__salt__ = {
        "cmd.run_all": postfix.run_all,
        "cmd.which": lambda name: f"/usr/sbin/{name}" if postfix.installed else None,
    }
    module.__opts__ = {"test": False}
    module.__context__ = {}
    module.__grains__ = {}
    module.__pillar__ = {}
    monkeypatch.setattr(module, "_systemd_booted", lambda: False)
    monkeypatch.setattr(module, "PROC", str(postfix.proc))
    # Postfix's default directories, where postconf cannot say: empty ones here.
    defaults = {name: str(tmp_path / "defaults" / name) for name in module.DIRECTORIES}
    monkeypatch.setattr(module, "DIRECTORIES", defaults)
    return module


def answer_commands(states, prefix, answer):
    """``answer(cmd)`` replies to the commands that start with ``prefix``; the
    fake Postfix to the rest."""
    run_all = states.__salt__["cmd.run_all"]
    states.__salt__["cmd.run_all"] = lambda cmd, **kwargs: (
        answer(cmd) if cmd[: len(prefix)] == prefix else run_all(cmd, **kwargs)
    )


def command_result(retcode, stdout="", stderr=""):
    return {"retcode": retcode, "stdout": stdout, "stderr": stderr, "pid": 1}


def record_marker(postfix, listen=LOOPBACK):
    (postfix.data_dir / "mailstack-listen").write_text(listen, encoding="utf-8")


def recorded(postfix):
    return json.loads((postfix.data_dir / "mailstack-listen").read_text(encoding="utf-8"))


def marker(postfix):
    return recorded(postfix)["listen"]


def set_mtime(path, seconds):
    os.utime(path, (seconds, seconds))


# -------------------------------------------------------------- mod_watch ---


def test_mod_watch_reloads_when_running_and_listening_settings_unchanged(states, postfix):
    record_marker(postfix)

    ret = states.mod_watch("postfix", sfun="postfix_running", prestart=PRESTART)

    assert ret["result"] is True
    assert ret["changes"] == {"postfix": "reloaded"}
    assert postfix.postfix_actions() == ["check", "reload"]


def test_mod_watch_restarts_when_inet_interfaces_changed(states, postfix):
    record_marker(postfix, "all\nall")  # what the running daemon was started with

    ret = states.mod_watch("postfix", sfun="postfix_running", prestart=PRESTART)

    assert ret["result"] is True
    assert ret["changes"] == {"postfix": "restarted"}
    assert postfix.postfix_actions() == ["check", "stop", "check", "start"]
    assert tuple(PRESTART) in postfix.commands
    assert marker(postfix) == LOOPBACK


def test_mod_watch_restarts_when_no_listening_settings_were_recorded(states, postfix):
    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["changes"] == {"postfix": "restarted"}
    assert "stop" in postfix.postfix_actions() and "start" in postfix.postfix_actions()
    assert marker(postfix) == LOOPBACK


def test_mod_watch_starts_postfix_that_is_not_running_after_prestart(states, postfix):
    postfix.running = False

    ret = states.mod_watch("postfix", sfun="postfix_running", prestart=PRESTART)

    assert ret["result"] is True
    assert ret["changes"] == {"postfix": "started"}
    assert postfix.commands.index(tuple(PRESTART)) < postfix.commands.index(("postfix", "start"))
    assert postfix.postfix_actions() == ["check", "start"]
    assert postfix.running is True
    assert marker(postfix) == LOOPBACK


def test_mod_watch_does_not_reload_when_postfix_check_fails(states, postfix):
    record_marker(postfix)
    postfix.check_ok = False

    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["result"] is False
    assert "postfix check failed" in ret["comment"]
    assert "bad main.cf" in ret["comment"]
    assert postfix.postfix_actions() == ["check"]


def test_mod_watch_does_not_stop_for_a_restart_when_postfix_check_fails(states, postfix):
    postfix.check_ok = False  # no marker: a restart is due

    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["result"] is False
    assert "stop" not in postfix.postfix_actions()
    assert postfix.running is True


def test_mod_watch_in_test_mode_predicts_the_reload_and_changes_nothing(states, postfix):
    record_marker(postfix)
    states.__opts__["test"] = True

    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["result"] is None
    assert ret["changes"] == {"postfix": "reloaded"}
    assert postfix.postfix_actions() == []


def test_mod_watch_for_postfix_dead_stops_postfix(states, postfix):
    ret = states.mod_watch("postfix", sfun="postfix_dead")

    assert ret["result"] is True
    assert ret["changes"] == {"postfix": "stopped"}
    assert postfix.postfix_actions() == ["stop"]


def test_mod_watch_uses_systemd_reload_where_systemd_runs(states, postfix, monkeypatch):
    record_marker(postfix)
    calls = []
    monkeypatch.setattr(states, "_systemd_booted", lambda: True)
    states.__salt__.update(
        {
            "service.status": lambda name: True,
            "service.reload": lambda name: calls.append(("reload", name)) or True,
            "service.restart": lambda name: calls.append(("restart", name)) or True,
        }
    )

    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["result"] is True
    assert calls == [("reload", "postfix")]
    assert postfix.postfix_actions() == ["check"]


def reload_under_systemd_failing(states, postfix, monkeypatch, times):
    """A watched change under systemd whose ``service.reload`` raises systemd's
    message ``times`` times, then reloads: the state's return and the reloads asked."""
    record_marker(postfix)
    calls = []

    def reload(name):
        calls.append(name)
        if len(calls) <= times:
            raise CommandExecutionError(
                f"Job for {name}.service failed.\nSee 'systemctl status {name}.service'."
            )
        return True

    monkeypatch.setattr(states, "_systemd_booted", lambda: True)
    states.__salt__.update({"service.status": lambda name: True, "service.reload": reload})
    return states.mod_watch("postfix", sfun="postfix_running"), calls


def test_mod_watch_reloads_again_when_systemd_fails_the_first_reload(states, postfix, monkeypatch):
    ret, calls = reload_under_systemd_failing(states, postfix, monkeypatch, 1)

    assert ret["result"] is True, ret
    assert ret["changes"] == {"postfix": "reloaded"}
    assert calls == ["postfix", "postfix"]


def test_mod_watch_reports_systemds_words_when_the_reload_fails_twice(states, postfix, monkeypatch):
    ret, calls = reload_under_systemd_failing(states, postfix, monkeypatch, 2)

    assert ret["result"] is False
    assert ret["comment"].startswith("systemd could not reload postfix: Job for postfix.service failed."), ret
    assert "Traceback" not in ret["comment"]
    assert ret["changes"] == {}
    assert calls == ["postfix", "postfix"]


def test_a_failed_systemd_restart_is_reported_once_and_not_repeated(states, postfix, monkeypatch):
    record_marker(postfix, "all\nall")
    calls = []

    def restart(name):
        calls.append(name)
        raise CommandExecutionError("Job for postfix.service failed.")

    monkeypatch.setattr(states, "_systemd_booted", lambda: True)
    states.__salt__.update({"service.status": lambda name: True, "service.restart": restart})

    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["result"] is False
    assert ret["comment"] == "systemd could not restart postfix: Job for postfix.service failed."
    assert calls == ["postfix"]


def test_mod_watch_uses_systemd_restart_when_listening_settings_changed(states, postfix, monkeypatch):
    record_marker(postfix, "all\nall")
    calls = []
    monkeypatch.setattr(states, "_systemd_booted", lambda: True)
    states.__salt__.update(
        {
            "service.status": lambda name: True,
            "service.reload": lambda name: calls.append(("reload", name)) or True,
            "service.restart": lambda name: calls.append(("restart", name)) or True,
        }
    )

    states.mod_watch("postfix", sfun="postfix_running")

    assert calls == [("restart", "postfix")]
    assert marker(postfix) == LOOPBACK


def test_mod_watch_records_the_pid_of_the_master_it_restarted_with_the_listening_settings(states, postfix):
    old_master = postfix.master_pid

    states.mod_watch("postfix", sfun="postfix_running")  # no marker yet: restart

    assert postfix.master_pid != old_master
    assert recorded(postfix) == {"listen": LOOPBACK, "master_pid": postfix.master_pid}


def started_outside_the_formula(states, postfix, monkeypatch, main_cf_age):
    """The marker names master 100; another master runs, started at t=1000."""
    (postfix.data_dir / "mailstack-listen").write_text(json.dumps({"listen": LOOPBACK, "master_pid": 100}))
    monkeypatch.setattr(states, "_master_started", lambda pid: 1000.0 if pid == postfix.master_pid else None)
    set_mtime(postfix.config_dir / "main.cf", 1000 + main_cf_age)


def test_mod_watch_restarts_a_master_started_outside_the_formula_before_main_cf_changed(
    states, postfix, monkeypatch
):
    # e.g. inet_interfaces widened by hand and Postfix restarted, then the
    # formula rewrote main.cf: the marker's settings say nothing about this master.
    started_outside_the_formula(states, postfix, monkeypatch, main_cf_age=+5)

    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["changes"] == {"postfix": "restarted"}
    assert postfix.postfix_actions() == ["check", "stop", "check", "start"]


def test_postfix_running_keeps_a_master_started_after_the_last_main_cf_change(states, postfix, monkeypatch):
    # e.g. systemd started Postfix at boot from the formula's unchanged main.cf.
    started_outside_the_formula(states, postfix, monkeypatch, main_cf_age=-60)

    ret = states.postfix_running("postfix")

    assert ret["changes"] == {}
    assert postfix.postfix_actions() == []


def test_an_old_plain_text_marker_is_still_understood(states, postfix):
    record_marker(postfix)

    ret = states.postfix_running("postfix")

    assert ret["changes"] == {}


def systemd_stop(states, monkeypatch, master_pids, stopping=()):
    """systemd where Postfix's master (``master_pids`` in turn) takes a while to go."""
    pids = list(master_pids)
    units = list(stopping)
    calls = []
    monkeypatch.setattr(states, "_systemd_booted", lambda: True)
    monkeypatch.setattr(states, "_master_pid", lambda queue_dir: pids.pop(0) if pids else None)
    monkeypatch.setattr(states, "_still_stopping", lambda name: [units.pop(0)] if units else [])
    monkeypatch.setattr(states.time, "sleep", lambda seconds: None)
    states.__salt__.update(
        {"service.status": lambda name: True, "service.stop": lambda name: calls.append(name) or True}
    )
    return calls


def test_postfix_dead_under_systemd_waits_until_the_instances_are_down(states, postfix, monkeypatch):
    # Running when asked, then still there once after systemd returned.
    calls = systemd_stop(states, monkeypatch, master_pids=[4242, 4242, 4242], stopping=["postfix@-.service"])

    ret = states.postfix_dead("postfix")

    assert ret["result"] is True
    assert ret["changes"] == {"postfix": "stopped"}
    assert calls == ["postfix"]
    assert postfix.postfix_actions() == []  # systemd stopped it, not `postfix stop`


def test_postfix_dead_under_systemd_fails_when_postfix_does_not_stop_in_time(states, postfix, monkeypatch):
    systemd_stop(states, monkeypatch, master_pids=[4242] * 1000)
    monkeypatch.setattr(states, "STOP_TIMEOUT", 0.05)
    clock = iter(range(1000))
    monkeypatch.setattr(states.time, "monotonic", lambda: next(clock) * 0.01)

    ret = states.postfix_dead("postfix")

    assert ret["result"] is False
    assert "did not finish stopping postfix" in ret["comment"]
    assert ret["changes"] == {}


# --------------------------------------------------------- postfix_running ---


def test_postfix_running_does_nothing_when_running_with_recorded_settings(states, postfix):
    record_marker(postfix)

    ret = states.postfix_running("postfix")

    assert ret == {"name": "postfix", "result": True, "comment": "Postfix is running", "changes": {}}
    assert postfix.postfix_actions() == []


def test_an_idempotent_postfix_running_asks_postconf_once_and_runs_nothing_else(states, postfix):
    record_marker(postfix)

    assert states.postfix_running("postfix")["changes"] == {}
    assert postfix.commands == [SETTINGS_QUERY]


def test_a_dead_master_whose_pid_file_stayed_behind_is_not_running_and_is_started(states, postfix):
    record_marker(postfix)
    dead = postfix.master_pid
    postfix.running = False
    assert (postfix.queue_dir / "pid" / "master.pid").read_text().strip() == str(dead)

    ret = states.postfix_running("postfix", prestart=PRESTART)

    assert ret["changes"] == {"postfix": "started"}
    assert postfix.postfix_actions() == ["check", "start"]
    assert recorded(postfix) == {"listen": LOOPBACK, "master_pid": postfix.master_pid}


def test_a_pid_from_the_pid_file_reused_by_another_process_is_not_a_running_master(states, postfix):
    # e.g. after a reboot: the stale pid file names what is now someone's shell.
    record_marker(postfix)
    reused = postfix.master_pid
    postfix.running = False
    postfix.run_process(reused, "bash")

    ret = states.postfix_running("postfix")

    assert ret["changes"] == {"postfix": "started"}
    assert postfix.postfix_actions() == ["check", "start"]


@pytest.mark.parametrize("contents", [None, "", "not a pid\n"], ids=["no-pid-file", "empty", "garbage"])
def test_without_a_readable_pid_in_the_pid_file_postfix_is_not_running(states, postfix, contents):
    pid_file = postfix.queue_dir / "pid" / "master.pid"
    pid_file.unlink()
    if contents is not None:
        pid_file.write_text(contents, encoding="utf-8")

    assert states.postfix_running("postfix")["changes"] == {"postfix": "started"}


def test_the_master_is_found_through_the_queue_directory_postconf_names(states, postfix):
    record_marker(postfix)
    moved = postfix.queue_dir.parent / "elsewhere"
    postfix.queue_dir.rename(moved)
    postfix.queue_dir = moved

    assert states.postfix_running("postfix")["comment"] == "Postfix is running"


def test_a_watch_after_main_cf_changed_in_the_same_run_sees_the_new_listening_settings(states, postfix):
    record_marker(postfix)
    assert states.postfix_running("postfix")["changes"] == {}
    postfix.listen = "all\nall"  # main.cf rewritten by a later file state

    ret = states.mod_watch("postfix", sfun="postfix_running")

    assert ret["changes"] == {"postfix": "restarted"}
    assert marker(postfix) == "all\nall"


def test_postfix_dead_leaves_alone_a_master_that_left_only_its_pid_file(states, postfix):
    postfix.running = False

    ret = states.postfix_dead("postfix")

    assert (ret["result"], ret["changes"]) == (True, {})
    assert postfix.postfix_actions() == []


def test_postfix_running_starts_a_stopped_postfix(states, postfix):
    postfix.running = False

    ret = states.postfix_running("postfix", prestart=PRESTART)

    assert ret["changes"] == {"postfix": "started"}
    assert postfix.running is True


def test_postfix_running_in_test_mode_before_postfix_is_installed_predicts_a_start(states, postfix):
    # test=True on a fresh host: pkg.installed only predicted the install, so
    # the postfix binary does not exist yet. The state must predict, not error.
    postfix.installed = False
    states.__opts__["test"] = True

    ret = states.postfix_running("postfix", prestart=PRESTART)

    assert ret["result"] is None
    assert ret["changes"] == {"postfix": "started"}


def test_postfix_dead_does_nothing_when_postfix_is_not_installed(states, postfix):
    postfix.installed = False

    ret = states.postfix_dead("postfix")

    assert ret["result"] is True
    assert postfix.commands == []


# -------------------------------------------------------------- postmapped ---


@pytest.fixture
def sasl_passwd(tmp_path):
    source = tmp_path / "sasl_passwd"
    source.write_text("[smtp.example.net]:587 bob:secret\n")
    source.chmod(0o600)
    return source


def test_postmapped_is_up_to_date_when_the_table_is_newer(states, postfix, sasl_passwd):
    table = pathlib.Path(f"{sasl_passwd}.db")
    table.write_bytes(b"table")
    table.chmod(0o600)
    set_mtime(sasl_passwd, 1_000_000)
    set_mtime(table, 1_000_100)

    ret = states.postmapped(str(sasl_passwd), map_type="hash")

    assert ret["result"] is True
    assert ret["changes"] == {}
    assert "up to date" in ret["comment"]
    assert postfix.commands == []


def test_postmapped_rebuilds_a_table_older_than_its_source(states, postfix, sasl_passwd):
    table = pathlib.Path(f"{sasl_passwd}.db")
    table.write_bytes(b"old")
    set_mtime(table, 1_000_000)
    set_mtime(sasl_passwd, 1_000_100)

    ret = states.postmapped(str(sasl_passwd), map_type="hash")

    assert ret["result"] is True
    assert ret["changes"] == {"postmap": f"hash:{sasl_passwd}"}
    assert postfix.ran("postmap", f"hash:{sasl_passwd}")


def test_postmapped_builds_a_missing_table_with_the_source_permissions(states, postfix, sasl_passwd):
    ret = states.postmapped(str(sasl_passwd), map_type="hash")

    table = pathlib.Path(f"{sasl_passwd}.db")
    assert ret["result"] is True
    assert table.exists()
    assert table.stat().st_mode & 0o777 == 0o600


def test_postmapped_uses_the_lmdb_table_name_for_lmdb_and_removes_the_stale_hash_table(
    states, postfix, sasl_passwd
):
    stale = pathlib.Path(f"{sasl_passwd}.db")
    stale.write_bytes(b"stale hash table")  # must not count as up to date

    ret = states.postmapped(str(sasl_passwd), map_type="lmdb", stale_tables=[str(stale)])

    assert postfix.ran("postmap", f"lmdb:{sasl_passwd}")
    assert ret["changes"] == {"postmap": f"lmdb:{sasl_passwd}", "removed": [str(stale)]}
    assert not stale.exists()


def test_a_world_readable_table_made_by_hand_is_made_private_though_it_is_up_to_date(
    states, postfix, sasl_passwd
):
    table = pathlib.Path(f"{sasl_passwd}.db")
    table.write_bytes(b"postmap run by hand")
    table.chmod(0o644)
    set_mtime(sasl_passwd, 1_000_000)
    set_mtime(table, 1_000_100)

    ret = states.postmapped(str(sasl_passwd), map_type="hash")

    assert ret["result"] is True and "table" in ret["changes"]
    assert table.stat().st_mode & 0o777 == 0o600
    assert postfix.commands == []
    assert states.postmapped(str(sasl_passwd), map_type="hash")["changes"] == {}


def test_postmapped_in_test_mode_predicts_the_rebuild_without_running_postmap(states, postfix, sasl_passwd):
    states.__opts__["test"] = True

    ret = states.postmapped(str(sasl_passwd))

    assert ret["result"] is None
    assert ret["changes"] == {"postmap": f"hash:{sasl_passwd}"}
    assert postfix.commands == []


def test_postmapped_fails_when_postmap_fails(states, postfix, sasl_passwd):
    postfix.postmap_ok = False

    ret = states.postmapped(str(sasl_passwd))

    assert ret["result"] is False
    assert "bad table" in ret["comment"]


def test_postmapped_fails_when_the_source_is_missing(states, postfix, tmp_path):
    ret = states.postmapped(str(tmp_path / "sasl_passwd"))

    assert ret["result"] is False
    assert "does not exist" in ret["comment"]


def test_postmapped_in_test_mode_with_a_source_not_yet_written_predicts_a_build(states, postfix, tmp_path):
    # test=True on a fresh host: file.managed only predicted writing the source.
    states.__opts__["test"] = True
    source = tmp_path / "sasl_passwd"

    ret = states.postmapped(str(source))

    assert ret["result"] is None
    assert ret["changes"] == {"postmap": f"{source}.db"}
    assert postfix.commands == []


# --------------------------------------------------------- postfix_enabled ---


class FakeUnit:
    """systemd's view of one unit: enabled or not, and whether enabling works;
    answers ``systemctl is-enabled`` and Salt's ``service.enabled``/``enable``."""

    def __init__(self, enabled=False, enable_works=True):
        self.enabled = enabled
        self.enable_works = enable_works
        self.calls: list = []

    def install(self, states):
        answer_commands(states, ["systemctl", "is-enabled"], self._is_enabled)
        states.__salt__.update(
            {
                "service.enabled": lambda name: self.calls.append(("enabled", name)) or self.enabled,
                "service.enable": self._enable,
            }
        )

    def _is_enabled(self, cmd):
        self.calls.append(("is-enabled", cmd[-1]))
        return command_result(0, "enabled") if self.enabled else command_result(1, "disabled")

    def _enable(self, name):
        self.calls.append(("enable", name))
        self.enabled = self.enable_works
        return True


@pytest.fixture
def unit(states, monkeypatch, tmp_path):
    monkeypatch.setattr(states, "_systemd_booted", lambda: True)
    monkeypatch.setattr(states, "FS_ROOT", str(tmp_path))
    fake = FakeUnit()
    fake.install(states)
    return fake


def test_postfix_enabled_enables_a_disabled_unit_and_reports_it(states, unit):
    ret = states.postfix_enabled("postfix")

    assert ret["result"] is True
    assert ret["changes"] == {"enabled": "postfix"}
    assert ("enable", "postfix") in unit.calls
    assert unit.enabled is True


def test_postfix_enabled_changes_nothing_when_already_enabled(states, unit):
    unit.enabled = True

    ret = states.postfix_enabled("postfix")

    assert ret["result"] is True
    assert ret["changes"] == {}
    assert ("enable", "postfix") not in unit.calls


def test_an_enabled_unit_is_told_by_systemctl_alone_without_salts_service_module(states, unit):
    unit.enabled = True

    states.postfix_enabled("postfix")

    assert unit.calls == [("is-enabled", "postfix")]


def enable_link(root, target="lib/systemd/system/postfix.service"):
    """What ``systemctl enable postfix`` makes under ``root``: the wants link to the unit file."""
    unit_file = root / target
    unit_file.parent.mkdir(parents=True, exist_ok=True)
    unit_file.touch()
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "postfix.service").symlink_to(unit_file)


def test_an_enabled_unit_is_told_by_its_wants_link_without_running_anything(states, unit, tmp_path):
    enable_link(tmp_path)

    ret = states.postfix_enabled("postfix")

    assert (ret["result"], ret["changes"]) == (True, {})
    assert unit.calls == []


def test_a_masked_unit_with_a_wants_link_is_asked_of_systemctl_and_enabled(states, unit, tmp_path):
    enable_link(tmp_path)
    (tmp_path / "etc/systemd/system/postfix.service").symlink_to("/dev/null")

    ret = states.postfix_enabled("postfix")

    assert ret["changes"] == {"enabled": "postfix"}
    assert unit.calls[0] == ("is-enabled", "postfix")


def test_postfix_enabled_in_test_mode_predicts_the_change_and_enables_nothing(states, unit):
    states.__opts__["test"] = True

    ret = states.postfix_enabled("postfix")

    assert ret["result"] is None
    assert ret["changes"] == {"enabled": "postfix"}
    assert ("enable", "postfix") not in unit.calls
    assert unit.enabled is False


def test_postfix_enabled_fails_with_the_unit_name_when_systemd_cannot_enable_it(states, unit):
    unit.enable_works = False

    ret = states.postfix_enabled("postfix.service")

    assert ret["result"] is False
    assert "systemctl enable postfix.service" in ret["comment"]
    assert "mail:lookup:postfix:service" in ret["comment"]
    assert ret["changes"] == {}


def test_postfix_enabled_does_nothing_where_no_init_system_runs(states, postfix):
    # `states` has _systemd_booted False and no service.* functions at all.
    ret = states.postfix_enabled("postfix")

    assert ret["result"] is True
    assert ret["changes"] == {}
    assert "No systemd" in ret["comment"]
    assert postfix.commands == []


# ------------------------------------------- systemd unit around a dead master ---


def systemd_unit(states, monkeypatch, active):
    """systemd whose Postfix unit is ``active`` or not; records service.* calls."""
    calls = []

    def recorder(action):
        return lambda name: calls.append((action, name)) or True

    monkeypatch.setattr(states, "_systemd_booted", lambda: True)
    monkeypatch.setattr(states, "_still_stopping", lambda name: [])
    answer_commands(states, ["systemctl", "is-active"], lambda cmd: command_result(0 if active else 3))
    for action in ("start", "restart", "reload", "stop"):
        states.__salt__[f"service.{action}"] = recorder(action)
    return calls


def test_a_dead_master_inside_a_unit_systemd_calls_active_is_restarted_through_systemd(
    states, postfix, monkeypatch
):
    # Debian's `postfix` unit is a oneshot wrapper: active although postfix@- died.
    postfix.running = False
    calls = systemd_unit(states, monkeypatch, active=True)

    ret = states.postfix_running("postfix")

    assert ret["result"] is True and ret["changes"] == {"postfix": "started"}
    assert calls == [("restart", "postfix")]
    assert postfix.postfix_actions() == ["check"]  # never `postfix start` behind systemd's back


def test_a_stopped_unit_is_started_through_systemd(states, postfix, monkeypatch):
    postfix.running = False
    calls = systemd_unit(states, monkeypatch, active=False)

    assert states.postfix_running("postfix")["changes"] == {"postfix": "started"}
    assert calls == [("start", "postfix")]


def test_postfix_dead_stops_a_unit_systemd_calls_active_even_with_its_master_gone(
    states, postfix, monkeypatch
):
    postfix.running = False
    calls = systemd_unit(states, monkeypatch, active=True)

    ret = states.postfix_dead("postfix")

    assert ret["changes"] == {"postfix": "stopped"}
    assert calls == [("stop", "postfix")]


# -------------------------------------------------------------- packages ---


class SaltPackageStates:
    """Salt's pkg.installed and pkg.removed, recording what they were asked."""

    def __init__(self):
        self.calls = []

    def installed(self, **kwargs):
        self.calls.append(("pkg.installed", kwargs))
        return {"name": kwargs["name"], "result": True, "comment": "installed", "changes": {"postfix": {}}}

    def removed(self, **kwargs):
        self.calls.append(("pkg.removed", kwargs))
        return {"name": kwargs["name"], "result": True, "comment": "removed", "changes": {"postfix": {}}}


# What dpkg knows: installed, removed with its configuration kept, or never heard of.
DPKG_STATUS = {
    "msmtp": "install ok installed",
    "postfix": "hold ok installed",
    "msmtp-mta": "deinstall ok config-files",
}


def dpkg_query(cmd):
    """``dpkg-query --show`` of DPKG_STATUS: exit status 1 when a name is unknown."""
    names = cmd[cmd.index("--") + 1 :]
    known = [name for name in names if name in DPKG_STATUS]
    unknown = [f"dpkg-query: no packages found matching {name}" for name in names if name not in known]
    stdout = "".join(f"{name} {DPKG_STATUS[name]}\n" for name in known)
    return command_result(1 if unknown else 0, stdout, "\n".join(unknown))


@pytest.fixture(params=["Debian", "RedHat"])
def pkg_states(states, request, tmp_path):
    """Salt's package states, on Debian (dpkg-query) or elsewhere (Salt's pkg.list_pkgs)."""
    recorded = SaltPackageStates()
    states.__grains__["os_family"] = request.param
    info = tmp_path / "var" / "lib" / "dpkg" / "info"
    info.mkdir(parents=True)
    for name, status in DPKG_STATUS.items():
        if status.endswith(" installed"):
            (info / f"{name}.list").write_text("")
    states.FS_ROOT = str(tmp_path)
    answer_commands(states, ["dpkg-query"], dpkg_query)
    states.__salt__["pkg.list_pkgs"] = lambda: (
        recorded.calls.append("pkg.list_pkgs")
        or {
            "msmtp": "1.8.23",
            "postfix": "3.7.11",
        }
    )
    states.__states__ = {"pkg.installed": recorded.installed, "pkg.removed": recorded.removed}
    return recorded


def test_packages_already_installed_need_no_package_state(states, pkg_states):
    ret = states.packages_installed("mail-msmtp-package-installed", ["msmtp", "postfix"])

    assert (ret["result"], ret["changes"]) == (True, {})
    assert [call for call in pkg_states.calls if call != "pkg.list_pkgs"] == []


def test_on_debian_dpkg_is_asked_about_the_named_packages_only_never_the_whole_list(states, pkg_states):
    states.packages_removed("mail-smtp-package-conflicts-removed", ["msmtp-mta", "never-heard-of"])
    states.packages_installed("mail-msmtp-package-installed", ["msmtp"])

    asked_for_every_package = "pkg.list_pkgs" in pkg_states.calls
    assert asked_for_every_package is (states.__grains__["os_family"] != "Debian")


def test_a_missing_package_is_installed_by_salts_own_state_after_a_database_refresh(states, pkg_states):
    ret = states.packages_installed("mail-smtp-package-installed", ["postfix", "libsasl2-modules"])

    assert ret["comment"] == "installed"
    assert [call for call in pkg_states.calls if call != "pkg.list_pkgs"] == [
        (
            "pkg.installed",
            {"name": "mail-smtp-package-installed", "pkgs": ["postfix", "libsasl2-modules"], "refresh": True},
        )
    ]


def test_packages_already_absent_need_no_package_state_and_present_ones_are_removed_by_salt(
    states, pkg_states
):
    absent = states.packages_removed("mail-smtp-package-conflicts-removed", ["msmtp-mta"])
    removed = states.packages_removed("mail-smtp-package-removed", ["postfix"])

    assert (absent["result"], absent["changes"]) == (True, {})
    assert removed["comment"] == "removed"
    assert [call for call in pkg_states.calls if call != "pkg.list_pkgs"] == [
        ("pkg.removed", {"name": "mail-smtp-package-removed", "pkgs": ["postfix"]})
    ]


# ------------------------------------------------------------ formula_file ---


TEMPLATE_FILE = {
    "path": "/etc/postfix/main.cf",
    "present": True,
    "template": "main.cf.jinja",
    "sources": ["salt://mail/files/main.cf.jinja"],
    "context": {"params": {"relayhost": "[smtp.example.test]:587"}},
    "own_text": False,
    "user": "root",
    "group": "root",
    "mode": "0644",
    "secret": False,
}


@pytest.fixture
def file_managed(states):
    """Salt's file.managed, recording what it was asked."""
    calls = []
    states.__states__ = {
        "file.managed": lambda **kwargs: calls.append(kwargs) or {"name": kwargs["name"], "result": True}
    }
    return calls


@pytest.fixture
def served(states):
    """A file server holding the formula's main.cf template (Salt's own Jinja renders it)."""
    files = {"salt://mail/files/main.cf.jinja": MAIN_CF_TEMPLATE}
    states.__salt__["cp.get_file_str"] = files.get
    states.__opts__ = {**salt.config.DEFAULT_MINION_OPTS, "test": False}
    states.__env__ = "base"
    return files


LOOP = "{% for key, value in params.items() %}{{ key }} = {{ value }}\n{% endfor %}"
MAIN_CF_TEMPLATE = "# {{ name }} from {{ source }}\n" + LOOP


def test_a_template_of_the_plan_is_rendered_once_and_written_by_salts_file_managed_with_its_owner_and_mode(
    states, file_managed, served
):
    states.formula_file("/etc/postfix/main.cf", TEMPLATE_FILE)

    assert file_managed == [
        {
            "name": "/etc/postfix/main.cf",
            "contents": "# /etc/postfix/main.cf from salt://mail/files/main.cf.jinja\n"
            "relayhost = [smtp.example.test]:587\n",
            "makedirs": True,
            "user": "root",
            "group": "root",
            "mode": "0644",
            "show_changes": True,
        }
    ]


def test_a_template_with_a_tofs_override_is_rendered_from_the_first_source_that_exists(
    states, file_managed, served
):
    sources = ["salt://site/missing.jinja", "salt://site/main.cf.jinja", "salt://mail/files/main.cf.jinja"]
    served["salt://site/main.cf.jinja"] = "# site\nrelayhost = {{ params.relayhost }}\n"

    states.formula_file("/etc/postfix/main.cf", dict(TEMPLATE_FILE, sources=sources))

    assert file_managed[0]["contents"] == "# site\nrelayhost = [smtp.example.test]:587\n"


def test_a_template_that_does_not_render_writes_nothing_and_says_which(states, file_managed, served):
    served["salt://mail/files/main.cf.jinja"] = "{{ params.relayhost | no_such_filter }}\n"

    ret = states.formula_file("/etc/postfix/main.cf", TEMPLATE_FILE)

    assert ret["result"] is False and file_managed == []
    assert ret["comment"].startswith("salt://mail/files/main.cf.jinja could not be rendered")


def test_a_template_on_no_source_writes_nothing(states, file_managed, served):
    served.clear()

    ret = states.formula_file("/etc/postfix/main.cf", TEMPLATE_FILE)

    assert (ret["result"], file_managed) == (False, [])
    assert "is on the Salt file server" in ret["comment"]


def test_a_secret_file_never_shows_its_changes(states, file_managed, served):
    states.formula_file("/etc/msmtprc", dict(TEMPLATE_FILE, path="/etc/msmtprc", secret=True, mode="0640"))

    assert (file_managed[0]["show_changes"], file_managed[0]["mode"]) == (False, "0640")


def test_main_cf_that_no_pillar_source_replaces_is_written_from_the_formulas_own_text_without_the_file_server(
    states, file_managed
):
    states.__salt__["cp.get_file_str"] = lambda source: pytest.fail(f"{source} was fetched")
    context = {"marker": "# Managed by Salt (mail formula", **TEMPLATE_FILE["context"]}

    states.formula_file("/etc/postfix/main.cf", dict(TEMPLATE_FILE, own_text=True, context=context))

    (call,) = file_managed
    assert call["contents"] == (
        "# Managed by Salt (mail formula): a send-only Postfix that listens on loopback\n"
        "# only and never delivers locally. Local changes are overwritten.\n"
        "relayhost = [smtp.example.test]:587\n\n"
    )


def test_a_secret_files_own_text_comes_from_the_plan_built_with_passwords(states, file_managed):
    asked = []
    plan = {"mode": "mailu", "files": {"msmtprc": [("account", "mailu"), ("password", '"s3cret"')]}}
    states.__salt__["mailstack.plan"] = lambda include_secrets=False: asked.append(include_secrets) or plan
    entry = dict(
        TEMPLATE_FILE, path="/etc/msmtprc", template="msmtprc.jinja", own_text=True, secret=True, mode="0640"
    )

    states.formula_file("/etc/msmtprc", dict(entry, context={"marker": "# Managed by Salt (mail formula"}))

    (call,) = file_managed
    assert asked == [True]
    assert call["contents"].endswith('\naccount mailu\npassword "s3cret"\n\n'), call["contents"]
    assert call["show_changes"] is False


def test_a_file_with_contents_is_written_without_a_template(states, file_managed):
    entry = {
        "path": "/etc/aliases.msmtp",
        "present": True,
        "template": "",
        "contents": "# Managed by Salt (mail formula)\nroot: ops@example.test\n",
        "user": "root",
        "group": "root",
        "mode": "0644",
        "secret": False,
    }

    states.formula_file("/etc/aliases.msmtp", entry)

    (call,) = file_managed
    assert call["contents"] == entry["contents"]
    assert "source" not in call and "template" not in call


def test_an_absent_file_is_removed_only_if_the_formula_wrote_it(states, file_managed, tmp_path):
    ours, theirs = tmp_path / "sasl_passwd", tmp_path / "virtual_alias"
    ours.write_text("# Managed by Salt (mail formula)\n[smtp]:587 user:pw\n")
    (tmp_path / "sasl_passwd.db").write_bytes(b"table")
    theirs.write_text("someone's own\n")
    absent = {"present": False, "state_dir": str(tmp_path / "state")}

    removed = states.formula_file(str(ours), dict(absent, tables=[f"{ours}.db"]))
    left = states.formula_file(str(theirs), dict(absent, tables=[]))

    assert removed["changes"] == {"removed": [str(ours), f"{ours}.db"]}
    assert (left["changes"], theirs.exists()) == ({}, True)
    assert file_managed == []


# ----------------------------------------------- nothing that was there before ---


MAIN_CF_PARAMS = {"inet_interfaces": "loopback-only", "mynetworks": "127.0.0.0/8 [::1]/128"}
OVERRIDE = "salt://site/main.cf.jinja"


@pytest.fixture
def tofs_main_cf(states, file_managed, served, tmp_path):
    """main.cf of the plan with a pillar override on a fake file server."""
    path = tmp_path / "etc" / "postfix" / "main.cf"
    path.parent.mkdir(parents=True)
    entry = dict(
        TEMPLATE_FILE,
        path=str(path),
        sources=[OVERRIDE, "salt://mail/files/main.cf.jinja"],
        context={"params": MAIN_CF_PARAMS},
        must_keep=MAIN_CF_PARAMS,
    )
    return served, entry


def test_a_tofs_main_cf_that_reopens_the_relay_is_refused_and_nothing_is_written(
    states, file_managed, tofs_main_cf
):
    served, entry = tofs_main_cf
    served[OVERRIDE] = "inet_interfaces = all\nmynetworks = {{ params.mynetworks }}\n"

    ret = states.formula_file(entry["path"], entry)

    assert ret["result"] is False
    assert "inet_interfaces" in ret["comment"] and "mynetworks" not in ret["comment"].split("value of")[1]
    assert file_managed == []


def test_a_tofs_main_cf_that_keeps_the_plans_values_is_written_as_rendered(
    states, file_managed, tofs_main_cf
):
    served, entry = tofs_main_cf
    served[OVERRIDE] = (
        "# site\n{% for key, value in params.items() %}{{ key }} = {{ value }}\n{% endfor %}"
        "smtpd_banner = hi\n"
    )

    ret = states.formula_file(entry["path"], entry)

    assert ret["result"] is True
    assert file_managed[0]["contents"].rstrip().endswith("smtpd_banner = hi")
    assert "source" not in file_managed[0]


def test_take_over_keeps_the_operators_main_cf_beside_it_once(states, file_managed, served, tmp_path):
    path = tmp_path / "etc" / "postfix" / "main.cf"
    path.parent.mkdir(parents=True)
    path.write_text("relayhost = [theirs.example]\n")
    kept = path.parent / "main.cf.before-mail-formula"
    entry = dict(TEMPLATE_FILE, path=str(path), keep_as=str(kept), state_dir=str(tmp_path / "state"))

    first = states.formula_file(str(path), entry)
    path.write_text("# Managed by Salt (mail formula)\n")
    states.formula_file(str(path), entry)

    assert first["changes"]["kept"] == str(kept)
    assert kept.read_text() == "relayhost = [theirs.example]\n"
    assert str(kept) not in states.__utils__["mailstack_owned.load"](str(tmp_path / "state"))["files"]


def test_a_file_is_not_written_into_a_directory_others_can_write_to(states, file_managed, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)

    ret = states.formula_file(str(shared / "msmtprc"), dict(TEMPLATE_FILE, path=str(shared / "msmtprc")))

    assert ret["result"] is False and "writable by users other than root" in ret["comment"]
    assert file_managed == []


def test_a_package_the_formula_installs_is_recorded_and_one_that_was_there_is_not(
    states, pkg_states, tmp_path
):
    state_dir = str(tmp_path / "state")
    info = tmp_path / "var" / "lib" / "dpkg" / "info"

    installed = {"postfix": "3.7"}

    def install(**kwargs):
        (info / "libsasl2-modules.list").write_text("")
        DPKG_STATUS["libsasl2-modules"] = "install ok installed"
        installed["libsasl2-modules"] = "2.1"
        return {"name": kwargs["name"], "result": True, "comment": "installed", "changes": {}}

    states.__states__["pkg.installed"] = install
    states.__salt__["pkg.list_pkgs"] = lambda: dict(installed)
    try:
        states.packages_installed("x", ["postfix", "libsasl2-modules"], state_dir=state_dir, owned=[])
    finally:
        DPKG_STATUS.pop("libsasl2-modules", None)

    assert states.__utils__["mailstack_owned.load"](state_dir)["packages"] == ["libsasl2-modules"]


def test_a_removed_package_is_forgotten_from_the_record(states, pkg_states, tmp_path):
    state_dir = str(tmp_path / "state")
    states.__utils__["mailstack_owned.record"](state_dir, "packages", "postfix")
    info = tmp_path / "var" / "lib" / "dpkg" / "info"

    def remove(**kwargs):
        (info / "postfix.list").unlink()
        DPKG_STATUS["postfix"] = "deinstall ok config-files"
        return {"name": kwargs["name"], "result": True, "comment": "removed", "changes": {}}

    states.__states__["pkg.removed"] = remove
    states.__salt__["pkg.list_pkgs"] = lambda: (
        {} if DPKG_STATUS["postfix"].startswith("deinstall") else {"postfix": "3"}
    )
    try:
        states.packages_removed("x", ["postfix"], state_dir=state_dir)
    finally:
        DPKG_STATUS["postfix"] = "hold ok installed"

    assert states.__utils__["mailstack_owned.load"](state_dir)["packages"] == []


def test_an_existing_group_is_taken_over_only_when_pillar_says_so(states, tmp_path, monkeypatch):
    state_dir = str(tmp_path / "state")
    states.__salt__["group.members"] = lambda name, members: True

    refused = states.owned_group("staff", state_dir, [])
    taken = states.owned_group("staff", state_dir, [], take_over=True)

    assert refused["result"] is False and "not created by the mail formula" in refused["comment"]
    assert taken["result"] is True
    assert states.__utils__["mailstack_owned.owns"](state_dir, "groups", "staff")


def test_a_group_someone_has_as_primary_group_is_not_filled(states, tmp_path):
    # Debian's user "mail" has the group "mail" as its primary group.
    ret = states.owned_group("mail", str(tmp_path / "state"), ["www-data"], take_over=True)

    assert ret["result"] is False and "mail has group mail as primary group" in ret["comment"]
