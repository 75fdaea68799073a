"""The classic algorithms at the paper's scale (1000 episodes) beside the paired rows."""

from __future__ import annotations

import json

import pytest

from bandit_bench.core.specs import BUILTIN_CONFIGS
from bandit_bench.reporting.scale import is_scale_reference, scale_records


def test_scale_rows_are_the_cli_baselines_over_1000_episodes() -> None:
    # `bandit-bench baselines --k 5 --delta 0.2 --horizon 100 --episodes 1000 --seed 0`
    records = scale_records(BUILTIN_CONFIGS["BNSN0-hard-T100-constrained"])
    assert [r["model"] for r in records] == [
        "baseline/ucb (N=1000)",
        "baseline/ts (N=1000)",
        "baseline/greedy (N=1000)",
    ]
    values = {r["model"].split("/")[1].split()[0]: r["metrics"] for r in records}
    assert round(values["ucb"]["greedy_frac"]["value"], 3) == 0.759
    assert round(values["ts"]["greedy_frac"]["value"], 3) == 0.619
    assert round(values["greedy"]["suffix_failure_freq"]["value"], 3) == 0.437
    for r in records:
        assert (r["kind"], r["episodes"], r["horizon"], r["trajectories"]) == ("baseline", 1000, 100, [])
        assert r["metrics"]["k_min_frac"]["n"] == 1000
        assert "not paired" in r["source"] and is_scale_reference(r)
        json.dumps(r)


def test_scale_rows_sit_in_their_own_marked_block_and_are_not_compared(tmp_path) -> None:
    from bandit_bench.reporting.compare import compare_dirs
    from bandit_bench.reporting.evaluation import case_record
    from bandit_bench.reporting.tables import summary_rows, table_blocks, text_table
    from bandit_bench.reporting.writer import write_reports
    from bandit_bench.running.runner import run_case

    cfg = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    records = [case_record(run_case(m, cfg)) for m in ("baseline/ucb", "baseline/ts")] + scale_records(cfg)
    blocks = table_blocks(summary_rows(records))
    assert [b.title for b in blocks] == [
        "reference algorithms on K = 5, delta = 0.2, T = 25, 5 episodes, seed 0",
        "reference algorithms at the paper's scale on K = 5, delta = 0.2, T = 25, 1000 episodes, seed 0",
    ]
    assert "not the paired episodes" in blocks[1].facts
    text = text_table(summary_rows(records))
    assert "baseline/ucb (N=1000)" in text and "unpaired" in text
    old = write_reports(records, tmp_path / "old")
    new = write_reports(records, tmp_path / "new")
    html = new["report.html"].read_text()
    assert "No complete episode" not in html
    assert "baseline/ucb (N=1000)" in html
    steps = [json.loads(line) for line in new["steps.jsonl"].read_text().splitlines()]
    assert not [s for s in steps if "N=1000" in s["model"]]
    result = compare_dirs(old["summary.json"].parent, new["summary.json"].parent)
    assert not [c for c in result.changes if "N=1000" in c.model]
    assert not [n for n in result.notes if "N=1000" in n]


@pytest.mark.parametrize("name", ["BNRN0-hard-T25", "BSSC~0-hard-T25"])
def test_the_main_job_gets_scale_rows_per_instance(name: str) -> None:
    # Configs on one instance spec share their scale rows (the same numbers).
    assert [r["metrics"] for r in scale_records(BUILTIN_CONFIGS[name])] == [
        r["metrics"] for r in scale_records(BUILTIN_CONFIGS["BNRN0-hard-T25"])
    ]
