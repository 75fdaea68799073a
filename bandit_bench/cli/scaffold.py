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

import shlex
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

WORKFLOW_PATH = Path(".github/workflows/bandit-bench.yml")
LOCK_PATTERN = "cassettes/**/.lock"
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
    # A branch of this repository runs on push; its pull request would run the same commit
    # again. Pull requests run here only from forks, which push elsewhere.
    if: >-
      github.event_name != 'pull_request' ||
      github.event.pull_request.head.repo.full_name != github.repository
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
          # No run, or its artifact expired (90 days by default) or was never uploaded: this run
          # is not compared, as a first run is not.
          if [ -z "$run_id" ] || ! gh run download "$run_id" --name {artifact} --dir previous-reports; then
            rm -rf previous-reports
            echo "no earlier report of $BRANCH to download: this run is not compared"
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


DISTRIBUTION = "pytest-bandit-bench"


def install_spec() -> tuple[str, str | None]:
    """What CI should pip-install: the way this copy was installed, when CI can do the same.

    From the installed distribution's ``direct_url.json`` (PEP 610): a git URL gives
    ``pytest-bandit-bench @ git+URL@COMMIT``, a remote wheel or sdist its URL. A local path or
    editable install cannot be repeated on a CI runner: then the PyPI name, with a warning that
    says what to pass instead."""
    import json
    from importlib import metadata

    try:
        text = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
        direct = json.loads(text) if text else None
    except (metadata.PackageNotFoundError, ValueError):
        direct = None
    if isinstance(direct, dict) and isinstance(direct.get("url"), str):
        url = direct["url"]
        vcs = direct.get("vcs_info")
        if isinstance(vcs, dict) and vcs.get("vcs") == "git":
            commit = vcs.get("commit_id") or vcs.get("requested_revision")
            return f"{DISTRIBUTION} @ git+{url}" + (f"@{commit}" if commit else ""), None
        if not url.startswith("file:") and "archive_info" in direct:
            return f"{DISTRIBUTION} @ {url}", None
    return DISTRIBUTION, (
        f"the workflow installs {DISTRIBUTION!r} from PyPI, where no release is published yet, and this "
        "copy was installed from a local path CI cannot reach. Run init with --install naming where CI "
        f"gets it, e.g. --install '{DISTRIBUTION} @ git+https://github.com/OWNER/REPO@TAG' or a wheel URL "
        "(or edit the workflow's install step)"
    )


def init_project(
    root: Path, models: Sequence[str], configs: Sequence[str], install: str = DISTRIBUTION
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
        # Quoted for the shell: a spec such as 'pkg @ git+https://...' or 'pkg>=1,<2' is one argument.
        workflow.write_text(
            WORKFLOW.format(install=shlex.quote(install), artifact=ARTIFACT, command=CI_TEST_COMMAND),
            encoding="utf-8",
        )
        result.written.append(str(WORKFLOW_PATH))
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else ""
    present = {line.strip() for line in existing.splitlines()}
    lines = []
    if any(line.strip("/") == "reports" for line in present):
        result.skipped.append(".gitignore: reports/ is ignored already")
    else:
        lines += ["# bandit-bench: written by every run, uploaded by CI", "reports/"]
    if LOCK_PATTERN in present:
        result.skipped.append(f".gitignore: {LOCK_PATTERN} is ignored already")
    else:
        # The case folders' lock files are process state, not recordings: `git add cassettes`
        # must not commit them.
        lines += ["# bandit-bench: the case folders' lock files", LOCK_PATTERN]
    if lines:
        with gitignore.open("a", encoding="utf-8") as fh:
            prefix = "\n" if existing and not existing.endswith("\n") else ""
            fh.write(prefix + "\n".join(lines) + "\n")
        result.written.append(".gitignore: " + ", ".join(x for x in lines if not x.startswith("#")))
    return result
