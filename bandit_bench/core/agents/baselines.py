"""Classic bandit algorithms as reference rows, vectorised over episodes with numpy.

Each algorithm is one *chooser*: ``choose_<name>(counts, sums, t, rng, **params)`` maps the
per-arm pull counts and reward sums of N episodes, shapes (N, K), to the N arms to pull next.
The CLI runs N episodes at once through :func:`run_baseline_batch`; :class:`BaselineAgent`
runs the very same chooser with N = 1 behind the per-step :class:`~bandit_bench.core.agents.Agent`
protocol, so both paths choose identical arms from identical generator states.

Every chooser draws the same amount of randomness at every step, whatever the data, so a
generator's state after step t depends only on t and N: runs stay reproducible and the two
paths stay in lock-step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING

import numpy as np

from bandit_bench.core.agents.base import Decision, EpisodeContext

if TYPE_CHECKING:
    from bandit_bench.core.specs import InstanceSpec

BASELINES: tuple[str, ...] = ("ucb", "ts", "greedy", "eps_greedy", "uniform")

# UCB scores an arm by mean + sqrt(C / n) with C = 1: a fixed C rather than a textbook log(t)
# factor. With it UCB reproduces the paper's 1000-replicate rows (GreedyFrac 0.76 hard / 0.94
# easy, K*MinFrac 0.18 / 0.09; tests/unit/test_published.py), so the reference rows are the
# paper's algorithm and not a better- or worse-tuned cousin of it.
UCB_C = 1.0
EPSILON = 0.1

Chooser = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]


def _argmax_random_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of (N, K) scores, ties broken uniformly at random with ``rng``."""
    # One uniform key per cell, drawn even when no row has a tie, keeps the draws per step fixed.
    keys = rng.random(scores.shape)
    tied = scores == scores.max(axis=1, keepdims=True)
    return np.where(tied, keys, -1.0).argmax(axis=1)


def _first_unpulled(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of rows with an unpulled arm, lowest-index unpulled arm of each row)."""
    unpulled = counts == 0
    return unpulled.any(axis=1), unpulled.argmax(axis=1)


def _means(counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    # Unpulled arms get 0 here; callers override those rows with the round robin anyway.
    return np.divide(sums, counts, out=np.zeros(counts.shape), where=counts > 0)


def choose_ucb(
    counts: np.ndarray, sums: np.ndarray, t: int, rng: np.random.Generator, *, c: float = UCB_C
) -> np.ndarray:
    """UCB: each arm once in index order, then the largest mean + sqrt(c / n), random ties."""
    bonus = np.sqrt(c / np.maximum(counts, 1))
    best = _argmax_random_ties(_means(counts, sums) + bonus, rng)
    has_unpulled, first = _first_unpulled(counts)
    return np.where(has_unpulled, first, best)


def choose_ts(counts: np.ndarray, sums: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
    """Thompson sampling exactly as the paper's appendix A.1 prints it: a uniform Beta(1, 1)
    prior per arm, independent Beta-Bernoulli updates, and at every round the argmax of one
    Beta(1 + wins, 1 + losses) draw per arm, from round 1 on (no initial pulls).

    With the paper's GreedyFrac (see :func:`bandit_bench.core.metrics.episode_greedy_frac`) it
    gives 0.615 (hard) and 0.880 (easy) over 1000 episodes at T = 100, the paper's 0.62 / 0.88.
    """
    # Continuous draws: ties have probability zero, so plain argmax is enough.
    return np.asarray(rng.beta(1.0 + sums, 1.0 + counts - sums).argmax(axis=1))


def choose_greedy(counts: np.ndarray, sums: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy: each arm once in index order, then the best mean so far, random ties."""
    best = _argmax_random_ties(_means(counts, sums), rng)
    has_unpulled, first = _first_unpulled(counts)
    return np.where(has_unpulled, first, best)


def choose_eps_greedy(
    counts: np.ndarray,
    sums: np.ndarray,
    t: int,
    rng: np.random.Generator,
    *,
    epsilon: float = EPSILON,
) -> np.ndarray:
    """Epsilon-greedy: with probability epsilon a uniformly random arm, otherwise :func:`choose_greedy`.

    The exploring coin is tossed from the first step on, so the greedy branch's round robin over
    unpulled arms can be interrupted (and an arm pulled twice before another is tried once); the
    round robin belongs to the greedy branch, not to a separate warm-up phase.
    """
    n, k = counts.shape
    explore = rng.random(n) < epsilon
    random_arm = rng.integers(k, size=n)
    return np.where(explore, random_arm, choose_greedy(counts, sums, t, rng))


def choose_uniform(counts: np.ndarray, sums: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random arm, ignoring the data."""
    return np.asarray(rng.integers(counts.shape[1], size=counts.shape[0]))


def get_chooser(name: str, *, epsilon: float = EPSILON) -> Chooser:
    """The chooser of baseline ``name`` with its parameters bound.

    Raises ValueError for a name outside :data:`BASELINES` or an epsilon outside [0, 1].
    """
    if name == "ucb":
        return choose_ucb
    if name == "ts":
        return choose_ts
    if name == "greedy":
        return choose_greedy
    if name == "eps_greedy":
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon: got {epsilon!r}; expected a number in [0, 1]")
        return partial(choose_eps_greedy, epsilon=epsilon)
    if name == "uniform":
        return choose_uniform
    raise ValueError(f"baseline: got {name!r}; expected one of {', '.join(BASELINES)}")


def run_baseline_batch(
    name: str, rewards: np.ndarray, rng: np.random.Generator, *, epsilon: float = EPSILON
) -> np.ndarray:
    """Run baseline ``name`` on N episodes at once; returns the (N, T) arms pulled.

    ``rewards`` is the stacked (N, T, K) reward tables: arm ``a`` at step ``t`` of episode
    ``n`` pays ``rewards[n, t, a]``, the same table an LLM faces in that episode.
    """
    choose = get_chooser(name, epsilon=epsilon)
    if rewards.ndim != 3:
        raise ValueError(f"rewards: got shape {rewards.shape}; expected (episodes, horizon, arms)")
    n, horizon, k = rewards.shape
    counts = np.zeros((n, k), dtype=np.int64)
    sums = np.zeros((n, k), dtype=np.int64)
    arms = np.empty((n, horizon), dtype=np.int64)
    rows = np.arange(n)
    for t in range(horizon):
        arm = choose(counts, sums, t, rng)
        arms[:, t] = arm
        counts[rows, arm] += 1
        sums[rows, arm] += rewards[rows, t, arm]
    return arms


@dataclass(frozen=True)
class BaselineRun:
    """A baseline's N episodes on the benchmark's instances, as (N, T) arrays."""

    arms: np.ndarray
    rewards: np.ndarray
    best_arm: np.ndarray


@lru_cache(maxsize=4)
def instance_tables(spec: InstanceSpec, seed: int, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """The stacked (N, T, K) reward tables and the (N,) best arms of episodes ``0..N-1`` of
    ``spec``, read-only. Kept for the next caller: the report's three reference algorithms run
    on the same 1000 instances, drawn once instead of three times."""
    from bandit_bench.core.bandit import draw_instance

    instances = [draw_instance(spec, seed, i)[0] for i in range(episodes)]
    tables = np.stack([inst.rewards for inst in instances])
    best = np.array([inst.best_arm for inst in instances], dtype=np.int64)
    tables.setflags(write=False)
    best.setflags(write=False)
    return tables, best


def run_on_instances(
    name: str, spec: InstanceSpec, seed: int, episodes: int, *, epsilon: float = EPSILON
) -> BaselineRun:
    """Baseline ``name`` on episodes ``0..episodes-1`` of ``spec``: the LLM runs' very instances.

    One generator per algorithm, ``default_rng([seed, j])`` with ``j`` its index in
    :data:`BASELINES`, so the CLI, the report's reference rows and ``--model baseline/...``
    give the same numbers for the same seed, instance and episode count.
    """
    tables, best = instance_tables(spec, seed, episodes)
    rng = np.random.default_rng([seed, BASELINES.index(name)])
    arms = run_baseline_batch(name, tables, rng, epsilon=epsilon)
    rewards = np.take_along_axis(tables, arms[:, :, None], axis=2)[:, :, 0]
    return BaselineRun(arms=arms, rewards=rewards, best_arm=best)


class BaselineAgent:
    """A baseline behind the per-step :class:`~bandit_bench.core.agents.Agent` protocol.

    Draws from ``ctx.rng``, the episode's policy generator, so a baseline's episode is as
    reproducible as the instance it runs on.
    """

    def __init__(self, name: str, epsilon: float = EPSILON) -> None:
        self._choose = get_chooser(name, epsilon=epsilon)
        self.algorithm = name
        self.epsilon = epsilon
        self.name = f"baseline/{name}"

    def choose(self, history: Sequence[tuple[int, int]], ctx: EpisodeContext) -> Decision:
        # Rebuilt from the history every step: O(T) per step, negligible at T <= 1000, and it
        # keeps the agent stateless, so one instance can serve many episodes.
        k = ctx.instance.k
        counts = np.zeros((1, k), dtype=np.int64)
        sums = np.zeros((1, k), dtype=np.int64)
        for arm, reward in history:
            counts[0, arm] += 1
            sums[0, arm] += reward
        arm = int(self._choose(counts, sums, len(history), ctx.rng)[0])
        return Decision(valid=True, arm=arm, raw=None)

    def __repr__(self) -> str:
        return f"BaselineAgent({self.algorithm!r}, epsilon={self.epsilon!r})"
