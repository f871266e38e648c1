"""Unit tests for ``_utils/mailstack_system.py``: what the module and the states
both ask of the running system."""

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
