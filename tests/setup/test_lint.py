"""The code passes the Salt community's linters, configured in the repository
(ruff.toml, .salt-lint, .yamllint)."""

import subprocess
import sys
from pathlib import Path

from tests.support.salt_local import REPO

TOOLS = Path(sys.executable).parent

# Each linter's command and the tracked files it is given (None: the tool finds
# its files itself, from "."). .pre-commit-config.yaml runs the same commands
# on the same files (tests/setup/test_precommit.py).
RUFF_CHECK = ("ruff", "check")
RUFF_FORMAT = ("ruff", "format", "--check")
SALT_LINT = ("salt-lint",)
YAMLLINT = ("yamllint", "--strict")
SALT_LINT_FILES = ("*.sls", "*.jinja")
YAMLLINT_FILES = ("*.yaml", "*.yml", "pillar.example", "FORMULA", ".salt-lint", ".yamllint")


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
    _run(*RUFF_CHECK, ".")


def test_ruff_format_would_change_nothing():
    _run(*RUFF_FORMAT, ".")


def test_salt_lint_passes_every_sls_and_jinja_file():
    _run(*SALT_LINT, *_tracked(*SALT_LINT_FILES))


def test_yamllint_passes_parameters_pillar_example_and_formula_strictly():
    yaml_files = _tracked(*YAMLLINT_FILES)
    assert {"pillar.example", "FORMULA"} <= set(yaml_files)
    _run(*YAMLLINT, *yaml_files)


NEWER_THAN_3_10 = "try:\n    pass\nexcept* ValueError:\n    pass\n"  # Python 3.11 syntax


def test_code_that_runs_on_a_minion_fails_the_lint_with_syntax_newer_than_salt_3006s_python(tmp_path):
    for directory in ("_modules", "_states", "_utils", "_beacons"):
        module = tmp_path / directory / "newer.py"
        module.parent.mkdir()
        module.write_text(NEWER_THAN_3_10)
        result = subprocess.run(
            [str(TOOLS / "ruff"), "check", "--config", str(REPO / "ruff.toml"), "--no-cache", str(module)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode != 0 and "3.11" in result.stdout + result.stderr, result.stdout


# Every state file but mail/error.sls (what the guard includes: it states the
# error, with or without the module) is a comment saying what it does and
# these three lines: one call of mailstack.mapdata, and the states it returns
# (_utils/mailstack_states.py, from the plan).
SLS_HEADER = (
    "{%- set tplroot = tpldir.split('/')[0] %}\n"
    "{%- set mapdata = salt['mailstack.mapdata'](sls, tplroot, rendered_sls) if 'mailstack.mapdata' in salt"
    " else {'sls': dict(include=[tplroot ~ '.error'])} %}\n"
    "{{ mapdata.sls | tojson }}\n"
)
GUARD = "mail/error.sls"


def _state_files():
    return [path for path in _tracked("*.sls") if path != GUARD]


def test_every_state_file_is_a_comment_and_the_same_three_lines():
    for path in _state_files():
        text = (REPO / path).read_text(encoding="utf-8")
        assert text.startswith("{#-"), path
        comment_end = text.index("#}\n") + len("#}\n")
        assert text[comment_end:] == SLS_HEADER, path


def test_no_state_file_decides_anything_in_jinja():
    """No condition, no mode, no file key, no plan field: the plan decides, in Python."""
    for path in _state_files():
        text = (REPO / path).read_text(encoding="utf-8")
        code = text[text.index("#}\n") :]
        for word in ("{%- if", "{% if", "{%- elif", "{%- for", "plan.", "mode", "sasl", "postfix", "msmtp"):
            assert word not in code, f"{path} holds {word!r}"
