"""The README and docs/ keep their promises: CI finds the README's two blocks, the README stays a
front door, every option has its line in docs/options.md, and no link points nowhere."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.plugin import options

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 220


def _ci_block(marker: str) -> str:
    """The block `.ci/run` runs for ``ci:<marker>``, read with `.ci/run`'s own awk program."""
    script = (ROOT / ".ci" / "run").read_text()
    found = re.search(r"awk -v m=\"<!-- ci:\$1 -->\" '([^']*)' README\.md", script)
    assert found is not None, ".ci/run no longer reads the README's blocks with awk as this test expects"
    awk = shutil.which("awk")
    if awk is None:
        pytest.skip("no awk on this machine")
    done = subprocess.run(
        [awk, "-v", f"m=<!-- ci:{marker} -->", found.group(1), str(README)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_ci_finds_the_readme_set_up_and_test_blocks() -> None:
    setup, tests = _ci_block("setup"), _ci_block("test")
    assert "pip install -e '.[test]'" in setup and "--model local/smollm2-135m-instruct" in setup
    assert "pytest" in tests and "tests" in tests


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move reference text to docs/"


class _Group:
    def __init__(self, found: list[str]) -> None:
        self.found = found

    def addoption(self, flag: str, **kw: Any) -> None:
        self.found.append(flag)


class _Parser:
    """Records what :func:`options.add_options` declares (flags and ini keys)."""

    def __init__(self) -> None:
        self.flags: list[str] = []
        self.inis: list[str] = []

    def getgroup(self, name: str, description: str = "") -> _Group:
        return _Group(self.flags)

    def addini(self, name: str, **kw: Any) -> None:
        self.inis.append(name)


def test_every_option_and_ini_key_is_in_docs_options(monkeypatch: pytest.MonkeyPatch) -> None:
    # add_options also fills the module's lists of flags; keep the loaded plugin's lists intact.
    monkeypatch.setattr(options, "DESTS", [])
    monkeypatch.setattr(options, "INIS", [])
    monkeypatch.setattr(options, "VALUE_FLAGS", set())
    parser = _Parser()
    options.add_options(parser)  # type: ignore[arg-type]
    assert "--model" in parser.flags and "bandit_models" in parser.inis
    page = (ROOT / "docs" / "options.md").read_text()
    missing = [name for name in [*parser.flags, *parser.inis] if f"`{name}" not in page]
    assert missing == [], f"docs/options.md does not document {missing}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file_and_heading(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert broken == [], f"{page.name}: links to nothing: {broken}"
