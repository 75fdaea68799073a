"""The stopping rule: whenever it settles, the verdict equals the full run's (case_record's)."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_bench.core.early_stop import effective_thresholds, settle, wave_size
from bandit_bench.core.episode import StepRecord, Trajectory
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import CaseResult


def _config(episodes: int, horizon: int, fc: float, bar: float) -> CaseConfig:
    return CaseConfig(
        name="c",
        design=DesignSpec.parse("BNRN0"),
        instance=InstanceSpec(k=2, delta=0.5, horizon=horizon),
        run=RunSpec(episodes=episodes),
        min_format_compliance=fc,
        min_best_arm_rate=bar,
    )


def _episode(i: int, valid: list[bool], arms: list[int]) -> Trajectory:
    steps = [
        StepRecord(t=t, arm=a, reward=0, valid=v) for t, (v, a) in enumerate(zip(valid, arms, strict=True))
    ]
    return Trajectory(i, 2, len(steps), 0.5, 0, steps)


@pytest.mark.parametrize("episodes,size", [(2, 1), (5, 1), (10, 2), (11, 3), (100, 20)])
def test_waves_depend_on_the_number_of_episodes_alone(episodes, size):
    assert wave_size(episodes) == size


def test_two_episodes_without_a_valid_reply_settle_a_failure_of_ten():
    trajs = [_episode(i, [False] * 5, [0] * 5) for i in range(2)]
    s = settle(trajs, 10, {"format_compliance": 0.9, "best_arm_rate": 0.0})
    assert s is not None and not s.passed and s.episodes_run == 2
    assert s.reasons[0].startswith("format compliance 0.000 over 2 of 10 episodes x 5 steps")
    # With one fewer episode still to come the outcome could still reach 0.9 only with more data.
    assert settle(trajs[:1], 10, {"format_compliance": 0.9, "best_arm_rate": 0.0}) is None


def test_a_tie_with_the_threshold_is_settled_as_the_full_run_would_judge_it():
    # 1 of 2 episodes fully valid, the threshold 0.5 of 2 x 4 steps: 4/8 = 0.5 passes already.
    trajs = [_episode(0, [True] * 4, [0] * 4)]
    s = settle(trajs, 2, {"format_compliance": 0.5, "best_arm_rate": 0.5})
    assert s is not None and s.passed


def test_settled_verdicts_never_differ_from_the_full_run():
    rng = np.random.default_rng(7)
    checked = stopped = 0
    for _ in range(150):
        n, horizon = int(rng.integers(2, 12)), int(rng.integers(1, 6))
        fc, bar = float(rng.choice([0.0, 0.3, 0.5, 0.9, 1.0])), float(rng.choice([0.0, 0.25, 0.5, 1.0]))
        p_valid, p_best = rng.uniform(0, 1, size=2)
        trajs = [
            _episode(i, list(rng.random(horizon) < p_valid), [int(x) for x in rng.random(horizon) >= p_best])
            for i in range(n)
        ]
        config = _config(n, horizon, fc, bar)
        full = case_record(CaseResult("sim/m", config, trajs))["passed"]
        thresholds = effective_thresholds(config)
        for k in range(1, n):
            s = settle(trajs[:k], n, thresholds)
            checked += 1
            if s is not None:
                stopped += 1
                assert s.passed == full
                # Once settled it stays settled: later looks agree.
                assert all(settle(trajs[:j], n, thresholds) is not None for j in range(k, n))
    assert stopped > checked // 4  # the property was exercised, not vacuously true


def test_command_line_thresholds_override_the_configs():
    assert effective_thresholds(_config(3, 2, 0.9, 0.1), None, 0.4) == {
        "format_compliance": 0.9,
        "best_arm_rate": 0.4,
    }


def test_early_stop_uses_the_best_arm_override_given_to_run_case(simulator, tmp_path):
    # The config asks for a best-arm rate of 1.0, which always picking the first arm misses at the
    # first wave; the override of 0.0 (as --min-best-arm-rate 0 passes it) settles a pass there.
    from bandit_bench.running.runner import RunOptions, run_case
    from bandit_bench.servers.simulator import always

    config = CaseConfig(
        name="c",
        design=DesignSpec.parse("BNRN0"),
        instance=InstanceSpec(k=5, delta=0.2, horizon=2),
        run=RunSpec(episodes=10, seed=0),
        min_format_compliance=0.0,
        min_best_arm_rate=1.0,
    )
    sim = simulator(always(0))
    opts = RunOptions(base_url=sim.base_url, cassette_dir=tmp_path, record_mode="once", early_stop=True)
    result = run_case("sim/first", config, opts, min_best_arm_rate=0.0)
    assert result.settled is not None
    assert (result.settled.passed, result.settled.episodes_run) == (True, 2)
    assert case_record(result, min_best_arm_rate=0.0)["passed"] is True
    # Without the override the same two episodes settle the config's verdict: a failure.
    assert settle(result.trajectories, 10, effective_thresholds(config)).passed is False


def test_a_command_line_format_compliance_alone_overrides_the_configs():
    assert effective_thresholds(_config(3, 2, 0.9, 0.1), 0.5) == {
        "format_compliance": 0.5,
        "best_arm_rate": 0.1,
    }


def test_nothing_is_settled_by_a_whole_run_an_errored_or_an_unfinished_episode():
    thresholds = {"format_compliance": 0.9, "best_arm_rate": 0.0}
    invalid = [_episode(i, [False] * 2, [0] * 2) for i in range(3)]
    assert settle(invalid[:2], 3, thresholds) is not None  # two of three settle a failure...
    assert settle(invalid, 3, thresholds) is None  # ...but a run that is over is judged in full
    assert settle([], 3, thresholds) is None
    errored = _episode(0, [False] * 2, [0] * 2)
    errored.error = "step 2 of 2: the server went away"
    assert settle([errored, invalid[1]], 3, thresholds) is None  # the runner stops on it itself
    unfinished = Trajectory(0, 2, 2, 0.5, 0, [StepRecord(t=0, arm=0, reward=0, valid=False)])
    assert settle([unfinished, invalid[1]], 3, thresholds) is None


def test_a_settled_failure_says_why_and_what_the_record_holds():
    # 1 valid step of 5 in each of 2 episodes out of 10: 0.200 so far, at most 0.840 in the end.
    trajs = [_episode(i, [True] + [False] * 4, [0] * 5) for i in range(2)]
    s = settle(trajs, 10, {"format_compliance": 0.9, "best_arm_rate": 0.0})
    assert s is not None and (s.passed, s.episodes_run, s.episodes) == (False, 2, 10)
    reason = (
        "format compliance 0.200 over 2 of 10 episodes x 5 steps: even if the 8 remaining episodes were "
        "perfect it would reach only 0.840, below the threshold 0.900"
    )
    note = (
        "stopped after 2 of 10 episodes: verdict settled (fail; rule: the remaining episodes cannot "
        "change it; confidence 100%: the full run's verdict, exactly)"
    )
    assert s.reasons == (reason,)
    assert s.to_dict() == {
        "reason": "settled",
        "episodes_run": 2,
        "episodes": 10,
        "passed": False,
        "rule": "the remaining episodes cannot change it",
        "confidence": "100%: the full run's verdict, exactly",
        "reasons": [reason],
        "note": note,
    }


def test_a_settled_pass_says_why():
    trajs = [_episode(0, [True] * 4, [0] * 4)]
    s = settle(trajs, 2, {"format_compliance": 0.5, "best_arm_rate": 0.5})
    assert s is not None and (s.passed, s.episodes_run, s.episodes) == (True, 1, 2)
    assert s.reasons == (
        "format compliance is at least 0.500 >= 0.500 even if the 1 remaining episodes scored 0",
        "best-arm rate is at least 0.500 >= 0.500 even if the 1 remaining episodes scored 0",
    )
    assert s.note.startswith("stopped after 1 of 2 episodes: verdict settled (pass; ")
