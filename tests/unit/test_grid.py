"""The grid as the paper prints it, at the top of report.md and report.html."""

from __future__ import annotations

import copy
from typing import Any

from bandit_bench.core.specs import BUILTIN_CONFIGS
from bandit_bench.reporting.grid import grid_markdown, paper_grids, report_preface
from bandit_bench.reporting.published import published_records
from bandit_bench.reporting.scale import scale_records
from bandit_bench.reporting.tables import render_markdown, summary_rows


def _measured(config: str, *, passed: bool, gf: float) -> dict[str, Any]:
    """A measured case record of model m/x on ``config``, in the case-record shape."""
    cfg = BUILTIN_CONFIGS[config]
    record = copy.deepcopy(published_records(cfg)[0])
    record.update(model="m/x", kind="model", source=None, episodes=10, seed=0, passed=passed, steps=1000)
    record["thresholds"] = {"format_compliance": 0.9, "best_arm_rate": 0.4}
    values = {"median_reward": 0.1, "suffix_failure_freq": 0.3, "k_min_frac": 0.0, "greedy_frac": gf}
    record["metrics"] = {
        m: {"value": values.get(m, 1.0), "low": 0.0, "high": 1.0, "n": 10}
        for m in ("format_compliance", "best_arm_rate", "best_arm_rate_second_half", *values, "mean_regret")
    }
    return record


def _records(*configs: str) -> list[dict[str, Any]]:
    out = []
    for i, name in enumerate(configs):
        cfg = BUILTIN_CONFIGS[name]
        out += [_measured(name, passed=i > 0, gf=1.0 - i / 10), *published_records(cfg), *scale_records(cfg)]
    return out


def test_a_grid_per_scenario_instance_and_horizon_with_the_papers_values() -> None:
    (grid,) = paper_grids(summary_rows(_records("BSSC~0-hard-T100", "BNRN0-hard-T100")))
    assert grid.title == "buttons, K = 5, delta = 0.2, T = 100"
    assert grid.groups == (
        "m/x",
        "paper/gpt-4 (N=10)",
        "paper/gpt-3.5 (N=20)",
        "paper/llama-2-13b (N=10)",
        "reference, 1000 episodes",
    )
    # Designs in the paper's order (BNRN0 before BSSC~0), then the references.
    assert [r.label for r in grid.rows] == [
        "BNRN0",
        "BSSC~0",
        "greedy (N=1000)",
        "ts (N=1000)",
        "ucb (N=1000)",
    ]
    bnrn0, bssc = grid.rows[0].cells, grid.rows[1].cells
    # m/x: BNRN0 passed (second record), BSSC~0 failed and is marked.
    assert [c.text for c in bnrn0[:4]] == ["0.10", "0.30", "0.00", "0.90"]
    assert (bssc[0].text, bssc[0].cls) == ("0.10 FAIL", "fail")
    # Figure 11(a) GPT-4: BNRN0 0.63 0.50 0.03 0.52; BSSC~0 0.47 0.00 0.33 0.69 (no GPT-3.5 / Llama 2 C~).
    assert [c.text for c in bnrn0[4:8]] == ["0.63", "0.50", "0.03", "0.52"]
    assert bnrn0[4].title == "Figure 11(a), row BNRN0"
    assert [c.text for c in bssc[4:8]] == ["0.47", "0.00", "0.33", "0.69"]
    assert [c.text for c in bssc[8:16]] == [""] * 8
    ucb = grid.rows[-1].cells
    assert [c.text for c in ucb[:16]] == [""] * 16
    assert [c.text for c in ucb[16:]] == ["0.55", "0.03", "0.19", "0.76"]


def test_scenarios_get_their_own_grid_and_one_design_gets_none() -> None:
    grids = paper_grids(
        summary_rows(_records("BNRN0-hard-T100", "BSSC~0-hard-T100", "ANRN0-hard-T100", "BNRN0-easy-T100"))
    )
    assert [g.title for g in grids] == [
        "buttons, K = 5, delta = 0.2, T = 100",
        "adverts, K = 5, delta = 0.2, T = 100",
    ]
    assert [r.label for r in grids[1].rows if r.kind == "design"] == ["ANRN0"]
    assert paper_grids(summary_rows(_records("BNRN0-hard-T100"))) == []


def test_the_grid_opens_report_md_and_report_html(tmp_path) -> None:
    from bandit_bench.reporting.writer import write_reports

    records = _records("BNRN0-hard-T100", "BSSC~0-hard-T100")
    md = render_markdown(summary_rows(records), preface=report_preface(summary_rows(records)))
    assert md.startswith("# bandit-bench report\n\n## The grid as the paper prints it\n")
    assert md.index("**buttons, K = 5, delta = 0.2, T = 100**") < md.index("## Per config")
    table = grid_markdown(paper_grids(summary_rows(records)))
    assert "| design | m/x: MR | SF | KMF | GF | paper/gpt-4 (N=10): MR | SF | KMF | GF |" in table
    assert "| BSSC~0 | 0.10 | 0.30 | 0.00 | 0.90 | 0.47 | 0.00 | 0.33 | 0.69 |" in table
    html = write_reports(records, tmp_path)["report.html"].read_text()
    assert html.index('id="grid"') < html.index('id="summary"')
    assert '<td class="num fail" title="m/x x BNRN0-hard-T100: FAIL">0.10 FAIL</td>' in html
