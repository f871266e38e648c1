"""Run the formula for real with masterless ``salt-call --local``, as users do."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import salt.utils.yaml

from tests.support.loader import formula_root

REPO = pathlib.Path(__file__).resolve().parents[2]
SALT_CALL = pathlib.Path(sys.executable).with_name("salt-call")


class SaltCallResult:
    """One ``salt-call`` run: exit code, raw output and the parsed return."""

    def __init__(self, completed: subprocess.CompletedProcess):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        try:
            self.data = json.loads(completed.stdout)["local"] if completed.stdout.strip() else None
        except (ValueError, KeyError, TypeError):
            self.data = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def states(self) -> dict:
        """State results keyed by state ID (``mail-smtp-service-running``)."""
        assert isinstance(self.data, dict), f"no state return:\n{self.output}"
        return {value["__id__"]: value for value in self.data.values()}

    @property
    def changed(self) -> dict:
        return {key: value for key, value in self.data.items() if value.get("changes")}

    @property
    def failed(self) -> dict:
        return {key: value for key, value in self.data.items() if value.get("result") is False}

    def __repr__(self):
        return f"SaltCallResult(returncode={self.returncode}, output={self.output[-3000:]!r})"


FILE_IGNORE_GLOB = ["*/__pycache__", "*.pyc"]


class LocalMinion:
    """A masterless minion configuration whose file root is the formula
    (under ``formula_name``, ``mail`` unless a test renames it)."""

    def __init__(
        self, directory: pathlib.Path, salt_call: pathlib.Path = SALT_CALL, formula_name: str = "mail"
    ):
        self.directory = pathlib.Path(directory)
        self.salt_call = pathlib.Path(salt_call)
        self.file_root = formula_root(self.directory / "formula", formula_name)
        self.pillar_dir = self.directory / "pillar"
        self.pillar_dir.mkdir(parents=True, exist_ok=True)
        (self.pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mail\n")
        self.log_file = self.directory / "root" / "var" / "log" / "salt" / "minion"
        (self.directory / "minion").write_text(
            salt.utils.yaml.safe_dump(
                {
                    "id": "e2e",
                    "file_client": "local",
                    "root_dir": str(self.directory / "root"),
                    "file_roots": {"base": [str(self.file_root)]},
                    "file_ignore_glob": FILE_IGNORE_GLOB,
                    "pillar_roots": {"base": [str(self.pillar_dir)]},
                }
            )
        )
        self.set_pillar({})

    def set_pillar(self, mail: dict) -> None:
        (self.pillar_dir / "mail.sls").write_text(salt.utils.yaml.safe_dump({"mail": mail}))

    def run(self, *args: str, out: str = "json", timeout: float = 600) -> SaltCallResult:
        cmd = [str(self.salt_call), "--local", "-c", str(self.directory), f"--out={out}", *args]
        completed = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return SaltCallResult(completed)

    def sync(self) -> SaltCallResult:
        return self.run("saltutil.sync_all")

    def apply(self, sls: str = "mail", *, test: bool = False, out: str = "json") -> SaltCallResult:
        args = ["state.apply", sls] + (["test=True"] if test else [])
        return self.run(*args, out=out)


SALT_3006_VENV = REPO / ".venv-salt3006"


def salt_3006_call() -> pathlib.Path:
    """``salt-call`` of Salt 3006 LTS, in its own virtualenv built by ``bin/venv``
    from ``constraints-3006.txt`` (kept, and rebuilt only when the pins change)."""
    completed = subprocess.run(
        [str(REPO / "bin" / "venv"), str(REPO / "requirements.txt")],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "MAIL_FORMULA_VENV": str(SALT_3006_VENV),
            "MAIL_FORMULA_CONSTRAINTS": str(REPO / "constraints-3006.txt"),
        },
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return pathlib.Path(completed.stdout.strip()) / "bin" / "salt-call"
