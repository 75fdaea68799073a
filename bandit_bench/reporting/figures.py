"""What every figure of the HTML report shares: its resolution, its canvas and a line's style;
and the sheets that the figures of a series (one per config) are drawn on.

Figure 1 (reporting/html.py) and the exploration panels (reporting/panels.py) both draw with
these, so a model's line looks the same in each.
"""

from __future__ import annotations

import base64
import struct
import threading
import weakref
import zlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 90


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches at :data:`DPI`, on the shared-renderer canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Fixed margins: matplotlib's layout engines cost more than the drawing at this size.
    fig = Figure(figsize=(width, height), dpi=DPI)
    _shared_renderer_canvas(FigureCanvasAgg)(fig)
    return fig


_RENDERERS = threading.local()


@lru_cache(maxsize=1)
def _shared_renderer_canvas(base: type) -> type:
    """An Agg canvas that draws with one renderer per size and thread instead of a new one per
    figure: matplotlib caches text measurements per renderer, so the page's 40 figures then
    measure their tick labels, titles and legends once, not 40 times (about a tenth of the
    drawing). The renderer is cleared before each draw: the pixels are the same."""
    from matplotlib.backends.backend_agg import RendererAgg

    class Canvas(base):
        def get_renderer(self) -> Any:
            w, h = self.get_width_height(physical=True)
            key = (w, h, self.figure.dpi)
            cache = _RENDERERS.__dict__.setdefault("by_size", {})
            if key not in cache:
                cache[key] = RendererAgg(w, h, self.figure.dpi)
            self.renderer = cache[key]
            self._lastKey = key
            return self.renderer

    return Canvas


def line_style(model: str, colours: Mapping[str, str]) -> dict[str, Any]:
    """A model's line: its colour, solid; a baseline's thinner and dashed."""
    baseline = model.startswith("baseline/")
    return {
        "color": colours[model],
        "linestyle": "--" if baseline else "-",
        "linewidth": 1.4 if baseline else 2.2,
    }


# ---------------------------------------------------------------------------- shared sheets


@dataclass
class _Sheet:
    fig: Figure
    axes: tuple[Axes, ...]
    background: Any  # the pixels of the empty panels
    # The pixels of each legend drawn on this sheet, by its entries.
    legends: dict[Hashable, Any] = field(default_factory=dict)


_SHEETS = threading.local()


def sheet_png(
    key: Hashable,
    make: Callable[[], tuple[Figure, tuple[Axes, ...]]],
    paint: Callable[[Figure, tuple[Axes, ...]], list[Artist]],
) -> str:
    """A PNG data URI of one figure of a series that shares its panels (axes, ticks, titles).

    Setting up and drawing a figure's panels is most of matplotlib's time, and every config of a
    horizon has the same panels: they are made and drawn once per ``key`` (and process), kept
    as pixels, and each figure is those pixels with only its own artists (what ``paint`` adds,
    removed again afterwards) drawn on top, in the order ``Axes.draw`` gives them, the axes'
    frame over the data. A figure legend seen before on this sheet (same entries, same styles)
    is copied from its pixels instead of being laid out again. The grid lines are under the
    data either way; only the band's see-through fill goes over them instead of under them."""
    s = sheet(key, make)
    _SHEETS.painting = s
    try:
        added = paint(s.fig, s.axes)
    finally:
        _SHEETS.painting = None
    canvas: Any = s.fig.canvas
    renderer = canvas.get_renderer()
    canvas.restore_region(s.background)
    try:
        for ax in s.axes:
            mine = [a for a in added if a.axes is ax]
            # By zorder, then in the order added: as Axes.draw orders its children.
            for artist in sorted([*mine, *ax.spines.values()], key=lambda a: a.get_zorder()):
                artist.draw(renderer)
        for artist in added:
            if artist.axes is None:  # a figure legend
                _draw_legend(s, artist, renderer)
        png = _opaque_png(canvas.buffer_rgba(), s.fig.dpi)
    finally:
        for artist in added:
            artist.remove()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def sheet(key: Hashable, make: Callable[[], tuple[Figure, tuple[Axes, ...]]]) -> _Sheet:
    """The sheet of ``key`` in this thread, made by ``make()`` and drawn the first time."""
    import matplotlib

    sheets = _SHEETS.__dict__.setdefault("by_key", {})
    if key not in sheets:
        with matplotlib.rc_context({"axes.titley": 1.0}):  # as _png_of draws
            fig, axes = make()
            agg: Any = fig.canvas  # FigureCanvasAgg: copy_from_bbox and restore_region
            agg.draw()
        sheets[key] = _Sheet(fig, axes, agg.copy_from_bbox(fig.bbox))
    return sheets[key]


def _opaque_png(rgba: Any, dpi: float) -> bytes:
    """PNG bytes of an opaque RGBA buffer, stored as RGB (the figures have a white background).

    Written here rather than by Pillow: Pillow tries every PNG row filter on every row, which
    was a quarter of the report's time (13 ms a figure); one "Up" filter for all rows, done by
    numpy, and zlib level 3 take 5-7 ms for files 5% larger (benchmarks/bench_suite.py, row 3).
    A standard PNG all the same: 8-bit RGB, one IDAT, the resolution in pHYs."""
    rgb = np.asarray(rgba)[:, :, :3]
    height, width = rgb.shape[:2]
    rows = np.empty((height, 1 + 3 * width), dtype=np.uint8)
    rows[:, 0] = 2  # filter type Up: each byte minus the byte above it (modulo 256)
    flat = rgb.reshape(height, -1)
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])
    per_metre = int(dpi / 0.0254 + 0.5)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
            _png_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 3)),
            _png_chunk(b"IEND", b""),
        ]
    )


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


class _LegendPixels:
    """Stands in for a figure legend whose pixels the sheet being painted already holds, so
    that it is neither laid out nor drawn again (laying one out was 7 ms, and a series repeats
    the same legend in figure after figure)."""

    axes = None

    def __init__(self, pixels: Any) -> None:
        self.pixels = pixels

    def remove(self) -> None:
        """Nothing to take off: it never joined the figure."""


# The entries each legend made on a sheet was made of, by legend (see figure_legend).
_LEGEND_ENTRIES: weakref.WeakKeyDictionary[Any, Hashable] = weakref.WeakKeyDictionary()


def _entries(handles: Sequence[Any]) -> Hashable | None:
    """What a legend of these handles shows, as the key of its pixels; None when not only lines."""
    from matplotlib.lines import Line2D

    if not handles or not all(isinstance(h, Line2D) for h in handles):
        return None
    return tuple(
        (h.get_label(), h.get_color(), h.get_linestyle(), h.get_linewidth(), h.get_marker(), h.get_alpha())
        for h in handles
    )


def figure_legend(fig: Figure, handles: Sequence[Any], **kwargs: Any) -> Any:
    """``fig.legend(handles=handles, **kwargs)``, except on a sheet (:func:`sheet_png`) that
    already drew a legend of the same entries: then a stand-in that puts back its pixels.
    Each series passes the same ``kwargs`` for the same entries."""
    s = getattr(_SHEETS, "painting", None)
    key = _entries(handles)
    if s is not None and s.fig is fig and key is not None and key in s.legends:
        return _LegendPixels(s.legends[key])
    legend = fig.legend(handles=handles, **kwargs)
    if key is not None:
        _LEGEND_ENTRIES[legend] = key
    return legend


def _draw_legend(s: _Sheet, legend: Any, renderer: Any) -> None:
    canvas: Any = s.fig.canvas
    if isinstance(legend, _LegendPixels):
        canvas.restore_region(legend.pixels)
        return
    legend.draw(renderer)
    key = _LEGEND_ENTRIES.get(legend)
    if key is None:  # not only lines: not kept
        return
    # A frameless legend sits on the sheet's white margin, away from the panels: its box (and
    # the antialiased pixels just around it) is all that it changes.
    s.legends[key] = canvas.copy_from_bbox(legend.get_window_extent(renderer).padded(3))
