"""Best-arm thresholds that follow the horizon run (issue 20).

The long presets' best-arm threshold is the classic algorithms' floor at their instance and
horizon (:data:`~bandit_bench.core.specs.BEST_ARM_THRESHOLDS`). ``--horizon T`` makes another
instance, so its threshold is that rule at T, computed here (a fraction of a second at T = 100),
not the preset's T = 100 value, which not even UCB reaches at T = 10.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

from bandit_bench.core.specs import CaseConfig, InstanceSpec

CLASSIC_EPISODES = 1000
CLASSIC_STEP = 0.05


@functools.lru_cache(maxsize=64)
def classic_best_arm_floor(k: int, delta: float, horizon: int, seed: int = 0) -> float:
    """The lowest best-arm rate of UCB, TS and Greedy over 1000 episodes of this instance and
    horizon (seed 0), rounded down to a multiple of 0.05: the rule behind BEST_ARM_THRESHOLDS."""
    from bandit_bench.core.agents.baselines import run_on_instances
    from bandit_bench.core.metrics import EpisodeBatch, point_values

    spec = InstanceSpec(k=k, delta=delta, horizon=horizon)
    rates = []
    for name in ("ucb", "ts", "greedy"):
        run = run_on_instances(name, spec, seed, CLASSIC_EPISODES)
        batch = EpisodeBatch.from_arrays(run.arms, run.rewards, run.best_arm, spec.k, spec.delta)
        rates.append(point_values(batch)["best_arm_rate"])
    # The small epsilon keeps 0.45 from flooring to 0.40 through float noise.
    return round(math.floor(min(rates) / CLASSIC_STEP + 1e-9) * CLASSIC_STEP, 2)


def follow_horizon(base: CaseConfig, config: CaseConfig) -> CaseConfig:
    """``config`` (``base`` with overrides) with the best-arm threshold of its own horizon, when
    ``base``'s threshold is the classic floor and the horizon changed; the note says so."""
    if base.best_arm_rule != "classic" or config.instance.horizon == base.instance.horizon:
        return config
    inst = config.instance
    return replace(
        config,
        min_best_arm_rate=classic_best_arm_floor(inst.k, inst.delta, inst.horizon),
        threshold_note=f"UCB/TS/Greedy floor at T={inst.horizon}",
    )
