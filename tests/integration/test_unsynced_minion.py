"""
A masterless minion that never ran ``saltutil.sync_all``: ``salt-call --local
state.apply mail`` does not sync ``_modules``/``_states`` by itself (unlike a
highstate), so the formula must say what to do instead of failing in Jinja.
"""

import pathlib

import pytest

SLS_ENTRY_POINTS = ["mail", "mail.smtp", "mail.msmtp", "mail.clean"]


@pytest.fixture(scope="module")
def unsynced_minion(masterless_minion_factory):
    minion = masterless_minion_factory("m-unsynced", profile="debian12", sync=False)
    minion.write_pillar({"container": False})
    return minion


def _mailstack_synced(minion):
    extmods = pathlib.Path(minion.factory.config["extension_modules"])
    return (extmods / "modules" / "mailstack.py").exists() or (extmods / "states" / "mailstack.py").exists()


@pytest.mark.parametrize("sls", SLS_ENTRY_POINTS)
def test_unsynced_minion_is_told_to_run_saltutil_sync_all_without_a_traceback(unsynced_minion, sls):
    result = unsynced_minion.call("state.apply", sls, "test=True")
    # salt-call --local did not sync the formula's modules on its own.
    assert not _mailstack_synced(unsynced_minion)
    assert result.returncode != 0, result
    assert "Traceback" not in result.output
    states = result.states()
    failed = [state for state in states.values() if state["result"] is False]
    assert len(failed) == 1, states
    assert "saltutil.sync_all" in failed[0]["comment"]
    assert [sid for sid, state in states.items() if state["changes"]] == []


def test_unsynced_minion_render_shows_only_the_error_state(unsynced_minion):
    result = unsynced_minion.call("state.show_sls", "mail")
    assert not _mailstack_synced(unsynced_minion)
    assert "Traceback" not in result.output
    assert isinstance(result.data, dict), result
    assert list(result.data) == ["mail-error"]
    assert "saltutil.sync_all" in result.output
