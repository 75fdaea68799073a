"""The smaller points of issue 20, each driven from outside with pytester."""

from __future__ import annotations

import pytest

from bandit_bench.servers.simulator import cycle

PYPROJECT = """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 4
episodes = 2
min_format_compliance = 0.9
"""


@pytest.fixture
def project(bench_project) -> pytest.Pytester:
    return bench_project(PYPROJECT)


def _recorded(project: pytest.Pytester, simulator) -> None:
    sim = simulator(cycle())
    project.runpytest(
        "--model", "sim/m", "--bandit-config", "quick", "--base-url", sim.base_url, "--record-mode=once"
    ).assert_outcomes(passed=1)  # fmt: skip


def test_a_base_url_without_scheme_is_refused(project) -> None:
    result = project.runpytest(
        "--model", "sim/m", "--bandit-config", "quick", "--base-url", "127.0.0.1:8001/v1"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "--base-url: got '127.0.0.1:8001/v1'; expected an http(s) URL such as "
        "https://openrouter.ai/api/v1 or http://127.0.0.1:8080/v1. "
        "Add the scheme: --base-url=http://127.0.0.1:8001/v1"
    ) in result.stderr.str()
    # Credentials never show, even in a refused URL.
    result = project.runpytest(
        "--model", "sim/m", "--bandit-config", "quick", "--base-url", "u:secret@host/v1"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "secret" not in result.stderr.str() and "got 'host/v1'" in result.stderr.str()


def test_max_cost_needs_no_price_on_a_replay(project, simulator) -> None:
    _recorded(project, simulator)
    # Nothing can be spent replaying: the budget is no usage error without a price.
    project.runpytest("--model", "sim/m", "--bandit-config", "quick", "--max-cost=5").assert_outcomes(
        passed=1
    )


def test_the_exit_5_hint_names_a_case_of_the_run(project) -> None:
    result = project.runpytest("--model", "baseline/ucb", "--bandit-config", "quick", "-k", "nothing")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*Select by case id: -k 'BNRN0' or -k 'baseline/ucb-quick'.*"])


def test_help_says_what_each_record_mode_does_per_episode(project) -> None:
    out = " ".join(project.runpytest("--help").stdout.str().split())
    assert "bandit-bench, per episode (one cassette per complete episode): none = replay only" in out
    assert "once = replay the episodes that have a cassette, record the missing ones" in out


def test_a_session_failed_for_its_own_reason_ends_saying_why(project) -> None:
    (project.path / "blocked").write_text("a file where the report folder's parent should be")
    result = project.runpytest(
        "--model", "baseline/ucb", "--bandit-config", "quick", "--report-dir=blocked/sub"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "1 passed" in result.stdout.str()
    last = [line for line in result.stdout.lines if line.strip()][-1]
    assert last == (
        f"bandit-bench: the session failed (exit 1): the report could not be written to "
        f"{project.path / 'blocked' / 'sub'}"
    )


def test_a_comparison_counts_model_rows_not_baseline_rows(project, simulator) -> None:
    _recorded(project, simulator)
    project.runpytest("--model", "sim/m", "--bandit-config", "quick", "--report-dir=old").assert_outcomes(
        passed=1
    )
    result = project.runpytest("--model", "sim/m", "--bandit-config", "quick", "--compare-to=old")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*(1 model x config compared; 3 reference baseline rows beside them)*"])


def test_a_replay_names_the_endpoint_it_was_recorded_from(project, simulator) -> None:
    import json

    sim = simulator(cycle())
    project.runpytest(
        "--model", "sim/m", "--bandit-config", "quick", "--base-url", sim.base_url, "--record-mode=once"
    ).assert_outcomes(passed=1)  # fmt: skip
    replay = project.runpytest("--model", "sim/m", "--bandit-config", "quick")
    replay.assert_outcomes(passed=1)
    run = json.loads((project.path / "reports" / "summary.json").read_text(encoding="utf-8"))["run"]
    assert run["base_url"] == sim.base_url
    # A missing cassette's hint records from that endpoint, with no key variable it never used.
    (project.path / "cassettes" / "sim" / "m" / "quick" / "001.json").unlink()
    missing = project.runpytest("--model", "sim/m", "--bandit-config", "quick")
    missing.assert_outcomes(failed=1)
    out = missing.stdout.str()
    assert f"--base-url={sim.base_url} (with the server running" in out
    assert "OPENROUTER_API_KEY" not in out
