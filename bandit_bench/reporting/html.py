"""``report.html``: one self-contained page (PNG plots embedded as base64, no network).

Built from ``summary.json`` (its rows and run metadata) and the lines of ``steps.jsonl`` only,
so ``bandit-bench report DIR`` renders it again without running anything. The page holds:

- where the numbers came from (version, endpoint, record mode, seeds, commit);
- the table: per config its models, then per instance the reference algorithms once (they are
  the same for every config on that instance), then the paper's published rows if any; cells
  below the config's threshold marked (CSS class ``below``);
- the paper's Figures 3/10: SuffFailFreq(T/2) against K*MinFrac, one panel per (scenario,
  instance), with epsilon-greedy traced over a sweep of epsilon on the same instances;
- per config the paper's Figure 1: a histogram of best-arm plays per episode, the suffix-failure
  frequency at every t, and the time-averaged reward with a +-2 standard-error band and OPT.

matplotlib is used through its object API on the Agg canvas (no pyplot, no global backend
switch), imported inside the functions that draw. Each figure has a function that returns the
numbers it draws (tests check those and the figure objects, not pixels).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bandit_bench.core.metrics import EpisodeBatch, on_best, suffix_failure_curve
from bandit_bench.reporting.figures import DPI, figure_legend, line_style, new_figure, sheet, sheet_png
from bandit_bench.reporting.tables import (
    MEDIAN_REWARD_SCALE,
    CaseEpisodes,
    case_episodes,
    cut_off_notes,
    episodes_text,
    format_cost,
    table_blocks,
    threshold_text,
    verdict,
)
from bandit_bench.reporting.tables import kind_of as row_kind

if TYPE_CHECKING:
    import jinja2
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TEMPLATE = "report.html.j2"
_TEMPLATE_DIR = Path(__file__).parent / "templates"
# A model's colour comes from a hash of its id, so it is the same in every report. Baselines
# have fixed colours of their own, outside this palette.
MODEL_PALETTE = (
    "#1f77b4",  # blue
    "#d62728",  # red
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#17becf",  # cyan
    "#1b3a6b",  # navy
    "#7f1d1d",  # maroon
    "#7b4173",  # plum
    "#0e6e6e",  # teal
)
BASELINE_COLOURS = {
    "baseline/ucb": "#2ca02c",
    "baseline/ts": "#ff7f0e",
    "baseline/greedy": "#555555",
    "baseline/eps_greedy": "#bcbd22",
    "baseline/uniform": "#000000",
}
# The paper sweeps epsilon from 0.01 to 0.95; the trace runs on this many episodes of the
# instance (the run's own episodes first), which takes well under a second with numpy.
EPSILON_SWEEP = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.95)
SWEEP_EPISODES = 200
SCENARIOS = {"B": "buttons", "A": "adverts"}
INSTANCES = {(5, 0.2): "hard", (4, 0.5): "easy"}
Z_BAND = 2.0  # the paper's +-2 standard errors


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
    # The other exploration panels (reporting/panels.py), folded away on the page.
    details: str | None = None


# ---------------------------------------------------------------------------- colours


def model_colour(model: str, taken: Iterable[str] = ()) -> str:
    """The colour of ``model`` in every plot: fixed per baseline, else from a hash of the id.

    ``taken`` are colours already used in this report: on a hash collision the next free palette
    colour is used, so two models of one report never share a colour.
    """
    if model in BASELINE_COLOURS:
        return BASELINE_COLOURS[model]
    start = int.from_bytes(hashlib.sha256(model.encode("utf-8")).digest()[:4], "big") % len(MODEL_PALETTE)
    used = set(taken)
    for i in range(len(MODEL_PALETTE)):
        colour = MODEL_PALETTE[(start + i) % len(MODEL_PALETTE)]
        if colour not in used:
            return colour
    return MODEL_PALETTE[start]


def colours_for(models: Iterable[str]) -> dict[str, str]:
    """Every model's colour; collisions are settled in sorted order, so the result does not
    depend on the order of the rows."""
    out: dict[str, str] = {}
    for m in sorted(set(models)):
        out[m] = model_colour(m, out.values())
    return out


# ---------------------------------------------------------------------------- bands


def mean_band(values: np.ndarray, z: float = Z_BAND) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column mean of ``values`` (N, T) +- ``z`` standard errors (no band for N = 1)."""
    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    half = z * values.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


# ---------------------------------------------------------------------------- figure 1 data


@dataclass(frozen=True)
class FigureOneData:
    """What the three panels of the paper's Figure 1 draw for one model x config."""

    model: str
    n: int
    # left: histogram over episodes of the number of plays of the best arm
    bin_edges: np.ndarray
    episode_shares: np.ndarray
    # centre: for t = 1..T the share of episodes that never pick the best arm after t
    t: np.ndarray
    suffix_failure: np.ndarray
    # right: the reward averaged over rounds 1..t, mean over episodes +- 2 standard errors
    reward_mean: np.ndarray
    reward_low: np.ndarray
    reward_high: np.ndarray
    best_mean: float


def histogram_edges(horizon: int) -> np.ndarray:
    """Bin edges over 0..T plays, integer bins about 20 of them, centred on whole counts."""
    width = max(1, math.ceil((horizon + 1) / 20))
    return np.arange(-0.5, horizon + width, width, dtype=float)


def figure_one_data(model: str, batch: EpisodeBatch) -> FigureOneData:
    plays = on_best(batch).sum(axis=1)
    edges = histogram_edges(batch.horizon)
    counts, _ = np.histogram(plays, bins=edges)
    t = np.arange(1, batch.horizon + 1)
    averaged = np.cumsum(batch.rewards, axis=1) / t
    mean, low, high = mean_band(averaged.astype(float))
    return FigureOneData(
        model=model,
        n=batch.n,
        bin_edges=edges,
        episode_shares=counts / batch.n,
        t=t,
        suffix_failure=suffix_failure_curve(batch),
        reward_mean=mean,
        reward_low=low,
        reward_high=high,
        best_mean=0.5 + batch.delta / 2,
    )


# ---------------------------------------------------------------------------- figures


# Below this many figures the page is drawn in this process: starting workers costs more.
PARALLEL_FROM = 4
# The figure jobs of the render in progress, read by forked workers (fork copies them: nothing
# is pickled on the way in, only each figure's data URI on the way back).
_FIGURE_JOBS: Sequence[Callable[[], str]] = ()


def _run_figure_job(index: int) -> str:
    return _FIGURE_JOBS[index]()


def _figure_worker_signals() -> None:
    """A figure worker's signals: the pool ends it with SIGTERM, and the parent's handler (the
    plugin turns SIGTERM into Ctrl-C) would print a KeyboardInterrupt traceback per worker;
    Ctrl-C is the parent's to handle, and it then ends the pool."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def draw_figures(jobs: Sequence[Callable[[], str]], warm: Sequence[Callable[[], object]] = ()) -> list[str]:
    """Each job draws one figure and returns its data URI; the results in job order.

    matplotlib draws in Python under the GIL, so threads would not help: with several figures
    and cores the jobs run in forked worker processes (one per core). Where fork is missing
    (Windows, macOS's default is spawn and would import matplotlib again per worker), only one
    core is ours, or other threads run in this process (see below), they run here. Agg's output
    depends only on the figure, so the page is the same byte for byte either way. ``warm`` (the
    shared sheets, see :func:`sheet_png`) runs here before the workers start, so that each
    worker finds them drawn instead of drawing its own."""
    import multiprocessing
    import threading

    global _FIGURE_JOBS
    workers = min(len(jobs), _cores())
    if (
        workers < 2
        or len(jobs) < PARALLEL_FROM
        or "fork" not in multiprocessing.get_all_start_methods()
        # fork copies the calling thread only: a lock that another thread holds at that moment
        # (execnet's in an xdist controller or worker, a server thread in the same process) is
        # never released in the child, whose figure then waits forever. Seen as a hung report.
        or threading.active_count() > 1
    ):
        return [job() for job in jobs]
    for step in warm:
        step()
    _FIGURE_JOBS = jobs
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_figure_worker_signals) as pool:
            return pool.map(_run_figure_job, range(len(jobs)), chunksize=1)
    finally:
        _FIGURE_JOBS = ()


def png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    # No "Software" key: the bytes then depend on the data and not on the matplotlib version.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _png_of(draw: Callable[..., Figure | str], *args: Any) -> str:
    """The data URI of what ``draw(*args)`` makes: a figure, or a data URI already."""
    import matplotlib

    # A title set at a fixed height skips matplotlib's search for decorations above the axes
    # (a tight bounding box of every tick label, a sixth of a figure's drawing time); with no
    # ticks or labels on top, the automatic height is this one, so the pixels do not change.
    with matplotlib.rc_context({"axes.titley": 1.0}):
        out = draw(*args)
        return out if isinstance(out, str) else png_data_uri(out)


def config_sheet(horizon: int) -> tuple[Figure, tuple[Axes, ...]]:
    """Figure 1's empty panels for a horizon: what every config of that horizon shares."""
    fig = new_figure(12.0, 3.9)
    fig.subplots_adjust(left=0.055, right=0.99, bottom=0.3, top=0.9, wspace=0.26)
    ax_hist, ax_suffix, ax_reward = fig.subplots(1, 3)
    ax_hist.set(
        title="plays of the best arm per episode",
        xlabel=f"number of plays of the best arm (of T = {horizon})",
        ylabel="share of episodes",
        xlim=(-0.5, horizon + 0.5),
        ylim=(0, 1.02),
    )
    ax_suffix.set(
        title="suffix failures: best arm never after t",
        xlabel="t (dotted: T/2, the table's SuffFail)",
        ylabel="share of episodes",
        xlim=(1, horizon),
        ylim=(-0.02, 1.02),
    )
    ax_reward.set(
        title="time-averaged reward up to t",
        xlabel="t",
        ylabel="mean over episodes, +-2 s.e.",
        xlim=(1, horizon),
        ylim=(0, 1.02),
    )
    for ax in (ax_hist, ax_suffix, ax_reward):
        ax.grid(alpha=0.3)
    return fig, (ax_hist, ax_suffix, ax_reward)


def config_artists(
    fig: Figure, axes: Sequence[Axes], cases: Sequence[CaseEpisodes], colours: Mapping[str, str]
) -> list[Artist]:
    """Adds one config's data to :func:`config_sheet`'s panels; returns what it added."""
    from matplotlib.lines import Line2D

    ax_hist, ax_suffix, ax_reward = axes
    horizon = cases[0].batch.horizon
    added: list[Artist] = []
    handles: list[Any] = []
    for case in cases:
        data = figure_one_data(case.model, case.batch)
        style = line_style(case.model, colours)
        label = f"{case.model} (N={data.n})"
        added.append(ax_hist.stairs(data.episode_shares, data.bin_edges, label=label, **style))
        added += ax_suffix.plot(data.t, data.suffix_failure, drawstyle="steps-post", label=label, **style)
        (line,) = ax_reward.plot(data.t, data.reward_mean, label=label, **style)
        added.append(line)
        added.append(
            ax_reward.fill_between(
                data.t,
                np.clip(data.reward_low, 0, 1),
                np.clip(data.reward_high, 0, 1),
                color=style["color"],
                alpha=0.12,
                linewidth=0,
            )
        )
        handles.append(line)
    best = figure_one_data(cases[0].model, cases[0].batch).best_mean
    added.append(ax_reward.axhline(best, color="#222222", linestyle=":", linewidth=1.2))
    handles.append(Line2D([], [], color="#222222", linestyle=":", linewidth=1.2, label=f"OPT = {best:g}"))
    added.append(ax_suffix.axvline(horizon // 2 + 1, color="#999999", linestyle=":", linewidth=1))
    added.append(
        figure_legend(
            fig,
            handles,
            loc="lower center",
            ncol=min(len(handles), 4),
            fontsize=9,
            frameon=False,
            bbox_to_anchor=(0.5, 0.0),
        )
    )
    return added


def config_figure(cases: Sequence[CaseEpisodes], colours: Mapping[str, str]) -> Figure:
    """The paper's Figure 1 for one config: models solid, baselines dashed, one shared legend."""
    fig, axes = config_sheet(cases[0].batch.horizon)
    config_artists(fig, axes, cases, colours)
    return fig


def _config_png(cases: Sequence[CaseEpisodes], colours: Mapping[str, str]) -> str:
    horizon = cases[0].batch.horizon
    return sheet_png(
        ("figure 1", horizon),
        functools.partial(config_sheet, horizon),
        lambda fig, axes: config_artists(fig, axes, cases, colours),
    )


def _warm_sheets(horizon: int) -> None:
    """Draws the sheets of a horizon's figures (as _config_png and exploration_png use them)."""
    from bandit_bench.reporting.panels import exploration_sheet

    sheet(("figure 1", horizon), functools.partial(config_sheet, horizon))
    sheet(("exploration", horizon), functools.partial(exploration_sheet, horizon))


# ---------------------------------------------------------------------------- figures 3 and 10


@dataclass(frozen=True)
class ScatterPoint:
    """One marker: the rows that land on the same spot, drawn once with a combined label."""

    x: float
    y: float
    kind: str  # the first member's: "model", "baseline" or "published"
    model: str  # the first member's (its colour)
    members: tuple[tuple[str, str, str], ...]  # (kind, model, short label) per row
    label: str


@dataclass(frozen=True)
class ScatterPanel:
    title: str
    k: int
    delta: float
    horizon: int
    seed: int
    points: tuple[ScatterPoint, ...]
    # epsilon-greedy over EPSILON_SWEEP: (epsilon, SuffFailFreq(T/2), K*MinFrac)
    sweep: tuple[tuple[float, float, float], ...] = field(default_factory=tuple)


def panel_title(scenario: str, k: int, delta: float, horizon: int) -> str:
    name = INSTANCES.get((int(k), float(delta)))
    instance = f"{name} (K = {k}, delta = {delta:g})" if name else f"K = {k}, delta = {delta:g}"
    return f"{SCENARIOS.get(scenario, scenario)}, {instance}, T = {horizon}"


def _short_label(row: Mapping[str, Any], one_model: bool) -> str:
    kind = row_kind(row)
    if kind == "baseline":
        return str(row["model"]).removeprefix("baseline/")
    design = str(row.get("design") or row["config"]) + (" (constrained)" if row.get("constrained") else "")
    if kind == "published":
        return f"{row['model']} {design}"
    return design if one_model else f"{str(row['model']).rsplit('/', 1)[-1]} {design}"


@lru_cache(maxsize=32)
def epsilon_sweep(k: int, delta: float, horizon: int, seed: int) -> tuple[tuple[float, float, float], ...]:
    """Epsilon-greedy's (epsilon, SuffFailFreq(T/2), K*MinFrac) on episodes 0..SWEEP_EPISODES-1
    of this instance: the run's own instances first, then more of the same."""
    from bandit_bench.core.agents.baselines import BASELINES, run_baseline_batch
    from bandit_bench.core.bandit import draw_instance
    from bandit_bench.core.metrics import episode_k_min_frac, episode_suffix_failure
    from bandit_bench.core.specs import InstanceSpec

    spec = InstanceSpec(k=k, delta=delta, horizon=horizon)
    instances = [draw_instance(spec, seed, i)[0] for i in range(SWEEP_EPISODES)]
    tables = np.stack([inst.rewards for inst in instances])
    best = np.array([inst.best_arm for inst in instances], dtype=np.int64)
    out = []
    for eps in EPSILON_SWEEP:
        rng = np.random.default_rng([seed, BASELINES.index("eps_greedy")])
        arms = run_baseline_batch("eps_greedy", tables, rng, epsilon=eps)
        rewards = np.take_along_axis(tables, arms[:, :, None], axis=2)[:, :, 0]
        batch = EpisodeBatch.from_arrays(arms, rewards, best, k=k, delta=delta)
        out.append(
            (eps, float(episode_suffix_failure(batch).mean()), float(episode_k_min_frac(batch).mean()))
        )
    return tuple(out)


def scatter_panels(rows: Sequence[Mapping[str, Any]], sweep: bool = True) -> list[ScatterPanel]:
    """One panel per (scenario, instance) of the rows that have both metrics.

    Rows on the same spot of a panel (equal to 1e-9) become one point whose label names them
    all; a baseline's identical rows under several configs are one member.
    """
    rows = [r for r in rows if r.get("suffix_failure_freq") is not None and r.get("k_min_frac") is not None]
    one_model = len({r["model"] for r in rows if row_kind(r) == "model"}) <= 1
    grouped: dict[tuple[str, int, float, int], list[Mapping[str, Any]]] = {}
    for r in rows:
        scenario = str(r.get("design") or "?")[0]
        grouped.setdefault((scenario, int(r["k"]), float(r["delta"]), int(r["horizon"])), []).append(r)
    order = {"model": 0, "published": 1, "baseline": 2}
    panels = []
    for (scenario, k, delta, horizon), members in grouped.items():
        spots: dict[tuple[float, float], list[tuple[str, str, str]]] = {}
        for r in sorted(members, key=lambda r: order[row_kind(r)]):
            key = (round(float(r["suffix_failure_freq"]), 9), round(float(r["k_min_frac"]), 9))
            entry = (row_kind(r), str(r["model"]), _short_label(r, one_model))
            if entry not in spots.setdefault(key, []):
                spots[key].append(entry)
        points = tuple(
            ScatterPoint(x, y, entries[0][0], entries[0][1], tuple(entries), ", ".join(e[2] for e in entries))
            for (x, y), entries in spots.items()
        )
        seeds = [int(r["seed"]) for r in members if r.get("seed") is not None]
        seed = seeds[0] if seeds else 0
        traced = epsilon_sweep(k, delta, horizon, seed) if sweep else ()
        panels.append(
            ScatterPanel(panel_title(scenario, k, delta, horizon), k, delta, horizon, seed, points, traced)
        )
    return panels


_KIND_MARKERS = {"model": "o", "baseline": "s", "published": "*"}


def scatter_numbers(panel: ScatterPanel) -> list[Any]:
    """The numbers of a panel's points and where they go (reporting/panels.py)."""
    from bandit_bench.reporting.panels import place_numbers

    return place_numbers([(p.x, p.y, p.label) for p in panel.points])


def _draw_point(ax: Axes, p: ScatterPoint, colours: Mapping[str, str], placed: Any = None) -> None:
    colour = colours.get(p.model, "#444444")
    # Rows merged into this spot keep their own markers too (a published star under a model's
    # circle on the very same spot), so no row's marker disappears.
    drawn = {(p.kind, p.model)}
    for kind, model, _ in p.members:
        if (kind, model) in drawn:
            continue
        drawn.add((kind, model))
        other = colours.get(model, "#444444")
        ax.scatter(
            [p.x],
            [p.y],
            s={"model": 90, "baseline": 70, "published": 260}[kind],
            marker=_KIND_MARKERS[kind],
            facecolors="none" if kind == "baseline" else other,
            edgecolors=other if kind != "published" else "#222222",
            linewidths=1.6 if kind != "published" else 0.8,
            zorder=1 if kind == "published" else 3,
            alpha=0.6 if kind == "published" else 1.0,
        )
    ax.scatter(
        [p.x],
        [p.y],
        s={"model": 90, "baseline": 70, "published": 220}[p.kind],
        marker=_KIND_MARKERS[p.kind],
        facecolors="none" if p.kind == "baseline" else colour,
        edgecolors=colour if p.kind != "published" else "#222222",
        linewidths=1.6 if p.kind != "published" else 0.8,
        # The paper's large stars go under the measured markers, half see-through, so a model or
        # baseline on the same spot stays visible.
        zorder=2 if p.kind == "published" else 4,
        alpha=0.6 if p.kind == "published" else 1.0,
        label=p.label,
    )
    _annotate_point(ax, p, placed)


def _annotate_point(ax: Axes, p: ScatterPoint, placed: Any = None) -> None:
    """The point's number (its label in the list beside the plot), or else its label."""
    if placed is not None:
        # A number by the marker; its label is in the list beside the plot (no overlaps).
        ax.annotate(
            str(placed.number),
            (p.x, p.y),
            xytext=placed.offset,
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=8,
            fontweight="bold",
            color="#222222",
            zorder=5,
        )
        return
    # Labels lean left near the right edge so they stay inside the panel.
    right = p.x > 0.6
    ax.annotate(
        p.label,
        (p.x, p.y),
        xytext=(-7 if right else 7, 5),
        textcoords="offset points",
        ha="right" if right else "left",
        fontsize=8,
        color="#333333",
        wrap=True,
    )


def _draw_sweep(ax: Axes, sweep: Sequence[tuple[float, float, float]]) -> None:
    """The epsilon-greedy line, its two ends named by their epsilon."""
    ax.plot(
        [s[1] for s in sweep],
        [s[2] for s in sweep],
        color=BASELINE_COLOURS["baseline/eps_greedy"],
        marker=".",
        linewidth=1.2,
        zorder=2,
        label="eps-greedy sweep",
    )
    for eps, x, y in (sweep[0], sweep[-1]):
        ax.annotate(
            f"eps={eps:g}",
            (x, y),
            xytext=(4, -10),
            textcoords="offset points",
            fontsize=7,
            color="#6b6b10",
        )


def _scatter_legend(panels: Sequence[ScatterPanel], colours: Mapping[str, str]) -> list[Any]:
    """One entry per model, in its colour and its kind's marker: the legend covers every panel."""
    from matplotlib.lines import Line2D

    kinds = {m: k for panel in panels for p in panel.points for k, m, _ in p.members}
    handles: list[Any] = []
    for m in sorted(kinds):
        colour = colours.get(m, "#444444")
        published = kinds[m] == "published"
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker=_KIND_MARKERS[kinds[m]],
                markersize=12 if published else 8,
                markerfacecolor="none" if kinds[m] == "baseline" else colour,
                markeredgecolor="#222222" if published else colour,
                label=f"{m} (published)" if published else m,
            )
        )
    if any(panel.sweep for panel in panels):
        handles.append(
            Line2D(
                [],
                [],
                color=BASELINE_COLOURS["baseline/eps_greedy"],
                marker=".",
                label="eps-greedy, eps swept",
            )
        )
    return handles


def scatter_figure(panels: Sequence[ScatterPanel], colours: Mapping[str, str]) -> Figure:
    """The paper's Figures 3/10: SuffFailFreq(T/2) against K*MinFrac, one panel per (scenario,
    instance); models filled, baselines hollow, published rows as stars, epsilon-greedy a line."""

    n = len(panels)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    legend_width = 3.2  # inches to the right of the panels
    width, height = 5.6 * cols + legend_width, 4.8 * rows + 0.2
    fig = new_figure(width, height)
    fig.subplots_adjust(
        left=0.55 / width,
        right=1 - (legend_width + 0.1) / width,
        bottom=0.6 / height,
        top=1 - 0.4 / height,
        wspace=0.25,
        hspace=0.4,
    )
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        if panel.sweep:
            _draw_sweep(ax, panel.sweep)
        numbers = scatter_numbers(panel)
        for p, placed in zip(panel.points, numbers, strict=True):
            _draw_point(ax, p, colours, placed)
        ax.set(
            xlim=(-0.04, 1.04),
            ylim=(-0.04, 1.04),
            xlabel="SuffFailFreq(T/2)",
            ylabel="K*MinFrac",
            title=panel.title,
        )
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles = _scatter_legend(panels, colours)
    fig.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1 - legend_width / width, 0.5),
        fontsize=9,
        frameon=False,
    )
    return fig


# ---------------------------------------------------------------------------- the table


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if round(value, digits) == 0:
        value = 0.0  # never "-0.00"
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
    if row_kind(row) != "model" or value is None:
        return Cell(text, "num", sub=ci)
    if threshold_text(threshold) == "not checked":
        return Cell(text, "num", "threshold not checked", ci)
    if value < threshold:
        return Cell(text, "num below", f"below the threshold {threshold:.2f}", ci)
    return Cell(text, "num", f"threshold {threshold:.2f}", ci)


# (header, hover text)
HEADERS = (
    ("model", ""),
    ("format", "share of steps whose reply held a valid answer, 95% Wilson interval over steps"),
    ("best arm", "share of pulls on the best arm, 95% Wilson interval over pulls"),
    ("SuffFail (T/2)", "share of episodes that never pick the best arm in the second half"),
    ("K* MinFrac", "K times the smallest share of pulls any arm got (1 = an even split)"),
    ("Greedy Frac", "share of rounds whose arm had the best average reward so far"),
    ("Median Reward", MEDIAN_REWARD_SCALE),
    ("regret", "pseudo-regret over the episode (delta per pull off the best arm), mean"),
    ("tokens in+out", "prompt + completion tokens over all episodes"),
    ("cost", "USD: the provider's reported cost, else the tokens at [tool.bandit_bench.prices]"),
    ("verdict", ""),
)


def _model_cell(r: Mapping[str, Any]) -> Cell:
    kind = row_kind(r)
    if kind == "published":
        # Marked in the model cell too, so a copy of the table without its styles still says it.
        sub = f"published, N = {r['episodes']}"
        return Cell(r["model"], "text model", f"published in the paper: {r.get('source') or ''}", sub)
    if isinstance(r.get("stopped"), str):
        return Cell(r["model"], "text model", str(r["stopped"]), f"{episodes_text(r)} episodes")
    if isinstance(r.get("request_note"), str):
        # The design's defining parameter was not sent as designed: marked, never silently compared.
        return Cell(f"{r['model']} *", "text model", str(r["request_note"]), "not as designed")
    title = "constrained decoding" if r.get("constrained") else ""
    if isinstance(r.get("request"), str):
        title = f"{title}; sent: {r['request']}" if title else f"sent: {r['request']}"
    return Cell(r["model"], "text model", title)


def _cells(r: Mapping[str, Any]) -> list[Cell]:
    v = verdict(r)
    tokens = f"{int(r.get('prompt_tokens') or 0)}+{int(r.get('completion_tokens') or 0)}"
    return [
        _model_cell(r),
        _threshold_cell(r, "format_compliance"),
        _threshold_cell(r, "best_arm_rate"),
        Cell(_num(r.get("suffix_failure_freq")), "num"),
        Cell(_num(r.get("k_min_frac")), "num"),
        Cell(_num(r.get("greedy_frac")), "num"),
        Cell(_num(r.get("median_reward")), "num"),
        Cell(_num(r.get("mean_regret")), "num"),
        Cell("-" if row_kind(r) == "published" else tokens, "num"),
        Cell(format_cost(r.get("cost_usd")), "num"),
        Cell(v, f"verdict v-{v.lower()}"),
    ]


@dataclass(frozen=True)
class TableGroup:
    kind: str  # "config", "baseline", "published"
    title: str
    facts: str
    rows: list[tuple[str, list[Cell]]]  # (row class, cells)


def table_groups(summary: Sequence[Mapping[str, Any]]) -> list[TableGroup]:
    """The table's groups (as :func:`~bandit_bench.reporting.tables.table_blocks`) with their cells."""
    classes = {"model": "model", "baseline": "reference", "published": "published"}
    return [
        TableGroup(b.kind, b.title, b.facts, [(classes[row_kind(r)], _cells(r)) for r in b.rows])
        for b in table_blocks(summary)
    ]


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


def _config_parts(
    summary: Sequence[Mapping[str, Any]],
    cases: Mapping[tuple[str, str], CaseEpisodes],
    colours: Mapping[str, str],
    jobs: list[Callable[[], str]],
    horizons: dict[int, None],
) -> list[tuple[str, str, int | None, str, int | None]]:
    """Per config with episodes to plot: (config, facts, index of its Figure 1 job, note, index of
    its exploration panels' job); the figures' jobs are appended to ``jobs``, their horizons to
    ``horizons``."""
    from bandit_bench.reporting.panels import exploration_png
    from bandit_bench.reporting.scale import is_scale_reference
    from bandit_bench.reporting.tables import config_facts

    parts: list[tuple[str, str, int | None, str, int | None]] = []

    def stepless(r: Mapping[str, Any]) -> bool:
        # Single-round rows have steps but no episode to plot: their table is at the top.
        return row_kind(r) == "published" or is_scale_reference(r) or bool(r.get("single_round"))

    for config in dict.fromkeys(r["config"] for r in summary if not stepless(r)):
        # Published rows and the 1000-episode baselines have no steps by nature: they are in
        # the table and the scatter only.
        rows = [r for r in summary if r["config"] == config and not stepless(r)]
        with_data = [cases[(r["model"], config)] for r in rows if (r["model"], config) in cases]
        missing = [r["model"] for r in rows if (r["model"], config) not in cases]
        note = f"No complete episode for {', '.join(missing)}: left out of the plots." if missing else ""
        marked = [
            f"* {r['model']}: {r['request_note']}" for r in rows if isinstance(r.get("request_note"), str)
        ]
        note = " ".join([note, *marked]).strip()
        job = details = None
        if with_data:
            job = len(jobs)
            jobs.append(functools.partial(_png_of, _config_png, with_data, colours))
            # The other exploration panels (reporting/panels.py), folded away on the page.
            details = len(jobs)
            jobs.append(functools.partial(_png_of, exploration_png, with_data, colours))
            horizons[with_data[0].batch.horizon] = None
        parts.append((config, config_facts(rows[0]), job, note, details))
    return parts


def _image(images: Sequence[str], job: int | None) -> str | None:
    return None if job is None else images[job]


def render_html(
    summary: Sequence[Mapping[str, Any]],
    steps: Iterable[Mapping[str, Any]],
    run: Mapping[str, Any] | None = None,
) -> str:
    """The page for these summary rows, step lines and run metadata (as in summary.json and
    steps.jsonl)."""
    from bandit_bench.reporting.grid import GRID_STATS, SINGLE_ROUND_STATS, paper_grids, single_round_grids
    from bandit_bench.reporting.provenance import metadata_lines

    colours = colours_for(r["model"] for r in summary)
    cases = case_episodes(summary, steps)
    # Every figure of the page is a job; draw_figures runs them (in parallel where it pays).
    jobs: list[Callable[[], str]] = []
    horizons: dict[int, None] = {}
    panels = scatter_panels(summary)
    if panels:
        # First: the longest job, so that no worker is left drawing it alone at the end.
        jobs.append(functools.partial(_png_of, scatter_figure, panels, colours))

    parts = _config_parts(summary, cases, colours, jobs, horizons)
    images = draw_figures(jobs, [functools.partial(_warm_sheets, h) for h in horizons])
    sections = [
        ConfigSection(config, facts, _image(images, job), note, _image(images, details))
        for config, facts, job, note, details in parts
    ]
    scatter = images[0] if panels else None
    prompt = sum(int(r.get("prompt_tokens") or 0) for r in summary)
    completion = sum(int(r.get("completion_tokens") or 0) for r in summary)
    costs = [float(r["cost_usd"]) for r in summary if r.get("cost_usd") is not None]
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            headers=HEADERS,
            scatter_keys=[(panel.title, scatter_numbers(panel)) for panel in panels],
            grids=paper_grids(summary),
            grid_stats=GRID_STATS,
            single_grids=single_round_grids(summary),
            single_stats=SINGLE_ROUND_STATS,
            groups=table_groups(summary),
            scatter=scatter,
            panels=panels,
            sweep=EPSILON_SWEEP,
            sweep_episodes=SWEEP_EPISODES,
            sections=sections,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=format_cost(sum(costs)) if costs else None,
            cost_rows=len(costs),
            n_rows=len(summary),
            run=metadata_lines(run or {}),
            median_reward_scale=MEDIAN_REWARD_SCALE,
            # The markdown notes, without their code marks.
            cut_off_notes=[n.replace("`", "") for n in cut_off_notes(summary)],
        )
    )
