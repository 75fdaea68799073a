"""Spending less on a live run, driven from outside: the bill, the budget, early stopping."""

from __future__ import annotations

import re

import pytest

from bandit_bench.simulator import cycle

PYPROJECT = """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 6
episodes = 4
min_format_compliance = 0.9

[tool.bandit_bench.prices]
"sim/cycle" = { prompt = 10.0, completion = 100.0 }
"""


@pytest.fixture
def project(bench_project) -> pytest.Pytester:
    return bench_project(PYPROJECT)


def _bill_row(out: str, case: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(case))
    return re.split(r"\s{2,}", line[len(case) :].strip())


def test_the_bill_counts_the_requests_a_recording_run_then_sends(project, simulator):
    sim = simulator(cycle())
    args = ("--model", "sim/cycle", "--bandit-config", "quick", "--base-url", sim.base_url)
    bill = project.runpytest("--collect-only", "-q", *args, "--record-mode=once")
    out = bill.stdout.str()
    assert "requests to record (--record-mode=once)" in out
    episodes, requests, prompt, completion, source, cost = _bill_row(out, "sim/cycle x quick")
    assert (episodes, requests) == ("4", "24")
    # No recording of BNRN0 yet: completion is bounded by max_tokens (20) and priced at it.
    assert (completion, source) == ("~480 (max 480)", "max_tokens")
    prompt_tokens = int(prompt.lstrip("~").replace(",", ""))
    usd = (prompt_tokens * 10 + 480 * 100) / 1e6
    assert cost == f"~${usd:.4f} (max ${usd:.4f})"
    assert sim.calls == 0

    run = project.runpytest(*args, "--record-mode=once")
    run.assert_outcomes(passed=1)
    assert sim.calls == 24
    # The same bill is printed at the start of a recording run.
    assert _bill_row(run.stdout.str(), "sim/cycle x quick")[:2] == ["4", "24"]

    # One cassette lost: the bill and the run agree on the one episode to record again.
    (project.path / "cassettes/sim/cycle/quick/002.json").unlink()
    out = project.runpytest("--collect-only", "-q", *args, "--record-mode=once").stdout.str()
    episodes, requests, _, completion, source, _ = _bill_row(out, "sim/cycle x quick")
    assert (episodes, requests) == ("1", "6")
    # Recordings of the design now exist: the simulator's replies are 1 token each.
    assert (completion, source) == ("~6 (max 120)", "this model (18 replies)")
    project.runpytest(*args, "--record-mode=once").assert_outcomes(passed=1)
    assert sim.calls == 24 + 6
    # rewrite records everything again; replay records nothing and prints no bill.
    out = project.runpytest("--collect-only", "-q", *args, "--record-mode=rewrite").stdout.str()
    assert _bill_row(out, "sim/cycle x quick")[:2] == ["4", "24"]
    assert "the bill" not in project.runpytest(*args).stdout.str()


def test_the_bill_of_an_unpriced_model_says_so(project):
    out = project.runpytest(
        "--collect-only", "-q", "--model", "sim/other,baseline/ucb", "--bandit-config", "quick"
    ).stdout.str()
    assert _bill_row(out, "sim/other x quick")[:2] == ["0", "0"]
    assert _bill_row(out, "sim/other x quick")[-1] == "no price"
    # Baselines call no API and are not billed.
    assert "baseline/ucb x" not in out
