"""Unit tests for the execution module ``_modules/mailstack.py``: its own work
on the running system. Container detection, the mode decision, the probe of
the next hop, what it caches in ``__context__``, and where it reads the
parameter files and the names Postfix knows (``postconf -d`` or the shipped
list).

The module file is imported directly and its Salt dunders are injected as
module attributes (``tests/support/mailstack_unit.py``). Container detection
reads a fake root (``FS_ROOT``), never the machine running the tests.
"""

from __future__ import annotations

import socket
import time

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.loopback import closed_port
from tests.support.mailstack_unit import MAILU_HOST, mailu, relay

# ------------------------------------------------ settings, read and cached ---


def test_settings_are_cached_in_context_and_the_fileserver_is_read_once(configure, fileserver):
    mailstack = configure({"mailu": mailu()})
    first = mailstack.settings()
    reads = len(fileserver.calls)
    assert reads > 0

    second = mailstack.settings()

    assert len(fileserver.calls) == reads
    assert second == first
    assert "mailstack.settings" in mailstack.__context__


def test_settings_are_recomputed_when_the_pillar_changed_in_a_long_lived_minion(configure):
    mailstack = configure({"mailu": mailu()})
    assert mailstack.settings()["timeout"] == 10

    mailstack.__pillar__ = {"mail": {"timeout": 99}}

    assert mailstack.settings()["timeout"] == 99


def test_settings_results_do_not_share_state_with_the_cache(configure):
    mailstack = configure({"mailu": mailu()})
    mailstack.settings(include_secrets=True)["mailu"]["host"] = "changed.example.org"
    mailstack.settings()["lookup"]["msmtp"]["pkgs"].append("junk")

    again = mailstack.settings(include_secrets=True)
    assert again["mailu"]["host"] == MAILU_HOST
    assert again["lookup"]["msmtp"]["pkgs"] == ["msmtp"]


def test_the_plan_is_built_once_for_every_state_file_of_a_run(configure):
    mailstack = configure({"mailu": mailu(), "container": False})
    for sls in ("mail", "mail.smtp.config", "mail.msmtp.config", "mail.health", "mail.smtp.clean"):
        mailstack.mapdata(sls)
    mailstack.plan()
    assert mailstack.__context__["mailstack.plans"]["builds"] == 1

    mailstack.plan(include_secrets=True)

    assert mailstack.__context__["mailstack.plans"]["builds"] == 2


def test_the_plan_is_built_again_when_the_pillar_changes_within_a_run(configure):
    mailstack = configure({"mailu": mailu(), "container": False})
    assert mailstack.mapdata()["plan"]["mode"] == "mailu"

    mailstack.__pillar__ = {"mail": {"container": False}}

    assert mailstack.mapdata()["plan"]["mode"] == "relay"
    assert mailstack.__context__["mailstack.plans"]["builds"] == 2


def test_host_facts_are_gathered_once_per_run_and_again_in_the_next(configure, fake_root):
    mailstack = configure({"container": False})
    assert mailstack.plan()["summary"]["msmtp logs to"].startswith("nowhere")

    (fake_root / "dev").mkdir()
    (fake_root / "dev" / "log").touch()

    # Every state file and template of one run decides from the same facts.
    assert mailstack.plan()["summary"]["msmtp logs to"].startswith("nowhere")
    # Salt runs every state run on a copy of __context__.
    mailstack.__context__ = dict(mailstack.__context__)
    assert mailstack.plan()["summary"]["msmtp logs to"].startswith("syslog")
    assert mailstack.__context__["mailstack.plans"]["builds"] == 2


def test_settings_fails_clearly_when_defaults_are_not_on_the_fileserver(configure):
    mailstack = configure()
    mailstack.__salt__["cp.list_master"] = lambda prefix="": []

    with pytest.raises(CommandExecutionError, match="defaults.yaml is not on the Salt file server"):
        mailstack.settings()


# ---------------------------------------------------------------- container ---


def test_no_container_signal_means_not_a_container(configure):
    assert configure().is_container() == {"container": False, "reason": "no container signal found"}


def test_dockerenv_file_means_container(configure, fake_root):
    (fake_root / ".dockerenv").touch()

    result = configure().is_container()

    assert result["container"] is True
    assert "/.dockerenv exists" in result["reason"]


def test_podman_containerenv_file_means_container(configure, fake_root):
    (fake_root / "run" / ".containerenv").touch()

    result = configure().is_container()

    assert result["container"] is True
    assert "/run/.containerenv exists" in result["reason"]


def test_container_variable_in_pid1_environment_means_container(configure, fake_root):
    (fake_root / "proc" / "1" / "environ").write_bytes(b"PATH=/usr/bin\0container=podman\0HOME=/\0")

    result = configure().is_container()

    assert result["container"] is True
    assert "container=podman" in result["reason"]


def test_pid1_environment_without_container_variable_is_no_signal(configure, fake_root):
    (fake_root / "proc" / "1" / "environ").write_bytes(b"PATH=/usr/bin\0notcontainer=x\0HOME=/\0")

    assert configure().is_container()["container"] is False


@pytest.mark.parametrize(
    ("cgroup", "word"),
    [
        pytest.param("12:memory:/docker/0123456789abcdef\n", "docker", id="docker"),
        pytest.param("0::/kubepods/besteffort/pod1234/abcd\n", "kubepods", id="kubepods"),
        pytest.param("1:name=systemd:/lxc/web01\n", "lxc", id="lxc"),
    ],
)
def test_container_cgroup_of_pid1_means_container(configure, fake_root, cgroup, word):
    (fake_root / "proc" / "1" / "cgroup").write_text(cgroup)

    result = configure().is_container()

    assert result["container"] is True
    assert f"mentions {word}" in result["reason"]


def test_host_cgroup_of_pid1_is_no_signal(configure, fake_root):
    (fake_root / "proc" / "1" / "cgroup").write_text("0::/init.scope\n")

    assert configure().is_container()["container"] is False


@pytest.mark.parametrize("virtual", ["container", "LXC"])
def test_container_virtual_grain_means_container(configure, virtual):
    result = configure(virtual=virtual).is_container()

    assert result["container"] is True
    assert f"virtual grain says {virtual.lower()}" in result["reason"]


def test_vm_virtual_grain_is_no_signal(configure):
    assert configure(virtual="kvm").is_container()["container"] is False


def test_all_signals_are_reported_together(configure, fake_root):
    (fake_root / ".dockerenv").touch()
    (fake_root / "proc" / "1" / "cgroup").write_text("12:memory:/docker/abc\n")

    reason = configure().is_container()["reason"]

    assert "/.dockerenv exists" in reason and "mentions docker" in reason


def test_pillar_container_true_overrides_detection(configure):
    assert configure({"container": True}).is_container() == {
        "container": True,
        "reason": "pillar mail:container is true",
    }


def test_pillar_container_false_overrides_detected_signals(configure, fake_root):
    (fake_root / ".dockerenv").touch()
    (fake_root / "proc" / "1" / "environ").write_bytes(b"container=docker\0")

    assert configure({"container": False}, virtual="container").is_container() == {
        "container": False,
        "reason": "pillar mail:container is false",
    }


# --------------------------------------------------------------------- mode ---


def test_auto_mode_chooses_mailu_when_mailu_host_is_set(configure):
    result = configure({"mailu": mailu()}).mode()

    assert result["mode"] == "mailu"
    assert "mail:mailu:host is set" in result["reason"]


def test_auto_mode_chooses_relay_when_no_mailu_host_is_set(configure):
    assert configure({"relay": relay()}).mode()["mode"] == "relay"


def test_auto_mode_chooses_relay_with_empty_pillar(configure):
    assert configure().mode()["mode"] == "relay"


def test_forced_relay_mode_wins_over_a_configured_mailu(configure):
    result = configure({"mode": "relay", "mailu": mailu()}).mode()

    assert result == {"mode": "relay", "reason": "pillar mail:mode is relay"}


def test_forced_mailu_mode_is_used(configure):
    assert configure({"mode": "mailu", "mailu": mailu()}).mode()["mode"] == "mailu"


@pytest.mark.parametrize("forced", ["auto", "mailu", "relay"])
def test_enabled_false_means_disabled_whatever_the_mode(configure, forced):
    result = configure({"enabled": False, "mode": forced, "mailu": mailu()}).mode()

    assert result == {"mode": "disabled", "reason": "pillar mail:enabled is false"}


def test_auto_mode_does_not_touch_the_network(configure, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("mode() must not open connections")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)

    assert configure({"mailu": mailu()}).mode()["mode"] == "mailu"


# -------------------------------------------------------------------- probe ---


def relay_to(port, **extra):
    return {"relay": {"relayhost": "127.0.0.1", "port": port, "tls": "none"}, "container": False, **extra}


def test_probe_reports_a_reachable_server_with_its_greeting(configure, loopback_server):
    server = loopback_server()

    result = configure(relay_to(server.port)).probe()

    assert result == {"reachable": True, "target": f"127.0.0.1:{server.port}", "comment": "220 hi"}


def test_probe_targets_msmtp_directly_in_a_container(configure, loopback_server):
    server = loopback_server()

    result = configure({**relay_to(server.port), "container": True}).probe()

    assert result["reachable"] is True
    assert result["target"] == f"127.0.0.1:{server.port}"


def test_probe_reports_a_closed_port_as_unreachable(configure):
    port = closed_port()
    start = time.monotonic()

    result = configure(relay_to(port, timeout=2)).probe()

    assert time.monotonic() - start < 2.5
    assert result["reachable"] is False
    assert result["target"] == f"127.0.0.1:{port}"
    assert "did not answer" in result["comment"]


def test_probe_of_a_silent_server_is_bounded_by_the_timeout(configure, loopback_server):
    server = loopback_server(banner=None)
    start = time.monotonic()

    result = configure(relay_to(server.port, timeout=1)).probe()

    assert time.monotonic() - start < 2.0
    assert result["reachable"] is False


def test_probe_rejects_a_non_smtp_greeting(configure, loopback_server):
    server = loopback_server(banner=b"SSH-2.0-OpenSSH_9.2\r\n")

    result = configure(relay_to(server.port)).probe()

    assert result["reachable"] is False
    assert "unexpected greeting" in result["comment"]


def test_probe_runs_once_per_run_and_is_cached_in_context(configure, loopback_server):
    server = loopback_server()
    mailstack = configure(relay_to(server.port))

    first = mailstack.probe()
    second = mailstack.probe()

    assert server.accepted == 1
    assert second == first
    assert mailstack.__context__["mailstack.probe"] == first


@pytest.mark.parametrize("container", [False, True])
def test_probe_knocks_where_the_plan_says_the_first_hop_goes(configure, loopback_server, container):
    server = loopback_server()
    mailstack = configure({**relay_to(server.port), "container": container})

    result = mailstack.probe()

    assert mailstack.plan()["next_hop"].startswith(f"{result['target']} ")


def test_probe_has_nothing_to_probe_when_postfix_delivers_to_mx(configure):
    assert configure({"container": False}).probe() == {
        "reachable": None,
        "target": None,
        "comment": "nothing to probe",
    }


def test_probe_has_nothing_to_probe_when_disabled(configure):
    assert configure({"enabled": False}).probe()["reachable"] is None


def test_unreachable_mailu_does_not_change_the_mode(configure):
    pillar = {"mailu": mailu(host="127.0.0.1", port=closed_port(), tls="starttls"), "container": False}
    mailstack = configure(pillar)

    assert mailstack.probe()["reachable"] is False
    assert mailstack.mode()["mode"] == "mailu"
    assert mailstack.plan()["msmtp"]["host"] == "127.0.0.1"


# ---------------------------------------------- main.cf names Postfix knows ---


def test_main_cf_names_are_checked_against_postconf_when_postfix_is_installed(configure):
    calls = []

    def run_all(cmd, **kwargs):
        calls.append(cmd)
        return {"retcode": 0, "stdout": "message_size_limit = 10240000\nsmtputf8_enable = yes\n"}

    mailstack = configure({"postfix": {"main_cf": {"smtputf8_enable": "yes"}}})
    mailstack.__salt__["cmd.which"] = lambda name: f"/usr/sbin/{name}"
    mailstack.__salt__["cmd.run_all"] = run_all

    assert mailstack.settings()["postfix"]["main_cf"] == {"smtputf8_enable": "yes"}
    assert calls == [["postconf", "-d"]]

    mailstack = configure({"postfix": {"main_cf": {"maximal_queue_lifetime": "2d"}}})
    with pytest.raises(
        CommandExecutionError, match=r"main_cf:maximal_queue_lifetime: is not a parameter"
    ) as raised:
        mailstack.settings()
    assert "postconf -d on this minion" in str(raised.value)


def test_main_cf_names_are_checked_against_the_shipped_list_without_postfix(configure, monkeypatch):
    mailstack = configure({"postfix": {"main_cf": {"smtputf8_enable": "yes"}}})
    real_get = mailstack.__salt__["cp.get_file_str"]

    def without_smtputf8(url, **kwargs):
        text = real_get(url, **kwargs)
        return text.replace("smtputf8_enable\n", "") if url.endswith("postfix-parameters.txt") else text

    mailstack.__salt__["cp.get_file_str"] = without_smtputf8
    with pytest.raises(CommandExecutionError) as raised:
        mailstack.settings()

    assert "Postfix is not installed" in str(raised.value)
    assert configure({"postfix": {"main_cf": {"maximal_queue_lifetime": "2d"}}}).settings()


# --------------------------------------------------------------- mapdata ---


def test_mapdata_gives_the_states_settings_and_plan_and_blocks_nothing_when_all_is_well(configure):
    data = configure({"relay": relay(), "container": False}).mapdata("mail.smtp.config", "mail")

    assert (data["error"], data["blocked"]) == ("", "")
    assert data["plan"]["mode"] == "relay" and data["plan"]["postfix"] is True
    assert data["mail"]["relay"]["password"] == "********"


def test_mapdata_blocks_every_state_but_the_clean_ones_when_mail_is_disabled(configure):
    module = configure({"enabled": False})

    assert module.mapdata("mail.msmtp.config", "mail")["blocked"] == "mail.disabled"
    assert module.mapdata("mail.clean", "mail")["blocked"] == ""
    assert (
        module.mapdata("mail.smtp.clean", "mail")["plan"]["clean"]["smtp"]["files"][0]
        == "/etc/postfix/main.cf"
    )


def test_mapdata_blocks_with_the_error_on_invalid_pillar(configure):
    data = configure({"mode": "smtp"}).mapdata("mail", "mail")

    assert data["blocked"] == "mail.error"
    assert "mail:mode" in data["error"]


def test_mapdata_under_another_name_reads_the_parameters_there_and_names_it_when_they_are_missing(configure):
    data = configure({}).mapdata("vendored", "vendored")

    assert data["blocked"] == "vendored.error"
    assert "salt://vendored/parameters/defaults.yaml is not on the Salt file server" in data["error"]


def test_mapdata_refuses_a_tplroot_that_is_not_a_directory_name(configure):
    data = configure({}).mapdata("mail", "../etc")

    assert data["blocked"] == "../etc.error" and "tplroot" in data["error"]
