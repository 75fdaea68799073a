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
