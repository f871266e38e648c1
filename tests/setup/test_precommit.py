""".pre-commit-config.yaml runs what the suite's lint tests run
(tests/setup/test_lint.py): the same commands, the versions pinned in
constraints.txt, the configuration files in the repository, the same files.
Nothing here runs pre-commit or reaches the network."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.setup import test_lint
from tests.support.salt_local import REPO

CONFIG = REPO / ".pre-commit-config.yaml"
# pre-commit's own option; the suite gets the same effect by running from "."
# (ruff applies ruff.toml's excludes to the files it finds itself).
PRE_COMMIT_ONLY = {"--force-exclude"}
# hook id: (the suite's command, the PyPI distribution that provides it)
HOOKS = {
    "ruff-check": (test_lint.RUFF_CHECK, "ruff"),
    "ruff-format": (test_lint.RUFF_FORMAT, "ruff"),
    "salt-lint": (test_lint.SALT_LINT, "salt-lint"),
    "yamllint": (test_lint.YAMLLINT, "yamllint"),
}
CONFIG_FILES = {"ruff": "ruff.toml", "salt-lint": ".salt-lint", "yamllint": ".yamllint"}


def _hooks():
    config = yaml.safe_load(CONFIG.read_text())
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def _pins():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def _tracked():
    return subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()


def _selected(hook, files):
    """The tracked files pre-commit would pass to ``hook`` (by its files regex,
    or by file type for Python)."""
    if "types_or" in hook:
        assert set(hook["types_or"]) <= {"python", "pyi"}, hook
        suffixes = tuple({"python": ".py", "pyi": ".pyi"}[kind] for kind in hook["types_or"])
        return {path for path in files if path.endswith(suffixes)}
    return {path for path in files if re.search(hook["files"], path)}


def test_the_hooks_are_exactly_the_suites_linters():
    assert set(_hooks()) == set(HOOKS)


@pytest.mark.parametrize("hook_id", sorted(HOOKS))
def test_a_hook_runs_the_suites_command_at_the_pinned_version(hook_id):
    hook, (command, distribution) = _hooks()[hook_id], HOOKS[hook_id]
    assert hook["language"] == "python", hook
    words = [word for word in hook["entry"].split() + hook.get("args", []) if word not in PRE_COMMIT_ONLY]
    assert tuple(words) == command, f"{hook_id}: pre-commit runs {words}, the suite {command}"
    assert hook["additional_dependencies"] == [f"{distribution}=={_pins()[distribution]}"], (
        f"{hook_id} must install the version constraints.txt pins"
    )


@pytest.mark.parametrize("distribution", sorted(CONFIG_FILES))
def test_both_read_the_repositorys_configuration_file(distribution):
    """Neither names a configuration file, so both find the repository's own."""
    assert (REPO / CONFIG_FILES[distribution]).is_file()
    for hook_id, (_command, hook_distribution) in HOOKS.items():
        if hook_distribution == distribution:
            words = _hooks()[hook_id]["entry"].split() + _hooks()[hook_id].get("args", [])
            assert not {"-c", "--config", "--config-file", "--config-data"} & set(words), words
            assert not any(word.startswith("--config") for word in words), words


def test_salt_lint_and_yamllint_get_the_same_files():
    files = _tracked()
    hooks = _hooks()
    suite_salt = set(test_lint._tracked(*test_lint.SALT_LINT_FILES))
    suite_yaml = set(test_lint._tracked(*test_lint.YAMLLINT_FILES))
    assert _selected(hooks["salt-lint"], files) == suite_salt
    assert hooks["yamllint"]["types"] == ["file"], "pillar.example and FORMULA are YAML without the suffix"
    assert _selected(hooks["yamllint"], files) == suite_yaml
    assert CONFIG.name in suite_yaml, "the pre-commit config is linted too"


def test_ruff_gets_the_files_the_suite_lints():
    shown = subprocess.run(
        [str(test_lint.TOOLS / "ruff"), "check", "--show-files", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # --show-files also lists the configuration file it read.
    suite = {str(Path(path).resolve().relative_to(REPO)) for path in shown if path.endswith((".py", ".pyi"))}
    for hook_id in ("ruff-check", "ruff-format"):
        assert _selected(_hooks()[hook_id], _tracked()) == suite, hook_id
