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

__all__ = [
    "PUBLISHED_KIND",
    "PublishedBaseline",
    "PublishedRow",
    "inconsistencies",
    "published_baselines",
    "published_records",
    "published_rows",
]

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
    # What about this row is our reading rather than the paper's text ("" when nothing is).
    inferred: str = ""


# Figure 11's chain-of-thought rows other than BSSC~0 (published.json, each table's "inferred").
INFERRED_COT = (
    "read as plain chain of thought (C), as the extracted label says; inferred: the text extraction "
    "loses tildes and the paper says GPT-4 primarily used reinforced CoT, so it may be C~"
)


@dataclass(frozen=True)
class PublishedBaseline:
    """One of the paper's baseline rows (TS, UCB, Greedy over 1000 replicates) of a table."""

    algorithm: str  # "ts", "ucb", "greedy"
    instance: str
    k: int
    delta: float
    horizon: int
    replicates: int
    source: str  # "Figure 11(a), baseline ts"
    metrics: dict[str, float]


# The paper's baseline rows are over 1000 replicates (Section 3.2).
BASELINE_REPLICATES = 1000


@lru_cache(maxsize=1)
def _load_baselines() -> tuple[PublishedBaseline, ...]:
    from bandit_bench.core.specs import INSTANCE_PRESETS

    data = json.loads(_DATA.read_text(encoding="utf-8"))
    columns = data["columns"]
    out = []
    for table in data["tables"]:
        k, delta = INSTANCE_PRESETS[table["instance"]]
        for values in table.get("baselines", []):
            entry = dict(zip(columns, values, strict=True))
            name = entry.pop("design")
            out.append(
                PublishedBaseline(
                    algorithm=name,
                    instance=table["instance"],
                    k=k,
                    delta=delta,
                    horizon=table["horizon"],
                    replicates=BASELINE_REPLICATES,
                    source=f"{table['source']}, baseline {name}",
                    metrics={m: float(entry[m]) for m in PUBLISHED_METRICS},
                )
            )
    return tuple(out)


def published_baselines(*, k: int | None = None, horizon: int | None = None) -> list[PublishedBaseline]:
    """The paper's baseline rows, optionally only those of one K and horizon."""
    return [
        b for b in _load_baselines() if (k is None or b.k == k) and (horizon is None or b.horizon == horizon)
    ]


# Half a unit of the paper's last printed digit: a value printed 0.42 is in [0.415, 0.425].
_ROUNDING = 0.005 + 1e-9


def _reachable(value: float, step: float) -> bool:
    """True when some multiple of ``step`` rounds to ``value`` at two decimals."""
    return abs(round(value / step) * step - value) <= _ROUNDING


def inconsistencies(row: PublishedRow, *, greedy_rule: str = "pulled") -> list[str]:
    """What in ``row`` no N replicates of T rounds can produce under this package's metric
    definitions; empty when the row is possible.

    - SuffFailFreq(T/2) is a share of the N replicates: a multiple of 1/N, printed rounded.
    - K*MinFrac averages K * (fewest pulls of an arm) / T over N replicates: a multiple of
      K/(T N).
    - GreedyFrac against K*MinFrac: ``greedy_rule="pulled"`` is :func:`episode_greedy_frac`
      (highest average among the pulled arms; an untried arm counts as greedy), under which a
      replicate can be greedy in every round whatever its K*MinFrac. ``greedy_rule="untried-inf"``
      is the rule this package used before (an untried arm at +inf): a replicate that never
      tries some arm is then greedy in at most K-1 rounds, so a low K*MinFrac caps GreedyFrac.
    """
    k, horizon, n = row.k, row.horizon, row.replicates
    m = row.metrics
    out = []
    if not _reachable(m["suffix_failure_freq"], 1 / n):
        out.append(f"SuffFailFreq {m['suffix_failure_freq']:.2f} is no multiple of 1/{n} (N = {n})")
    if not _reachable(m["k_min_frac"], k / (horizon * n)):
        out.append(f"K*MinFrac {m['k_min_frac']:.2f} is no multiple of K/(T N) = {k}/{horizon * n}")
    if greedy_rule == "untried-inf":
        # Each replicate that tried every arm adds at least K/T to the K*MinFrac sum, so at most
        # floor(max sum / (K/T)) replicates did; the others are greedy in <= K-1 of T rounds.
        tried_all = min(n, int((m["k_min_frac"] + _ROUNDING) * n * horizon / k))
        cap = (tried_all + (n - tried_all) * (k - 1) / horizon) / n
        if m["greedy_frac"] - _ROUNDING > cap:
            out.append(
                f"GreedyFrac {m['greedy_frac']:.2f} exceeds {cap:.3f}, the most an untried arm at +inf "
                f"allows with K*MinFrac {m['k_min_frac']:.2f} over N = {n}"
            )
    elif greedy_rule != "pulled":
        raise ValueError(f"greedy_rule: got {greedy_rule!r}; expected 'pulled' or 'untried-inf'")
    else:
        # Round 1 and the first pull of each arm are greedy: at least one round, K rounds in a
        # replicate that tried every arm; at most every round.
        floor = 1 / horizon
        if m["greedy_frac"] + _ROUNDING < floor:
            out.append(f"GreedyFrac {m['greedy_frac']:.2f} is below 1/T, round 1 being always greedy")
    return out


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
                    inferred=INFERRED_COT if design in table.get("inferred", ()) else "",
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
    if config.single_round:
        return []  # a single-round screen is not an episode: the paper's episode rows do not apply
    inst = config.instance
    return [
        {
            "model": row.model,
            "config": config.name,
            "kind": PUBLISHED_KIND,
            "source": row.source,
            "inferred": row.inferred,
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
