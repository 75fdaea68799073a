"""The classic algorithms at the paper's scale: 1000 episodes of a config's instance spec.

The reference rows beside a model run on the model's own N episodes (the same instances and
reward tables: that pairing is what makes a difference between them mean something), and at
N = 2 or 10 they are noisy. The paper's baseline rows use 1000 replicates (Section 3.2), so
each instance in a report also gets UCB, TS and Greedy over 1000 episodes of the same instance
spec (K, delta, T, base seed): episodes 0..999, drawn as every run draws them. These rows are
marked ``(N=1000)`` in the model column; they are not paired with the models' episodes
(one generator runs all 1000 at once), carry no steps, and ``compare`` leaves them out.

They cost about 1.5 ms of CPU per step of the horizon (3000 episodes), more than the model's
own replayed episodes at N = 10, and they depend only on the instance spec and the code that
computes them. So a run may keep them in a :class:`Store` (the plugin passes pytest's cache,
``.pytest_cache``, cleared by ``--cache-clear``) under a key of the spec, numpy's version and a
digest of the source of every module they are computed by: changed code is a new key, never an
old number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bandit_bench.core.metrics import Estimate
    from bandit_bench.core.specs import CaseConfig

__all__ = [
    "SCALE_ALGORITHMS",
    "SCALE_EPISODES",
    "SCALE_SUFFIX",
    "Store",
    "is_scale_reference",
    "scale_records",
]

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


class Store(Protocol):
    """Where computed rows may be kept between runs: pytest's ``config.cache`` is one."""

    def get(self, key: str, default: Any) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


# Every module whose code decides a number of these rows (the instances, the algorithms and
# their generators, the metrics): an edit to any of them changes the key.
_CODE = (
    "bandit_bench.core.agents.baselines",
    "bandit_bench.core.bandit",
    "bandit_bench.core.metrics",
    "bandit_bench.core.seeding",
    "bandit_bench.core.specs",
    "bandit_bench.reporting.scale",
)


@lru_cache(maxsize=1)
def _code_digest() -> str:
    import importlib

    import numpy as np

    digest = hashlib.sha256(np.__version__.encode())
    for name in _CODE:
        module = importlib.import_module(name)
        with open(str(module.__file__), "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()[:20]


def _store_key(k: int, delta: float, horizon: int, seed: int) -> str:
    spec = json.dumps([k, delta, horizon, seed, SCALE_EPISODES, SCALE_ALGORITHMS, _code_digest()])
    return f"bandit_bench/scale/{hashlib.sha256(spec.encode()).hexdigest()[:24]}"


def _encoded(summaries: tuple[tuple[str, dict[str, Estimate]], ...]) -> list[Any]:
    # Lists, not objects: pytest's cache writes JSON with sorted keys, and the metrics' order is
    # the order of the report's columns.
    return [
        [name, [[m, float(e.value), float(e.low), float(e.high), int(e.n)] for m, e in metrics.items()]]
        for name, metrics in summaries
    ]


def _decoded(stored: Any) -> tuple[tuple[str, dict[str, Estimate]], ...] | None:
    """The summaries a store held, or None for anything not shaped as :func:`_encoded` writes
    (an entry of another version, a damaged file): they are then computed again."""
    from bandit_bench.core.metrics import Estimate

    def estimate(e: Any) -> bool:
        return (
            isinstance(e, list)
            and len(e) == 5
            and isinstance(e[0], str)
            and all(isinstance(x, float) for x in e[1:4])
            and type(e[4]) is int
        )

    if not isinstance(stored, list) or len(stored) != len(SCALE_ALGORITHMS):
        return None
    out = []
    for row, name in zip(stored, SCALE_ALGORITHMS, strict=True):
        if not (isinstance(row, list) and len(row) == 2 and row[0] == name and isinstance(row[1], list)):
            return None
        if not row[1] or not all(map(estimate, row[1])):
            return None
        out.append((name, {m: Estimate(value=v, low=lo, high=hi, n=n) for m, v, lo, hi, n in row[1]}))
    return tuple(out)


def _stored_summaries(
    k: int, delta: float, horizon: int, seed: int, store: Store | None
) -> tuple[tuple[str, dict[str, Estimate]], ...]:
    if store is None:
        return _summaries(k, delta, horizon, seed)
    key = _store_key(k, delta, horizon, seed)
    found = _decoded(store.get(key, None))
    if found is not None:
        return found
    summaries = _summaries(k, delta, horizon, seed)
    store.set(key, _encoded(summaries))
    return summaries


def scale_records(config: CaseConfig, store: Store | None = None) -> list[dict[str, Any]]:
    """Case records of UCB, TS and Greedy over 1000 episodes of ``config``'s instance spec,
    shaped like a measured case's record (no trajectories: the report keeps no steps of them).

    With a ``store``, the rows computed once for a spec are read from it afterwards."""
    if config.single_round:
        return []  # one decision per history: the baselines' own decisions are the paired rows
    inst = config.instance
    records = []
    for name, metrics in _stored_summaries(inst.k, inst.delta, inst.horizon, config.run.seed, store):
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
