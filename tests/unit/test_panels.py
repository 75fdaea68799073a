"""The folded exploration panels: their data, worked out by hand, and their place on the page."""

from __future__ import annotations

import pytest

from bandit_bench.core.metrics import EpisodeBatch
from bandit_bench.reporting.panels import exploration_data


def test_exploration_data_by_hand() -> None:
    # K = 3, T = 4. e0 presses arm 0 throughout (best 0); e1 tries 1, 2, 0, 0 (best 2).
    b = EpisodeBatch.from_arrays([[0, 0, 0, 0], [1, 2, 0, 0]], [[0] * 4] * 2, [0, 2], k=3, delta=0.5)
    d = exploration_data(b)
    assert d.t.tolist() == [1, 2, 3, 4]
    # e0: 0 throughout; e1: an arm untried until t = 3, then 3 * 1/3 = 1, then 3 * 1/4.
    assert d.k_min_frac.tolist() == pytest.approx([0, 0, 0.5, 0.375])
    assert d.best_share[0].tolist() == [1, 1, 1, 1]
    assert d.best_share[1].tolist() == pytest.approx([0, 0.5, 1 / 3, 0.25])
    assert d.arms.tolist() == [[0, 0, 0, 0], [1, 2, 0, 0]]


def test_the_panels_are_folded_under_each_config(tmp_path) -> None:
    from bandit_bench.core.specs import BUILTIN_CONFIGS
    from bandit_bench.reporting.evaluation import case_record
    from bandit_bench.reporting.writer import write_reports
    from bandit_bench.running.runner import run_case

    cfg = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    records = [case_record(run_case(m, cfg)) for m in ("baseline/ucb", "baseline/greedy")]
    html = write_reports(records, tmp_path)["report.html"].read_text()
    assert html.count('<details class="panels">') == 1
    assert "K*MinFrac over t (Figure 6)" in html and "<details open" not in html


def test_scatter_numbers_keep_clear_of_each_other() -> None:
    from bandit_bench.reporting.panels import place_numbers

    # Three rows close together: each number gets a spot of its own; far points keep the default.
    placed = place_numbers([(0.1, 0.4, "a"), (0.11, 0.4, "b"), (0.1, 0.41, "c"), (0.9, 0.1, "d")])
    assert [p.number for p in placed] == [1, 2, 3, 4]
    assert [p.label for p in placed] == ["a", "b", "c", "d"]
    spots = [
        (x + p.offset[0] / 300, y + p.offset[1] / 300)
        for (x, y), p in zip([(0.1, 0.4), (0.11, 0.4), (0.1, 0.41)], placed[:3], strict=True)
    ]
    assert len(set(p.offset for p in placed[:3])) == 3
    for i, a in enumerate(spots):
        for b in spots[i + 1 :]:
            assert abs(a[0] - b[0]) + abs(a[1] - b[1]) > 0.02
    assert placed[3].offset == (7, 5)


def test_every_scatter_point_is_numbered_and_listed(tmp_path) -> None:
    from bandit_bench.core.specs import BUILTIN_CONFIGS
    from bandit_bench.reporting.evaluation import case_record
    from bandit_bench.reporting.writer import write_reports
    from bandit_bench.running.runner import run_case

    cfg = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    records = [case_record(run_case(m, cfg)) for m in ("baseline/ucb", "baseline/greedy", "baseline/ts")]
    html = write_reports(records, tmp_path)["report.html"].read_text()
    keys = html[html.index('<div class="scatter-keys">') :]
    assert "<b>1</b> greedy; <b>2</b> ts; <b>3</b> ucb" in keys
