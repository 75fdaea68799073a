"""The grid as the paper prints it: per scenario, instance and T, one table of designs.

A run of a suite holds many configs; the per-config tables list them one by one. A researcher
reproducing the paper wants its Figure 11 layout instead: per scenario (buttons, adverts),
instance and horizon, one table with the designs as rows and, for each model, the four
statistics the paper tabulates (MedianReward, SuffFailFreq(T/2), K*MinFrac, GreedyFrac), beside
the paper's published values for the same designs and the classic algorithms over 1000
episodes. A measured model's cell group says when its case failed, errored or fell short as
declared (xfail). Built from summary rows alone, so ``bandit-bench report`` redraws it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GRID_STATS",
    "Grid",
    "GridCell",
    "grid_markdown",
    "paper_grids",
    "report_preface",
    "single_round_grids",
]

# (summary column, short header, long name), in the order of the paper's tables.
GRID_STATS: tuple[tuple[str, str, str], ...] = (
    ("median_reward", "MR", "MedianReward"),
    ("suffix_failure_freq", "SF", "SuffFailFreq(T/2)"),
    ("k_min_frac", "KMF", "K*MinFrac"),
    ("greedy_frac", "GF", "GreedyFrac"),
)
_SCENARIOS = {"B": "buttons", "A": "adverts"}
# The paper's order of the design letters: framing N, S; history R, S; CoT N, C, C~; output 0, 1, D.
_LETTER_ORDER = {"N": 0, "S": 1, "R": 0, "C": 1, "C~": 2, "0": 0, "1": 1, "D": 2}
# The paper's models in the order of its figures (GPT-4: Figure 11, GPT-3.5: 12-15, Llama 2: 16).
_PAPER_ORDER = {"paper/gpt-4": 0, "paper/gpt-3.5": 1, "paper/llama-2-13b": 2}
_MARKS = {"FAIL": "fail", "ERROR": "error", "xfail": "xfail", "XPASS": "xpass"}


@dataclass(frozen=True)
class GridCell:
    text: str
    cls: str = ""  # "fail", "error", "xfail", "xpass" on a marked case's first cell
    title: str = ""  # hover text: where a published number comes from, a verdict


@dataclass(frozen=True)
class GridRow:
    kind: str  # "design" or "reference"
    label: str  # "BNRN0", "BNSN0 constrained", "ucb (N=1000)"
    cells: tuple[GridCell, ...]  # len(GRID_STATS) per column group


@dataclass(frozen=True)
class Grid:
    title: str  # "buttons, K = 5, delta = 0.2, T = 100"
    groups: tuple[str, ...]  # one per model: measured models, the paper's, then the references
    rows: tuple[GridRow, ...]


def _design_key(design: str) -> tuple[int, ...]:
    cot = "C~" if "C~" in design else design[3]
    return (
        _LETTER_ORDER.get(design[1], 9),
        _LETTER_ORDER.get(design[2], 9),
        _LETTER_ORDER.get(cot, 9),
        _LETTER_ORDER.get(design[-1], 9),
    )


def _num(value: Any) -> str:
    return "-" if value is None or value != value else f"{float(value):.2f}"


def _cells(row: Mapping[str, Any] | None, mark: str = "", title: str = "") -> list[GridCell]:
    if row is None:
        return [GridCell("") for _ in GRID_STATS]
    cells = [GridCell(_num(row.get(col))) for col, _, _ in GRID_STATS]
    first = cells[0]
    cells[0] = GridCell(
        f"{first.text} {mark}" if mark else first.text, _MARKS.get(mark, ""), title or first.title
    )
    return cells


def _design_rows(
    configs: Sequence[str],
    facts: Mapping[str, Mapping[str, Any]],
    rows_of: Mapping[tuple[str, str], Mapping[str, Any]],
    models: Sequence[str],
    published: Sequence[str],
    references: bool,
) -> list[GridRow]:
    """One grid row per design (config): the measured models' cells with their verdict marks,
    the published rows' cells, and blanks under the reference group."""
    from bandit_bench.reporting.tables import verdict

    rows = []
    for c in configs:
        label = str(facts[c]["design"]) + (" constrained" if facts[c].get("constrained") else "")
        cells: list[GridCell] = []
        for m in models:
            row = rows_of.get((m, c))
            mark = verdict(row) if row is not None else ""
            cells += _cells(row, mark if mark in _MARKS else "", f"{m} x {c}: {mark}" if row else "")
        for m in published:
            row = rows_of.get((m, c))
            cells += _cells(row, title=str(row.get("source") or "") if row else "")
        if references:
            cells += _cells(None)
        rows.append(GridRow("design", label, tuple(cells)))
    return rows


def paper_grids(summary: Sequence[Mapping[str, Any]]) -> list[Grid]:
    """The grids of a run's summary rows: one per scenario, instance and T that holds at least two
    designs (or a design both plain and constrained) measured in this run; none otherwise."""
    from bandit_bench.reporting.scale import is_scale_reference
    from bandit_bench.reporting.tables import kind_of

    measured = [r for r in summary if kind_of(r) == "model" and not r.get("single_round")]
    by_instance: dict[tuple[Any, ...], list[str]] = {}
    facts: dict[str, Mapping[str, Any]] = {}
    for r in measured:
        key = (r["k"], r["delta"], r["horizon"])
        if r["config"] not in facts:
            facts[r["config"]] = r
            by_instance.setdefault(key, []).append(str(r["config"]))
    grids = []
    for (k, delta, horizon), configs in by_instance.items():
        if len({(facts[c].get("design"), bool(facts[c].get("constrained"))) for c in configs}) < 2:
            continue
        same = [r for r in summary if (r["k"], r["delta"], r["horizon"]) == (k, delta, horizon)]
        references = sorted(
            {str(r["model"]): r for r in same if is_scale_reference(r)}.values(),
            key=lambda r: str(r["model"]),
        )
        for scenario, name in _SCENARIOS.items():
            mine = [c for c in configs if str(facts[c].get("design") or "").startswith(scenario)]
            if not mine:
                continue
            mine.sort(
                key=lambda c: (_design_key(str(facts[c]["design"])), bool(facts[c].get("constrained")), c)
            )
            rows_of = {(str(r["model"]), str(r["config"])): r for r in same if r["config"] in mine}
            models = sorted({m for (m, c), r in rows_of.items() if kind_of(r) == "model"})
            published = sorted(
                {m for (m, c), r in rows_of.items() if kind_of(r) == "published"},
                key=lambda m: (_PAPER_ORDER.get(m, len(_PAPER_ORDER)), m),
            )
            groups = list(models)
            for m in published:
                ns = sorted({int(rows_of[m, c]["episodes"]) for c in mine if (m, c) in rows_of})
                groups.append(f"{m} (N={'/'.join(map(str, ns))})")
            if references:
                groups.append("reference, 1000 episodes")
            rows = _design_rows(mine, facts, rows_of, models, published, bool(references))
            for ref in references:
                cells = [GridCell("") for _ in range(len(GRID_STATS) * (len(groups) - 1))]
                cells += _cells(ref, title=str(ref.get("source") or ""))
                rows.append(GridRow("reference", str(ref["model"]).removeprefix("baseline/"), tuple(cells)))
            title = f"{name}, K = {k}, delta = {delta}, T = {horizon}"
            grids.append(Grid(title, tuple(groups), tuple(rows)))
    return grids


def grid_markdown(grids: Sequence[Grid]) -> str:
    """The grids as markdown tables (empty string when there is none)."""
    if not grids:
        return ""
    out = [
        "## The grid as the paper prints it",
        "",
        "Per scenario, instance and T, the designs as rows and, per model, "
        + ", ".join(f"{short} = {long}" for _, short, long in GRID_STATS)
        + "; then the paper's published rows and UCB, TS and Greedy over 1000 episodes. "
        "FAIL / ERROR: the case fell below a threshold or errored; xfail: a declared shortfall.",
        "",
    ]
    return "\n".join(out + _tables_markdown(grids, "design", GRID_STATS))


def _tables_markdown(grids: Sequence[Grid], first: str, stats: Sequence[tuple[str, str, str]]) -> list[str]:
    """Each grid as a markdown table under its title: ``first`` column, then per group its
    ``stats`` by short name (the first one prefixed with the group)."""
    out: list[str] = []
    for g in grids:
        out += [f"**{g.title}**", ""]
        header = [first]
        for group in g.groups:
            header += [f"{group}: {stats[0][1]}", *(short for _, short, _ in stats[1:])]
        out.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
        out.append("| " + " | ".join("---" for _ in header) + " |")
        for row in g.rows:
            out.append("| " + " | ".join([row.label, *(c.text for c in row.cells)]) + " |")
        out.append("")
    return out


# ---------------------------------------------------------------------------- single round

SINGLE_ROUND_STATS: tuple[tuple[str, str, str], ...] = (
    ("greedy_frac", "GF", "GreedyFrac of the decision: the largest average among pulled arms, or untried"),
    ("least_frac", "LF", "LeastFrac: the decision is among the least pulled arms of the history"),
    ("format_compliance", "valid", "share of decisions with a valid answer"),
)


def single_round_grids(summary: Sequence[Mapping[str, Any]]) -> list[Grid]:
    """The single-round screen (appendix E) as one table per instance: (design, model) as rows,
    per history policy GreedyFrac, LeastFrac and the share of valid decisions."""
    from bandit_bench.core.single_round import HISTORY_SOURCES
    from bandit_bench.reporting.tables import kind_of

    rows = [r for r in summary if r.get("single_round") and kind_of(r) != "published"]
    by_instance: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        by_instance.setdefault((r["k"], r["delta"], r["horizon"], r["episodes"]), []).append(r)
    grids = []
    for (k, delta, horizon, n), members in by_instance.items():
        keys = sorted(
            {(str(r["design"]), str(r["model"])) for r in members},
            key=lambda dm: (_design_key(dm[0]), kind_of({"model": dm[1]}) != "model", dm[1]),
        )
        cell_of = {(str(r["design"]), str(r["model"]), str(r["single_round"])): r for r in members}
        out = []
        for design, model in keys:
            cells = []
            for source in HISTORY_SOURCES:
                found = cell_of.get((design, model, source))
                cells += [
                    GridCell(_num(found.get(col)) if found else "", title=long)
                    for col, _, long in SINGLE_ROUND_STATS
                ]
            kind = "design" if kind_of({"model": model}) == "model" else "reference"
            out.append(GridRow(kind, f"{design} {model}", tuple(cells)))
        title = f"single round, K = {k}, delta = {delta}, told T = {horizon}, {n} histories per policy"
        grids.append(Grid(title, tuple(f"after {s}" for s in HISTORY_SOURCES), tuple(out)))
    return grids


def single_round_markdown(grids: Sequence[Grid]) -> str:
    if not grids:
        return ""
    out = [
        "## Single-round screen (appendix E)",
        "",
        "One decision per history of 30 rounds played by a uniform, UCB or TS policy on the hard instance. "
        + "; ".join(f"{short} = {long}" for _, short, long in SINGLE_ROUND_STATS)
        + ". A screen, not an episode: it says whether the model would exploit or explore from a given "
        "history, not whether it recovers from its own mistakes.",
        "",
    ]
    return "\n".join(out + _tables_markdown(grids, "design model", SINGLE_ROUND_STATS))


def report_preface(summary: Sequence[Mapping[str, Any]]) -> str:
    """What opens report.md: the paper's grid and the single-round screen, where the run has them."""
    parts = (grid_markdown(paper_grids(summary)), single_round_markdown(single_round_grids(summary)))
    return "\n".join(p for p in parts if p)
