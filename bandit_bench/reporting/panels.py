"""The paper's other exploration panels, per config, folded away on the report page.

- K*MinFrac(t) over t (Figure 6, centre): K times the smallest share of the first t pulls any
  arm got, averaged over episodes; 0 while some arm is untried.
- The best arm's share of the first t pulls, one line per episode (Figure 8).
- The arms chosen at each t, one row per episode (Figure 18): who locks onto an arm, and when.

Each figure is drawn from the data function beside it, which the tests check (not pixels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bandit_bench.core.metrics import EpisodeBatch, on_best
from bandit_bench.reporting.figures import figure_legend, line_style, new_figure, sheet_png

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bandit_bench.reporting.tables import CaseEpisodes

__all__ = ["ExplorationData", "exploration_data", "exploration_figure", "exploration_png"]

# Up to this many episodes per model in the arms trace and the per-episode lines: a page stays
# readable, and the first episodes are the same instances for every model.
MAX_TRACED = 20


@dataclass(frozen=True)
class ExplorationData:
    t: np.ndarray  # 1..T
    k_min_frac: np.ndarray  # (T,) mean over episodes of K * min_a n_a(t) / t
    best_share: np.ndarray  # (N, T) share of the first t pulls on the episode's best arm
    arms: np.ndarray  # (N, T) the arm pulled at each step


def exploration_data(batch: EpisodeBatch) -> ExplorationData:
    """The three panels' data for one model's episodes."""
    n, horizon, k = batch.n, batch.horizon, batch.k
    t = np.arange(1, horizon + 1)
    onehot = np.zeros((n, horizon, k), dtype=np.int64)
    onehot[np.arange(n)[:, None], np.arange(horizon)[None, :], batch.arms] = 1
    counts = onehot.cumsum(axis=1)  # (N, T, K): pulls of each arm up to and including t
    k_min = (k * counts.min(axis=2) / t[None, :]).mean(axis=0)
    best_share = on_best(batch).cumsum(axis=1) / t[None, :]
    return ExplorationData(t=t, k_min_frac=k_min, best_share=best_share, arms=batch.arms.copy())


def exploration_sheet(horizon: int) -> tuple[Figure, tuple[Axes, ...]]:
    """The three panels without data: what every config of a horizon shares."""
    fig = new_figure(12.0, 3.9)
    fig.subplots_adjust(left=0.055, right=0.99, bottom=0.3, top=0.9, wspace=0.3)
    ax_kmin, ax_best, ax_arms = fig.subplots(1, 3)
    ax_kmin.set(
        title="K*MinFrac up to t",
        xlabel="t",
        ylabel="mean over episodes",
        xlim=(1, horizon),
        ylim=(-0.02, 1.02),
    )
    ax_best.set(
        title="best arm's share of the first t pulls",
        xlabel=f"t (one line per episode, first {MAX_TRACED})",
        ylabel="share",
        xlim=(1, horizon),
        ylim=(-0.02, 1.02),
    )
    ax_arms.set(
        title="arm chosen at t (one row per episode)",
        xlabel="t (colour: arm index)",
        xlim=(0.5, horizon + 0.5),
        yticks=[],  # the models' names are written beside their rows by exploration_artists
    )
    for ax in (ax_kmin, ax_best):
        ax.grid(alpha=0.3)
    return fig, (ax_kmin, ax_best, ax_arms)


def _arms_image(traces: Sequence[np.ndarray], horizon: int) -> np.ndarray:
    """The arms trace: episodes as rows (a blank row between models), the arm index as value."""
    rows = []
    for i, block in enumerate(traces):
        if i:
            rows.append(np.full((1, horizon), np.nan))
        rows.append(block.astype(float))
    return np.vstack(rows)


def exploration_artists(
    fig: Figure, axes: Sequence[Axes], cases: Sequence[CaseEpisodes], colours: Mapping[str, str]
) -> list[Artist]:
    """Adds one config's data to :func:`exploration_sheet`'s panels (with the models' names beside
    the arms trace); returns what it added."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    ax_kmin, ax_best, ax_arms = axes
    horizon, k = cases[0].batch.horizon, cases[0].batch.k
    added: list[Artist] = []
    handles: list[Artist] = []
    traces: list[np.ndarray] = []
    ticks: list[tuple[float, str]] = []
    for case in cases:
        data = exploration_data(case.batch)
        style = line_style(case.model, colours)
        added += ax_kmin.plot(data.t, data.k_min_frac, label=case.model, **style)
        handles.append(Line2D([], [], label=f"{case.model} (N={case.batch.n})", **style))
        shown = data.best_share[:MAX_TRACED]
        for row in shown:
            added += ax_best.plot(
                data.t, row, color=style["color"], linestyle=style["linestyle"], linewidth=0.9, alpha=0.6
            )
        start = sum(len(x) for x in traces) + len(traces)  # one blank row between models
        traces.append(data.arms[:MAX_TRACED])
        ticks.append((start + (len(shown) - 1) / 2, case.model))
    image = _arms_image(traces, horizon)
    palette = ["#1f77b4", "#2ca02c", "#d62728", "#bcbd22", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    cmap = ListedColormap([palette[i % len(palette)] for i in range(k)]).with_extremes(bad="#ffffff")
    added.append(
        ax_arms.imshow(
            np.ma.masked_invalid(image),
            aspect="auto",
            interpolation="nearest",
            cmap=cmap,
            vmin=-0.5,
            vmax=k - 0.5,
            extent=(0.5, horizon + 0.5, image.shape[0] - 0.5, -0.5),
        )
    )
    ax_arms.set_ylim(image.shape[0] - 0.5, -0.5)
    for position, model in ticks:
        added.append(
            ax_arms.annotate(
                model.split("/")[-1][:18],
                (0, position),
                xycoords=ax_arms.get_yaxis_transform(),
                xytext=(-4, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=7,
            )
        )
    added.append(
        figure_legend(fig, handles, loc="lower center", ncol=min(len(handles), 4), fontsize=9, frameon=False)
    )
    return added


def exploration_figure(cases: Sequence[CaseEpisodes], colours: Mapping[str, str]) -> Figure:
    """K*MinFrac(t), best-arm share per episode, and the arms trace, for one config's cases."""
    fig, axes = exploration_sheet(cases[0].batch.horizon)
    exploration_artists(fig, axes, cases, colours)
    return fig


def exploration_png(cases: Sequence[CaseEpisodes], colours: Mapping[str, str]) -> str:
    """:func:`exploration_figure` as a PNG data URI, its empty panels drawn once per horizon."""
    horizon = cases[0].batch.horizon
    return sheet_png(
        ("exploration", horizon),  # as html._warm_sheets draws it ahead
        lambda: exploration_sheet(horizon),
        lambda fig, axes: exploration_artists(fig, axes, cases, colours),
    )


# ---------------------------------------------------------------------------- scatter labels

# Offsets (points) tried in turn for a point's number: the first whose spot is clear of the
# numbers already placed in the panel wins.
_OFFSETS: tuple[tuple[int, int], ...] = (
    (7, 5),
    (-7, 5),
    (7, -11),
    (-7, -11),
    (0, 10),
    (0, -15),
    (12, 0),
    (-12, 0),
)
# About how far apart (in data units of the 0..1 panels) two numbers must sit to stay legible.
_CLEAR = 0.045


@dataclass(frozen=True)
class PlacedLabel:
    number: int
    offset: tuple[int, int]  # offset points from the marker
    label: str


def place_numbers(
    points: Sequence[tuple[float, float, str]], points_per_unit: float = 300.0
) -> list[PlacedLabel]:
    """A number per point (1, 2, ...) and an offset for it that keeps it clear of the numbers
    already placed and of the other markers; the labels themselves go in a list beside the plot,
    so no label text can overlap another. ``points_per_unit``: display points per data unit."""
    placed: list[tuple[float, float]] = []
    markers = [(x, y) for x, y, _ in points]
    out = []
    for i, (x, y, label) in enumerate(points, start=1):
        best = _OFFSETS[0]
        best_gap = -1.0
        for dx, dy in _OFFSETS:
            spot = (x + dx / points_per_unit, y + dy / points_per_unit)
            others = placed + [m for j, m in enumerate(markers) if j != i - 1]
            gap = min((abs(spot[0] - a) + abs(spot[1] - b) for a, b in others), default=1.0)
            if gap >= _CLEAR:
                best = (dx, dy)
                break
            if gap > best_gap:
                best, best_gap = (dx, dy), gap
        placed.append((x + best[0] / points_per_unit, y + best[1] / points_per_unit))
        out.append(PlacedLabel(i, best, label))
    return out
