"""report.html: its content, and the page as a real headless Chromium loads it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit_bench.evaluation import case_record
from bandit_bench.html_report import mean_band, render_html, wilson_band
from bandit_bench.report import load_report_dir, write_reports
from bandit_bench.runner import run_case
from bandit_bench.specs import BUILTIN_CONFIGS

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
    body = html.split('<table class="summary" id="summary">', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr class=\"(model|reference)\">", body)


def test_table_has_one_row_per_model_and_config(html: str) -> None:
    kinds = rows_of(html)
    assert len(kinds) == len(CONFIGS) * (len(BASELINES) + 1)
    assert kinds.count("reference") == len(CONFIGS) * len(BASELINES)
    assert html.count(">reference</td>") == len(CONFIGS) * len(BASELINES)


def test_failing_cells_are_marked(html: str) -> None:
    # The stand-in's best-arm rate is below 0.9 in both configs; the baselines are never marked.
    assert html.count('class="num below" title="below the threshold 0.90"') == len(CONFIGS)
    assert html.count('class="verdict v-fail"') == len(CONFIGS)


def test_one_image_per_config_plus_the_scatter_all_embedded(html: str) -> None:
    images = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert len(images) == len(CONFIGS) + 1
    assert all(src.startswith("data:image/png;base64,") for src in images)
    # Self-contained: nothing to fetch.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for cfg in CONFIGS:
        assert f">{cfg.name}</h2>" in html


def test_rendering_is_a_function_of_the_data_files(report_dir: Path, html: str) -> None:
    data = load_report_dir(report_dir)
    assert render_html(data.summary, data.steps) == html


def test_a_case_without_complete_episodes_is_named_not_plotted(report_dir: Path) -> None:
    data = load_report_dir(report_dir)
    steps = [s for s in data.steps if s["model"] != FAKE or s["config"] != CONFIGS[0].name]
    page = render_html(data.summary, steps)
    assert f"No complete episode for {FAKE}: left out of the plots." in page
    assert len(re.findall(r"<img ", page)) == len(CONFIGS) + 1


def test_bands() -> None:
    hits = np.array([[1, 0], [1, 0], [1, 1], [1, 0]], dtype=bool)
    share, low, high = wilson_band(hits)
    assert share.tolist() == [1.0, 0.25]
    assert high[0] == pytest.approx(1.0) and 0.45 < low[0] < 0.55  # Wilson at 4/4
    assert low[1] < 0.25 < high[1]
    mean, low, high = mean_band(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert mean.tolist() == [1.0, 2.0]
    assert (high - mean).tolist() == pytest.approx([1.96 * np.sqrt(2) / np.sqrt(2)] * 2)
    one = mean_band(np.array([[1.0, 2.0]]))
    assert one[1].tolist() == one[0].tolist() == one[2].tolist()


# ---------------------------------------------------------------------------- in a real browser


def chromium() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(page: Path, user_data: Path) -> str:
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
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.skipif(
    chromium() is None,
    reason="needs Debian's chromium (/usr/bin/chromium or chromium on PATH): apt-get install -y chromium "
    "(.ci/run installs it)",
)
def test_page_loads_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    dom = dump_dom(report_dir / "report.html", tmp_path / "chromium-profile")
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attrs = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', body.group(1)))
    assert "data-images" in attrs, f"the page's load script did not run: <body{body.group(1)}>"
    expected_images = len(CONFIGS) + 1
    assert attrs["data-images"] == str(expected_images)
    assert attrs["data-images-loaded"] == str(expected_images), "an embedded image failed to decode"
    summary = json.loads((report_dir / "summary.json").read_text())
    assert attrs["data-table-rows"] == str(len(summary))
