"""What every figure of the HTML report shares: its resolution, its canvas and a line's style.

Figure 1 (reporting/html.py) and the exploration panels (reporting/panels.py) both draw with
these, so a model's line looks the same in each.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
