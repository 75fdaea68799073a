from __future__ import annotations

import numpy as np
import pytest

from bandit_bench import StepRecord, Trajectory
from bandit_bench.core import metrics as m
from bandit_bench.core.metrics import EpisodeBatch, Estimate, wilson


def three_episodes() -> EpisodeBatch:
    """K=3, T=4, delta=0.5. Every expected value below is worked out by hand from these rows.

    e0 always pulls its best arm 0; e1 never pulls its best arm 0 and has one invalid reply;
    e2 tries every arm (best arm 2) and ends on arm 0.
    """
    return EpisodeBatch.from_arrays(
        arms=[[0, 0, 0, 0], [1, 2, 1, 1], [0, 1, 2, 0]],
        rewards=[[1, 0, 1, 1], [0, 0, 1, 0], [0, 1, 1, 1]],
        valid=[[True] * 4, [True, False, True, True], [True] * 4],
        best_arm=[0, 0, 2],
        k=3,
        delta=0.5,
    )


def test_per_episode_values() -> None:
    b = three_episodes()
    assert m.episode_format_compliance(b).tolist() == [1.0, 0.75, 1.0]
    assert m.episode_best_arm_rate(b).tolist() == [1.0, 0.0, 0.25]
    assert m.episode_suffix_failure(b).tolist() == [False, True, False]
    # counts (4,0,0), (0,3,1), (2,1,1): K * min / T
    assert m.episode_k_min_frac(b).tolist() == [0.0, 0.0, 0.75]
    # e0: t=0 untried, then arm 0 is the only pulled arm: all greedy. e1: t=0, t=1 untried, t=2
    # arm 1 ties arm 2 at 0, t=3 arm 1 (1/2) beats arm 2 (0). e2: t=0..2 untried, t=3 arm 0 (0)
    # below arms 1 and 2 (1): not greedy.
    assert m.episode_greedy_frac(b).tolist() == [1.0, 1.0, 0.75]
    # mean rewards 0.75, 0.25, 0.75 with 0.25 -> 0 and 0.75 -> 1
    assert m.episode_rescaled_reward(b).tolist() == [1.0, 0.0, 1.0]
    assert m.episode_regret(b).tolist() == [0.0, 2.0, 1.5]


def test_summary_values_and_units() -> None:
    s = m.summarize(three_episodes())
    assert list(s) == [
        "format_compliance",
        "best_arm_rate",
        "best_arm_rate_second_half",
        "suffix_failure_freq",
        "k_min_frac",
        "greedy_frac",
        "median_reward",
        "mean_regret",
    ]
    expected = {
        "format_compliance": (11 / 12, 12),
        "best_arm_rate": (5 / 12, 12),
        "best_arm_rate_second_half": (3 / 6, 6),
        "suffix_failure_freq": (1 / 3, 3),
        "k_min_frac": (0.25, 3),
        "greedy_frac": (2.75 / 3, 3),
        "median_reward": (1.0, 3),
        "mean_regret": (3.5 / 3, 3),
    }
    for name, (value, n) in expected.items():
        assert s[name].value == pytest.approx(value), name
        assert s[name].n == n, name
        assert s[name].low <= s[name].value <= s[name].high, name


def test_point_values_are_the_summary_values() -> None:
    b = three_episodes()
    assert m.point_values(b) == {name: est.value for name, est in m.summarize(b).items()}


def test_wilson_intervals_of_pooled_shares() -> None:
    b = three_episodes()
    assert m.summarize(b)["format_compliance"] == Estimate(11 / 12, *wilson(11, 12), n=12)
    assert m.summarize(b)["suffix_failure_freq"] == Estimate(1 / 3, *wilson(1, 3), n=3)


def test_bootstrap_intervals_are_seeded_and_pinned() -> None:
    b = three_episodes()
    first = m.summarize(b)
    assert m.summarize(b) == first
    # Resampling [0, 0, 0.75] can only give means 0, 0.25, 0.5, 0.75.
    assert (first["k_min_frac"].low, first["k_min_frac"].high) == (0.0, 0.75)
    assert (first["median_reward"].low, first["median_reward"].high) == (0.0, 1.0)


def _twenty_episodes() -> EpisodeBatch:
    rng = np.random.default_rng(7)
    arms, rewards = rng.integers(0, 4, size=(20, 12)), rng.integers(0, 2, size=(20, 12))
    return EpisodeBatch.from_arrays(arms, rewards, [0] * 20, k=4, delta=0.3)


def test_bootstrap_intervals_of_a_spread_batch_are_the_2_5_and_97_5_percentiles_of_seed_0() -> None:
    """summary.json's intervals are part of the report: the same episodes give the same bounds
    on every run (seed 0, 2000 resamples, the 2.5th and 97.5th percentiles)."""
    s = m.summarize(_twenty_episodes())
    assert (s["k_min_frac"].value, s["k_min_frac"].low, s["k_min_frac"].high) == pytest.approx(
        (0.4666667, 0.3666667, 0.5666667), abs=1e-6
    )
    assert (s["greedy_frac"].value, s["greedy_frac"].low, s["greedy_frac"].high) == pytest.approx(
        (0.7, 0.6416667, 0.7708333), abs=1e-6
    )
    assert (s["median_reward"].low, s["median_reward"].high) == pytest.approx(
        (-0.0555556, 0.9166667), abs=1e-6
    )
    assert (s["mean_regret"].value, s["mean_regret"].low, s["mean_regret"].high) == pytest.approx(
        (2.79, 2.58, 2.985), abs=1e-9
    )
    assert s["mean_regret"].n == 20


def test_a_one_step_episode_is_a_batch() -> None:
    b = EpisodeBatch.from_arrays([[1], [0]], [[1], [0]], [1, 1], k=2, delta=0.2)
    assert (b.n, b.horizon) == (2, 1)
    assert m.episode_best_arm_rate(b).tolist() == [1.0, 0.0]


def test_batch_refusals_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"no steps: every episode has horizon 0; expected T >= 1"):
        EpisodeBatch.from_arrays(np.zeros((2, 0)), np.zeros((2, 0)), [0, 0], k=2, delta=0.2)
    with pytest.raises(ValueError, match=r"best_arm: got shape \(1,\); expected \(2,\)"):
        EpisodeBatch.from_arrays([[0], [1]], [[0], [1]], [0], k=2, delta=0.2)
    for delta in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=rf"delta: got {delta}; expected a number in \(0, 1\)"):
            EpisodeBatch.from_arrays([[0]], [[0]], [0], k=2, delta=delta)
    with pytest.raises(ValueError, match=r"best_arm: values must lie in 0..1"):
        EpisodeBatch.from_arrays([[0]], [[0]], [2], k=2, delta=0.2)
    with pytest.raises(ValueError, match="a batch holds the episodes of one instance spec"):
        EpisodeBatch.from_trajectories([_traj(0, [0, 1, 1]), _traj(1, [0, 1], horizon=2)])
    with pytest.raises(ValueError, match="only complete episodes count"):
        EpisodeBatch.from_trajectories([_traj(4, [0, 1])])
    with pytest.raises(ValueError, match=r"successes: got 11; expected 0..10"):
        wilson(11, 10)


def test_wilson_uses_the_z_it_is_given() -> None:
    # z = 1: centre (0.5 + 1/20) / 1.1 = 0.5, half sqrt(0.025 + 0.0025) / 1.1.
    half = float(np.sqrt(0.0275) / 1.1)
    assert wilson(5, 10, z=1.0) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)


def test_always_best_arm_episode() -> None:
    b = EpisodeBatch.from_arrays([[2] * 10], [[1, 0] * 5], [2], k=3, delta=0.2)
    s = m.summarize(b)
    assert s["best_arm_rate"].value == 1.0
    assert s["suffix_failure_freq"].value == 0.0
    assert s["k_min_frac"].value == 0.0
    assert s["mean_regret"] == Estimate(0.0, 0.0, 0.0, 1)
    # time-averaged reward 0.5 is halfway between 0.4 and 0.6
    assert s["median_reward"].value == pytest.approx(0.5)


def test_greedy_frac_takes_the_highest_average_among_pulled_arms() -> None:
    # t=0: untried, greedy. t=1: arm 0 is the only pulled arm, so the highest: greedy although
    # arm 1 is untried. t=2: the untried arm 1 itself: greedy. t=3: arm 1 (0/1) below arm 0 (2/2).
    b = EpisodeBatch.from_arrays([[0, 0, 1, 1]], [[1, 1, 0, 0]], [1], k=2, delta=0.2)
    assert m.episode_greedy_frac(b).tolist() == [0.75]


def test_an_agent_stuck_on_one_arm_is_fully_greedy() -> None:
    # The paper's stuck rows (Figure 16, BNRN0: K*MinFrac 0.00, GreedyFrac 1.00): one arm
    # pressed throughout, whatever it pays, is greedy at every round.
    b = EpisodeBatch.from_arrays([[0] * 100, [3] * 100], [[0] * 100, [1, 0] * 50], [1, 3], k=5, delta=0.2)
    assert m.episode_greedy_frac(b).tolist() == [1.0, 1.0]
    assert m.episode_k_min_frac(b).tolist() == [0.0, 0.0]


def test_greedy_frac_ties_count_as_highest() -> None:
    # After t=1 both arms average 1/1 and 1/1, then 2/2 vs 1/1: equal fractions tie exactly.
    b = EpisodeBatch.from_arrays([[0, 1, 0, 1]], [[1, 1, 1, 1]], [0], k=2, delta=0.2)
    assert m.episode_greedy_frac(b).tolist() == [1.0]


def test_rescaled_reward_can_be_negative() -> None:
    b = EpisodeBatch.from_arrays([[0, 1, 0, 1]] * 3, [[0, 0, 0, 0]] * 3, [0, 0, 0], k=2, delta=0.5)
    assert m.summarize(b)["median_reward"].value == pytest.approx(-0.5)
    assert m.summarize(b)["median_reward"].high == pytest.approx(-0.5)


def test_second_half_starts_at_t_half() -> None:
    # T=5: the second half is t = 2, 3, 4 (T // 2 = 2).
    b = EpisodeBatch.from_arrays([[1, 1, 0, 1, 1]], [[0] * 5], [0], k=2, delta=0.2)
    assert m.summarize(b)["best_arm_rate_second_half"].value == pytest.approx(1 / 3)
    assert m.summarize(b)["suffix_failure_freq"].value == 0.0
    late = EpisodeBatch.from_arrays([[0, 0, 1, 1, 1]], [[0] * 5], [0], k=2, delta=0.2)
    assert m.summarize(late)["suffix_failure_freq"].value == 1.0


def test_curves() -> None:
    b = three_episodes()
    assert m.suffix_failure_curve(b).tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3])


def test_wilson_known_values() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    with pytest.raises(ValueError, match="no trials"):
        wilson(0, 0)


def test_empty_input_is_an_error_not_nan() -> None:
    with pytest.raises(ValueError, match="no episodes"):
        EpisodeBatch.from_trajectories([])
    with pytest.raises(ValueError, match="no episodes"):
        EpisodeBatch.from_arrays(np.zeros((0, 4)), np.zeros((0, 4)), [], k=2, delta=0.2)


def _traj(
    episode: int, arms: list[int], *, horizon: int = 3, k: int = 2, error: str | None = None
) -> Trajectory:
    steps = [StepRecord(t=t, arm=a, reward=t % 2, valid=a == 0) for t, a in enumerate(arms)]
    return Trajectory(episode=episode, k=k, horizon=horizon, delta=0.2, best_arm=1, steps=steps, error=error)


def test_from_trajectories() -> None:
    b = EpisodeBatch.from_trajectories([_traj(0, [0, 1, 1]), _traj(1, [1, 1, 0])])
    assert b.arms.tolist() == [[0, 1, 1], [1, 1, 0]]
    assert b.rewards.tolist() == [[0, 1, 0], [0, 1, 0]]
    assert b.valid.tolist() == [[True, False, False], [False, False, True]]
    assert b.best_arm.tolist() == [1, 1]
    assert (b.k, b.delta, b.n, b.horizon) == (2, 0.2, 2, 3)


def test_from_trajectories_refuses_incomplete_or_mixed_episodes() -> None:
    with pytest.raises(ValueError, match="episode 7: errored"):
        EpisodeBatch.from_trajectories([_traj(0, [0, 1, 1]), _traj(7, [0], error="step 2 of 3: boom")])
    with pytest.raises(ValueError, match="episode 4: 2 steps of 3"):
        EpisodeBatch.from_trajectories([_traj(4, [0, 1])])
    with pytest.raises(ValueError, match="episode 1: k=3"):
        EpisodeBatch.from_trajectories([_traj(0, [0, 1, 1]), _traj(1, [0, 1, 2], k=3)])


def test_shape_and_range_checks() -> None:
    with pytest.raises(ValueError, match="rewards: got shape"):
        EpisodeBatch.from_arrays([[0, 1]], [[0, 1, 1]], [0], k=2, delta=0.2)
    with pytest.raises(ValueError, match="arms: values must lie in 0..1"):
        EpisodeBatch.from_arrays([[0, 2]], [[0, 1]], [0], k=2, delta=0.2)
