"""The paper's published numbers: transcribed values pinned, and marked published in every output."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bandit_bench.core.specs import BUILTIN_CONFIGS
from bandit_bench.reporting.published import PUBLISHED_KIND, published_records, published_rows


def _one(model: str, design: str, instance: str, horizon: int = 100):
    k = {"hard": 5, "easy": 4}[instance]
    rows = [r for r in published_rows(design, k=k, horizon=horizon) if r.model == model]
    assert len(rows) == 1, rows
    return rows[0]


# (model, design, instance, T) -> (MedianReward, SuffFailFreq(T/2), K*MinFrac, GreedyFrac, N, source)
PINNED = {
    ("paper/gpt-4", "BNRN0", "hard", 100): (0.63, 0.50, 0.03, 0.52, 10, "Figure 11(a), row BNRN0"),
    ("paper/gpt-4", "BSSC~0", "hard", 100): (0.47, 0.00, 0.33, 0.69, 10, "Figure 11(a), row BSSC~0"),
    ("paper/gpt-4", "BSSCD", "hard", 100): (0.37, 0.00, 0.49, 0.49, 10, "Figure 11(a), row BSSCD"),
    ("paper/gpt-4", "ANRN1", "hard", 100): (-0.05, 0.67, 0.03, 0.23, 3, "Figure 11(b), row ANRN1"),
    ("paper/gpt-4", "BNRND", "easy", 100): (0.56, 0.00, 0.43, 0.56, 3, "Figure 11(c), row BNRND"),
    ("paper/gpt-4", "ASSC1", "easy", 100): (0.68, 0.00, 0.29, 0.73, 3, "Figure 11(d), row ASSC1"),
    ("paper/gpt-4", "BSSC~0", "hard", 200): (0.54, 0.03, 0.29, 0.68, 40, "Figure 7, row BSSC~0"),
    ("paper/gpt-3.5", "BNSND", "hard", 100): (0.20, 0.20, 0.52, 0.38, 20, "Figure 12, row BNSND"),
    ("paper/gpt-3.5", "ASRC0", "hard", 100): (0.37, 0.40, 0.06, 0.64, 20, "Figure 13, row ASRC0"),
    ("paper/gpt-3.5", "BSRN1", "easy", 100): (0.35, 0.00, 0.48, 0.42, 20, "Figure 14, row BSRN1"),
    ("paper/gpt-3.5", "ASSC0", "easy", 100): (0.89, 0.20, 0.01, 1.00, 20, "Figure 15, row ASSC0"),
    ("paper/llama-2-13b", "BNRN0", "hard", 100): (-0.05, 0.90, 0.00, 1.00, 10, "Figure 16, row BNRN0"),
    ("paper/llama-2-13b", "BSSC1", "hard", 100): (0.22, 0.90, 0.00, 1.00, 10, "Figure 16, row BSSC1"),
}


@pytest.mark.parametrize("key", list(PINNED))
def test_transcribed_values(key) -> None:
    model, design, instance, horizon = key
    mr, sff, kmf, gf, n, source = PINNED[key]
    row = _one(model, design, instance, horizon)
    assert row.metrics == {
        "median_reward": mr,
        "suffix_failure_freq": sff,
        "k_min_frac": kmf,
        "greedy_frac": gf,
    }
    assert (row.replicates, row.source) == (n, source)


def test_every_table_is_whole_and_has_no_duplicate() -> None:
    sizes = Counter(r.source.split(", row")[0] for r in published_rows())
    assert sizes == {
        "Figure 11(a)": 10,
        "Figure 11(b)": 9,
        "Figure 11(c)": 9,
        "Figure 11(d)": 9,
        "Figure 7": 2,
        "Figure 12": 24,
        "Figure 13": 24,
        "Figure 14": 24,
        "Figure 15": 24,
        "Figure 16": 16,
    }
    keys = Counter((r.model, r.design, r.k, r.delta, r.horizon) for r in published_rows())
    assert max(keys.values()) == 1
    for r in published_rows():
        assert -1.0 <= r.metrics["median_reward"] <= 1.0
        for m in ("suffix_failure_freq", "k_min_frac", "greedy_frac"):
            assert 0.0 <= r.metrics[m] <= 1.0, r


def test_the_paper_has_no_gpt35_reinforced_cot_nor_llama_distribution() -> None:
    # The paper ran reinforced chain of thought with GPT-4 only, and no D design with Llama 2.
    assert not [r for r in published_rows() if r.model != "paper/gpt-4" and "C~" in r.design]
    assert not [r for r in published_rows() if r.model == "paper/llama-2-13b" and r.design.endswith("D")]
    assert {r.model for r in published_rows("BNRN0", k=5, horizon=100)} == {
        "paper/gpt-4",
        "paper/gpt-3.5",
        "paper/llama-2-13b",
    }


def test_records_have_the_case_record_shape_and_say_published() -> None:
    cfg = BUILTIN_CONFIGS["BNRN0-hard-T100"]
    records = published_records(cfg)
    assert [r["model"] for r in records] == ["paper/gpt-4", "paper/gpt-3.5", "paper/llama-2-13b"]
    gpt4 = records[0]
    assert gpt4["kind"] == PUBLISHED_KIND == "published"
    assert gpt4["source"] == "Figure 11(a), row BNRN0"
    assert (gpt4["config"], gpt4["k"], gpt4["delta"], gpt4["horizon"], gpt4["episodes"]) == (
        "BNRN0-hard-T100",
        5,
        0.2,
        100,
        10,
    )
    assert gpt4["metrics"]["suffix_failure_freq"] == {"value": 0.5, "low": None, "high": None, "n": 10}
    assert gpt4["trajectories"] == [] and gpt4["steps"] == 0
    json.dumps(records)  # crosses the xdist boundary and lands in summary.json


def test_no_rows_where_the_paper_has_none() -> None:
    # T = 25 is not a paper horizon; Llama 2 ran no distribution (D) design.
    assert published_records(BUILTIN_CONFIGS["BNRN0-hard-T25"]) == []
    assert published_records(BUILTIN_CONFIGS["BNSN0-hard-T25-constrained"]) == []
    assert [r["model"] for r in published_records(BUILTIN_CONFIGS["BNRND-hard-T100"])] == [
        "paper/gpt-4",
        "paper/gpt-3.5",
    ]


def test_a_constrained_config_gets_the_rows_of_its_prompt_design() -> None:
    # Same prompt, same instance and horizon; the grammar is ours and the config name says so.
    records = published_records(BUILTIN_CONFIGS["BNSN0-hard-T100-constrained"])
    assert [(r["model"], r["config"], r["source"]) for r in records] == [
        ("paper/gpt-4", "BNSN0-hard-T100-constrained", "Figure 11(a), row BNSN0"),
        ("paper/gpt-3.5", "BNSN0-hard-T100-constrained", "Figure 12, row BNSN0"),
        ("paper/llama-2-13b", "BNSN0-hard-T100-constrained", "Figure 16, row BNSN0"),
    ]
    assert all(r["constrained"] is False for r in records)


def test_published_rows_in_every_report_output(tmp_path) -> None:
    from bandit_bench.reporting.evaluation import case_record
    from bandit_bench.reporting.tables import summary_rows, text_table
    from bandit_bench.reporting.writer import write_reports
    from bandit_bench.running.runner import run_case

    cfg = BUILTIN_CONFIGS["BSSC~0-hard-T100"].with_overrides(episodes=2)
    records = [case_record(run_case("baseline/ucb", cfg)), *published_records(cfg)]
    table = text_table(summary_rows(records)).splitlines()
    lines = {line.split()[0]: line for line in table[1:] if not line.startswith(("--", " "))}
    assert set(lines) == {"baseline/ucb", "paper/gpt-4"}  # no GPT-3.5 / Llama 2 with reinforced CoT
    gpt4 = lines["paper/gpt-4"].split()
    # model (N), format, best arm, SuffFail, K*MinFrac, GreedyFrac, MedianReward, regret, tokens, cost
    assert gpt4[1:] == ["(N=10)", "-", "-", "0.00", "0.33", "0.69", "0.47", "-", "-", "-", "published"]
    # Published rows sit in their config's block, after its measured rows (none here); the
    # reference rows of the instance come after every config.
    assert table.index(lines["paper/gpt-4"]) < table.index(lines["baseline/ucb"])
    above = table[: table.index(lines["paper/gpt-4"])]
    assert [line for line in above if line.startswith("--")][-1].startswith("-- BSSC~0-hard-T100 (")

    paths = write_reports(records, tmp_path)
    summary = json.loads(paths["summary.json"].read_text())["rows"]
    row = next(r for r in summary if r["model"] == "paper/gpt-4")
    assert (row["kind"], row["source"], row["passed"]) == ("published", "Figure 11(a), row BSSC~0", None)
    assert row["greedy_frac"] == 0.69 and row["episodes"] == 10
    assert next(r for r in summary if r["model"] == "baseline/ucb")["source"] is None
    md = paths["report.md"].read_text()
    assert "| paper/gpt-4 (N=10) | - | - | 0.00 |" in md and "| published |" in md
    html = paths["report.html"].read_text()
    assert '<tr class="published">' in html
    assert "published in the paper: Figure 11(a), row BSSC~0" in html
    assert "No complete episode for paper/gpt-4" not in html


# The paper's own impossible values: no N replicates give them, whatever the definitions.
PAPERS_OWN = {
    "Figure 13, row ASRN1": ["SuffFailFreq 0.42 is no multiple of 1/20 (N = 20)"],
    "Figure 13, row ASSN1": ["SuffFailFreq 0.42 is no multiple of 1/20 (N = 20)"],
}


def test_no_published_row_is_impossible_under_our_definitions() -> None:
    """Every published model row is reachable by N replicates of T rounds under this package's
    SuffFailFreq, K*MinFrac and GreedyFrac, except two SuffFailFreq values of Figure 13 that no
    N = 20 replicates can give (0.42 is neither 8/20 nor 9/20): those are the paper's."""
    from bandit_bench.reporting.published import inconsistencies

    found = {r.source: inconsistencies(r) for r in published_rows() if inconsistencies(r)}
    assert found == PAPERS_OWN


def test_the_old_greedy_rule_contradicts_a_third_of_the_papers_rows() -> None:
    # An untried arm at +inf caps a replicate that never tries some arm at (K-1)/T greedy
    # rounds: 51 rows with K*MinFrac 0.00 and GreedyFrac 0.47-1.00 (Figure 16 BNRN0 0.00/1.00),
    # and 25 more with K*MinFrac 0.01-0.03, could not be.
    from bandit_bench.reporting.published import inconsistencies

    old = [
        r
        for r in published_rows()
        if any("GreedyFrac" in x for x in inconsistencies(r, greedy_rule="untried-inf"))
    ]
    stuck = [r for r in old if r.metrics["k_min_frac"] == 0.0]
    assert (len(old), len(stuck)) == (76, 51)
    assert min(r.metrics["greedy_frac"] for r in stuck) == 0.47
    assert "Figure 16, row BNRN0" in {r.source for r in stuck}
    assert not [x for r in published_rows() for x in inconsistencies(r) if "GreedyFrac" in x]


def test_the_consistency_checks_can_fail() -> None:
    from bandit_bench.reporting.published import PublishedRow, inconsistencies

    row = PublishedRow(
        model="paper/x",
        design="BNRN0",
        instance="hard",
        k=5,
        delta=0.2,
        horizon=100,
        replicates=3,
        source="made up",
        metrics={"median_reward": 0.1, "suffix_failure_freq": 0.5, "k_min_frac": 0.04, "greedy_frac": 0.0},
    )
    assert inconsistencies(row) == [
        "SuffFailFreq 0.50 is no multiple of 1/3 (N = 3)",
        "K*MinFrac 0.04 is no multiple of K/(T N) = 5/300",
        "GreedyFrac 0.00 is below 1/T, round 1 being always greedy",
    ]


@pytest.mark.parametrize(("k", "delta", "horizon"), [(5, 0.2, 100), (4, 0.5, 100), (5, 0.2, 200)])
def test_our_baselines_match_the_papers_baseline_rows(k: int, delta: float, horizon: int) -> None:
    """UCB, TS and Greedy over 1000 episodes (seed 0) against the paper's 1000-replicate rows
    (Figure 11(a), 11(c)/14, 7): shares within 3 standard errors plus rounding, K*MinFrac and
    GreedyFrac within 0.01, MedianReward within 0.1 (a median of a bimodal spread: Greedy's)."""
    from bandit_bench.core.agents.baselines import run_on_instances
    from bandit_bench.core.metrics import EpisodeBatch, point_values
    from bandit_bench.core.specs import InstanceSpec
    from bandit_bench.reporting.published import published_baselines

    spec = InstanceSpec(k=k, delta=delta, horizon=horizon)
    paper = {b.algorithm: b.metrics for b in published_baselines(k=k, horizon=horizon)}
    assert set(paper) == {"ts", "ucb", "greedy"}
    for name, published in paper.items():
        run = run_on_instances(name, spec, 0, 1000)
        ours = point_values(EpisodeBatch.from_arrays(run.arms, run.rewards, run.best_arm, k, delta))
        p = published["suffix_failure_freq"]
        assert abs(ours["suffix_failure_freq"] - p) <= 3 * (max(p, 0.01) * (1 - p) / 1000) ** 0.5 + 0.005, (
            name
        )
        assert abs(ours["k_min_frac"] - published["k_min_frac"]) <= 0.01, name
        assert abs(ours["greedy_frac"] - published["greedy_frac"]) <= 0.01, name
        assert abs(ours["median_reward"] - published["median_reward"]) <= 0.1, name


def test_figure_11_plain_cot_reading_is_marked_inferred() -> None:
    inferred = {r.source for r in published_rows() if r.inferred}
    expected = {
        f"Figure 11({panel}), row {s}{d}"
        for panel, s in (("a", "B"), ("b", "A"), ("c", "B"), ("d", "A"))
        for d in ("NRC0", "SSC0", "SSC1", "SSCD")
    }
    assert inferred == expected
    assert not _one("paper/gpt-4", "BSSC~0", "hard").inferred
    (record,) = [
        r for r in published_records(BUILTIN_CONFIGS["BSSC0-hard-T100"]) if r["model"] == "paper/gpt-4"
    ]
    assert "inferred" in record["inferred"] and "C~" in record["inferred"]
