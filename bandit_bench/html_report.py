"""``report.html``: one self-contained page (PNG plots embedded as base64, no network).

Built from the rows of ``summary.json`` and the lines of ``steps.jsonl`` only, so
``bandit-bench report DIR`` renders it again without running anything. The page holds:

- the summary table, one row per model x config, baselines marked as reference rows, cells
  below the config's threshold marked (CSS class ``below``);
- the paper's scatter of SuffFailFreq(T/2) against K*MinFrac, one point per model x config;
- per config: the share of episodes on the best arm at each step (95% Wilson band over
  episodes), the cumulative pseudo-regret (mean with a 95% normal-approximation band) and the
  share of pulls per arm rank.

matplotlib is used through its object API on the Agg canvas (no pyplot, no global backend
switch), imported inside the functions that draw.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import Z_95, arm_rank_shares, on_best, wilson_bounds
from .report import CaseEpisodes, case_episodes, format_cost, verdict

if TYPE_CHECKING:
    import jinja2
    from matplotlib.figure import Figure

TEMPLATE = "report.html.j2"
_TEMPLATE_DIR = Path(__file__).parent / "templates"
DPI = 90
# Colours for models (solid lines) and baselines (dashed), stable across configs.
_MODEL_COLOURS = ("#1f77b4", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e")
_BASELINE_COLOURS = ("#2ca02c", "#7f7f7f", "#ff7f0e", "#000000", "#bcbd22")
_CONFIG_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""
    title: str = ""
    # Secondary text under the value (a 95% interval), in smaller print.
    sub: str = ""


@dataclass(frozen=True)
class ConfigSection:
    name: str
    facts: str
    image: str | None
    note: str


# ---------------------------------------------------------------------------- bands


def wilson_band(hits: np.ndarray, z: float = Z_95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column share of ``hits`` (N, T) with its Wilson interval over the N rows."""
    p = hits.mean(axis=0)
    low, high = wilson_bounds(p, hits.shape[0], z)
    return p, low, high


def mean_band(values: np.ndarray, z: float = Z_95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean of ``values`` (N, T) with a normal-approximation interval (none for N = 1)."""
    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    half = z * values.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


# ---------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Fixed margins: matplotlib's layout engines cost more than the drawing at this size.
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    # No "Software" key: the bytes then depend on the data and not on the matplotlib version.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(model: str, colours: Mapping[str, str]) -> dict[str, Any]:
    baseline = model.startswith("baseline/")
    return {
        "color": colours[model],
        "linestyle": "--" if baseline else "-",
        "linewidth": 1.3 if baseline else 2,
    }


def config_figure(cases: Sequence[CaseEpisodes], colours: Mapping[str, str]) -> str:
    """Best-arm share per step, cumulative regret, and pull shares by arm rank for one config."""
    fig = _new_figure(12.5, 3.3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.9, wspace=0.22)
    ax_best, ax_regret, ax_rank = fig.subplots(1, 3)
    width = 0.8 / max(1, len(cases))
    for i, case in enumerate(cases):
        batch = case.batch
        style = _style(case.model, colours)
        t = np.arange(1, batch.horizon + 1)
        label = f"{case.model} (N={batch.n})"

        share, low, high = wilson_band(on_best(batch))
        ax_best.plot(t, share, label=label, **style)
        ax_best.fill_between(t, low, high, color=style["color"], alpha=0.12, linewidth=0)

        regret = np.cumsum(batch.delta * ~on_best(batch), axis=1)
        mean, low, high = mean_band(regret)
        ax_regret.plot(t, mean, label=label, **style)
        ax_regret.fill_between(t, np.maximum(low, 0.0), high, color=style["color"], alpha=0.12, linewidth=0)

        ranks = np.arange(1, batch.k + 1)
        hatch = "//" if case.model.startswith("baseline/") else None
        ax_rank.bar(
            ranks - 0.4 + width * (i + 0.5),
            arm_rank_shares(batch),
            width=width,
            color=style["color"],
            hatch=hatch,
            edgecolor="white",
            label=case.model,
        )
    k = cases[0].batch.k
    ax_best.set(
        title="episodes on the best arm at step t", xlabel="t", ylabel="share of episodes", ylim=(0, 1)
    )
    ax_regret.set(title="cumulative pseudo-regret", xlabel="t", ylabel="mean over episodes")
    ax_rank.set(
        title="share of pulls by arm rank",
        xlabel="arm rank in the episode (1 = most pulled)",
        ylabel="share of pulls",
        xticks=np.arange(1, k + 1),
        ylim=(0, 1),
    )
    ax_rank.axhline(1 / k, color="#555555", linewidth=0.8, linestyle=":")
    for ax in (ax_best, ax_regret, ax_rank):
        ax.grid(alpha=0.3)
    ax_regret.legend(fontsize=8, loc="upper left")
    return _png_data_uri(fig)


def scatter_figure(rows: Sequence[Mapping[str, Any]], colours: Mapping[str, str]) -> str:
    """The paper's exploration-failure map: SuffFailFreq(T/2) against K*MinFrac per model x config."""
    from matplotlib.lines import Line2D

    fig = _new_figure(10.0, 4.4)
    fig.subplots_adjust(left=0.08, right=0.72, bottom=0.12, top=0.92)
    ax = fig.subplots()
    configs = list(dict.fromkeys(r["config"] for r in rows))
    markers = {c: _CONFIG_MARKERS[i % len(_CONFIG_MARKERS)] for i, c in enumerate(configs)}
    for r in rows:
        baseline = r["model"].startswith("baseline/")
        ax.scatter(
            r["suffix_failure_freq"],
            r["k_min_frac"],
            s=60 if baseline else 90,
            marker=markers[r["config"]],
            facecolors="none" if baseline else colours[r["model"]],
            edgecolors=colours[r["model"]],
            linewidths=1.6,
            alpha=0.85,
        )
    ax.set(
        xlim=(-0.03, 1.03),
        ylim=(-0.03, 1.03),
        xlabel="SuffFailFreq(T/2): episodes never on the best arm in the second half",
        ylabel="K*MinFrac: pulls of the least-pulled arm, x K",
        title="exploration failures (right) vs. uniform-like exploitation failures (top)",
    )
    ax.grid(alpha=0.3)
    models = list(dict.fromkeys(r["model"] for r in rows))
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=8,
            markerfacecolor="none" if m.startswith("baseline/") else colours[m],
            markeredgecolor=colours[m],
            label=m,
        )
        for m in models
    ] + [
        Line2D([], [], linestyle="none", marker=markers[c], markersize=8, color="#444444", label=c)
        for c in configs
    ]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png_data_uri(fig)


# ---------------------------------------------------------------------------- the table


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}f}"


def _ci(row: Mapping[str, Any], metric: str) -> str:
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or high is None:
        return ""
    return f"[{low:.2f}, {high:.2f}]"


def _threshold_cell(row: Mapping[str, Any], metric: str) -> Cell:
    value = row.get(metric)
    text, ci = _num(value), _ci(row, metric)
    threshold = row.get(f"min_{metric}")
    if row["kind"] == "baseline" or value is None or threshold is None:
        return Cell(text, "num", sub=ci)
    if value < threshold:
        return Cell(text, "num below", f"below the threshold {threshold:.2f}", ci)
    return Cell(text, "num", f"threshold {threshold:.2f}", ci)


HEADERS = (
    "model",
    "config",
    "N",
    "format",
    "best arm",
    "SuffFail (T/2)",
    "K* MinFrac",
    "Greedy Frac",
    "Median Reward",
    "regret",
    "tokens in+out",
    "cost",
    "verdict",
)


def table_rows(summary: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Cell]]]:
    """(row class, cells) per summary row, in the summary's order."""
    out = []
    for r in summary:
        v = verdict(r)
        cells = [
            Cell(r["model"], "text"),
            Cell(r["config"], "text", "constrained decoding" if r.get("constrained") else ""),
            Cell(str(r["episodes"]), "num"),
            _threshold_cell(r, "format_compliance"),
            _threshold_cell(r, "best_arm_rate"),
            Cell(_num(r.get("suffix_failure_freq")), "num"),
            Cell(_num(r.get("k_min_frac")), "num"),
            Cell(_num(r.get("greedy_frac")), "num"),
            Cell(_num(r.get("median_reward")), "num"),
            Cell(_num(r.get("mean_regret")), "num"),
            Cell(
                "-"
                if r["kind"] == "published"
                else f"{int(r.get('prompt_tokens') or 0)}+{int(r.get('completion_tokens') or 0)}",
                "num",
            ),
            Cell(format_cost(r.get("cost_usd")), "num"),
            Cell(v, f"verdict v-{v.lower()}"),
        ]
        if r["kind"] == "published":
            # Marked in the model cell too, so a copy of the table without its styles still says it.
            cells[0] = Cell(r["model"], "text", f"published in the paper: {r.get('source') or ''}")
        out.append(({"baseline": "reference", "published": "published"}.get(r["kind"], "model"), cells))
    return out


# ---------------------------------------------------------------------------- the page


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _colours(summary: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    models = sorted({r["model"] for r in summary if not r["model"].startswith("baseline/")})
    baselines = sorted({r["model"] for r in summary if r["model"].startswith("baseline/")})
    out = {m: _MODEL_COLOURS[i % len(_MODEL_COLOURS)] for i, m in enumerate(models)}
    out.update({b: _BASELINE_COLOURS[i % len(_BASELINE_COLOURS)] for i, b in enumerate(baselines)})
    return out


def _facts(row: Mapping[str, Any]) -> str:
    parts = [
        f"design {row.get('design') or '?'}",
        f"K = {row['k']}",
        f"delta = {row['delta']}",
        f"T = {row['horizon']}",
        f"{row['episodes']} episodes",
    ]
    if row.get("seed") is not None:
        parts.append(f"seed {row['seed']}")
    if row.get("min_format_compliance") is not None:
        parts.append(f"thresholds: format >= {row['min_format_compliance']:.2f}")
        parts.append(f"best arm >= {row['min_best_arm_rate']:.2f}")
    if row.get("constrained"):
        parts.append("constrained decoding")
    return ", ".join(parts)


def render_html(summary: Sequence[Mapping[str, Any]], steps: Iterable[Mapping[str, Any]]) -> str:
    """The page for these summary rows and step lines (as in summary.json and steps.jsonl)."""
    colours = _colours(summary)
    cases = case_episodes(summary, steps)
    sections = []
    for config in dict.fromkeys(r["config"] for r in summary):
        rows = [r for r in summary if r["config"] == config]
        with_data = [cases[(r["model"], config)] for r in rows if (r["model"], config) in cases]
        # Published rows have no steps by nature: only measured rows can be missing from the plots.
        missing = [r["model"] for r in rows if (r["model"], config) not in cases and r["kind"] != "published"]
        note = f"No complete episode for {', '.join(missing)}: left out of the plots." if missing else ""
        image = config_figure(with_data, colours) if with_data else None
        sections.append(ConfigSection(config, _facts(rows[0]), image, note))
    points = [
        r for r in summary if r.get("suffix_failure_freq") is not None and r.get("k_min_frac") is not None
    ]
    scatter = scatter_figure(points, colours) if points else None
    prompt = sum(int(r.get("prompt_tokens") or 0) for r in summary)
    completion = sum(int(r.get("completion_tokens") or 0) for r in summary)
    costs = [float(r["cost_usd"]) for r in summary if r.get("cost_usd") is not None]
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            headers=HEADERS,
            rows=table_rows(summary),
            scatter=scatter,
            sections=sections,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=format_cost(sum(costs)) if costs else None,
            cost_rows=len(costs),
            n_rows=len(summary),
        )
    )
