"""The manifest is the truth for replay (issue 20.3): a case folder replays as it was recorded
(T, N, seed, early stop), with the flags that recorded it or without them, by name or from a
plain ``pytest --model M``; ``--early-stop`` over missing episodes errors as the full run does."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from helpers import TEN_EPISODES_PYPROJECT

from bandit_bench.servers.simulator import SimReply, cycle

MODEL = "sim/m"


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest("--model", MODEL, *args)


def test_two_horizons_coexist_and_each_replays_by_name_or_plainly(bench_project, simulator) -> None:
    project = bench_project()
    sim = simulator(cycle())
    rec = (
        "--bandit-config",
        "BNRN0-hard-T25",
        "--episodes",
        "2",
        "--base-url",
        sim.base_url,
        "--record-mode=once",
    )
    _run(project, *rec, "--horizon", "10").assert_outcomes(passed=1)
    _run(project, *rec, "--horizon", "30").assert_outcomes(passed=1)
    assert sim.calls == 2 * 10 + 2 * 30
    folders = sorted(p.name for p in (project.path / "cassettes" / "sim" / "m").iterdir())
    assert folders == ["BNRN0-hard-T10", "BNRN0-hard-T30"]

    # The command that recorded T = 30, without --bandit-config: that recording, once.
    run = _run(project, "--horizon", "30", "--episodes", "2")
    run.assert_outcomes(passed=1)
    assert "test_bandit[sim/m-BNRN0-hard-T30]" in run.stdout.str() or "1 passed" in run.stdout.str()
    # Each by name, with no other flag: N = 2 comes from its manifest.
    for name in ("BNRN0-hard-T10", "BNRN0-hard-T30"):
        _run(project, "--bandit-config", name).assert_outcomes(passed=1)
    # A plain replay: both recordings, each as recorded (2 episodes, not the config's 5).
    plain = _run(project, "-v")
    plain.assert_outcomes(passed=2)
    plain.stdout.fnmatch_lines(
        ["*-- BNRN0-hard-T10 (*T=10 N=2 seed 0*", "*-- BNRN0-hard-T30 (*T=30 N=2 seed 0*"]
    )
    assert sim.calls == 2 * 10 + 2 * 30  # nothing more was sent


STOPPING = TEN_EPISODES_PYPROJECT

STOPPED = (
    "*stopped after 2 of 10 episodes: verdict settled (fail; rule: the remaining episodes cannot "
    "change it; confidence 100%*"
)


def _no_tag(body: dict[str, Any], call: int) -> SimReply:
    return SimReply(content="I would press the blue button.")


def test_a_folder_recorded_with_early_stop_replays_its_verdict_without_the_flag(
    bench_project, simulator
) -> None:
    project = bench_project(STOPPING)
    sim = simulator(_no_tag)
    _run(project, "--bandit-config", "ten", "--base-url", sim.base_url, "--record-mode=once", "--early-stop")
    assert sim.calls == 2 * 4
    manifest = json.loads((project.path / "cassettes/sim/m/ten/manifest.json").read_text(encoding="utf-8"))
    assert manifest["early_stop"] is True
    for args in ((), ("--bandit-config", "ten"), ("--early-stop",)):
        run = _run(project, *args)
        # A threshold verdict (so an expected-failure pin covers it), not 8 missing cassettes.
        run.assert_outcomes(failed=1)
        run.stdout.fnmatch_lines([STOPPED, "*FAILED*test_bandit*ThresholdNo*"])
        assert "does not exist" not in run.stdout.str()
    # Declared as an expected failure, the stopped verdict xfails.
    (project.path / "pyproject.toml").write_text(
        STOPPING + '\n[tool.bandit_bench.xfail]\n"sim/m" = ["ten"]\n', encoding="utf-8"
    )
    _run(project).assert_outcomes(xfailed=1)
    assert sim.calls == 2 * 4


def _failure_lines(run: pytest.RunResult) -> list[str]:
    return [line for line in run.stdout.lines if re.match(r"\s*episodes? [0-9, ]+: cassette", line)]


def test_early_stop_over_missing_episodes_errors_as_the_full_run(bench_project, simulator) -> None:
    project = bench_project(STOPPING)
    sim = simulator(_no_tag)
    _run(project, "--bandit-config", "ten", "--base-url", sim.base_url, "--record-mode=once").assert_outcomes(
        failed=1
    )
    assert sim.calls == 10 * 4
    folder = project.path / "cassettes/sim/m/ten"
    for e in range(2, 10):
        (folder / f"{e:03d}.json").unlink()  # 2 of 10 left, as after an interrupted recording
    full = _run(project)
    full.assert_outcomes(failed=1)
    assert "8 of 10 episodes errored" in full.stdout.str()
    stopped = _run(project, "--early-stop")
    stopped.assert_outcomes(failed=1)
    assert "8 of 10 episodes errored" in stopped.stdout.str()
    assert "confidence 100%" not in stopped.stdout.str()
    assert _failure_lines(stopped) == _failure_lines(full) != []


def test_the_header_shows_the_threshold_of_the_horizon_run(bench_project, simulator) -> None:
    project = bench_project()
    sim = simulator(cycle())
    args = ("--bandit-config", "BNRN0-hard-T100", "--horizon", "10", "--episodes", "2")
    run = _run(project, *args, "--base-url", sim.base_url, "--record-mode=once")
    # Round-robin over 5 arms for 10 steps: best-arm rate 0.20, the floor at T = 10 (T = 100's
    # 0.40 would fail it).
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*-- BNRN0-hard-T10 (*T=10*best arm >= 0.20 (UCB/TS/Greedy floor at T=10))*"])
    md = (project.path / "reports" / "report.md").read_text(encoding="utf-8")
    assert "best arm >= 0.20 (UCB/TS/Greedy floor at T=10)" in md
