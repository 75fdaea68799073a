"""What one pytest session runs (:class:`Bench`), and the keys its results travel under.

Shared by the hooks and the controller-side collector, so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.plugin.cases import Case
from bandit_bench.plugin.options import CASE_INIS, CASE_OPTIONS
from bandit_bench.plugin.settings import ProjectSettings

# report.user_properties keys: a case's record, and the cassettes a worker sends the controller.
RESULT_KEY = "bandit_bench"
CASSETTES_KEY = "bandit_bench_cassettes"
# workeroutput key: how many cases a worker selected. Every worker collects the whole matrix,
# so the controller takes the largest count (a crashed worker reports none).
SELECTED_KEY = "bandit_bench_selected"


@dataclass(frozen=True)
class Bench:
    cases: list[Case]
    settings: ProjectSettings
    opts: Any  # runner.RunOptions, built lazily to keep start-up light
    report_dir: Path
    compare_to: Path | None
    thresholds: dict[str, float | None]
    # What this run asked for, to tell a run that checked nothing from a run that was not a
    # benchmark run at all (see Scope).
    scope: Scope
    cassette_dir: Path
    models_given: bool


@dataclass(frozen=True)
class Scope:
    """Which items a run holds.

    ``requested``: the run is a benchmark run, so zero selected cases fail it. That is a case
    option on the command line (``--model``, ``--bandit-config``, ``--cassette-dir``), or an ini
    twin when no test path was given. ``only_benchmark``: a case option and no test path, so
    nothing is collected from disk: ``pytest --model m`` in a repository with its own tests runs
    the benchmark alone. With test paths, those are collected as usual, and the shipped benchmark
    is added when a case option asked for it and none of them uses ``bandit_case``.
    """

    requested: bool
    only_benchmark: bool
    # A case option on the command line (not only its ini twin): see fails_when_empty.
    on_command_line: bool = False

    @classmethod
    def of(cls, config: pytest.Config) -> Scope:
        on_command_line = any(config.getoption(name) not in (None, [], "") for name in CASE_OPTIONS)
        in_ini = any(config.getini(name) not in (None, [], "") for name in CASE_INIS)
        paths_given = config.args_source == pytest.Config.ArgsSource.ARGS
        return cls(
            requested=on_command_line or (in_ini and not paths_given),
            only_benchmark=on_command_line and not paths_given,
            on_command_line=on_command_line,
        )

    def fails_when_empty(self, markexpr: str) -> bool:
        """Whether selecting no case fails the run: a benchmark run must check something, unless
        only the ini asked for the benchmark and ``-m`` chose the tests (``pytest -m "not
        bandit_case"`` in a project with the ini keys runs its other tests alone)."""
        return self.requested and (self.on_command_line or not markexpr)


BENCH: pytest.StashKey[Bench] = pytest.StashKey()
SELECTED: pytest.StashKey[int] = pytest.StashKey()


def nothing_selected_message(config: pytest.Config, bench: Bench) -> str:
    """Why a benchmark run selected no case, where it looked, and the commands that fix it."""
    lines = ["bandit-bench: no model x config case ran, so nothing was checked."]
    if not bench.cases:
        where = bench.cassette_dir
        found = "the folder does not exist" if not where.is_dir() else "it holds no <model>/<config>/NNN.json"
        lines.append(f"  No --model given, and no recorded model under {where} ({found}).")
    else:
        ids = [c.id for c in bench.cases]
        shown = ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
        why = []
        if config.option.keyword:
            why.append(f"-k {config.option.keyword!r}")
        if config.option.markexpr:
            why.append(f"-m {config.option.markexpr!r}")
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            why.append(f"test paths {' '.join(config.args)}")
        lines.append(
            f"  The matrix has {len(ids)} cases ({shown}) but none was selected"
            + (f" ({'; '.join(why)})." if why else ".")
        )
        first = bench.cases[0]
        design = first.config.design.code
        lines.append(f"  Select by case id: -k '{design}' or -k '{first.id}'.")
    lines += [
        "  Record a model: OPENROUTER_API_KEY=... pytest --model MODEL --record-mode=once",
        "  Run the classic algorithms (no key, no cassette): pytest --model baseline/ucb",
        "  Configs --bandit-config accepts: bandit-bench configs",
    ]
    return "\n".join(lines)
