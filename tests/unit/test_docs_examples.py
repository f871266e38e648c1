"""The examples in README.md and docs/*.md cannot rot: every YAML pillar block
is validated by the formula's own validation (``mailstack.validation_error``,
as the states check it first), accepted unless it is marked as refused, and
every ``mailstack.<function>`` the documents name exists.

Marking, in the Markdown, on the line before the block's fence:

- ``<!-- example: invalid -->``: the pillar must be refused;
- ``<!-- example: not pillar -->``: YAML that is not ``mail`` pillar (checked
  only to parse).
"""

from __future__ import annotations

import ast
import re

import pytest
import yaml

from tests.support.loader import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- example: (invalid|not pillar) -->\s*$")
# A name after "mailstack." that is a file, not a function.
FILE_SUFFIXES = {"py", "prom"}


def _blocks():
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            line = text[: match.start()].count("\n") + 1
            yield pytest.param(
                match[1], marker[1] if marker else "valid", id=f"{document.relative_to(REPO)}:{line}"
            )


BLOCKS = list(_blocks())


def test_the_documents_show_pillar_examples():
    assert DOCUMENTS[0].name == "README.md" and len(DOCUMENTS) > 1
    assert len([block for block in BLOCKS if block.values[1] == "valid"]) >= 10


@pytest.mark.parametrize(("text", "kind"), BLOCKS)
def test_a_yaml_block_of_the_documents_is_valid_pillar_unless_marked(configure, text, kind):
    data = yaml.safe_load(text)
    if kind == "not pillar":
        return
    assert isinstance(data, dict) and set(data) == {"mail"}, (
        "a YAML block that is not mail pillar needs <!-- example: not pillar --> before it"
    )
    error = configure(data["mail"]).validation_error()
    if kind == "invalid":
        assert error.startswith("Invalid pillar mail:"), error
    else:
        assert error == "", error


def test_no_pillar_hides_in_an_indented_code_block():
    """Pillar shown as an indented block would escape the validation above."""
    for document in DOCUMENTS:
        lines = document.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[1:], start=2):
            if line.strip() == "mail:" and line.startswith("    ") and not lines[number - 2].strip():
                pytest.fail(f"{document.name}:{number}: show pillar in a ```yaml block")


def _functions(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }


def test_every_mailstack_function_the_documents_name_exists():
    module = _functions(REPO / "_modules" / "mailstack.py")
    states = _functions(REPO / "_states" / "mailstack.py")
    assert {"plan", "status", "send_test", "flush"} <= module
    missing = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for line in text.splitlines():
            command = re.search(r"\bsalt(?:-call|-ssh)?\s", line)
            for name in re.findall(r"\bmailstack\.([a-z_]\w*)", line):
                if name in FILE_SUFFIXES:
                    continue
                # A command line calls the execution module; prose may also
                # name a state function (mailstack.formula_file).
                known = module if command else module | states
                if name not in known:
                    missing.append(f"{document.relative_to(REPO)}: mailstack.{name} in {line.strip()!r}")
    assert missing == []
