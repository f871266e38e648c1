"""An apply, a dpkg run or a write cut off half-way: what the formula finds and
does at the next apply (``_utils/mailstack_system.py``, ``_utils/mailstack_owned.py``,
the package and apply-marker states, ``mailstack.status``).

The writes are tested for real: readers and killed writers are real threads
and processes on a real file system. dpkg itself is answered by a fake
``cmd.run_all`` (the fleet tests run the real one).
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.support.loader import REPO, load_salt_module, load_utils
from tests.unit.test_mailstack_states import command_result

owned = load_salt_module(REPO / "_utils" / "mailstack_owned.py", "mailstack_owned_interrupted")
UTILS = load_utils()
system = {name.split(".", 1)[1]: f for name, f in UTILS.items() if name.startswith("mailstack_system.")}

JOURNAL_ENTRY = "Package: {name}\nStatus: install reinstreq half-installed\nArchitecture: amd64\n"


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "state" / "mailstack")


def dpkg_root(tmp_path, *interrupted):
    """A root whose dpkg journal holds entries for ``interrupted``, and its lock files."""
    dpkg = tmp_path / "var" / "lib" / "dpkg"
    (dpkg / "updates").mkdir(parents=True, exist_ok=True)
    (dpkg / "info").mkdir(exist_ok=True)
    for lock in ("lock", "lock-frontend"):
        (dpkg / lock).touch()
    for number, name in enumerate(interrupted):
        (dpkg / "updates" / f"{number:04d}").write_text(JOURNAL_ENTRY.format(name=name))
    return str(tmp_path)


def record_on_disk(state_dir):
    return json.loads(pathlib.Path(state_dir, "owned.json").read_text())


# ------------------------------------------------------- writes, whole or not ---


def test_the_record_is_never_seen_half_written_while_it_is_rewritten(state_dir):
    big = [f"/var/log/file-{n:05d}" for n in range(3000)]
    owned.record(state_dir, "files", big[0])
    path = os.path.join(state_dir, "owned.json")
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            with open(path, encoding="utf-8") as handle:
                seen.append(len(json.loads(handle.read())["files"]))  # raises on a torn file

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for size in range(1, 3000, 150):
            owned._save(state_dir, {"files": big[:size], "groups": [], "packages": []})
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 20 and len(set(seen)) > 2


WRITER = """
import json, sys
sys.path.insert(0, {utils!r})
import importlib.util
spec = importlib.util.spec_from_file_location("owned", {module!r})
owned = importlib.util.module_from_spec(spec)
spec.loader.exec_module(owned)
n = 0
while True:
    n += 1
    owned.write_atomically({path!r}, json.dumps({{"n": n, "pad": "x" * 200000}}).encode())
"""


def test_a_writer_killed_at_any_moment_leaves_the_old_content_or_the_new_one_whole(tmp_path):
    path = str(tmp_path / "owned.json")
    script = WRITER.format(
        utils=str(REPO / "_utils"), module=str(REPO / "_utils" / "mailstack_owned.py"), path=path
    )
    rng = random.Random(23)
    kills = 0
    for _ in range(25):
        writer = subprocess.Popen([sys.executable, "-c", script])
        while not os.path.exists(path):
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.05))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        kills += 1
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)  # whole, never torn
        assert data["n"] >= 1 and len(data["pad"]) == 200000
    leftovers = sorted(os.listdir(tmp_path))
    assert set(leftovers) <= {"owned.json", "owned.json.new"}, leftovers
    assert kills == 25


def test_the_content_is_flushed_in_a_temporary_file_beside_it_then_renamed_and_the_directory_flushed(
    tmp_path, monkeypatch
):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(source, target):
        events.append(("rename", str(source), str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "mailstack-listen"

    owned.write_atomically(str(target), b'{"listen": "loopback-only"}', mode=0o644)

    temporary = f"{target}.new"
    assert events == [
        ("fsync", temporary),
        ("rename", temporary, str(target)),
        ("fsync", str(tmp_path)),
    ]
    assert target.read_bytes() == b'{"listen": "loopback-only"}' and not os.path.exists(temporary)
    assert target.stat().st_mode & 0o777 == 0o644


def test_the_temporary_file_is_never_written_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "owned.json.new").symlink_to(victim)

    owned.write_atomically(str(tmp_path / "owned.json"), b"{}")

    assert victim.read_text() == "keep me\n" and (tmp_path / "owned.json").read_text() == "{}"


# ---------------------------------------------------------- a corrupt record ---


@pytest.mark.parametrize(
    "content",
    [b"", b'{"files": ["/var/log/msmtp.log"], "gro', b"[]", b'{"packages": "postfix"}', b"\xff\xfe"],
    ids=["empty", "truncated", "not-an-object", "not-a-list", "not-utf8"],
)
def test_a_corrupt_record_owns_nothing_and_is_never_written_over(state_dir, content):
    os.makedirs(state_dir)
    path = os.path.join(state_dir, "owned.json")
    with open(path, "wb") as handle:
        handle.write(content)

    assert "is corrupt" in owned.record_problem(state_dir)
    assert owned.load(state_dir) == {"files": [], "groups": [], "packages": []}
    assert not owned.owns(state_dir, "packages", "postfix")
    with pytest.raises(owned.CorruptRecord):
        owned.record(state_dir, "packages", "postfix")
    with open(path, "rb") as handle:
        assert handle.read() == content


def test_no_record_at_all_is_no_problem(state_dir):
    assert owned.record_problem(state_dir) is None


def test_a_corrupt_record_refuses_the_apply_and_the_clean_naming_the_file(configure, fake_root):
    from tests.support.mailstack_unit import mailu

    state_dir = fake_root / "var" / "lib" / "mailstack"
    state_dir.mkdir(parents=True)
    (state_dir / "owned.json").write_text('{"packages": ["postfix"], "fi')
    module = configure({"container": False, "mailu": mailu()})

    for writes in (True, False):
        message = module.validation_error(writes=writes)
        assert "owned.json is corrupt" in message and "nothing is changed on its strength" in message


def test_an_empty_root_file_left_by_a_killed_file_managed_is_not_someone_elses(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to own the file as root")  # the unit tests run as root (bin/test)
    left = tmp_path / "msmtprc"
    left.touch(mode=0o600)
    theirs = tmp_path / "theirs"
    theirs.write_text("account default\n")

    assert owned.foreign_file_problem(str(left)) is None
    assert "was not written by the mail formula" in owned.foreign_file_problem(str(theirs))


# -------------------------------------------- packages noted before apt runs ---


def test_packages_noted_before_a_killed_install_are_the_formulas_where_dpkg_got_them(state_dir):
    owned.record(state_dir, "files", "/var/log/msmtp.log")
    owned.begin_installing(state_dir, ["postfix", "libsasl2-modules"])
    owned.record(state_dir, "groups", "mail-senders")  # the note survives other records

    assert owned.installing(state_dir) == ["libsasl2-modules", "postfix"]
    got = owned.settle_installing(state_dir, ["postfix", "msmtp"])

    assert got == ["postfix"]
    assert owned.load(state_dir) == {
        "files": ["/var/log/msmtp.log"],
        "groups": ["mail-senders"],
        "packages": ["postfix"],
    }
    assert "installing" not in record_on_disk(state_dir)
    assert owned.settle_installing(state_dir, ["postfix"]) == [] and owned.installing(state_dir) == []


# ------------------------------------------------------------ dpkg's journal ---


def test_without_a_journal_dpkg_reports_nothing_and_no_command_runs(tmp_path):
    root = dpkg_root(tmp_path)
    calls = []

    assert system["interrupted_dpkg"](root) is None
    assert system["finish_interrupted_dpkg"]({"cmd.run_all": lambda *a, **k: calls.append(a)}, root) is None
    assert calls == []


def test_the_journal_of_a_killed_dpkg_names_its_packages(tmp_path):
    root = dpkg_root(tmp_path, "postfix", "libsasl2-modules")

    assert system["interrupted_dpkg"](root) == {
        "packages": ["libsasl2-modules", "postfix"],
        "journal": ["0000", "0001"],
    }


def test_a_journal_while_dpkg_holds_its_lock_is_work_in_progress_not_an_interrupted_run(tmp_path):
    root = dpkg_root(tmp_path, "postfix")
    lock = os.path.join(root, "var/lib/dpkg/lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX);"
            " print('held', flush=True); time.sleep(60)",
            lock,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert system["dpkg_busy"](root) is True
        assert system["interrupted_dpkg"](root) is None
    finally:
        holder.kill()
        holder.wait()
    assert system["interrupted_dpkg"](root) is not None


class FakeDpkg:
    """``dpkg --configure -a`` that empties the journal (or fails and leaves it)."""

    def __init__(self, root, ok=True):
        self.updates = os.path.join(root, "var/lib/dpkg/updates")
        self.ok = ok
        self.calls = []

    def run_all(self, cmd, **kwargs):
        self.calls.append((list(cmd), kwargs))
        if cmd[:1] != ["dpkg"]:
            raise AssertionError(f"unexpected {cmd!r}")
        if not self.ok:
            return command_result(1, "", "dpkg: error processing package postfix (--configure)")
        for name in os.listdir(self.updates):
            os.unlink(os.path.join(self.updates, name))
        return command_result(0, "Setting up postfix (3.7.11-0+deb12u1) ...")


def test_an_interrupted_run_is_finished_with_dpkg_configure_a_and_nothing_else(tmp_path):
    root = dpkg_root(tmp_path, "postfix")
    dpkg = FakeDpkg(root)

    finished = system["finish_interrupted_dpkg"]({"cmd.run_all": dpkg.run_all}, root)

    ((cmd, kwargs),) = dpkg.calls
    assert cmd == ["dpkg", "--configure", "-a"] and kwargs["python_shell"] is False
    assert kwargs["env"] == {"DEBIAN_FRONTEND": "noninteractive"}
    assert finished["ok"] is True and "postfix" in finished["comment"]
    assert "dpkg --configure -a" in finished["comment"]


def test_dpkg_configure_that_fails_is_reported_with_its_output(tmp_path):
    root = dpkg_root(tmp_path, "postfix")

    finished = system["finish_interrupted_dpkg"]({"cmd.run_all": FakeDpkg(root, ok=False).run_all}, root)

    assert finished["ok"] is False
    assert (
        "did not finish it" in finished["comment"]
        and "error processing package postfix" in finished["comment"]
    )


# ----------------------------------------------------- the package states ---


@pytest.fixture
def dpkg_states(tmp_path):
    """The state module on a fake root with dpkg's journal; Salt's package
    states and dpkg-query answered by fakes."""
    from tests.unit.test_mailstack_states import SaltPackageStates, load_module

    module = load_module()
    root = dpkg_root(tmp_path)
    module.FS_ROOT = root
    module.__opts__ = {"test": False}
    module.__context__ = {}
    module.__grains__ = {"os_family": "Debian"}
    installed = {"msmtp"}
    dpkg = FakeDpkg(root)

    def run_all(cmd, **kwargs):
        if cmd[0] == "dpkg-query":
            names = cmd[cmd.index("--") + 1 :]
            return command_result(0, "".join(f"{n} install ok installed\n" for n in names if n in installed))
        return dpkg.run_all(cmd, **kwargs)

    module.__salt__ = {"cmd.run_all": run_all}
    recorded = SaltPackageStates()
    module.__states__ = {"pkg.installed": recorded.installed, "pkg.removed": recorded.removed}
    for name in installed:
        (tmp_path / "var/lib/dpkg/info" / f"{name}.list").write_text("")
    module.test_root, module.dpkg, module.salt_states = tmp_path, dpkg, recorded
    return module


def interrupt(module, *packages):
    dpkg_root(module.test_root, *packages)


def test_an_install_after_a_killed_dpkg_run_finishes_it_first_and_says_so(dpkg_states):
    interrupt(dpkg_states, "postfix")

    ret = dpkg_states.packages_installed("mail-smtp-package-installed", ["postfix"])

    assert [cmd for cmd, _ in dpkg_states.dpkg.calls] == [["dpkg", "--configure", "-a"]]
    assert [call[0] for call in dpkg_states.salt_states.calls] == ["pkg.installed"]
    assert ret["result"] is True and ret["changes"]["dpkg"] == "configure -a"
    assert ret["comment"].startswith("dpkg reported an interrupted run (postfix): finished it")


def test_an_interrupted_run_of_another_package_is_left_when_the_formula_changes_no_package(dpkg_states):
    interrupt(dpkg_states, "unattended-thing")

    ret = dpkg_states.packages_installed("mail-msmtp-package-installed", ["msmtp"])

    assert dpkg_states.dpkg.calls == [] and dpkg_states.salt_states.calls == []
    assert (ret["result"], ret["changes"]) == (True, {})
    assert (
        "unattended-thing, none of this state's" in ret["comment"]
        and "left to the administrator" in ret["comment"]
    )


def test_an_interrupted_run_of_another_package_is_finished_when_apt_must_install_one(dpkg_states):
    interrupt(dpkg_states, "unattended-thing")

    ret = dpkg_states.packages_installed("mail-smtp-package-installed", ["postfix"])

    assert [cmd for cmd, _ in dpkg_states.dpkg.calls] == [["dpkg", "--configure", "-a"]]
    assert "unattended-thing" in ret["comment"] and ret["result"] is True


def test_a_removal_after_a_killed_dpkg_run_of_its_package_finishes_it_first(dpkg_states, state_dir):
    owned.record(state_dir, "packages", "msmtp")
    interrupt(dpkg_states, "msmtp")

    ret = dpkg_states.packages_removed("mail-smtp-package-conflicts-removed", ["msmtp"], state_dir=state_dir)

    assert [cmd for cmd, _ in dpkg_states.dpkg.calls] == [["dpkg", "--configure", "-a"]]
    assert [call[0] for call in dpkg_states.salt_states.calls] == ["pkg.removed"]
    assert "finished it with `dpkg --configure -a`" in ret["comment"]


def test_when_dpkg_cannot_finish_the_state_fails_with_its_output_and_apt_is_not_asked(dpkg_states):
    interrupt(dpkg_states, "postfix")
    dpkg_states.dpkg.ok = False

    ret = dpkg_states.packages_installed("mail-smtp-package-installed", ["postfix"])

    assert ret["result"] is False and "error processing package postfix" in ret["comment"]
    assert dpkg_states.salt_states.calls == []


def test_test_mode_predicts_the_dpkg_configure_and_runs_nothing(dpkg_states):
    interrupt(dpkg_states, "postfix")
    dpkg_states.__opts__["test"] = True

    ret = dpkg_states.packages_installed("mail-smtp-package-installed", ["postfix"])

    assert ret["result"] is None and ret["changes"] == {"dpkg": "configure -a"}
    assert dpkg_states.dpkg.calls == [] and dpkg_states.salt_states.calls == []


def test_an_install_notes_its_packages_before_apt_and_records_what_dpkg_got(dpkg_states, state_dir):
    def installed(**kwargs):
        # apt is at work: the note is on disk before it.
        assert record_on_disk(state_dir)["installing"] == ["postfix"]
        (dpkg_states.test_root / "var/lib/dpkg/info/postfix.list").write_text("")
        return {"name": kwargs["name"], "result": False, "comment": "postinst failed", "changes": {}}

    dpkg_states.__states__["pkg.installed"] = installed

    dpkg_states.packages_installed("mail-smtp-package-installed", ["postfix"], state_dir=state_dir)

    # Half-installed by the formula: its own, to be finished or removed by it later.
    assert owned.load(state_dir)["packages"] == ["postfix"]
    assert "installing" not in record_on_disk(state_dir)


# ------------------------------------------------------ the apply's marker ---


def test_an_apply_leaves_its_marker_first_and_removes_it_last(dpkg_states, state_dir):
    started = dpkg_states.apply_started(state_dir)

    marker = system["apply_marker"](state_dir)
    assert started["comment"] == "apply started" and marker is not None
    finished = dpkg_states.apply_finished(state_dir)
    assert finished["result"] is True and system["apply_marker"](state_dir) is None


def test_a_marker_left_by_a_killed_apply_is_reported_by_the_next_one(dpkg_states, state_dir):
    os.makedirs(state_dir)
    with open(os.path.join(state_dir, "apply-in-progress"), "w") as handle:
        json.dump({"pid": 999999999, "boot_id": "another boot", "started": 1_700_000_000}, handle)

    assert system["apply_marker"](state_dir)["interrupted"] is True
    ret = dpkg_states.apply_started(state_dir)

    assert ret["result"] is True and "never finished" in ret["comment"]


def test_a_marker_of_an_apply_still_running_is_not_an_interrupted_one(state_dir):
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "salt-call"])
    cmdline = pathlib.Path(f"/proc/{running.pid}/cmdline")
    while b"salt-call" not in cmdline.read_bytes():  # empty for a moment after the fork
        time.sleep(0.01)
    try:
        os.makedirs(state_dir)
        boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        with open(os.path.join(state_dir, "apply-in-progress"), "w") as handle:
            json.dump({"pid": running.pid, "boot_id": boot, "started": int(time.time())}, handle)
        assert system["apply_marker"](state_dir)["interrupted"] is False
    finally:
        running.kill()
        running.wait()
    assert system["apply_marker"](state_dir)["interrupted"] is True


def test_a_marker_cut_off_while_written_still_counts_as_an_interrupted_apply(state_dir):
    os.makedirs(state_dir)
    open(os.path.join(state_dir, "apply-in-progress"), "w").close()

    assert system["apply_marker"](state_dir)["interrupted"] is True


# ------------------------------------------------------------------ status ---


def test_status_says_what_was_interrupted_and_what_the_next_apply_does(operator, tmp_path):
    module = operator({"relay": {"relayhost": "127.0.0.1", "port": 2525, "tls": "none"}})
    root = tmp_path / "root"
    dpkg_root(root, "postfix")
    state_dir = root / "var" / "lib" / "mailstack"
    state_dir.mkdir(parents=True)
    (state_dir / "apply-in-progress").write_text(json.dumps({"pid": 1, "boot_id": "gone", "started": 0}))

    interrupted = module.status()["interrupted"]

    assert interrupted["dpkg"] == ["postfix"] and interrupted["apply"]["pid"] == 1
    assert interrupted["record"] is None
    assert "dpkg --configure -a" in interrupted["comment"] and "never finished" in interrupted["comment"]


def test_status_of_a_node_where_nothing_was_interrupted_says_so(operator):
    interrupted = operator().status()["interrupted"]

    assert interrupted == {"dpkg": None, "apply": None, "record": None, "comment": "nothing interrupted"}


def test_a_package_a_killed_dpkg_left_half_installed_is_reinstalled(dpkg_states):
    # dpkg holds its files but its status is not "installed" (Salt's list counts it installed).
    (dpkg_states.test_root / "var/lib/dpkg/info/postfix.list").write_text("")

    dpkg_states.packages_installed("mail-smtp-package-installed", ["postfix"])

    ((state, kwargs),) = dpkg_states.salt_states.calls
    assert state == "pkg.installed" and kwargs["reinstall"] is True and kwargs["pkgs"] == ["postfix"]


def test_a_missing_package_dpkg_never_held_is_installed_without_reinstall(dpkg_states):
    dpkg_states.packages_installed("mail-smtp-package-installed", ["postfix"])

    ((_, kwargs),) = dpkg_states.salt_states.calls
    assert "reinstall" not in kwargs


def test_the_formulas_package_left_half_installed_is_removed_when_the_mode_drops_it(dpkg_states, state_dir):
    owned.record(state_dir, "packages", "postfix")
    (dpkg_states.test_root / "var/lib/dpkg/info/postfix.list").write_text("")

    dpkg_states.packages_removed("mail-smtp-package-removed", ["postfix"], state_dir=state_dir)

    assert [call[0] for call in dpkg_states.salt_states.calls] == ["pkg.removed"]
