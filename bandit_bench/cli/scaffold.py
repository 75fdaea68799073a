"""``bandit-bench init``: what a repository needs to run the benchmark in CI, and nothing it has.

Two things are written, each only when missing (an existing file or table is never rewritten,
and what was left alone is said):

* the ini keys ``bandit_models`` / ``bandit_configs`` under ``[tool.pytest.ini_options]`` of
  ``pyproject.toml`` (and an empty ``[tool.bandit_bench.xfail]`` table for known shortfalls);
* ``.github/workflows/bandit-bench.yml``: install, replay the committed cassettes offline
  (``--record-mode=none --block-network``), compare with the default branch's last report
  (``--compare-to``), upload ``reports/`` as an artifact.

The workflow's test step is :data:`CI_TEST_COMMAND`, the command the README documents.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

WORKFLOW_PATH = Path(".github/workflows/bandit-bench.yml")
ARTIFACT = "bandit-bench-reports"
# `--cassette-dir` on the command line makes the run the benchmark alone (the project's own
# tests stay out of this job), with the models and configs of [tool.pytest.ini_options].
CI_TEST_COMMAND = "pytest -n auto --cassette-dir=cassettes --record-mode=none --block-network"

WORKFLOW = """\
# Written by `bandit-bench init`. Replays the committed cassettes offline, with no key and no
# network, and fails on a missed threshold, on a run with no case, and on a significant
# regression against the last report of the default branch.
name: bandit-bench

"on":  # quoted: YAML 1.1 readers (PyYAML) take a bare on for true
  push:
  pull_request:

permissions:
  contents: read
  actions: read  # gh run download: the default branch's last report

jobs:
  bandit-bench:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install bandit-bench
        run: python -m pip install {install}
      - name: Fetch the default branch's last report (the OLD of --compare-to)
        if: github.ref_name != github.event.repository.default_branch
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          BRANCH: ${{{{ github.event.repository.default_branch }}}}
        run: |
          run_id=$(gh run list --workflow bandit-bench.yml --branch "$BRANCH" --status success \\
            --limit 1 --json databaseId --jq '.[0].databaseId')
          if [ -n "$run_id" ]; then
            gh run download "$run_id" --name {artifact} --dir previous-reports
          else
            echo "no earlier report on $BRANCH: this run is not compared"
          fi
      - name: Replay the cassettes offline and judge
        run: |
          compare=""
          if [ -f previous-reports/summary.json ]; then compare="--compare-to=previous-reports"; fi
          {command} $compare
      - name: Upload reports/
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: {artifact}
          path: reports/
"""


@dataclass
class InitResult:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def ini_lines(models: Sequence[str], configs: Sequence[str]) -> list[str]:
    return [
        "# bandit-bench: the models and configs `pytest` runs (`bandit-bench configs` lists configs)",
        f"bandit_models = {_toml_list(models)}",
        f"bandit_configs = {_toml_list(configs)}",
    ]


XFAIL_TABLE = [
    "[tool.bandit_bench.xfail]",
    '# Known shortfalls, run as strict xfail: "model" = ["config", ...]',
]


def _init_pyproject(root: Path, models: Sequence[str], configs: Sequence[str], result: InitResult) -> None:
    lines = ini_lines(models, configs)
    for other in ("pytest.ini", ".pytest.ini"):
        if (root / other).is_file():
            result.skipped.append(
                f"pytest reads {other}, not pyproject.toml: add under its [pytest] section: "
                + "; ".join(lines[1:])
            )
            return
    path = root / "pyproject.toml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    data = tomllib.loads(text)  # a broken file stops here, before anything is written
    tool = data.get("tool", {})
    ini = tool.get("pytest", {}).get("ini_options")
    added = []
    if ini is not None and ("bandit_models" in ini or "bandit_configs" in ini):
        result.skipped.append("pyproject.toml: [tool.pytest.ini_options] already names bandit-bench models")
    elif ini is not None:
        # Keys right after a table's header belong to that table: insert them there.
        out, done = [], False
        for line in text.splitlines():
            out.append(line)
            if not done and line.strip() == "[tool.pytest.ini_options]":
                out += lines
                done = True
        if not done:
            result.skipped.append(
                "pyproject.toml: [tool.pytest.ini_options] is written in a form init does not edit; add: "
                + "; ".join(lines[1:])
            )
        else:
            text = "\n".join(out) + "\n"
            added.append("bandit_models and bandit_configs in [tool.pytest.ini_options]")
    else:
        text += (
            ("\n" if text and not text.endswith("\n\n") else "")
            + "\n".join(["[tool.pytest.ini_options]", *lines])
            + "\n"
        )
        added.append("[tool.pytest.ini_options]")
    if "bandit_bench" in tool:
        result.skipped.append("pyproject.toml: [tool.bandit_bench] exists")
    else:
        text += "\n" + "\n".join(XFAIL_TABLE) + "\n"
        added.append("[tool.bandit_bench.xfail]")
    if added:
        tomllib.loads(text)  # what is written must read back
        path.write_text(text, encoding="utf-8")
        result.written.append(f"pyproject.toml: {', '.join(added)}")


def init_project(
    root: Path, models: Sequence[str], configs: Sequence[str], install: str = "bandit-bench"
) -> InitResult:
    """Write what is missing under ``root``; never overwrite. Models and configs are validated
    by the caller."""
    result = InitResult()
    _init_pyproject(root, models, configs, result)
    workflow = root / WORKFLOW_PATH
    if workflow.exists():
        result.skipped.append(f"{WORKFLOW_PATH} exists (not overwritten)")
    else:
        workflow.parent.mkdir(parents=True, exist_ok=True)
        workflow.write_text(
            WORKFLOW.format(install=install, artifact=ARTIFACT, command=CI_TEST_COMMAND), encoding="utf-8"
        )
        result.written.append(str(WORKFLOW_PATH))
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else ""
    if any(line.strip().strip("/") == "reports" for line in existing.splitlines()):
        result.skipped.append(".gitignore: reports/ is ignored already")
    else:
        with gitignore.open("a", encoding="utf-8") as fh:
            prefix = "\n" if existing and not existing.endswith("\n") else ""
            fh.write(f"{prefix}# bandit-bench: written by every run, uploaded by CI\nreports/\n")
        result.written.append(".gitignore: reports/")
    return result
