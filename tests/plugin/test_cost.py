"""Spending less on a live run, driven from outside: the bill, the budget, early stopping."""

from __future__ import annotations

import json
import re

import pytest
from helpers import TEN_EPISODES_PYPROJECT

from bandit_bench.servers.simulator import cycle

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


# ---------------------------------------------------------------------------- early stopping

STOPPING = TEN_EPISODES_PYPROJECT


def _no_tag(body, call):
    from bandit_bench.servers.simulator import SimReply

    return SimReply(content="I would press the blue button.")


def _ten(project, *args):
    return project.runpytest("--model", "sim/m", "--bandit-config", "ten", *args)


def test_early_stop_settles_a_failing_case_and_replay_stops_at_the_same_point(bench_project, simulator):
    project = bench_project(STOPPING)
    sim = simulator(_no_tag)
    run = _ten(project, "--base-url", sim.base_url, "--record-mode=once", "--early-stop")
    run.assert_outcomes(failed=1)
    # Waves of ceil(10 / 5) = 2 episodes: after 2 episodes with 0/8 valid replies, even 8
    # perfect episodes would give 32/40 = 0.800 < 0.900. Eight episodes were never started.
    assert sim.calls == 2 * 4
    run.stdout.fnmatch_lines(
        [
            "*format compliance 0.000 over 2 of 10 episodes x 4 steps: even if the 8 remaining episodes "
            "were perfect it would reach only 0.800, below the threshold 0.900*",
            "*stopped after 2 of 10 episodes: verdict settled (fail; rule: the remaining episodes cannot "
            "change it; confidence 100%*",
        ]
    )
    assert sorted(p.name for p in (project.path / "cassettes/sim/m/ten").glob("[0-9]*.json")) == [
        "000.json",
        "001.json",
    ]
    summary = json.loads((project.path / "reports/summary.json").read_text())["rows"]
    row = next(r for r in summary if r["model"] == "sim/m")
    assert (row["episodes"], row["episodes_run"], row["passed"]) == (10, 2, False)
    assert row["stopped"].startswith("stopped after 2 of 10 episodes")
    note = "sim/m x ten: stopped after 2 of 10 episodes: verdict settled (fail"
    assert note in (project.path / "reports/report.md").read_text()
    html = (project.path / "reports/report.html").read_text()
    assert "2 of 10 episodes" in html and "stopped after 2 of 10 episodes: verdict settled (fail" in html

    # Replay, offline, through the ini twin: the same two episodes, the same verdict, no missing cassette.
    sim.stop()
    project.makefile(".toml", pyproject=STOPPING + "\n[tool.pytest.ini_options]\nbandit_early_stop = true\n")
    replay = _ten(project, "--base-url", "http://127.0.0.1:9/v1")
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines(["*stopped after 2 of 10 episodes: verdict settled (fail*"])
    assert "does not exist" not in replay.stdout.str()
    # Without early stopping too: the manifest says the recording ran in waves, so the replay
    # does and stops where it stopped (issue 20), instead of asking for eight cassettes never
    # recorded.
    full = _ten(project, "--base-url", "http://127.0.0.1:9/v1", "-o", "bandit_early_stop=false")
    full.assert_outcomes(failed=1)
    full.stdout.fnmatch_lines(["*stopped after 2 of 10 episodes: verdict settled (fail*"])
    assert "does not exist" not in full.stdout.str()


def test_early_stop_settles_a_pass_under_an_overridden_threshold(bench_project, simulator):
    project = bench_project(STOPPING)
    sim = simulator(cycle())
    run = _ten(
        project,
        "--base-url",
        sim.base_url,
        "--record-mode=once",
        "--early-stop",
        "--min-format-compliance=0.5",
    )
    run.assert_outcomes(passed=1)
    # Every reply valid: after 4 episodes at least 16/40 = 0.4 (unsettled), after 6 at least 0.6 >= 0.5.
    assert sim.calls == 6 * 4
    run.stdout.fnmatch_lines(
        ["-- ten (*", "sim/m (6 of 10) *pass", "*stopped after 6 of 10 episodes: verdict settled (pass*"]
    )


def test_early_stop_runs_an_unsettled_case_to_the_end(bench_project, simulator):
    project = bench_project(STOPPING)
    sim = simulator(cycle())
    run = _ten(project, "--base-url", sim.base_url, "--record-mode=once", "--early-stop")
    # 0.9 with every reply valid: 32/40 after 8 episodes is not yet enough, so all 10 run.
    run.assert_outcomes(passed=1)
    assert sim.calls == 10 * 4
    assert "stopped after" not in run.stdout.str()


def test_early_stop_with_one_episode_is_a_usage_error(bench_project):
    project = bench_project(STOPPING)
    result = _ten(project, "--early-stop", "--episodes", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--early-stop: got 'sim/m-ten with 1 episode'; expected cases of at least 2 episodes: with one "
            "there is nothing to stop early. Drop --early-stop*"
        ]
    )


# ---------------------------------------------------------------------------- the budget


def _quick(project, *args):
    return project.runpytest("--model", "sim/cycle", "--bandit-config", "quick", "--concurrency=1", *args)


def test_budget_stops_keeps_complete_episodes_and_resumes(project, simulator):
    sim = simulator(cycle())
    # Each request costs about $0.002 at the price table's rates and is bounded by about $0.015
    # before it is sent; one episode is 6 requests. $0.042 lets two episodes finish and the third
    # send two requests before the next one's bound would cross the limit.
    run = _quick(project, "--base-url", sim.base_url, "--record-mode=once", "--max-cost=0.042")
    run.assert_outcomes(failed=1)
    assert sim.calls == 2 * 6 + 2
    recorded = sorted(p.name for p in (project.path / "cassettes/sim/cycle/quick").glob("[0-9]*.json"))
    assert recorded == ["000.json", "001.json"]  # the third episode was cut short: never saved
    out = run.stdout.str()
    assert "budget --max-cost $0.042 reached: 2 of 4 episodes ran" in out
    assert "--record-mode=once replays the saved episodes and records only the missing ones" in out
    run.stdout.fnmatch_lines(
        [
            "*bandit-bench: budget*",
            "budget --max-cost $0.042: $0.0* spent; reached, 2 request(s) not sent. The budget stopped*",
        ]
    )
    summary = json.loads((project.path / "reports/summary.json").read_text())["rows"]
    row = next(r for r in summary if r["model"] == "sim/cycle")
    assert (row["episodes"], row["episodes_run"], row["passed"]) == (4, 2, False)
    assert row["stopped"] == "stopped by the budget after 2 of 4 episodes (episodes [2, 3] not run)"

    # Resume: the two saved episodes replay, the two missing ones are recorded, nothing else.
    resumed = _quick(project, "--base-url", sim.base_url, "--record-mode=once", "--max-cost=1")
    resumed.assert_outcomes(passed=1)
    assert sim.calls == 2 * 6 + 2 + 2 * 6
    assert "reached" not in resumed.stdout.str()


def test_budget_counts_the_providers_reported_cost(project, simulator):
    # The provider says each reply cost $1: the first request fits in $1.5, the second does not.
    sim = simulator(cycle(), cost_per_million=(1e6 / 30, 0.0))
    run = _quick(project, "--base-url", sim.base_url, "--record-mode=once", "--max-cost=1.5")
    run.assert_outcomes(failed=1)
    assert sim.calls <= 2


def test_budget_is_free_when_everything_replays(project, simulator):
    sim = simulator(cycle())
    _quick(project, "--base-url", sim.base_url, "--record-mode=once").assert_outcomes(passed=1)
    replay = _quick(project, "--max-cost=0.000001")
    replay.assert_outcomes(passed=1)
    replay.stdout.fnmatch_lines(["budget --max-cost $1e-06: $0.0000 spent"])


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_budget_must_be_a_positive_amount(project, value):
    result = _quick(project, f"--max-cost={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--max-cost: got *; expected a positive, finite amount of USD*"])


def test_budget_without_a_price_is_a_usage_error(project):
    result = project.runpytest(
        "--model",
        "sim/unpriced,baseline/ucb",
        "--bandit-config",
        "quick",
        "--max-cost=5",
        "--record-mode=once",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "--max-cost: got 5.0; expected a price for every model it limits; sim/unpriced has none. "
        "Add 'sim/unpriced' = { prompt = USD per 1M tokens, completion = USD per 1M tokens } to "
        "[tool.bandit_bench.prices]" in result.stderr.str()
    )
    # The ini twin is read the same way.
    project.makefile(".toml", pyproject=PYPROJECT + "\n[tool.pytest.ini_options]\nbandit_max_cost = '5'\n")
    result = project.runpytest("--model", "sim/unpriced", "--bandit-config", "quick", "--record-mode=once")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_budget_is_one_ledger_for_all_xdist_workers(project, simulator):
    sim = simulator(cycle())
    project.makefile(
        ".toml",
        pyproject=PYPROJECT + PYPROJECT.split("[tool.bandit_bench.prices]")[0].replace("quick", "other"),
    )
    run = project.runpytest(
        "-n", "2", "--model", "sim/cycle", "--bandit-config", "quick", "--bandit-config", "other",
        "--base-url", sim.base_url, "--record-mode=once", "--max-cost=5",
    )  # fmt: skip
    run.assert_outcomes(passed=2)
    assert sim.calls == 2 * 4 * 6
    # The controller's ledger holds what both workers spent: the sum of the two cases' costs.
    summary = json.loads((project.path / "reports/summary.json").read_text())["rows"]
    total = sum(r["cost_usd"] for r in summary if r["model"] == "sim/cycle")
    run.stdout.fnmatch_lines([f"budget --max-cost $5: ${total:.4f} spent"])


@pytest.mark.parametrize(
    ("completion_tokens", "cost", "charged"),
    [(5000, None, "$0.5*"), (3, 1000, "$1000.0000")],
    ids=["5000-tokens-against-max_tokens-20", "usage-cost-1000"],
)
def test_a_reply_that_costs_more_than_its_bound_reaches_the_budget(
    project, simulator, completion_tokens, cost, charged
):
    """Issue 21, point 12: a reasoning model reports 5000 completion tokens against the 20 the
    request allowed, or a provider bills $1000: charged in full, and no request starts after it."""
    from bandit_bench.servers.simulator import SimReply, arm_names_from_request

    def policy(body, call):
        assert body["max_tokens"] == 20  # the limit sent is the one reserved for
        usage = {"prompt_tokens": 100, "completion_tokens": completion_tokens, "total_tokens": 0}
        if cost is not None:
            usage["cost"] = cost
        name = arm_names_from_request(body)[0]
        message = {"role": "assistant", "content": f"<Answer>{name}</Answer>"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return SimReply(body={"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage})

    sim = simulator(policy)
    run = _quick(project, "--base-url", sim.base_url, "--record-mode=once", "--max-cost=5")
    run.assert_outcomes(failed=1)
    assert sim.calls == 1
    run.stdout.fnmatch_lines(
        [
            f"budget --max-cost $5: {charged} spent; reached: a reply of sim/cycle cost {charged}, more than "
            "the $0.0* reserved for it (more tokens than the limit sent, or a provider cost above the price "
            "table), 4 request(s) not sent after it. The budget stopped this run*",
        ]
    )


def test_a_request_bound_counts_the_token_limit_sent_reasoning_included() -> None:
    from bandit_bench.plugin.settings import Price
    from bandit_bench.plugin.spend import completion_limit, request_bound

    price = Price(prompt=0.0, completion=1e6)  # $1 per completion token
    assert completion_limit(b'{"max_tokens": 20}') == 20
    assert completion_limit(b'{"max_completion_tokens": 4000, "max_tokens": 20}') == 4000
    assert completion_limit(b'{"max_tokens": 20, "reasoning": {"max_tokens": 2000}}') == 2020
    assert completion_limit(b'{"messages": []}') == 0
    assert request_bound(b'{"max_completion_tokens": 4000}', price) == 4000.0
