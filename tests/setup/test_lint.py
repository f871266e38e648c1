"""The code passes the Salt community's linters, configured in the repository
(ruff.toml, .salt-lint, .yamllint)."""

import subprocess
import sys
from pathlib import Path

from tests.support.salt_local import REPO

TOOLS = Path(sys.executable).parent


def _run(tool, *args):
    result = subprocess.run(
        [str(TOOLS / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{tool} {' '.join(args)}:\n{result.stdout}{result.stderr}"


def _tracked(*patterns):
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--", *patterns], capture_output=True, text=True, check=True
    ).stdout.split()
    assert files, f"no tracked files match {patterns}"
    return files


def test_ruff_finds_nothing():
    _run("ruff", "check", ".")


def test_ruff_format_would_change_nothing():
    _run("ruff", "format", "--check", ".")


def test_salt_lint_passes_every_sls_and_jinja_file():
    _run("salt-lint", *_tracked("*.sls", "*.jinja"))


def test_yamllint_passes_parameters_pillar_example_and_formula_strictly():
    yaml_files = _tracked("*.yaml", "*.yml", "pillar.example", "FORMULA", ".salt-lint", ".yamllint")
    assert {"pillar.example", "FORMULA"} <= set(yaml_files)
    _run("yamllint", "--strict", *yaml_files)
