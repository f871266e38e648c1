"""Unit tests for ``_utils/mailstack_system.py``: what the module and the states
both ask of the running system."""

import subprocess

from tests.support.loader import load_utils

UTILS = load_utils()


class RecordingSalt(dict):
    def __init__(self, retcode=0, stdout=""):
        super().__init__({"cmd.run_all": self.run_all})
        self.result = {"retcode": retcode, "stdout": stdout, "stderr": "", "pid": 1}
        self.calls = []

    def run_all(self, cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        return self.result


def test_systemd_counts_as_booted_only_where_its_runtime_directory_exists(tmp_path):
    assert UTILS["mailstack_system.systemd_booted"](str(tmp_path)) is False
    (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    assert UTILS["mailstack_system.systemd_booted"](str(tmp_path)) is True


def test_commands_run_without_a_shell_and_without_logging_their_output():
    salt = RecordingSalt()

    UTILS["mailstack_system.run"](salt, ["postfix", "status"], timeout=5)

    ((cmd, kwargs),) = salt.calls
    assert cmd == ["postfix", "status"]
    assert kwargs["python_shell"] is False and kwargs["output_loglevel"] == "quiet" and kwargs["timeout"] == 5


def test_postconf_returns_the_values_or_none_when_postfix_cannot_answer():
    answering = RecordingSalt(stdout="/var/spool/postfix\n/var/lib/postfix\n")
    failing = RecordingSalt(retcode=1, stdout="postconf: fatal")

    assert UTILS["mailstack_system.postconf"](answering, "queue_directory", "data_directory") == (
        "/var/spool/postfix\n/var/lib/postfix"
    )
    assert answering.calls[0][0] == ["postconf", "-h", "queue_directory", "data_directory"]
    assert UTILS["mailstack_system.postconf"](failing, "queue_directory") is None


def test_postconf_values_are_read_by_name_in_one_command():
    answering = RecordingSalt(
        stdout="queue_directory = /var/spool/postfix\ninet_interfaces = loopback-only\nrelayhost ="
    )

    values = UTILS["mailstack_system.postconf_values"](
        answering, "queue_directory", "nonexistent_parameter", "inet_interfaces", "relayhost"
    )

    assert [cmd for cmd, _ in answering.calls] == [
        ["postconf", "queue_directory", "nonexistent_parameter", "inet_interfaces", "relayhost"]
    ]
    # An unknown parameter is left out (postconf only warns), an empty last value kept.
    assert values == {
        "queue_directory": "/var/spool/postfix",
        "inet_interfaces": "loopback-only",
        "relayhost": "",
    }


def test_postconf_values_are_none_when_postfix_cannot_answer():
    assert UTILS["mailstack_system.postconf_values"](RecordingSalt(retcode=1), "queue_directory") is None


# ------------------------------------------------ which packages are installed ---

DEBIAN = {"os_family": "Debian"}
STATUS = """Package: msmtp
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.8.23-1

Package: postfix
Status: deinstall ok config-files
Architecture: amd64
Version: 3.7.11-0+deb12u1

Package: libfoo
Status: install ok half-configured
Architecture: i386

Package: libfoo
Status: install ok installed
Architecture: amd64

Package: msmtp-mta
Status: install ok unpacked
Architecture: amd64
"""


def _dpkg_root(tmp_path, status=STATUS, lists=("msmtp", "postfix", "libfoo:amd64", "msmtp-mta")):
    info = tmp_path / "var" / "lib" / "dpkg" / "info"
    info.mkdir(parents=True)
    for name in lists:
        (info / f"{name}.list").touch()
    (tmp_path / "var" / "lib" / "dpkg" / "status").write_text(status)
    return tmp_path


def test_installed_packages_are_read_from_dpkgs_status_file_without_a_process(tmp_path):
    root = _dpkg_root(tmp_path)
    salt = RecordingSalt()

    installed = UTILS["mailstack_system.installed_packages"](
        salt, DEBIAN, ["msmtp", "postfix", "libfoo", "msmtp-mta", "exim4"], str(root)
    )

    # Config files left, half-configured or only unpacked is not installed; one
    # architecture installed is.
    assert installed == {"msmtp", "libfoo"}
    assert salt.calls == []


def test_dpkg_query_answers_while_dpkgs_journal_holds_changes_not_in_its_status_file(tmp_path):
    root = _dpkg_root(tmp_path)
    (root / "var" / "lib" / "dpkg" / "updates").mkdir()
    (root / "var" / "lib" / "dpkg" / "updates" / "0001").write_text(
        "Package: postfix\nStatus: install ok installed\n"
    )
    salt = RecordingSalt(stdout="postfix install ok installed\nmsmtp install ok installed\n")

    installed = UTILS["mailstack_system.installed_packages"](salt, DEBIAN, ["msmtp", "postfix"], str(root))

    assert installed == {"msmtp", "postfix"}
    ((cmd, _),) = salt.calls
    assert cmd[0] == "dpkg-query" and cmd[-2:] == ["msmtp", "postfix"]


def test_the_status_file_gives_dpkg_querys_answer_for_every_package_of_this_host():
    listed = subprocess.run(
        ["dpkg-query", "--show", "--showformat=${Package}\\n"], capture_output=True, text=True
    )
    names = sorted(set(listed.stdout.split())) + ["not-a-package-anywhere"]
    query = ["dpkg-query", "--show", "--showformat=${Package} ${Status}\\n", "--", *names]
    rows = [
        line.split() for line in subprocess.run(query, capture_output=True, text=True).stdout.splitlines()
    ]

    salt = RecordingSalt()

    from_status = UTILS["mailstack_system.installed_packages"](salt, DEBIAN, names, "/")

    assert len(names) > 100 and salt.calls == []
    assert from_status == {row[0] for row in rows if row and row[-1] == "installed"}
