"""The README's apply command works as documented on this machine."""

import json
import os
import subprocess

from tests.support import mailhost
from tests.support.salt_local import REPO


def _bin_apply(*args, pillar_dir):
    env = {**os.environ, "MAIL_PILLAR_DIR": str(pillar_dir)}
    return subprocess.run(
        [str(REPO / "bin" / "apply"), *args, "--out=json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def test_bin_apply_with_no_pillar_applies_the_default_plan_idempotently_then_cleans_up(
    clean_machine, tmp_path
):
    plan = _bin_apply("mailstack.plan", pillar_dir=tmp_path)
    assert plan.returncode == 0, plan.stderr
    decided = json.loads(plan.stdout)["local"]
    assert decided["mode"] == "relay"
    if os.path.exists("/.dockerenv"):
        assert decided["container"] is True, decided

    first = _bin_apply(pillar_dir=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert mailhost.package_installed("postfix") is not decided["container"]
    assert mailhost.package_installed("msmtp-mta") is decided["container"]

    again = _bin_apply(pillar_dir=tmp_path)
    assert again.returncode == 0
    assert not [s for s in json.loads(again.stdout)["local"].values() if s["changes"]]

    cleaned = _bin_apply("mail.clean", pillar_dir=tmp_path)
    assert cleaned.returncode == 0, cleaned.stdout
    assert not mailhost.package_installed("msmtp")
