"""Releases people can pin, and a README a newcomer reads in ten minutes:
FORMULA's version is the newest CHANGELOG entry, FORMULA claims only the
systems the tests render or apply, the README stays short with its sections,
and the documents it links to are there."""

import re

import yaml

from tests.support.salt_local import REPO

CHANGELOG = REPO / "CHANGELOG.md"
README = REPO / "README.md"
ENTRY = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.MULTILINE)
README_SECTIONS = [
    "Quick start (fresh Debian with Python 3, as root)",
    "Pillar, per mode",
    "From a master",
    "Masterless, with Salt already installed",
    "Masterless on a Raspberry Pi",
    "Is mail working here?",
    "States",
    "Supported systems",
    "Supported Salt versions",
    "More",
]
DOCS = [
    "README",
    "configuration",
    "operations",
    "metrics",
    "raspberry-pi",
    "security",
    "design",
    "testing",
    "performance",
]


def _formula():
    return yaml.safe_load((REPO / "FORMULA").read_text())


def _versions():
    return [
        tuple(int(part) for part in version.split(".")) for version, _ in ENTRY.findall(CHANGELOG.read_text())
    ]


def test_formula_version_is_the_newest_changelog_entry():
    versions = _versions()
    assert versions, "CHANGELOG.md has no '## [x.y.z] - yyyy-mm-dd' entry"
    newest = ".".join(map(str, versions[0]))
    assert str(_formula()["version"]) == newest


def test_changelog_entries_go_from_newest_to_oldest_and_state_the_scheme():
    versions = _versions()
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    text = CHANGELOG.read_text()
    assert "Keep a Changelog" in text and "Semantic Versioning" in text
    assert "pillar keys" in text and "state IDs" in text


def _rendered_profiles():
    """(os, os_family) of every grain set tests/integration renders."""
    conftest = (REPO / "tests" / "integration" / "conftest.py").read_text()
    return set(re.findall(r'_grains\("([^"]+)", "([^"]+)"', conftest))


def test_formula_lists_exactly_the_systems_the_tests_render():
    profiles = _rendered_profiles()
    assert len(profiles) >= 5
    formula = _formula()
    listed_os = {name.strip() for name in formula["os"].split(",")}
    listed_family = {name.strip() for name in formula["os_family"].split(",")}
    assert listed_os == {os for os, _ in profiles}
    assert listed_family == {family for _, family in profiles}


def test_readme_is_short_and_has_its_sections():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert re.findall(r"^## (.+)$", text, re.MULTILINE) == README_SECTIONS
    assert not re.search(r"\bissue \d+", text, re.IGNORECASE), "no history in the README"


def test_readme_names_each_supported_system():
    text = README.read_text().split("## Supported systems\n", 1)[1].split("\n## ", 1)[0]
    for name in (
        "Debian 12",
        "Debian 13",
        "Raspberry Pi OS",
        "Ubuntu",
        "Arch",
        "Fedora",
        "Rocky",
        "Leap",
        "Alpine",
    ):
        assert name in text, name


def test_the_docs_exist_and_every_local_link_resolves():
    for name in DOCS:
        assert (REPO / "docs" / f"{name}.md").is_file(), name
    broken = []
    for document in [README, CHANGELOG, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path = (document.parent / target).resolve()
            if not path.exists():
                broken.append(f"{document.name} -> {target}")
    assert broken == []


def test_no_document_carries_the_repositorys_history():
    for document in [README, *sorted((REPO / "docs").glob("*.md"))]:
        assert not re.search(r"\bissue \d+", document.read_text(), re.IGNORECASE), document.name
