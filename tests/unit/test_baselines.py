from __future__ import annotations

import numpy as np
import pytest

from bandit_bench import Agent, BanditInstance, InstanceSpec, draw_instance, run_episode
from bandit_bench.core.agents.baselines import BASELINES, BaselineAgent, run_baseline_batch
from bandit_bench.core.metrics import EpisodeBatch, point_values

# K=4, delta=0.2, T=20, base seed 3, episode 0: best arm 1. Arm sequences with
# default_rng(2024), computed once and pasted: any change to a chooser's logic or to the
# order and amount of its random draws changes them.
SMALL = InstanceSpec(k=4, delta=0.2, horizon=20)
EXPECTED_ARMS = {
    "ucb": [0, 1, 2, 3, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
    "ts": [0, 2, 0, 1, 1, 1, 0, 2, 1, 3, 2, 2, 0, 3, 1, 1, 3, 1, 1, 1],
    "greedy": [0, 1, 2, 3, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    "eps_greedy": [0, 0, 1, 2, 3, 3, 2, 3, 1, 1, 2, 1, 2, 0, 1, 1, 1, 1, 2, 2],
    "uniform": [0, 2, 0, 0, 1, 1, 3, 3, 3, 3, 0, 0, 3, 0, 0, 0, 3, 1, 1, 0],
}


def _small_instance() -> BanditInstance:
    inst, _, _ = draw_instance(SMALL, 3, 0)
    return inst


def test_small_instance_is_the_one_the_literals_were_computed_on() -> None:
    inst = _small_instance()
    assert inst.best_arm == 1
    assert inst.rewards[:, 1].tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0]


@pytest.mark.parametrize("name", BASELINES)
def test_exact_arm_sequence(name: str) -> None:
    arms = run_baseline_batch(name, _small_instance().rewards[None], np.random.default_rng(2024))
    assert arms.shape == (1, 20)
    assert arms[0].tolist() == EXPECTED_ARMS[name]


@pytest.mark.parametrize("name", BASELINES)
def test_agent_path_matches_batch_path(name: str) -> None:
    inst = _small_instance()
    batch = run_baseline_batch(name, inst.rewards[None], np.random.default_rng(2024))
    traj = run_episode(
        BaselineAgent(name),
        inst,
        harness_rng=np.random.default_rng(99),
        policy_rng=np.random.default_rng(2024),
        arm_names=("A", "B", "C", "D"),
    )
    assert [s.arm for s in traj.steps] == batch[0].tolist()
    assert all(s.valid and s.raw is None for s in traj.steps)


@pytest.mark.parametrize("name", ["ucb", "greedy"])
def test_every_arm_once_first_in_index_order(name: str) -> None:
    spec = InstanceSpec(k=6, delta=0.2, horizon=30)
    tables = np.stack([draw_instance(spec, 0, i)[0].rewards for i in range(50)])
    arms = run_baseline_batch(name, tables, np.random.default_rng(0))
    assert (arms[:, :6] == np.arange(6)).all()


def test_greedy_breaks_ties_at_random_but_reproducibly() -> None:
    # All-zero rewards: after the round robin every mean ties at 0, so only the tie-break decides.
    zeros = np.zeros((2, 8, 3), dtype=np.int8)
    first = run_baseline_batch("greedy", zeros, np.random.default_rng(1))
    again = run_baseline_batch("greedy", zeros, np.random.default_rng(1))
    other = run_baseline_batch("greedy", zeros, np.random.default_rng(2))
    assert first.tolist() == [[0, 1, 2, 2, 0, 2, 1, 2], [0, 1, 2, 2, 2, 2, 2, 2]]
    assert again.tolist() == first.tolist()
    assert other.tolist() == [[0, 1, 2, 0, 1, 1, 2, 0], [0, 1, 2, 1, 0, 0, 1, 1]]


def test_ucb_prefers_the_less_pulled_arm_among_equal_means() -> None:
    zeros = np.zeros((1, 8, 3), dtype=np.int8)
    arms = run_baseline_batch("ucb", zeros, np.random.default_rng(1))[0].tolist()
    assert arms == [0, 1, 2, 1, 0, 2, 2, 1]
    # With equal means the bonus sqrt(1/n) forces the counts to stay within one of each other.
    for t in range(3, 9):
        counts = np.bincount(arms[:t], minlength=3)
        assert counts.max() - counts.min() <= 1


def test_ucb_and_ts_beat_uniform_on_best_arm_rate() -> None:
    spec = InstanceSpec(k=5, delta=0.5, horizon=200)
    instances = [draw_instance(spec, 0, i)[0] for i in range(200)]
    tables = np.stack([inst.rewards for inst in instances])
    best = np.array([inst.best_arm for inst in instances])
    rates = {}
    for j, name in enumerate(BASELINES):
        arms = run_baseline_batch(name, tables, np.random.default_rng([0, j]))
        rewards = np.take_along_axis(tables, arms[:, :, None], axis=2)[:, :, 0]
        rates[name] = point_values(EpisodeBatch.from_arrays(arms, rewards, best, 5, 0.5))["best_arm_rate"]
    assert rates == pytest.approx(
        {"ucb": 0.9206, "ts": 0.873475, "greedy": 0.71635, "eps_greedy": 0.80665, "uniform": 0.20045}
    )
    assert rates["ucb"] > 0.85 and rates["ts"] > 0.85
    assert rates["uniform"] < 0.25


def test_agent_protocol_and_name() -> None:
    agent = BaselineAgent("eps_greedy", epsilon=0.3)
    assert isinstance(agent, Agent)
    assert agent.name == "baseline/eps_greedy"


def test_unknown_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="'softmax'.*ucb, ts, greedy, eps_greedy, uniform"):
        BaselineAgent("softmax")
    with pytest.raises(ValueError, match="expected one of"):
        run_baseline_batch("UCB", np.zeros((1, 2, 2)), np.random.default_rng(0))


def test_epsilon_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        BaselineAgent("eps_greedy", epsilon=1.5)


def test_epsilon_one_is_uniform_and_zero_never_explores() -> None:
    inst = _small_instance()
    always = run_baseline_batch("eps_greedy", inst.rewards[None], np.random.default_rng(5), epsilon=1.0)
    # Every step explores: no round robin, and the best arm (1) gets no special treatment.
    assert always[0].tolist() == [0, 3, 1, 1, 0, 0, 3, 0, 2, 2, 1, 2, 3, 1, 1, 3, 3, 1, 0, 3]
    never = run_baseline_batch("eps_greedy", inst.rewards[None], np.random.default_rng(5), epsilon=0.0)
    assert never[0].tolist() == [0, 1, 2, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("name", ["ucb", "greedy"])
def test_ucb_and_greedy_pull_each_arm_once_first(name: str) -> None:
    spec = InstanceSpec(k=5, delta=0.2, horizon=12)
    tables = np.stack([draw_instance(spec, 0, i)[0].rewards for i in range(50)])
    arms = run_baseline_batch(name, tables, np.random.default_rng(1))
    assert (arms[:, :5] == np.arange(5)).all()


def test_ts_samples_from_round_one_with_no_initial_pulls() -> None:
    """Appendix A.1 prints TS with a uniform prior and no start: its first K pulls are draws
    from the prior, not a round robin."""
    spec = InstanceSpec(k=5, delta=0.2, horizon=12)
    tables = np.stack([draw_instance(spec, 0, i)[0].rewards for i in range(50)])
    arms = run_baseline_batch("ts", tables, np.random.default_rng(1))
    assert not (arms[:, :5] == np.arange(5)).all(axis=1).any()
    # Round 1: every arm's posterior is the same Beta(1, 1), so each arm is about as likely.
    assert sorted(np.bincount(arms[:, 0], minlength=5).tolist()) == [5, 7, 8, 14, 16]


@pytest.mark.parametrize(
    ("k", "delta", "seed", "greedy_frac", "paper"),
    [(5, 0.2, 0, 0.619, 0.62), (5, 0.2, 1, 0.616, 0.62), (4, 0.5, 0, 0.883, 0.88), (4, 0.5, 2, 0.881, 0.88)],
)
def test_ts_greedy_frac_matches_the_paper(k: int, delta: float, seed: int, greedy_frac: float, paper: float):
    """The paper's TS (Figure 11, 1000 replicates, T = 100) reads GreedyFrac 0.62 on the hard
    instance and 0.88 on the easy one: TS as appendix A.1 prints it, scored with the paper's
    GreedyFrac, gives them (the one-pull start, used before GreedyFrac was fixed, is not needed)."""
    from bandit_bench.core.agents.baselines import run_on_instances
    from bandit_bench.core.metrics import point_values

    run = run_on_instances("ts", InstanceSpec(k=k, delta=delta, horizon=100), seed, 1000)
    batch = EpisodeBatch.from_arrays(run.arms, run.rewards, run.best_arm, k, delta)
    value = point_values(batch)["greedy_frac"]
    assert round(value, 3) == greedy_frac
    assert abs(value - paper) < 0.01
