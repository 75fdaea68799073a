"""The paper's exploration metrics: pure functions of a batch of complete episodes.

Per-episode functions (``episode_*``) return one value per episode, shape (N,). Summary
functions return an :class:`Estimate` with a 95% interval: a Wilson interval where the metric
is a share of independent-looking units, a percentile bootstrap over episodes otherwise. The
bootstrap uses its own generator seeded with 0, so a summary is a deterministic function of
the batch: the same cassettes give the same report, digit for digit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bandit_bench.core.episode import Trajectory

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
Z_95 = 1.96


@dataclass(frozen=True)
class Estimate:
    """A point value with its 95% interval; ``n`` is the number of units the interval is over."""

    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class EpisodeBatch:
    """N complete episodes of one case, as arrays: ``arms``, ``rewards``, ``valid`` are (N, T)."""

    arms: np.ndarray
    rewards: np.ndarray
    valid: np.ndarray
    best_arm: np.ndarray
    k: int
    delta: float

    def __post_init__(self) -> None:
        if self.arms.ndim >= 1 and self.arms.shape[0] == 0:
            raise ValueError(f"no episodes: arms has shape {self.arms.shape}; expected (N >= 1, T >= 1)")
        if self.arms.ndim != 2:
            raise ValueError(f"arms: got shape {self.arms.shape}; expected (episodes, horizon)")
        if self.arms.shape[1] == 0:
            raise ValueError("no steps: every episode has horizon 0; expected T >= 1")
        for name in ("rewards", "valid"):
            shape = getattr(self, name).shape
            if shape != self.arms.shape:
                raise ValueError(f"{name}: got shape {shape}; expected {self.arms.shape} like arms")
        if self.best_arm.shape != (self.arms.shape[0],):
            raise ValueError(f"best_arm: got shape {self.best_arm.shape}; expected ({self.arms.shape[0]},)")
        if self.k < 2:
            raise ValueError(f"k: got {self.k!r}; expected an integer >= 2")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta: got {self.delta!r}; expected a number in (0, 1)")
        for name, values in (("arms", self.arms), ("best_arm", self.best_arm)):
            if values.min() < 0 or values.max() >= self.k:
                raise ValueError(f"{name}: values must lie in 0..{self.k - 1}")

    @property
    def n(self) -> int:
        return int(self.arms.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.arms.shape[1])

    @classmethod
    def from_arrays(
        cls,
        arms: np.ndarray | Sequence[Sequence[int]],
        rewards: np.ndarray | Sequence[Sequence[int]],
        best_arm: np.ndarray | Sequence[int],
        k: int,
        delta: float,
        valid: np.ndarray | Sequence[Sequence[bool]] | None = None,
    ) -> EpisodeBatch:
        """A batch from (N, T) arms and rewards; ``valid`` defaults to every step valid."""
        arms_a = np.asarray(arms, dtype=np.int64)
        valid_a = np.ones(arms_a.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        return cls(
            arms=arms_a,
            rewards=np.asarray(rewards, dtype=np.int64),
            valid=valid_a,
            best_arm=np.asarray(best_arm, dtype=np.int64),
            k=int(k),
            delta=float(delta),
        )

    @classmethod
    def from_trajectories(cls, trajs: Sequence[Trajectory]) -> EpisodeBatch:
        """A batch from complete trajectories sharing k, horizon and delta."""
        if len(trajs) == 0:
            raise ValueError("no episodes: got an empty list of trajectories")
        first = trajs[0]
        for tr in trajs:
            if (tr.k, tr.horizon, tr.delta) != (first.k, first.horizon, first.delta):
                raise ValueError(
                    f"episode {tr.episode}: k={tr.k}, horizon={tr.horizon}, delta={tr.delta} differs from "
                    f"episode {first.episode}'s k={first.k}, horizon={first.horizon}, delta={first.delta}; "
                    "a batch holds the episodes of one instance spec"
                )
            if tr.error is not None:
                raise ValueError(f"episode {tr.episode}: errored ({tr.error}); drop it or re-run it first")
            if len(tr.steps) != tr.horizon:
                raise ValueError(
                    f"episode {tr.episode}: {len(tr.steps)} steps of {tr.horizon}; "
                    "only complete episodes count"
                )
        return cls(
            arms=np.array([[s.arm for s in tr.steps] for tr in trajs], dtype=np.int64),
            rewards=np.array([[s.reward for s in tr.steps] for tr in trajs], dtype=np.int64),
            valid=np.array([[s.valid for s in tr.steps] for tr in trajs], dtype=bool),
            best_arm=np.array([tr.best_arm for tr in trajs], dtype=np.int64),
            k=first.k,
            delta=float(first.delta),
        )


# ---------------------------------------------------------------------------- intervals


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion: sane at 0 and n, unlike the Wald interval."""
    if n <= 0:
        raise ValueError(f"no trials: got n={n}; expected n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes: got {successes}; expected 0..{n}")
    low, high = wilson_bounds(np.asarray(successes / n), n, z)
    return float(low), float(high)


def wilson_bounds(p: np.ndarray, n: int, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson bounds for observed shares ``p`` (any shape) out of ``n`` trials each."""
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _wilson_estimate(hits: np.ndarray) -> Estimate:
    n = int(hits.size)
    s = int(hits.sum())
    low, high = wilson(s, n)
    return Estimate(value=s / n, low=low, high=high, n=n)


def _bootstrap_estimate(values: np.ndarray, stat: Callable[..., np.ndarray]) -> Estimate:
    """Point value ``stat(values)`` with a percentile bootstrap interval over episodes."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n = int(values.size)
    idx = rng.integers(n, size=(BOOTSTRAP_RESAMPLES, n))
    resampled = stat(values[idx], axis=1)
    low, high = np.percentile(resampled, [2.5, 97.5])
    return Estimate(value=float(stat(values)), low=float(low), high=float(high), n=n)


# ---------------------------------------------------------------------------- per episode


def on_best(batch: EpisodeBatch) -> np.ndarray:
    """(N, T) booleans: the pull at step t of episode n was the best arm."""
    return np.asarray(batch.arms == batch.best_arm[:, None])


def _counts(batch: EpisodeBatch) -> np.ndarray:
    """(N, K) pulls per arm."""
    flat = (np.arange(batch.n)[:, None] * batch.k + batch.arms).ravel()
    return np.bincount(flat, minlength=batch.n * batch.k).reshape(batch.n, batch.k)


def episode_format_compliance(batch: EpisodeBatch) -> np.ndarray:
    return batch.valid.mean(axis=1)


def episode_best_arm_rate(batch: EpisodeBatch) -> np.ndarray:
    return on_best(batch).mean(axis=1)


def episode_suffix_failure(batch: EpisodeBatch) -> np.ndarray:
    """True where the episode never picks the best arm after step T//2: in the last T - T//2
    rounds (0-based steps T//2..T-1; rounds 51-100 of T = 100).

    The paper words SuffFail(t) two ways: "never chosen in rounds [t, T]" (Section 3.1), which
    would take in round t itself, and "never chosen after time-step t" (Figure 1). This is the
    second, because it is the one the paper reads its numbers with ("these configurations do
    not pull the best arm even once in the last half of the rounds") and the one its Figure 1
    curves plot; the window is then exactly the second half. The two differ by one round: on
    the shipped baselines (1000 episodes, T = 100) at most 0.002.
    """
    return np.asarray(~on_best(batch)[:, batch.horizon // 2 :].any(axis=1))


def episode_k_min_frac(batch: EpisodeBatch) -> np.ndarray:
    """K times the smallest share of the T pulls that any arm got: 1 for a perfectly even split."""
    return batch.k * _counts(batch).min(axis=1) / batch.horizon


def episode_greedy_frac(batch: EpisodeBatch) -> np.ndarray:
    """Share of rounds whose chosen arm had the highest average reward so far (the paper's
    GreedyFrac, Section 3.1).

    "Highest" is taken among the arms pulled so far, ties included, and pulling an arm not tried
    yet counts as greedy (so round 1 always does). This is the one reading that fits every
    published number: an agent stuck on one arm scores 1.00, as the paper's rows with K*MinFrac
    0.00 and GreedyFrac 1.00 need (Figures 12 and 16, BNSN0), and on 1000 replicates at T = 100
    UCB reads 0.76 (hard) / 0.94 (easy) and Greedy 1.00 / 1.00, the paper's baseline rows. The
    other reading, an untried arm standing at +inf, caps a replicate that never tries some arm
    at (K-1)/T and contradicts 76 of the paper's 151 model rows (51 with K*MinFrac 0.00).
    """
    n, k = batch.n, batch.k
    counts = np.zeros((n, k), dtype=np.int64)
    sums = np.zeros((n, k), dtype=np.int64)
    greedy = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for t in range(batch.horizon):
        # Exact ties are safe: equal fractions of integers divide to the identical float.
        # Unpulled arms sit at -inf, so the row maximum is the maximum over pulled arms.
        avg = np.divide(sums, counts, out=np.full((n, k), -np.inf), where=counts > 0)
        arm = batch.arms[:, t]
        untried = counts[rows, arm] == 0
        greedy += untried | (avg[rows, arm] >= avg.max(axis=1))
        counts[rows, arm] += 1
        sums[rows, arm] += batch.rewards[:, t]
    return greedy / batch.horizon


def episode_rescaled_reward(batch: EpisodeBatch) -> np.ndarray:
    """Time-averaged reward mapped so that 0.5 - delta/2 -> 0 and 0.5 + delta/2 -> 1."""
    return (batch.rewards.mean(axis=1) - (0.5 - batch.delta / 2)) / batch.delta


def episode_regret(batch: EpisodeBatch) -> np.ndarray:
    """Pseudo-regret: sum over t of best mean minus chosen arm's mean = delta x non-best pulls."""
    return batch.delta * (~on_best(batch)).sum(axis=1)


# ---------------------------------------------------------------------------- summaries

# name -> (the units the metric averages over, the statistic, the interval). Wilson metrics
# are shares of pooled units (steps or episodes); bootstrap metrics resample episodes. One table
# drives both summaries and point values, so the CLI's figures are the report's figures.
# The Wilson interval of best_arm_rate treats pulls as independent; pulls within an episode are
# correlated (an agent that locks onto an arm does so for many rounds), so it is optimistic.
_Units = Callable[[EpisodeBatch], np.ndarray]
_METRICS: dict[str, tuple[_Units, Callable[..., Any], str]] = {
    "format_compliance": (lambda b: b.valid, np.mean, "wilson"),
    "best_arm_rate": (on_best, np.mean, "wilson"),
    "best_arm_rate_second_half": (lambda b: on_best(b)[:, b.horizon // 2 :], np.mean, "wilson"),
    "suffix_failure_freq": (episode_suffix_failure, np.mean, "wilson"),
    "k_min_frac": (episode_k_min_frac, np.mean, "bootstrap"),
    "greedy_frac": (episode_greedy_frac, np.mean, "bootstrap"),
    "median_reward": (episode_rescaled_reward, np.median, "bootstrap"),
    "mean_regret": (episode_regret, np.mean, "bootstrap"),
}
METRIC_NAMES: tuple[str, ...] = tuple(_METRICS)


def _summary(name: str, batch: EpisodeBatch) -> Estimate:
    units_of, stat, interval = _METRICS[name]
    units = units_of(batch)
    if interval == "wilson":
        return _wilson_estimate(units)
    return _bootstrap_estimate(units, stat)


def summarize(batch: EpisodeBatch) -> dict[str, Estimate]:
    """Every summary metric of the batch with its interval, keyed as in :data:`METRIC_NAMES`."""
    return {name: _summary(name, batch) for name in _METRICS}


def point_values(batch: EpisodeBatch) -> dict[str, float]:
    """The values of :func:`summarize` without intervals: no bootstrap, for large batches."""
    return {name: float(stat(units_of(batch))) for name, (units_of, stat, _) in _METRICS.items()}


# ---------------------------------------------------------------------------- curves for plots


def suffix_failure_curve(batch: EpisodeBatch) -> np.ndarray:
    """(T,) for each t the share of episodes that never pick the best arm after step t (0-based
    steps t..T-1): the Figure 1 curve, with the metric ``suffix_failure_freq`` its value at T//2."""
    hit_from_t = np.flip(np.logical_or.accumulate(np.flip(on_best(batch), axis=1), axis=1), axis=1)
    return (~hit_from_t).mean(axis=0)
