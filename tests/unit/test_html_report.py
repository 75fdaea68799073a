"""report.html: its content, and the page as a real headless Chromium loads it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit_bench.core.metrics import EpisodeBatch
from bandit_bench.core.specs import BUILTIN_CONFIGS
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.reporting.html import (
    BASELINE_COLOURS,
    EPSILON_SWEEP,
    MODEL_PALETTE,
    colours_for,
    config_figure,
    epsilon_sweep,
    figure_one_data,
    histogram_edges,
    mean_band,
    model_colour,
    render_html,
    scatter_figure,
    scatter_panels,
)
from bandit_bench.reporting.tables import case_episodes, load_report_dir
from bandit_bench.reporting.writer import write_reports
from bandit_bench.running.runner import run_case

CONFIGS = [
    BUILTIN_CONFIGS["BNRN0-hard-T25"].with_overrides(episodes=4, horizon=12),
    BUILTIN_CONFIGS["BSSC~0-hard-T25"].with_overrides(episodes=3, horizon=10),
]
FAKE = "sim/uniform"
BASELINES = ("baseline/ucb", "baseline/ts")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records: list[dict[str, Any]] = []
    for cfg in CONFIGS:
        records += [case_record(run_case(m, cfg)) for m in BASELINES]
        # A stand-in model (uniform play) held to a best-arm threshold it cannot meet.
        fake = case_record(run_case("baseline/uniform", cfg), min_best_arm_rate=0.9)
        fake["model"] = FAKE
        records.append(fake)
    folder = tmp_path_factory.mktemp("html") / "reports"
    write_reports(records, folder)
    return folder


@pytest.fixture(scope="module")
def html(report_dir: Path) -> str:
    return (report_dir / "report.html").read_text(encoding="utf-8")


def rows_of(html: str) -> list[str]:
    body = html.split('<table class="summary" id="summary">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr class=\"(model|reference|published|group)\">", body)


def test_table_has_a_row_per_model_and_config_and_per_instance_for_baselines(html: str) -> None:
    kinds = rows_of(html)
    # The two configs are on different instances (T and N differ): a reference block each.
    assert kinds == [
        "group",
        "model",
        "group",
        "model",
        "group",
        "reference",
        "reference",
        "group",
        "reference",
        "reference",
    ]
    assert html.count(">reference</td>") == len(CONFIGS) * len(BASELINES)
    assert "<th>config</th>" not in html  # the config is the group's title


def test_failing_cells_are_marked(html: str) -> None:
    # The stand-in's best-arm rate is below 0.9 in both configs; the baselines are never marked.
    assert html.count('class="num below" title="below the threshold 0.90"') == len(CONFIGS)
    assert html.count('class="verdict v-fail"') == len(CONFIGS)


def test_unchecked_thresholds_say_so(report_dir: Path) -> None:
    data = load_report_dir(report_dir)
    for row in data.summary:
        row["min_best_arm_rate"] = 0.0
    page = render_html(data.summary, data.steps, data.run)
    assert "best arm not checked" in page and ">= 0.00" not in page
    assert 'title="threshold not checked"' in page


def test_one_image_per_config_plus_the_scatter_all_embedded(html: str) -> None:
    # Per config Figure 1's panels and the folded exploration panels; then the scatter.
    images = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert len(images) == 2 * len(CONFIGS) + 1
    assert all(src.startswith("data:image/png;base64,") for src in images)
    # Self-contained: nothing to fetch.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for cfg in CONFIGS:
        assert f">{cfg.name}</h3>" in html


def test_rendering_is_a_function_of_the_data_files(report_dir: Path, html: str) -> None:
    data = load_report_dir(report_dir)
    assert render_html(data.summary, data.steps, data.run) == html


_DRAW_IN_WORKERS = """
import os, sys
from pathlib import Path
import bandit_bench.reporting.html as page
from bandit_bench.reporting.tables import load_report_dir

import signal

def interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")

signal.signal(signal.SIGTERM, interrupt)  # as the plugin's controller has it (issue 20)
data = load_report_dir(Path(sys.argv[1]))
page.PARALLEL_FROM, page._cores = 2, lambda: 2
real = page._png_of
page._png_of = lambda *a: f"{os.getpid()}|{real(*a)}"  # each figure says which process drew it
sys.stdout.write(f"{os.getpid()}\\n" + page.render_html(data.summary, data.steps, data.run))
"""


def test_figures_drawn_in_worker_processes_make_the_same_page(report_dir: Path, html: str) -> None:
    # In a process of its own, which runs one thread (as `bandit-bench report` does): this test's
    # process is an xdist worker with execnet's threads, from which figures are never forked.
    done = subprocess.run(
        [sys.executable, "-c", _DRAW_IN_WORKERS, str(report_dir)], capture_output=True, text=True, check=True
    )
    # The pool ends its workers with SIGTERM: they must not run the parent's handler (a
    # KeyboardInterrupt traceback per worker under the report's table).
    assert done.stderr == ""
    pid, parallel = done.stdout.split("\n", 1)
    pids = set(re.findall(r'src="(\d+)\|', parallel))
    assert pids and pid not in pids, pids
    assert re.sub(r'src="\d+\|', 'src="', parallel) == html


def test_figures_are_drawn_here_while_another_thread_runs(
    report_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forked child holds only the forking thread: a lock another thread held stays locked in
    it, and its figure waits forever (a report hung in an xdist run). With other threads
    running, every figure is drawn in this process."""
    import bandit_bench.reporting.html as page

    data = load_report_dir(report_dir)
    monkeypatch.setattr(page, "PARALLEL_FROM", 2)
    monkeypatch.setattr(page, "_cores", lambda: 2)
    real = page._png_of
    monkeypatch.setattr(page, "_png_of", lambda *a: f"{os.getpid()}|{real(*a)}")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        page_html = render_html(data.summary, data.steps, data.run)
    finally:
        stop.set()
        other.join()
    assert set(re.findall(r'src="(\d+)\|', page_html)) == {str(os.getpid())}


def test_a_case_without_complete_episodes_is_named_not_plotted(report_dir: Path) -> None:
    data = load_report_dir(report_dir)
    steps = [s for s in data.steps if s["model"] != FAKE or s["config"] != CONFIGS[0].name]
    page = render_html(data.summary, steps, data.run)
    assert f"No complete episode for {FAKE}: left out of the plots." in page
    assert len(re.findall(r"<img ", page)) == 2 * len(CONFIGS) + 1


def test_bands() -> None:
    mean, low, high = mean_band(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert mean.tolist() == [1.0, 2.0]
    # +-2 standard errors, as in the paper: sd sqrt(2) over sqrt(2) episodes.
    assert (high - mean).tolist() == pytest.approx([2.0, 2.0])
    one = mean_band(np.array([[1.0, 2.0]]))
    assert one[1].tolist() == one[0].tolist() == one[2].tolist()


# ---------------------------------------------------------------------------- the paper's Figure 1


def small_batch() -> EpisodeBatch:
    # K = 2, T = 4, best arm 0 in both episodes; rewards chosen by hand.
    return EpisodeBatch.from_arrays(
        arms=[[0, 1, 0, 0], [1, 1, 1, 1]],
        rewards=[[1, 0, 1, 1], [0, 1, 0, 0]],
        best_arm=[0, 0],
        k=2,
        delta=0.5,
    )


def test_figure_one_data() -> None:
    data = figure_one_data("m/x", small_batch())
    # Best-arm plays per episode: 3 and 0, one episode each, over whole-count bins 0..4.
    assert data.bin_edges.tolist() == [-0.5, 0.5, 1.5, 2.5, 3.5, 4.5]
    assert data.episode_shares.tolist() == [0.5, 0.0, 0.0, 0.5, 0.0]
    # Suffix failures at t = 1..4: the second episode never plays arm 0; the first does at t = 4.
    assert data.t.tolist() == [1, 2, 3, 4]
    assert data.suffix_failure.tolist() == [0.5, 0.5, 0.5, 0.5]
    # Time-averaged reward: episode 1 -> 1, 1/2, 2/3, 3/4; episode 2 -> 0, 1/2, 1/3, 1/4.
    assert data.reward_mean.tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5])
    half = 2 * np.std([[1, 0.5, 2 / 3, 0.75], [0, 0.5, 1 / 3, 0.25]], axis=0, ddof=1) / np.sqrt(2)
    assert (data.reward_high - data.reward_mean).tolist() == pytest.approx(half.tolist())
    assert data.best_mean == 0.75


def test_histogram_bins_stay_about_twenty() -> None:
    assert len(histogram_edges(100)) - 1 == 17  # bins 6 plays wide
    assert histogram_edges(25)[:3].tolist() == [-0.5, 1.5, 3.5]


def test_config_figure_draws_the_three_panels(report_dir: Path) -> None:
    data = load_report_dir(report_dir)
    cases = case_episodes(data.summary, data.steps)
    config = CONFIGS[0].name
    models = [FAKE, *BASELINES]
    colours = colours_for(models)
    fig = config_figure([cases[(m, config)] for m in models], colours)
    hist, suffix, reward = fig.axes
    assert hist.get_title() == "plays of the best arm per episode"
    assert suffix.get_title().startswith("suffix failures")
    assert reward.get_title() == "time-averaged reward up to t"
    for ax in (suffix, reward):
        lines = [ln for ln in ax.get_lines() if ln.get_label().endswith(")")]
        assert [ln.get_label() for ln in lines] == [f"{m} (N={CONFIGS[0].run.episodes})" for m in models]
        assert [ln.get_linestyle() for ln in lines] == ["-", "--", "--"]  # models solid, baselines dashed
        assert [ln.get_color() for ln in lines] == [colours[m] for m in models]
    # The suffix curve is the data's, point for point.
    batch = cases[(FAKE, config)].batch
    assert suffix.get_lines()[0].get_ydata().tolist() == figure_one_data(FAKE, batch).suffix_failure.tolist()
    # OPT: the best arm's mean, dotted, in the shared legend with every model.
    opt = [ln for ln in reward.get_lines() if ln.get_linestyle() == ":"]
    assert [ln.get_ydata()[0] for ln in opt] == [0.6]
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        *(f"{m} (N={CONFIGS[0].run.episodes})" for m in models),
        "OPT = 0.6",
    ]
    hist_patches = [p for p in hist.patches if p.get_label().startswith(FAKE)]
    assert len(hist_patches) == 1  # one outline per row


# ---------------------------------------------------------------------------- colours


def test_a_model_keeps_its_colour_whatever_else_is_in_the_report() -> None:
    alone = colours_for(["openai/gpt-4o"])["openai/gpt-4o"]
    assert alone == model_colour("openai/gpt-4o") in MODEL_PALETTE
    # Not its position: listed first, last or among others, the colour is the same.
    others = ["zz/one", "zz/two", "baseline/ucb", "baseline/ts"]
    assert colours_for([*others, "openai/gpt-4o"])["openai/gpt-4o"] == alone
    assert colours_for(["openai/gpt-4o", *others])["openai/gpt-4o"] == alone
    assert colours_for(others)["baseline/ucb"] == BASELINE_COLOURS["baseline/ucb"]


def test_two_models_of_one_report_never_share_a_colour() -> None:
    names = [f"m/{i}" for i in range(40)]
    first = {}
    clash = None
    for n in names:
        c = model_colour(n)
        if c in first:
            clash = (first[c], n)
            break
        first[c] = n
    assert clash is not None
    colours = colours_for(clash)
    assert colours[clash[0]] != colours[clash[1]]
    assert colours[min(clash)] == model_colour(min(clash))  # the first in sorted order keeps its own


# ---------------------------------------------------------------------------- Figures 3 and 10


def scatter_row(model: str, design: str, x: float, y: float, **kw: Any) -> dict[str, Any]:
    kind = (
        "baseline"
        if model.startswith("baseline/")
        else "published"
        if model.startswith("paper/")
        else "model"
    )
    row = {"model": model, "config": f"{design}-hard", "kind": kind, "design": design, "k": 5, "delta": 0.2}
    row.update(horizon=10, seed=0, episodes=5, constrained=False, suffix_failure_freq=x, k_min_frac=y)
    row.update(kw)
    return row


def test_scatter_panels_per_scenario_and_instance() -> None:
    rows = [
        scatter_row("m/a", "BNRN0", 0.2, 0.4),
        scatter_row("m/a", "ANRN0", 0.2, 0.4),
        scatter_row("m/a", "BNRN0", 0.4, 0.0, k=4, delta=0.5, config="BNRN0-easy"),
        scatter_row("m/a", "BNRN0", 0.6, 0.0, horizon=20, config="BNRN0-hard-T20"),
    ]
    panels = scatter_panels(rows, sweep=False)
    assert [p.title for p in panels] == [
        "buttons, hard (K = 5, delta = 0.2), T = 10",
        "adverts, hard (K = 5, delta = 0.2), T = 10",
        "buttons, easy (K = 4, delta = 0.5), T = 10",
        "buttons, hard (K = 5, delta = 0.2), T = 20",
    ]
    assert [len(p.points) for p in panels] == [1, 1, 1, 1]


def test_points_on_the_same_spot_are_drawn_once_with_a_combined_label() -> None:
    rows = [
        scatter_row("m/a", "BNRN0", 0.2, 0.56),
        scatter_row("m/a", "BSSC~0", 0.2, 0.56),
        scatter_row("baseline/ts", "BNRN0", 0.2, 0.4),
        scatter_row("baseline/ts", "BSSC~0", 0.2, 0.4),  # the same baseline row under another config
        scatter_row("baseline/ucb", "BNRN0", 0.2, 0.4),
        scatter_row("paper/gpt-4", "BSSC~0", 0.0, 0.4, config="paper"),
        scatter_row("m/a", "BNSN0", 0.8, 0.0, constrained=True),
    ]
    [panel] = scatter_panels(rows, sweep=False)
    labels = {(p.x, p.y): (p.kind, p.label) for p in panel.points}
    assert labels == {
        (0.2, 0.56): ("model", "BNRN0, BSSC~0"),
        (0.2, 0.4): ("baseline", "ts, ucb"),
        (0.0, 0.4): ("published", "paper/gpt-4 BSSC~0"),
        (0.8, 0.0): ("model", "BNSN0 (constrained)"),
    }
    fig = scatter_figure([panel], colours_for(r["model"] for r in rows))
    ax = fig.axes[0]
    # One marker per point and per other model merged into it (the ucb square under the ts one:
    # every row's marker stays visible), no stacked duplicates of one model (ts under two
    # configs); each point numbered, its label in the list beside the plot.
    assert len(ax.collections) == len(panel.points) + 1
    assert sorted(t.get_text() for t in ax.texts) == [str(i) for i in range(1, len(panel.points) + 1)]
    markers = {c.get_label(): c for c in ax.collections if not c.get_label().startswith("_")}
    assert (
        markers["ts, ucb"].get_facecolor().size == 0 or markers["ts, ucb"].get_facecolor()[0][3] == 0
    )  # hollow
    assert markers["BNRN0, BSSC~0"].get_facecolor()[0][3] > 0  # filled
    # A star for the published row: its path differs from the circle's.
    star = markers["paper/gpt-4 BSSC~0"].get_paths()[0]
    circle = markers["BNRN0, BSSC~0"].get_paths()[0]
    assert len(star.vertices) != len(circle.vertices)
    [legend] = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["baseline/ts", "baseline/ucb", "m/a", "paper/gpt-4 (published)"]
    markers_in_legend = [h.get_marker() for h in legend.legend_handles]
    assert markers_in_legend == ["s", "s", "o", "*"]


def test_epsilon_greedy_is_traced_over_a_sweep() -> None:
    sweep = epsilon_sweep(5, 0.2, 20, 0)
    assert [s[0] for s in sweep] == list(EPSILON_SWEEP)
    assert EPSILON_SWEEP[0] == 0.01 and EPSILON_SWEEP[-1] == 0.95
    # More exploration: fewer suffix failures, a more even split of pulls.
    assert sweep[-1][1] < sweep[0][1] and sweep[-1][2] > sweep[0][2]
    assert epsilon_sweep(5, 0.2, 20, 0) == sweep  # seeded
    [panel] = scatter_panels([scatter_row("m/a", "BNRN0", 0.2, 0.4, horizon=20)])
    assert panel.sweep == sweep
    fig = scatter_figure([panel], colours_for(["m/a"]))
    [line] = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "eps-greedy sweep"]
    assert line.get_xdata().tolist() == [s[1] for s in sweep]
    assert line.get_ydata().tolist() == [s[2] for s in sweep]


# ---------------------------------------------------------------------------- in a real browser


def chromium() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(page: Path, user_data: Path, width: int = 1400) -> str:
    browser = chromium()
    assert browser is not None
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={user_data}",
        f"--window-size={width},1200",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


LONG_NAME = "some-provider/a-model-with-a-rather-long-name-v2"


@pytest.fixture(scope="module")
def browser_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a long model id with prices set: the widest table a run is likely to print."""
    records: list[dict[str, Any]] = []
    for cfg in CONFIGS:
        records += [case_record(run_case(m, cfg)) for m in BASELINES]
        fake = case_record(run_case("baseline/uniform", cfg), min_best_arm_rate=0.9)
        fake.update(
            model=LONG_NAME, prompt_tokens=12_345_678, completion_tokens=1_234_567, provider_cost=12.3456
        )
        records.append(fake)
    folder = tmp_path_factory.mktemp("browser") / "reports"
    write_reports(records, folder)
    return folder


@pytest.mark.skipif(
    chromium() is None,
    reason="needs Debian's chromium (/usr/bin/chromium or chromium on PATH): apt-get install -y chromium "
    "(.ci/run installs it)",
)
@pytest.mark.parametrize("width", [1000, 1400])
def test_page_in_headless_chromium(browser_report: Path, tmp_path: Path, width: int) -> None:
    dom = dump_dom(browser_report / "report.html", tmp_path / "chromium-profile", width)
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attrs = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', body.group(1)))
    assert "data-images" in attrs, f"the page's load script did not run: <body{body.group(1)}>"
    # The window is as wide as asked, less a scrollbar at most.
    assert width - 20 <= int(attrs["data-viewport-width"]) <= width
    # Per config its Figure 1 panels and the folded exploration panels; then the scatter.
    expected_images = 2 * len(CONFIGS) + 1
    assert attrs["data-images"] == str(expected_images)
    assert attrs["data-images-loaded"] == str(expected_images), "an embedded image failed to decode"
    summary = json.loads((browser_report / "summary.json").read_text())["rows"]
    # One row per model x config, and one per baseline and instance (the two configs differ in T).
    models = [r for r in summary if r["kind"] == "model"]
    assert attrs["data-table-rows"] == str(len(models) + len(CONFIGS) * len(BASELINES))
    # Nothing wider than the window, no table that scrolls sideways: the verdict column is on screen.
    assert attrs["data-overflow"] == "none"


# ---------------------------------------------------------------------------- shared sheets


def _pixels(uri: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    return np.asarray(
        Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"), dtype=int
    )


@pytest.mark.parametrize("kind", ["figure 1", "exploration"])
def test_figures_on_a_shared_sheet_are_the_full_drawing_and_leave_nothing_behind(
    report_dir: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import threading

    import bandit_bench.reporting.figures as figures
    import bandit_bench.reporting.html as page
    from bandit_bench.reporting.panels import exploration_figure, exploration_png

    data = load_report_dir(report_dir)
    cases = case_episodes(data.summary, data.steps)
    colours = colours_for([FAKE, *BASELINES])
    config = CONFIGS[0].name
    every = [cases[(m, config)] for m in (FAKE, *BASELINES)]
    one = [cases[(BASELINES[1], config)]]  # other lines, rows and legend on the same panels
    draw, full = (
        (page._config_png, config_figure) if kind == "figure 1" else (exploration_png, exploration_figure)
    )
    monkeypatch.setattr(figures, "_SHEETS", threading.local())
    first = page._png_of(draw, every, colours)
    after_one = (page._png_of(draw, one, colours), page._png_of(draw, every, colours))
    # Nothing of a figure stays on the sheet for the next one: the same figure again is the same
    # PNG, and a figure drawn first on a fresh sheet is the one drawn after another.
    assert after_one[1] == first
    monkeypatch.setattr(figures, "_SHEETS", threading.local())
    assert page._png_of(draw, one, colours) == after_one[0]
    assert after_one[0] != first
    # The same picture as matplotlib's full drawing of the figure: only the stacking of the
    # band over the grid lines differs, a few pixels in ten thousand (a missing legend: 0.1-0.5%).
    for cases_drawn, shared in ((every, first), (one, after_one[0])):
        drawn = _pixels(page._png_of(full, cases_drawn, colours))
        ours = _pixels(shared)
        assert drawn.shape == ours.shape
        differ = (np.abs(drawn - ours).max(axis=2) > 24).mean()
        assert differ < 0.0005, differ


@pytest.mark.parametrize("height", [1, 2, 57])
def test_the_figures_png_holds_the_canvas_pixels_exactly(height: int) -> None:
    import io

    from PIL import Image

    from bandit_bench.reporting.figures import _opaque_png

    # Noise (every Up difference wraps around somewhere) under an opaque alpha channel.
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, size=(height, 33, 4), dtype=np.uint8)
    rgba[:, :, 3] = 255
    image = Image.open(io.BytesIO(_opaque_png(memoryview(rgba), 90.0)))
    image.load()  # checks every chunk's CRC and the zlib stream
    assert (image.mode, image.size) == ("RGB", (33, height))
    assert np.array_equal(np.asarray(image), rgba[:, :, :3])
    assert image.info["dpi"] == pytest.approx((90.0, 90.0), abs=0.01)
