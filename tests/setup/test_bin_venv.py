"""bin/venv copes with whatever a user already has where the virtualenv goes:
it rebuilds what it can, or stops with one sentence, never a traceback.

A one-line requirements file keeps each build to a few seconds; the pins come
from the repository's constraints.txt as in real use.
"""

import os
import subprocess
import textwrap

import pytest

from tests.support.salt_local import REPO


@pytest.fixture
def requirements(tmp_path):
    path = tmp_path / "requirements-small.txt"
    path.write_text("pip\n")
    return path


def _bin_venv(venv, requirements):
    return subprocess.run(
        [str(REPO / "bin" / "venv"), str(requirements)],
        env={**os.environ, "MAIL_FORMULA_VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _assert_built(result, venv):
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(venv)
    assert not venv.is_symlink()
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], check=False)
    assert pip.returncode == 0


def _assert_refused_in_one_sentence(result):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bin/venv: "), result.stderr
    assert "Traceback" not in result.stderr and "MAIL_FORMULA_VENV" in lines[0]


def test_builds_a_new_virtualenv_and_reuses_it_unchanged_on_the_next_run(tmp_path, requirements):
    venv = tmp_path / "venv"
    _assert_built(_bin_venv(venv, requirements), venv)
    made = (venv / "pyvenv.cfg").stat().st_ino

    _assert_built(_bin_venv(venv, requirements), venv)
    assert (venv / "pyvenv.cfg").stat().st_ino == made


def test_a_dangling_link_is_replaced_by_a_real_virtualenv(tmp_path, requirements):
    venv = tmp_path / "venv"
    venv.symlink_to("/opt/a-virtualenv-from-another-machine")
    _assert_built(_bin_venv(venv, requirements), venv)


def test_a_virtualenv_of_another_python_is_rebuilt(tmp_path, requirements):
    venv = tmp_path / "venv"
    _assert_built(_bin_venv(venv, requirements), venv)
    python = venv / "bin" / "python"
    python.unlink()
    python.write_text("#!/bin/sh\necho /usr/local 2.7.18\n")
    python.chmod(0o755)

    _assert_built(_bin_venv(venv, requirements), venv)
    identity = subprocess.run([str(python), "-c", "import sys; print(sys.version)"], check=False)
    assert identity.returncode == 0


def test_a_virtualenv_whose_python_was_removed_is_rebuilt(tmp_path, requirements):
    venv = tmp_path / "venv"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "python").unlink()
    (venv / "bin" / "python").symlink_to("/usr/bin/python3.0-removed")
    _assert_built(_bin_venv(venv, requirements), venv)


def test_an_install_interrupted_before_pip_was_in_place_is_finished(tmp_path, requirements):
    venv = tmp_path / "venv"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    _assert_built(_bin_venv(venv, requirements), venv)


def test_an_install_interrupted_after_the_virtualenv_was_made_is_redone(tmp_path, requirements):
    venv = tmp_path / "venv"
    _assert_built(_bin_venv(venv, requirements), venv)
    stamps = list(venv.glob(".mail-formula-*"))
    assert len(stamps) == 1
    stamps[0].unlink()
    requirements.write_text("pip\n# changed\n")

    _assert_built(_bin_venv(venv, requirements), venv)
    assert len(list(venv.glob(".mail-formula-*"))) == 1


def test_a_directory_that_is_not_a_virtualenv_is_left_alone_with_one_sentence(tmp_path, requirements):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "notes.txt").write_text("mine")
    _assert_refused_in_one_sentence(_bin_venv(venv, requirements))
    assert (venv / "notes.txt").read_text() == "mine"


def test_a_file_in_the_way_is_left_alone_with_one_sentence(tmp_path, requirements):
    venv = tmp_path / "venv"
    venv.write_text("mine")
    _assert_refused_in_one_sentence(_bin_venv(venv, requirements))
    assert venv.read_text() == "mine"


def test_a_failed_install_stops_with_one_sentence_and_the_next_run_starts_over(tmp_path):
    venv = tmp_path / "venv"
    broken = tmp_path / "requirements-broken.txt"
    broken.write_text(
        textwrap.dedent(
            """\
            # a file that pip refuses
            --no-such-option
            """
        )
    )
    result = _bin_venv(venv, broken)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bin/venv: installing requirements-broken.txt") and "run this again" in last
    assert list(venv.glob(".mail-formula-*")) == []
