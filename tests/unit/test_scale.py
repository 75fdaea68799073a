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


class _Store:
    """pytest's cache as the rows see it: get/set of JSON values (round-tripped like its files)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str, default: object) -> object:
        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: object) -> None:
        self.data[key] = json.dumps(value, sort_keys=True, indent=2)


def test_stored_rows_are_the_computed_rows_and_are_not_computed_again(monkeypatch) -> None:
    import bandit_bench.reporting.scale as scale

    cfg = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    store = _Store()
    computed = scale_records(cfg)
    assert scale_records(cfg, store) == computed
    assert len(store.data) == 1 and next(iter(store.data)).startswith("bandit_bench/scale/")

    def refuse(*args: object) -> None:
        raise AssertionError("computed again although the store holds the rows")

    monkeypatch.setattr(scale, "_summaries", refuse)
    again = scale_records(cfg, store)
    # Equal to the last digit, and in the same column order (the store sorts JSON keys).
    assert again == computed
    assert [list(r["metrics"]) for r in again] == [list(r["metrics"]) for r in computed]


@pytest.mark.parametrize(
    "damage",
    [
        lambda v: None,
        lambda v: "not a list",
        lambda v: v[:2],
        lambda v: [v[1], v[0], v[2]],
        lambda v: [[v[0][0], []], v[1], v[2]],
        lambda v: [[v[0][0], [e[:4] for e in v[0][1]]], v[1], v[2]],
        lambda v: [[v[0][0], [[*e[:1], "0.5", *e[2:]] for e in v[0][1]]], v[1], v[2]],
        lambda v: [[v[0][0], [[*e[:4], 1000.0] for e in v[0][1]]], v[1], v[2]],
        lambda v: [[v[0][0], [[*e[:4], True] for e in v[0][1]]], v[1], v[2]],
    ],
    ids=["null", "text", "two-rows", "reordered", "no-metrics", "short", "string", "float-n", "bool-n"],
)
def test_a_damaged_stored_entry_is_computed_again_and_replaced(damage) -> None:
    cfg = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    store = _Store()
    computed = scale_records(cfg, store)
    (key,) = store.data
    store.data[key] = json.dumps(damage(json.loads(store.data[key])))
    assert scale_records(cfg, store) == computed
    from bandit_bench.reporting.scale import _decoded

    assert _decoded(json.loads(store.data[key])) is not None  # replaced by a good entry


def test_the_key_changes_with_the_spec_and_with_the_code(monkeypatch) -> None:
    import bandit_bench.reporting.scale as scale

    keys = {
        scale._store_key(5, 0.2, 25, 0),
        scale._store_key(5, 0.2, 26, 0),
        scale._store_key(5, 0.5, 25, 0),
        scale._store_key(4, 0.2, 25, 0),
        scale._store_key(5, 0.2, 25, 1),
    }
    assert len(keys) == 5
    before = scale._store_key(5, 0.2, 25, 0)
    monkeypatch.setattr(scale, "_code_digest", lambda: "edited")
    assert scale._store_key(5, 0.2, 25, 0) != before


def test_the_key_covers_every_module_the_numbers_come_from() -> None:
    import bandit_bench.reporting.scale as scale
    from bandit_bench.core.agents.baselines import run_on_instances
    from bandit_bench.core.bandit import draw_instance
    from bandit_bench.core.metrics import summarize
    from bandit_bench.core.seeding import episode_streams
    from bandit_bench.core.specs import InstanceSpec

    used = {f.__module__ for f in (run_on_instances, draw_instance, summarize, episode_streams, InstanceSpec)}
    assert used | {"bandit_bench.reporting.scale"} == set(scale._CODE)
