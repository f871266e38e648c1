"""Unit tests for the metrics: the plan's part, the pillar's validation, the
directory check, and the collector itself (``mail/files/mail-metrics.py.jinja``
rendered and run on a fake host), its exposition text read with the official
Prometheus client's parser."""

import json
import os
import subprocess

import jinja2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from salt.exceptions import CommandExecutionError

from tests.support.loader import REPO, load_salt_module

COLLECTOR = REPO / "mail/files/mail-metrics.py.jinja"
ALERT_SCRIPT = REPO / "mail/files/mail-alert.sh.jinja"
owned = load_salt_module(REPO / "_utils/mailstack_owned.py", "mailstack_owned_metrics_under_test")


@pytest.fixture
def systemd(tmp_path):
    (tmp_path / "root" / "run" / "systemd" / "system").mkdir(parents=True)


# ------------------------------------------------------------ the plan ---


def test_metrics_are_off_by_default_and_their_files_absent(operator):
    plan = operator().plan()
    assert plan["metrics"]["enabled"] is False
    assert {key: file["present"] for key, file in plan["layout"]["metrics"].items()} == {
        "script": False,
        "cron": False,
        "textfile": False,
    }
    assert plan["layout"]["metrics"]["textfile"]["path"] == "/var/lib/prometheus/node-exporter/mailstack.prom"


def test_metrics_with_systemd_are_a_timer_every_interval(operator, systemd):
    plan = operator({"metrics": {"enabled": True, "interval": 120}}).plan()
    layout = plan["layout"]["metrics"]
    assert sorted(layout) == ["script", "service", "timer"]
    assert layout["timer"]["context"] == {
        "marker": "# Managed by Salt (mail formula",
        "script": "/usr/local/lib/mailstack/mail-metrics",
        "interval": 120,
        "accuracy": 12,
        "cron_minutes": "*/2",
    }
    assert layout["script"]["mode"] == "0755" and layout["script"]["template"] == "mail-metrics.py.jinja"
    assert plan["metrics"]["timer"] == "mail-metrics.timer"


def test_metrics_without_systemd_are_a_cron_entry_in_whole_minutes(operator):
    layout = operator({"metrics": {"enabled": True, "interval": 300}}).plan()["layout"]["metrics"]
    assert sorted(layout) == ["cron", "script"]
    assert layout["cron"]["path"] == "/etc/cron.d/mail-metrics"
    assert layout["cron"]["context"]["cron_minutes"] == "*/5"


def test_the_collector_is_told_nothing_secret(operator):
    mail = {
        "metrics": {"enabled": True},
        "admin": "ops@example.org",
        "relay": {"relayhost": "smtp.example.net", "user": "relay-user", "password": "s3cret-token"},
    }
    collector = operator(mail).plan()["metrics"]["collector"]
    shown = json.dumps(collector)
    assert "s3cret" not in shown and "@" not in shown and "relay-user" not in shown
    assert collector["mode"] == "relay" and collector["sendmail"] == "postfix"


def test_the_metrics_file_is_in_the_inventory_and_removed_by_clean(operator):
    plan = operator({"metrics": {"enabled": True}}).plan()
    textfile = {item["id"]: item for item in plan["inventory"]}["metrics:textfile"]
    assert textfile["wanted"] is True and textfile["key"] == "metrics:directory"
    assert "/var/lib/prometheus/node-exporter/mailstack.prom" in plan["clean"]["metrics"]["files"]
    assert "/usr/local/lib/mailstack/mail-metrics" in plan["clean"]["metrics"]["files"]


@pytest.mark.parametrize(
    "metrics, key",
    [
        ({"directory": "/tmp"}, "metrics:directory"),
        ({"directory": "/var/lib/prometheus/node-exporter/../../../etc"}, "metrics:directory"),
        ({"directory": "/home/prometheus/textfile"}, "metrics:directory"),
        ({"interval": 10}, "metrics:interval"),
        ({"interval": "60"}, "metrics:interval"),
        ({"enabled": "yes"}, "metrics:enabled"),
    ],
)
def test_invalid_metrics_pillar_is_refused_naming_the_key(operator, metrics, key):
    with pytest.raises(CommandExecutionError, match=f"mail:{key}"):
        operator({"metrics": metrics}).plan()


# ------------------------------------------- the directory of the file ---


def test_a_textfile_directory_under_a_system_accounts_directory_is_accepted(tmp_path):
    directory = tmp_path / "var/lib/prometheus/node-exporter"
    directory.mkdir(parents=True)
    os.chown(tmp_path / "var/lib/prometheus", 105, 105)
    assert owned.unsafe_textfile_dir_problem("/var/lib/prometheus/node-exporter", str(tmp_path)) is None


@pytest.mark.parametrize(
    "owner_of, uid, problem",
    [
        ("var/lib/prometheus", 1000, "/var/lib/prometheus is owned by a user who is not a system account"),
        ("var/lib/prometheus/node-exporter", 105, "/var/lib/prometheus/node-exporter is not owned by root"),
    ],
)
def test_a_textfile_directory_others_control_is_refused(tmp_path, owner_of, uid, problem):
    (tmp_path / "var/lib/prometheus/node-exporter").mkdir(parents=True)
    os.chown(tmp_path / owner_of, uid, uid)
    assert owned.unsafe_textfile_dir_problem("/var/lib/prometheus/node-exporter", str(tmp_path)) == problem


def test_a_textfile_directory_behind_a_link_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "var/lib/prometheus").mkdir(parents=True)
    (tmp_path / "var/lib/prometheus/node-exporter").symlink_to(tmp_path / "elsewhere")
    problem = owned.unsafe_textfile_dir_problem("/var/lib/prometheus/node-exporter", str(tmp_path))
    assert problem == "/var/lib/prometheus/node-exporter is a symbolic link"


# ------------------------------------------------------- the collector ---


def _collector_settings(tmp_path, **overrides):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return {
        "directory": str(tmp_path / "textfile"),
        "file": "mailstack.prom",
        "mode": "relay",
        "sendmail": "postfix",
        "postfix": True,
        "postfix_log": str(tmp_path / "mail.log"),
        "msmtp_log": "",
        "health_state": str(state / "health.last"),
        "alerts_dir": str(state / "alerts"),
        "state": str(state / "metrics.json"),
        "journal_cursor": str(state / "metrics.journal"),
        **overrides,
    }


MARKER = load_salt_module(REPO / "_utils/mailstack_content.py", "content_for_marker").MARKER


def _render(path, **context):
    context.setdefault("marker", MARKER)
    environment = jinja2.Environment(keep_trailing_newline=True)
    environment.filters["json"] = json.dumps
    return environment.from_string(path.read_text()).render(**context)


@pytest.fixture
def collector(tmp_path):
    """The rendered collector as a module on a fake host; ``queue`` is what postqueue -j prints
    (a string), or an exception it raises."""
    (tmp_path / "state").mkdir()

    def _collector(queue="", **settings):
        namespace = {"__name__": "mail_metrics"}
        code = _render(COLLECTOR, collector=_collector_settings(tmp_path, **settings))
        exec(compile(code, str(COLLECTOR), "exec"), namespace)  # noqa: S102 - the formula's own script

        def fake_run(command):
            assert command == ["postqueue", "-j"], command
            if isinstance(queue, Exception):
                raise namespace["SourceError"](str(queue))
            return queue

        namespace["run"] = fake_run
        return namespace

    return _collector


def _scrape(tmp_path):
    """The metrics file as the Prometheus client reads it: ``{sample name: {labels: value}}``."""
    text = (tmp_path / "textfile/mailstack.prom").read_text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _message(queue, arrival):
    return json.dumps({"queue_name": queue, "queue_id": "ABC", "arrival_time": arrival, "recipients": []})


def test_every_family_has_help_and_type_one_prefix_and_total_only_on_counters(collector, tmp_path):
    now = 1_800_000_000
    queue = "\n".join([_message("deferred", now - 100), _message("active", now - 5)])
    (tmp_path / "state/alerts").mkdir(parents=True)
    (tmp_path / "state/alerts/cron.service.sent").write_text("3\n")
    (tmp_path / "state/health.last").write_text(f"{now - 60} ok sent to ops@example.org\n")
    collector(queue)["main"]()

    text = (tmp_path / "textfile/mailstack.prom").read_text()
    families = list(text_string_to_metric_families(text))
    assert {family.name for family in families} >= {
        "mailstack_info",
        "mailstack_queue_messages",
        "mailstack_queue_oldest_message_age_seconds",
        "mailstack_health_last_run_timestamp_seconds",
        "mailstack_health_last_run_success",
        "mailstack_alerts_sent",
        "mailstack_collector_success",
        "mailstack_collector_source_success",
        "mailstack_collector_last_run_timestamp_seconds",
        "mailstack_collector_duration_seconds",
    }
    for family in families:
        assert family.name.startswith("mailstack_") and family.documentation, family
        assert family.type in ("gauge", "counter"), family
        assert (family.type == "counter") == any(s.name.endswith("_total") for s in family.samples), family
        assert f"# HELP {family.samples[0].name} " in text and f"# TYPE {family.samples[0].name} " in text
    assert "@" not in text.replace("# Managed by Salt (mail formula)", "")


def test_queue_counts_and_oldest_age_come_from_postqueue(collector, tmp_path):
    namespace = collector(
        "\n".join([_message("deferred", 1000), _message("deferred", 1500), _message("hold", 1900)])
    )
    samples, _ = namespace["collect"](2000, 0)
    values = {(name, tuple(labels.items())): value for name, labels, value in samples}
    assert values[("mailstack_queue_messages", (("queue", "deferred"),))] == 2
    assert values[("mailstack_queue_messages", (("queue", "hold"),))] == 1
    assert values[("mailstack_queue_messages", (("queue", "active"),))] == 0
    assert values[("mailstack_queue_oldest_message_age_seconds", ())] == 1000
    assert values[("mailstack_collector_success", ())] == 1


@pytest.mark.parametrize(
    "queue", ["not json\n", '["a list"]\n', RuntimeError("postqueue exited 69: mail system is down")]
)
def test_an_unreadable_or_corrupt_queue_is_reported_not_read_as_empty(collector, tmp_path, queue):
    collector(queue)["main"]()
    samples = _scrape(tmp_path)
    assert "mailstack_queue_messages" not in samples
    assert "mailstack_queue_oldest_message_age_seconds" not in samples
    assert samples["mailstack_collector_success"] == {(): 0.0}
    assert samples["mailstack_collector_source_success"][(("source", "queue"),)] == 0.0
    assert samples["mailstack_collector_source_success"][(("source", "log"),)] == 1.0


def test_where_msmtp_sends_there_is_no_queue_and_deliveries_come_from_its_log(collector, tmp_path):
    log = tmp_path / "msmtp.log"
    log.write_text(
        "Dec 06 10:00:00 host=127.0.0.1 tls=off auth=off from=root@h recipients=a@b mailsize=9"
        " smtpstatus=250 smtpmsg='250 ok' exitcode=EX_OK\n"
        "Dec 06 10:05:00 host=127.0.0.1 tls=off auth=off from=root@h recipients=a@b"
        " errormsg='cannot connect' exitcode=EX_TEMPFAIL\n"
    )
    namespace = collector(
        RuntimeError("no postqueue where msmtp sends"),
        postfix=False,
        sendmail="msmtp",
        mode="mailu",
        msmtp_log=str(log),
    )
    namespace["main"]()
    samples = _scrape(tmp_path)
    assert "mailstack_queue_messages" not in samples
    assert samples["mailstack_info"] == {(("mode", "mailu"), ("sendmail", "msmtp")): 1.0}
    success = samples["mailstack_last_delivery_success_timestamp_seconds"][()]
    failure = samples["mailstack_last_delivery_failure_timestamp_seconds"][()]
    assert failure - success == 300
    assert samples["mailstack_collector_success"] == {(): 1.0}


POSTFIX_SENT = (
    "{when} host postfix/smtp[812]: 4C1A2B3C4D: to=<ops@example.org>, relay=127.0.0.1[127.0.0.1]:2525,"
    " delay=0.1, delays=0/0/0/0, dsn=2.0.0, status=sent (250 Ok)\n"
)
POSTFIX_DEFERRED = (
    "{when} host postfix/smtp[813]: 5D2B3C4D5E: to=<ops@example.org>, relay=none, delay=30,"
    " delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:2525:"
    " Connection refused)\n"
)


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2026-12-06T10:00:00.123456+00:00", 1796551200),
        ("1796551200.5", 1796551200),
    ],
)
def test_delivery_times_are_read_from_the_log_lines(collector, tmp_path, stamp, expected):
    (tmp_path / "mail.log").write_text(POSTFIX_SENT.format(when=stamp))
    collector("")["main"]()
    assert _scrape(tmp_path)["mailstack_last_delivery_success_timestamp_seconds"] == {(): expected}


def test_each_run_reads_only_new_log_lines_and_keeps_the_last_times(collector, tmp_path):
    log = tmp_path / "mail.log"
    log.write_text(POSTFIX_SENT.format(when="2026-12-06T10:00:00+00:00"))
    namespace = collector("")
    namespace["main"]()
    first = json.loads((tmp_path / "state/metrics.json").read_text())
    assert first["log"]["offset"] == log.stat().st_size

    with log.open("a") as handle:
        handle.write(POSTFIX_DEFERRED.format(when="2026-12-06T11:00:00+00:00"))
    namespace["main"]()
    samples = _scrape(tmp_path)
    assert samples["mailstack_last_delivery_success_timestamp_seconds"] == {(): 1796551200}
    assert samples["mailstack_last_delivery_failure_timestamp_seconds"] == {(): 1796554800}

    log.unlink()
    log.write_text("rotated, nothing delivered yet\n")
    namespace["main"]()
    assert _scrape(tmp_path)["mailstack_last_delivery_success_timestamp_seconds"] == {(): 1796551200}


def test_the_health_result_is_read_without_the_recipient(collector, tmp_path):
    (tmp_path / "state/health.last").write_text("1796551200 failed sendmail exited 75 after 4 attempts\n")
    collector("")["main"]()
    samples = _scrape(tmp_path)
    assert samples["mailstack_health_last_run_timestamp_seconds"] == {(): 1796551200}
    assert samples["mailstack_health_last_run_success"] == {(): 0}


def test_a_garbled_health_state_marks_the_refresh_failed(collector, tmp_path):
    (tmp_path / "state/health.last").write_text("garbage\n")
    collector("")["main"]()
    samples = _scrape(tmp_path)
    assert samples["mailstack_collector_source_success"][(("source", "health"),)] == 0
    assert samples["mailstack_collector_success"] == {(): 0}


def test_the_file_is_replaced_atomically_and_readable_by_everyone(collector, tmp_path):
    namespace = collector("")
    namespace["main"]()
    target = tmp_path / "textfile/mailstack.prom"
    first_inode = target.stat().st_ino
    namespace["main"]()
    assert target.stat().st_ino != first_inode, "rewritten in place instead of renamed over"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in target.parent.iterdir()) == ["mailstack.prom"]
    assert target.read_text().startswith("# Managed by Salt (mail formula)")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(collector, tmp_path, monkeypatch):
    namespace = collector("")
    namespace["main"]()
    target = tmp_path / "textfile/mailstack.prom"
    before = target.read_text()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        namespace["main"]()
    assert target.read_text() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["mailstack.prom"]


def test_the_collector_never_writes_through_a_link_in_its_directory(collector, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "textfile").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        collector("")["main"]()
    assert list((tmp_path / "elsewhere").iterdir()) == []


# --------------------------------------------------- the alert counter ---


def test_each_alert_sent_counts_once_for_its_unit(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sendmail", "cat >/dev/null"), ("systemctl", "echo status"), ("journalctl", "true")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    shell_vars = {
        "recipient": "ops@example.org",
        "sendmail": str(bin_dir / "sendmail"),
        "state_dir": str(tmp_path / "alerts"),
        "interval": "0",
    }
    script = tmp_path / "mail-alert"
    script.write_text(_render(ALERT_SCRIPT, shell_vars=shell_vars))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    for _ in range(3):
        subprocess.run(["sh", str(script), "cron.service"], env=env, check=True, capture_output=True)
    assert (tmp_path / "alerts/cron.service.sent").read_text() == "3\n"
