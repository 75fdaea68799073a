"""The single-round screen (appendix E): one decision per history, replayed from shipped cassettes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandit_bench.core.episode import StepRecord, Trajectory
from bandit_bench.core.single_round import decision_stats
from bandit_bench.core.specs import BUILTIN_CONFIGS, SUITES, SpecError
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import RunOptions, run_case

# Beside cassettes/, not in it: a plain run discovers its models from cassettes/, and the
# simulator is no model to benchmark by default.
CASSETTES = Path(__file__).parents[2] / "cassettes-simulator"
SIM = "sim/greedy-reader"  # the local simulator's greedy policy: never a real model's name


def _traj(arms: list[int], rewards: list[int], best: int = 0, k: int = 3) -> Trajectory:
    steps = [
        StepRecord(t=t, arm=a, reward=r, valid=True)
        for t, (a, r) in enumerate(zip(arms, rewards, strict=True))
    ]
    return Trajectory(0, k, 100, 0.2, best, steps)


def test_decision_stats_by_hand() -> None:
    # History (3 rounds): arm 0 paid 1, arm 1 paid 0, arm 0 paid 0 -> averages 0.5, 0, untried arm 2.
    history = ([0, 1, 0], [1, 0, 0])
    cases = {
        0: (True, False),  # the largest average among pulled arms; pulled twice, not least
        1: (False, False),  # below arm 0, pulled once while arm 2 has 0 pulls
        2: (True, True),  # untried: greedy by the rule, and the least pulled
    }
    for arm, (greedy, least) in cases.items():
        stats = decision_stats([_traj(history[0] + [arm], history[1] + [0], best=2)], 3)
        assert (bool(stats["greedy_frac"][0]), bool(stats["least_frac"][0])) == (greedy, least), arm
        assert bool(stats["best_arm_rate"][0]) == (arm == 2)
    with pytest.raises(ValueError, match="one decision"):
        decision_stats([_traj([0, 1], [0, 0])], 3)


def test_suite_is_three_designs_by_three_history_policies() -> None:
    names = SUITES["paper-single-round"]
    assert len(names) == 9
    for name in names:
        cfg = BUILTIN_CONFIGS[name]
        assert (cfg.instance.k, cfg.instance.delta, cfg.instance.horizon) == (5, 0.2, 100)
        assert (cfg.run.episodes, cfg.history_length) == (50, 30)
        assert name.endswith(f"-single-{cfg.single_round}")
    with pytest.raises(SpecError, match="single_round: got 'greedy'"):
        BUILTIN_CONFIGS[names[0]].__class__(
            **{**BUILTIN_CONFIGS[names[0]].__dict__, "single_round": "greedy"}
        )
    with pytest.raises(SpecError, match=r"history_length: got 100; expected an integer in 1..99"):
        BUILTIN_CONFIGS[names[0]].__class__(**{**BUILTIN_CONFIGS[names[0]].__dict__, "history_length": 100})


def test_replay_of_the_simulators_cassettes_and_the_same_histories_for_every_model() -> None:
    cfg = BUILTIN_CONFIGS["BNRN0-hard-T100-single-uniform"]
    opts = RunOptions(cassette_dir=CASSETTES, record_mode="none", concurrency=4)
    sim = run_case(SIM, cfg, opts)
    record = case_record(sim)
    assert record["errors"] == [] and record["passed"]
    m = {k: v["value"] for k, v in record["metrics"].items()}
    # The simulator answers the best average of the history: always greedy; LeastFrac pinned.
    assert m == {"format_compliance": 1.0, "greedy_frac": 1.0, "least_frac": 0.32, "best_arm_rate": 0.44}
    assert record["steps"] == 50 * 31 and sim.replayed == 50 and sim.recorded == 0
    # 50 histories x 30 rounds of the uniform policy, then the decision: the same histories for a baseline.
    ucb = run_case("baseline/ucb", cfg)
    for a, b in zip(sim.trajectories, ucb.trajectories, strict=True):
        assert [(s.arm, s.reward) for s in a.steps[:30]] == [(s.arm, s.reward) for s in b.steps[:30]]
        assert len(a.steps) == len(b.steps) == 31
    values = {k: v["value"] for k, v in case_record(ucb)["metrics"].items()}
    assert (values["greedy_frac"], values["least_frac"]) == (0.86, 0.48)


def test_the_bill_counts_one_request_per_history(tmp_path) -> None:
    from bandit_bench.plugin.spend import estimate_case

    cfg = BUILTIN_CONFIGS["BNSN0-hard-T100-single-ts"]
    est = estimate_case("openai/x", cfg, tmp_path, "once", {})
    assert (est.episodes, est.requests) == (50, 50)


def test_no_published_episode_rows_and_no_scale_rows_for_a_screen() -> None:
    from bandit_bench.reporting.published import published_records
    from bandit_bench.reporting.scale import scale_records

    cfg = BUILTIN_CONFIGS["BSSC~0-hard-T100-single-ucb"]
    assert published_records(cfg) == [] and scale_records(cfg) == []
