"""The README's apply command works in a fresh clone, with a virtualenv made
from scratch in a new, empty directory (pip's cache is the only thing shared).
"""

import json
import os
import subprocess

from tests.support.salt_local import REPO

# What a new user's root shell has: no virtualenv, no pyenv on the PATH.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_bin_apply_in_a_fresh_clone_builds_its_virtualenv_and_decides_relay(tmp_path):
    clone, venv, pillar = tmp_path / "clone", tmp_path / "venv", tmp_path / "pillar"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True)
    venv.mkdir()
    pillar.mkdir()
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": os.environ.get("HOME", "/root"),
        "MAIL_FORMULA_VENV": str(venv),
        "MAIL_PILLAR_DIR": str(pillar),
    }

    result = subprocess.run(
        [str(clone / "bin" / "apply"), "mailstack.plan", "--out=json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["local"]["mode"] == "relay"
    assert (venv / "bin" / "salt-call").exists()
    assert not (clone / ".venv").exists()
    minion_config = (clone / ".salt-local" / "minion").read_text()
    assert f"base: [{clone}/.salt-local/formula]" in minion_config and str(REPO) not in minion_config
    assert sorted(path.name for path in (clone / ".salt-local" / "formula").iterdir()) == [
        "_beacons",
        "_modules",
        "_states",
        "_utils",
        "mail",
    ]
    assert (clone / ".salt-local" / "formula" / "mail").resolve() == clone / "mail"
