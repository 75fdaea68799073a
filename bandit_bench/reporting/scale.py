"""The classic algorithms at the paper's scale: 1000 episodes of a config's instance spec.

The reference rows beside a model run on the model's own N episodes (the same instances and
reward tables: that pairing is what makes a difference between them mean something), and at
N = 2 or 10 they are noisy. The paper's baseline rows use 1000 replicates (Section 3.2), so
each instance in a report also gets UCB, TS and Greedy over 1000 episodes of the same instance
spec (K, delta, T, base seed): episodes 0..999, drawn as every run draws them. These rows are
marked ``(N=1000)`` in the model column; they are not paired with the models' episodes
(one generator runs all 1000 at once), carry no steps, and ``compare`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bandit_bench.core.metrics import Estimate
    from bandit_bench.core.specs import CaseConfig

__all__ = ["SCALE_ALGORITHMS", "SCALE_EPISODES", "SCALE_SUFFIX", "is_scale_reference", "scale_records"]

SCALE_EPISODES = 1000
SCALE_ALGORITHMS: tuple[str, ...] = ("ucb", "ts", "greedy")
# Appended to the baseline's model id: "baseline/ucb (N=1000)". A model id of its own
# keeps (model, config) unique in every table, the steps and the comparison.
SCALE_SUFFIX = f" (N={SCALE_EPISODES})"


def is_scale_reference(row: Mapping[str, Any]) -> bool:
    """True for a row of :func:`scale_records` (a baseline over 1000 unpaired episodes)."""
    return str(row.get("model", "")).endswith(SCALE_SUFFIX)


@lru_cache(maxsize=16)
def _summaries(k: int, delta: float, horizon: int, seed: int) -> tuple[tuple[str, dict[str, Estimate]], ...]:
    from bandit_bench.core.agents.baselines import run_on_instances
    from bandit_bench.core.metrics import EpisodeBatch, summarize
    from bandit_bench.core.specs import InstanceSpec

    spec = InstanceSpec(k=k, delta=delta, horizon=horizon)
    out = []
    for name in SCALE_ALGORITHMS:
        run = run_on_instances(name, spec, seed, SCALE_EPISODES)
        batch = EpisodeBatch.from_arrays(run.arms, run.rewards, run.best_arm, k, delta)
        out.append((name, summarize(batch)))
    return tuple(out)


def scale_records(config: CaseConfig) -> list[dict[str, Any]]:
    """Case records of UCB, TS and Greedy over 1000 episodes of ``config``'s instance spec,
    shaped like a measured case's record (no trajectories: the report keeps no steps of them)."""
    if config.single_round:
        return []  # one decision per history: the baselines' own decisions are the paired rows
    inst = config.instance
    records = []
    for name, metrics in _summaries(inst.k, inst.delta, inst.horizon, config.run.seed):
        records.append(
            {
                "model": f"baseline/{name}{SCALE_SUFFIX}",
                "config": config.name,
                "kind": "baseline",
                "source": f"{SCALE_EPISODES} episodes of the instance spec, the paper's replicate count; "
                "not paired with the models' episodes",
                "design": config.design.code,
                "k": inst.k,
                "delta": inst.delta,
                "horizon": inst.horizon,
                "episodes": SCALE_EPISODES,
                "seed": config.run.seed,
                "constrained": config.constrained,
                "thresholds": {},
                "metrics": {
                    m: {"value": e.value, "low": e.low, "high": e.high, "n": e.n} for m, e in metrics.items()
                },
                "steps": SCALE_EPISODES * inst.horizon,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "provider_cost": None,
                "passed": True,
                "expected_failure": False,
                "errors": [],
                "trajectories": [],
            }
        )
    return records
