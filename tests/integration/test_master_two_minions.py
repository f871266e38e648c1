"""
One master, two minions whose pillar differs per minion ID (Mailu for A,
the local Postfix relay for B), targeted together by one ``state.apply``.
"""

import pathlib

import pytest
import salt.utils.yaml

from tests.integration.conftest import (
    FILE_IGNORE_GLOB,
    FORMULA_ROOT,
    MAILU_PASSWORD,
    OS_PROFILES,
    PASSWORD,
    assert_no_secret,
    offline_apt_env,
)

MINION_A = "mn-a"
MINION_B = "mn-b"

PILLAR_A = {
    "container": False,
    "mailu": {"host": "mail.mailu.test", "user": "noreply@mailu.test", "password": MAILU_PASSWORD},
}
PILLAR_B = {
    "container": False,
    "relay": {"relayhost": "smtp.relay.test", "user": "relayuser", "password": PASSWORD},
}


def _write(path: pathlib.Path, data) -> None:
    path.write_text(salt.utils.yaml.safe_dump(data))


@pytest.fixture(scope="module")
def master(salt_factories):
    factory = salt_factories.salt_master_daemon(
        "mst",
        # The fewest workers Salt allows (3): two minions, 2 cores.
        overrides={
            "file_roots": {"base": [str(FORMULA_ROOT)]},
            "file_ignore_glob": FILE_IGNORE_GLOB,
            "worker_threads": 3,
        },
    )
    pillar_dir = pathlib.Path(factory.config["pillar_roots"]["base"][0])
    _write(pillar_dir / "top.sls", {"base": {MINION_A: ["mail_mailu"], MINION_B: ["mail_relay"]}})
    _write(pillar_dir / "mail_mailu.sls", {"mail": PILLAR_A})
    _write(pillar_dir / "mail_relay.sls", {"mail": PILLAR_B})
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def minions(master):
    factories = []
    for minion_id, fqdn in ((MINION_A, "a.itest.example"), (MINION_B, "b.itest.example")):
        grains = dict(OS_PROFILES["debian12"], fqdn=fqdn)
        factory = master.salt_minion_daemon(minion_id, overrides={"grains": grains})
        factory.environ.update(offline_apt_env())
        factories.append(factory)
    with factories[0].started(), factories[1].started():
        yield factories


@pytest.fixture(scope="module")
def salt_cli(master, minions):
    cli = master.salt_cli(timeout=180)
    synced = cli.run("saltutil.sync_all", minion_tgt="*")
    assert synced.returncode == 0, synced
    assert set(synced.data) == {MINION_A, MINION_B}, synced
    return cli


def _run(cli, *args):
    result = cli.run(*args, minion_tgt="*")
    assert_no_secret((result.stdout or "") + (result.stderr or ""))
    assert set(result.data or {}) == {MINION_A, MINION_B}, result
    return result


def _by_id(states):
    return {value["__id__"]: value for value in states.values()}


def test_plan_follows_each_minions_own_pillar(salt_cli):
    result = _run(salt_cli, "mailstack.plan")
    assert result.data[MINION_A]["mode"] == "mailu"
    assert result.data[MINION_A]["postfix"] is False
    assert _install_and_remove(result.data[MINION_A]) == {
        "install": ["msmtp", "msmtp-mta"],
        "unwanted": ["postfix"],
    }
    assert result.data[MINION_B]["mode"] == "relay"
    assert result.data[MINION_B]["postfix"] is True
    assert _install_and_remove(result.data[MINION_B]) == {
        "install": ["msmtp", "postfix", "libsasl2-modules"],
        "unwanted": ["msmtp-mta"],
    }


def test_one_targeted_dry_run_applies_each_minions_own_plan(salt_cli):
    result = _run(salt_cli, "state.apply", "mail", "test=True")
    a, b = _by_id(result.data[MINION_A]), _by_id(result.data[MINION_B])
    for states in (a, b):
        failed = {sid: s["comment"] for sid, s in states.items() if s["result"] not in (True, None)}
        assert failed == {}
    # A: Mailu straight from msmtp; Postfix goes, msmtp-mta provides sendmail.
    assert {"mail-smtp-package-removed", "mail-smtp-service-dead", "mail-msmtp-sendmail"} <= set(a)
    assert "msmtp-mta" in a["mail-msmtp-sendmail"]["comment"] or a["mail-msmtp-sendmail"]["result"] is True
    assert not {"mail-smtp-package-installed", "mail-smtp-config-main-cf", "mail-smtp-service-running"} & set(
        a
    )
    # B: the local Postfix relay is installed and configured for B's relayhost.
    assert {"mail-smtp-package-installed", "mail-smtp-config-main-cf", "mail-smtp-service-running"} <= set(b)
    assert not {"mail-smtp-package-removed", "mail-msmtp-sendmail"} & set(b)
    main_cf = b["mail-smtp-config-main-cf"]
    assert main_cf["result"] is None
    if "diff" in main_cf["changes"]:
        assert "myhostname = b.itest.example" in main_cf["changes"]["diff"]
        assert "relayhost = [smtp.relay.test]:587" in main_cf["changes"]["diff"]


def test_rendered_msmtprc_is_group_readable_only_where_it_holds_the_mailu_password(salt_cli):
    result = _run(salt_cli, "state.show_sls", "mail")

    def msmtprc(minion):
        args = {}
        for item in result.data[minion]["mail-msmtp-config-msmtprc"]["mailstack"]:
            if isinstance(item, dict):
                args.update(item)
        return args["name"], args["file"]["user"], args["file"]["group"], args["file"]["mode"]

    assert msmtprc(MINION_A) == ("/etc/msmtprc", "root", "mail-senders", "0640")
    assert msmtprc(MINION_B) == ("/etc/msmtprc", "root", "root", "0644")
    assert "mail-smtp-config-main-cf" in result.data[MINION_B]
    assert "mail-smtp-config-main-cf" not in result.data[MINION_A]


def _install_and_remove(plan):
    """What the plan installs, and has no use for (removed where the formula installed it)."""
    return {key: plan["packages"][key] for key in ("install", "unwanted")}
