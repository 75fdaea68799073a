"""An episode's bandit instance, with its whole reward table drawn before the first step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit_bench.core.seeding import api_seed, episode_streams
from bandit_bench.core.specs import InstanceSpec


@dataclass(frozen=True)
class BanditInstance:
    """One episode's instance. ``rewards[t, a]`` is what arm ``a`` pays at step ``t`` (0-based),
    whoever pulls it: every model and baseline faces the same table (common random numbers)."""

    spec: InstanceSpec
    episode: int
    best_arm: int
    means: tuple[float, ...]
    rewards: np.ndarray  # shape (T, K), dtype int8, values 0/1
    seed: int  # the episode's API seed

    @property
    def k(self) -> int:
        return self.spec.k

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    def pull(self, t: int, arm: int) -> int:
        if not 0 <= arm < self.k:
            raise IndexError(f"arm {arm} out of range 0..{self.k - 1}")
        return int(self.rewards[t, arm])


def draw_instance(
    spec: InstanceSpec, base_seed: int, episode: int
) -> tuple[BanditInstance, np.random.Generator, np.random.Generator]:
    """The instance of episode ``episode``, plus its harness and policy generators.

    The harness generator picks the arm for invalid replies and samples distribution answers;
    the policy generator is handed to baseline algorithms.
    """
    inst_rng, harness_rng, policy_rng = episode_streams(base_seed, spec.key, episode)
    best = int(inst_rng.integers(spec.k))
    means = np.full(spec.k, spec.other_mean)
    means[best] = spec.best_mean
    rewards = (inst_rng.random((spec.horizon, spec.k)) < means).astype(np.int8)
    rewards.setflags(write=False)
    instance = BanditInstance(
        spec=spec,
        episode=episode,
        best_arm=best,
        means=tuple(float(m) for m in means),
        rewards=rewards,
        seed=api_seed(base_seed, spec.key, episode),
    )
    return instance, harness_rng, policy_rng
