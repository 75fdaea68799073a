"""The paper's own published numbers, as reference rows beside measured ones.

``data/published.json`` holds the per-configuration summary tables of Krishnamurthy et al.
(NeurIPS 2024), transcribed by hand, each with the figure it comes from. A config of a run
gets a ``paper/<model>`` row for every table entry on its design, instance and horizon: these
rows are published, never measured, so they carry no steps, no interval and no pass/fail
(verdict ``published``), and the only metrics the paper tabulates: MedianReward,
SuffFailFreq(T/2), K*MinFrac and GreedyFrac, with the paper's replicate count as episodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bandit_bench.core.specs import CaseConfig

__all__ = ["PUBLISHED_KIND", "PublishedRow", "published_records", "published_rows"]

# The summary rows' ``kind`` and verdict for the paper's numbers.
PUBLISHED_KIND = "published"
# The four statistics of the paper's tables, under this package's metric names.
PUBLISHED_METRICS: tuple[str, ...] = ("median_reward", "suffix_failure_freq", "k_min_frac", "greedy_frac")
_DATA = Path(__file__).resolve().parent / "data" / "published.json"


@dataclass(frozen=True)
class PublishedRow:
    """One row of one of the paper's tables."""

    model: str  # "paper/gpt-4", "paper/gpt-3.5", "paper/llama-2-13b"
    design: str  # the paper's code, reinforced chain of thought spelt C~
    instance: str  # "hard" or "easy"
    k: int
    delta: float
    horizon: int
    replicates: int
    source: str  # "Figure 11(a), row BNRN0"
    metrics: dict[str, float]


@lru_cache(maxsize=1)
def _load() -> tuple[PublishedRow, ...]:
    from bandit_bench.core.specs import INSTANCE_PRESETS, DesignSpec

    data = json.loads(_DATA.read_text(encoding="utf-8"))
    columns = data["columns"]
    rows = []
    for table in data["tables"]:
        k, delta = INSTANCE_PRESETS[table["instance"]]
        for values in table["rows"]:
            entry = dict(zip(columns, values, strict=True))
            design = DesignSpec.parse(entry.pop("design")).code
            rows.append(
                PublishedRow(
                    model=table["model"],
                    design=design,
                    instance=table["instance"],
                    k=k,
                    delta=delta,
                    horizon=table["horizon"],
                    replicates=table["replicates"],
                    source=f"{table['source']}, row {design}",
                    metrics={m: float(entry[m]) for m in PUBLISHED_METRICS},
                )
            )
    return tuple(rows)


def published_rows(
    design: str | None = None, *, k: int | None = None, delta: float | None = None, horizon: int | None = None
) -> list[PublishedRow]:
    """The published rows, optionally only those of one design code, instance and horizon."""
    out = []
    for row in _load():
        if design is not None and row.design != design:
            continue
        if k is not None and row.k != k:
            continue
        if delta is not None and abs(row.delta - delta) > 1e-9:
            continue
        if horizon is not None and row.horizon != horizon:
            continue
        out.append(row)
    return out


def published_records(config: CaseConfig) -> list[dict[str, Any]]:
    """Case records of the paper's rows for ``config``: same shape as a measured case's record,
    with ``kind`` = ``published`` and the ``source`` (figure and row) they were transcribed from.

    A constrained-answer config gets the rows of its design too: the prompt is the paper's, the
    grammar that forces the answer's format is ours, and the config column says so.
    """
    inst = config.instance
    return [
        {
            "model": row.model,
            "config": config.name,
            "kind": PUBLISHED_KIND,
            "source": row.source,
            "design": config.design.code,
            "k": inst.k,
            "delta": inst.delta,
            "horizon": inst.horizon,
            "episodes": row.replicates,
            "seed": None,
            "constrained": False,
            "thresholds": {},
            "metrics": {
                m: {"value": v, "low": None, "high": None, "n": row.replicates}
                for m, v in row.metrics.items()
            },
            "steps": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "provider_cost": None,
            "passed": None,
            "expected_failure": False,
            "errors": [],
            "trajectories": [],
        }
        for row in published_rows(config.design.code, k=inst.k, delta=inst.delta, horizon=inst.horizon)
    ]
