"""The 1000-episode reference rows are kept in pytest's cache between runs (issue 23)."""

from __future__ import annotations

import json

import pytest

PYPROJECT = """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 6
episodes = 2
"""


def _rows(project: pytest.Pytester) -> list[dict]:
    return json.loads((project.path / "reports" / "summary.json").read_text())["rows"]


def test_the_reference_rows_come_from_the_cache_and_match_the_computed_ones(bench_project) -> None:
    project = bench_project(PYPROJECT)
    run = ("--model", "baseline/ucb", "--bandit-config", "quick")
    project.runpytest("-p", "no:cacheprovider", *run).assert_outcomes(passed=1)
    cold = _rows(project)
    assert not (project.path / ".pytest_cache").exists()

    project.runpytest(*run).assert_outcomes(passed=1)
    stored = list((project.path / ".pytest_cache" / "v" / "bandit_bench" / "scale").iterdir())
    assert len(stored) == 1
    # A stored entry is what the next run reads: make it recognisable, and see it in the report.
    entry = json.loads(stored[0].read_text())
    entry[0][1][0][1] = 0.123456789
    stored[0].write_text(json.dumps(entry))
    project.runpytest(*run).assert_outcomes(passed=1)
    warm = _rows(project)
    ucb = next(r for r in warm if r["model"] == "baseline/ucb (N=1000)")
    assert ucb[f"{entry[0][1][0][0]}"] == 0.123456789

    # --cache-clear computes them again: the report is the cold run's, to the last digit.
    project.runpytest("--cache-clear", *run).assert_outcomes(passed=1)
    assert _rows(project) == cold
    assert [r["model"] for r in cold].count("baseline/ucb (N=1000)") == 1
