"""Report files from case records, tokens and cost, and `bandit-bench report DIR` re-rendering."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bandit_bench
from bandit_bench.cli.commands import main
from bandit_bench.core.episode import Trajectory
from bandit_bench.core.specs import BUILTIN_CONFIGS
from bandit_bench.plugin.settings import Price
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.reporting.provenance import DISTRIBUTION, git_commit, public_url, run_metadata
from bandit_bench.reporting.tables import (
    SUMMARY_COLUMNS,
    ReportDirError,
    case_episodes,
    load_report_dir,
    render_markdown,
    summary_rows,
    table_blocks,
    text_table,
    threshold_text,
)
from bandit_bench.reporting.writer import write_reports
from bandit_bench.running.runner import CaseResult, run_case

CONFIGS = [
    BUILTIN_CONFIGS["BNRN0-hard-T25"].with_overrides(episodes=4, horizon=12),
    BUILTIN_CONFIGS["BNRN0-easy-T25"].with_overrides(episodes=3, horizon=10),
]
FAKE = "sim/uniform"


def make_records() -> list[dict[str, Any]]:
    """Reference baselines plus a stand-in "model" (uniform play) that misses its threshold."""
    records = []
    for cfg in CONFIGS:
        for model in ("baseline/ucb", "baseline/greedy"):
            records.append(case_record(run_case(model, cfg)))
        fake = case_record(run_case("baseline/uniform", cfg), min_best_arm_rate=0.9)
        # No step reported a cost: every token is priced at the price table.
        fake.update(
            model=FAKE,
            prompt_tokens=2_000_000,
            completion_tokens=1_000_000,
            provider_cost=None,
            unreported_prompt_tokens=2_000_000,
            unreported_completion_tokens=1_000_000,
        )
        records.append(fake)
    return records


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return make_records()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]) -> Path:
    folder = tmp_path_factory.mktemp("written") / "reports"
    write_reports(records, folder, {FAKE: Price(prompt=0.15, completion=0.60)})
    return folder


@pytest.fixture
def report_dir(tmp_path: Path, written: Path) -> Path:
    """A fresh copy of one report folder (rendering the plots takes a second; copying does not)."""
    return Path(shutil.copytree(written, tmp_path / "reports"))


def test_every_file_is_written(report_dir: Path) -> None:
    names = {p.name for p in report_dir.iterdir()}
    assert names == {"summary.csv", "summary.json", "steps.jsonl", "report.md", "report.html"}
    document = json.loads((report_dir / "summary.json").read_text())
    assert list(document) == ["run", "rows"]
    rows = document["rows"]
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    fake = next(r for r in rows if r["model"] == FAKE)
    assert fake["min_best_arm_rate"] == 0.9 and fake["min_format_compliance"] == 0.9
    assert fake["seed"] == 0
    assert fake["passed"] is False


def test_cost_from_the_price_table(report_dir: Path) -> None:
    rows = json.loads((report_dir / "summary.json").read_text())["rows"]
    fake = next(r for r in rows if r["model"] == FAKE)
    # 2M prompt tokens at $0.15/M + 1M completion tokens at $0.60/M.
    assert fake["cost_usd"] == pytest.approx(0.90)
    md = (report_dir / "report.md").read_text()
    assert "| cost |" in md
    assert "| 2000000+1000000 | $0.9000 | FAIL |" in md
    assert "Tokens: 4000000 prompt + 2000000 completion. Cost: $1.80 over 2 of 6 rows" in md
    html = (report_dir / "report.html").read_text()
    assert "$0.9000" in html and "Cost: $1.80 over 2 of 6 rows" in html


def test_the_providers_figure_comes_first_and_the_price_covers_the_rest(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """The rule --max-cost charges by (core.replies.cost_usd): the provider's reported cost where
    a step has one, the price table for the tokens of the steps without."""
    reported = [
        dict(r, provider_cost=0.0123, unreported_prompt_tokens=0, unreported_completion_tokens=0)
        if r["model"] == FAKE
        else r
        for r in records
    ]
    prices = {FAKE: Price(prompt=0.15, completion=0.60)}
    write_reports(reported, tmp_path / "a", prices)
    md = (tmp_path / "a" / "report.md").read_text()
    assert "| $0.0123 | FAIL |" in md  # the price table does not override the provider
    assert "| 0+0 | - | reference |" in md
    # Half the tokens came with no reported cost: priced, and added to the reported part.
    mixed = [
        dict(r, provider_cost=0.0123, unreported_prompt_tokens=1_000_000, unreported_completion_tokens=0)
        if r["model"] == FAKE
        else r
        for r in records
    ]
    write_reports(mixed, tmp_path / "b", prices)
    rows = json.loads((tmp_path / "b" / "summary.json").read_text())["rows"]
    assert next(r for r in rows if r["model"] == FAKE)["cost_usd"] == pytest.approx(0.15 + 0.0123)
    # Without a price, a part nobody priced makes the cost unknown rather than too low.
    write_reports(mixed, tmp_path / "c")
    assert "| - | FAIL |" in (tmp_path / "c" / "report.md").read_text()


def test_report_command_rerenders_identically(report_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    (report_dir / "report.md").unlink()
    (report_dir / "report.html").unlink()
    assert main(["report", str(report_dir)]) == 0
    out = capsys.readouterr().out
    assert str(report_dir / "report.html") in out
    assert (report_dir / "report.md").read_text() == md
    assert (report_dir / "report.html").read_text() == html


def test_report_command_reads_a_folder_of_an_older_version(
    report_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written before seed, thresholds, cost and the run metadata: re-rendering still works.
    rows = json.loads((report_dir / "summary.json").read_text())["rows"]
    for r in rows:
        for col in ("seed", "min_format_compliance", "min_best_arm_rate", "cost_usd", "kind"):
            del r[col]
    (report_dir / "summary.json").write_text(json.dumps(rows))
    assert main(["report", str(report_dir)]) == 0
    md = (report_dir / "report.md").read_text()
    assert "| 2000000+1000000 | - | FAIL |" in md
    assert "- bandit-bench: unknown" in md and "- base URL: unknown" in md


def test_case_episodes_rebuild_the_batches(report_dir: Path, records: list[dict[str, Any]]) -> None:
    data = load_report_dir(report_dir)
    cases = case_episodes(data.summary, data.steps)
    assert len(cases) == len(records)
    rec = records[0]
    case = cases[(rec["model"], rec["config"])]
    assert case.episodes.tolist() == list(range(rec["episodes"]))
    assert case.batch.arms.tolist() == [[s["arm"] for s in t["steps"]] for t in rec["trajectories"]]
    assert case.batch.best_arm.tolist() == [t["best_arm"] for t in rec["trajectories"]]


def test_incomplete_episodes_are_left_out(report_dir: Path) -> None:
    data = load_report_dir(report_dir)
    first = data.steps[0]
    cut = [s for s in data.steps if not (s["model"] == first["model"] and s["episode"] == 1 and s["t"] > 3)]
    cases = case_episodes(data.summary, cut)
    assert 1 not in cases[(first["model"], first["config"])].episodes.tolist()


# ---------------------------------------------------------------------------- broken folders


def run_report(capsys: pytest.CaptureFixture[str], folder: Path) -> str:
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bandit-bench report: ")
    assert "Traceback" not in err
    return err


def test_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = run_report(capsys, tmp_path / "nope")
    assert "no such folder; expected a report folder holding summary.json and steps.jsonl" in err


def test_a_file_instead_of_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert "f: a file; expected a report folder" in run_report(capsys, tmp_path / "f")


def test_missing_steps(report_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (report_dir / "steps.jsonl").unlink()
    err = run_report(capsys, report_dir)
    assert "steps.jsonl: no such file" in err and "pytest --report-dir" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "summary.json: not valid JSON"),
        (
            '{"model": "x"}',
            "summary.json: rows: no such key (its object holds the key model); expected a list of summary "
            "rows. Re-run the benchmark",
        ),
        ('{"run": {}, "rows": {}}', "summary.json: rows: got {}; expected a list of summary rows. Re-run"),
        ('{"run": [], "rows": []}', "summary.json: run: got []; expected an object (the run's metadata)."),
        (
            '"x"',
            'summary.json: got \'x\'; expected an object with "run" (an object) and "rows" (a list of '
            "summary rows). Re-run",
        ),
        (
            '[{"model": "x"}]',
            "summary.json: rows[0].config: no such key (its object holds the key model); expected a config "
            "name (text) (and 4 more problems). Re-run",
        ),
        (
            "[1]",
            "summary.json: rows[0]: got 1; expected an object with model, config, k, delta, horizon, "
            "episodes.",
        ),
        (
            '{"run": {}, "rows": [1]}',
            "summary.json: rows[0]: got 1; expected an object with model, config, k, delta, horizon, "
            "episodes.",
        ),
        (
            '[{"model": "x", "config": "c", "k": 5, "delta": 0.2, "horizon": "100", "episodes": 2}]',
            "summary.json: rows[0].horizon: got '100'; expected a whole number >= 1. Re-run",
        ),
    ],
)
def test_corrupt_summary(
    report_dir: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    (report_dir / "summary.json").write_text(text)
    assert expected in run_report(capsys, report_dir)


def test_corrupt_steps_line(report_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = (report_dir / "steps.jsonl").read_text().splitlines()
    lines[2] = '{"model": "baseline/ucb"}'
    (report_dir / "steps.jsonl").write_text("\n".join(lines) + "\n")
    err = run_report(capsys, report_dir)
    assert (
        "steps.jsonl, line 3: config: no such key (its object holds the key model); expected a config name "
        "(text) (and 6 more problems). Re-run the benchmark"
    ) in err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[3]", "got [3]; expected an object with model, config, episode, t, arm, reward, valid, best_arm."),
        (
            '{"model": "m", "config": "c", "episode": 0, "t": 0, "arm": 1, "reward": 2, "valid": true, '
            '"best_arm": 0}',
            "reward: got 2; expected 0 or 1.",
        ),
        (
            '{"model": "m", "config": "c", "episode": 0, "t": 0, "arm": "1", "reward": 1, "valid": true, '
            '"best_arm": 0}',
            "arm: got '1'; expected a whole number >= 0.",
        ),
    ],
)
def test_step_line_of_the_wrong_shape(
    report_dir: Path, capsys: pytest.CaptureFixture[str], line: str, expected: str
) -> None:
    lines = (report_dir / "steps.jsonl").read_text().splitlines()
    lines[1] = line
    (report_dir / "steps.jsonl").write_text("\n".join(lines) + "\n")
    assert f"steps.jsonl, line 2: {expected} Re-run the benchmark" in run_report(capsys, report_dir)


def test_steps_that_do_not_fit_the_summary(report_dir: Path) -> None:
    lines = [json.loads(x) for x in (report_dir / "steps.jsonl").read_text().splitlines()]
    lines[0]["arm"] = 99
    (report_dir / "steps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ReportDirError, match="the steps do not fit the summary row"):
        data = load_report_dir(report_dir)
        case_episodes(data.summary, data.steps)


def test_an_empty_run_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "summary.json").write_text('{"run": {}, "rows": []}')
    (tmp_path / "steps.jsonl").write_text("")
    assert main(["report", str(tmp_path)]) == 0
    assert "(no cases)" in (tmp_path / "report.md").read_text()
    assert "<img" not in (tmp_path / "report.html").read_text()


# ---------------------------------------------------------------------------- reading the tables


def same_instance_records() -> list[dict[str, Any]]:
    """Two configs on one instance (K, delta, T, N, seed): their baseline rows are identical."""
    configs = [
        BUILTIN_CONFIGS[name].with_overrides(episodes=3, horizon=10)
        for name in ("BNRN0-hard-T25", "BSSC~0-hard-T25")
    ]
    records = []
    for cfg in configs:
        records += [case_record(run_case(m, cfg)) for m in ("baseline/ucb", "baseline/greedy")]
        fake = case_record(run_case("baseline/uniform", cfg), min_best_arm_rate=0.0)
        fake["model"] = FAKE
        records.append(fake)
    return records


def test_baseline_rows_are_shown_once_per_instance() -> None:
    rows = summary_rows(same_instance_records())
    assert len(rows) == 6  # the data files keep one row per model x config (compare pairs on them)
    blocks = table_blocks(rows)
    assert [(b.kind, len(b.rows)) for b in blocks] == [("config", 1), ("config", 1), ("baseline", 2)]
    reference = blocks[-1]
    assert reference.title == "reference algorithms on K = 5, delta = 0.2, T = 10, 3 episodes, seed 0"
    assert reference.facts.endswith("BNRN0-hard-T10, BSSC~0-hard-T10")
    assert [r["model"] for r in reference.rows] == ["baseline/greedy", "baseline/ucb"]
    text = text_table(rows)
    assert text.count("baseline/ucb") == 1 and text.count(FAKE) == 2
    md = render_markdown(rows)
    assert md.count("| baseline/ucb |") == 1


def test_baseline_rows_that_differ_are_kept_apart() -> None:
    rows = summary_rows(same_instance_records())
    changed = next(r for r in rows if r["model"] == "baseline/ucb" and r["config"] == "BSSC~0-hard-T10")
    changed["k_min_frac"] = 0.123
    reference = table_blocks(rows)[-1]
    assert [r["model"] for r in reference.rows] == ["baseline/greedy", "baseline/ucb", "baseline/ucb"]


def test_baselines_on_other_instances_get_their_own_block(records: list[dict[str, Any]]) -> None:
    blocks = table_blocks(summary_rows(records))
    titles = [b.title for b in blocks if b.kind == "baseline"]
    assert titles == [
        "reference algorithms on K = 4, delta = 0.5, T = 10, 3 episodes, seed 0",
        "reference algorithms on K = 5, delta = 0.2, T = 12, 4 episodes, seed 0",
    ]


def test_terminal_table_fits_120_columns(records: list[dict[str, Any]]) -> None:
    long_name = "some-provider/a-model-with-a-very-long-name-indeed-v2"
    renamed = [dict(r, model=long_name) if r["model"] == FAKE else r for r in records]
    text = text_table(summary_rows(renamed))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120, max(lines, key=len)
    assert lines[0].split() == [
        "model", "format", "best", "arm", "SuffFail", "K*MinFrac", "GreedyFrac", "MedReward", "regret",
        "tokens", "in+out", "cost", "verdict",
    ]  # fmt: skip
    # The name too long for its column stands on its own line, its numbers on the next.
    i = lines.index(long_name)
    assert lines[i + 1].split()[-1] == "FAIL"
    assert "[" not in text  # the intervals are in the report files, not in the terminal


def test_terminal_table_of_the_shipped_names_keeps_them_on_their_row(records: list[dict[str, Any]]) -> None:
    renamed = [
        dict(r, model="local/smollm2-135m-instruct", provider_cost=None) if r["model"] == FAKE else r
        for r in records
    ]
    lines = text_table(summary_rows(renamed)).splitlines()
    assert max(len(line) for line in lines) <= 120
    rows = [line for line in lines if line.startswith("local/smollm2-135m-instruct ")]
    assert len(rows) == 2 and all(line.endswith("FAIL") for line in rows)
    assert "2.0M+1.0M" in rows[0]  # token counts in short form: the exact ones are in the files
    # One line per group title: config, instance, episodes, seed and thresholds in few words.
    assert "-- BNRN0-hard-T12 (K=5 delta=0.2 T=12 N=4 seed 0; format >= 0.90, best arm >= 0.90)" in lines


def test_thresholds_that_cannot_fail_say_not_checked() -> None:
    assert threshold_text(0.0) == threshold_text(None) == "not checked"
    assert threshold_text(0.9) == ">= 0.90"
    rows = summary_rows(same_instance_records())
    facts = table_blocks(rows)[0].facts
    assert facts.endswith("thresholds: format >= 0.90, best arm not checked")
    assert ">= 0.00" not in render_markdown(rows) and ">= 0.00" not in text_table(rows)


def test_median_reward_scale_is_explained_where_it_is_shown(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    for page in (md, html):
        assert "0 is what a bad arm pays and 1 what the best arm pays; below 0 is possible" in page


def test_identical_errors_are_printed_once_with_their_episodes() -> None:
    cfg = CONFIGS[0]
    result = CaseResult(model=FAKE, config=cfg)
    for ep, error in enumerate(
        [
            f"cassette cassettes/{FAKE}/{cfg.name}/000.json is missing. Record it with: pytest ...",
            f"cassette cassettes/{FAKE}/{cfg.name}/001.json is missing. Record it with: pytest ...",
            "step 3 of 12: HTTP 500 from the API. Retry later.",
            f"cassette cassettes/{FAKE}/{cfg.name}/003.json is missing. Record it with: pytest ...",
        ]
    ):
        traj = Trajectory(ep, cfg.instance.k, cfg.instance.horizon, cfg.instance.delta, 0)
        traj.error = error
        result.trajectories.append(traj)
    [failure] = case_record(result)["failures"]
    assert failure.splitlines() == [
        f"4 of {cfg.run.episodes} episodes errored:",
        f"  episodes 0, 1, 3: cassette cassettes/{FAKE}/{cfg.name}/<episode>.json is missing. "
        "Record it with: pytest ...",
        "  episode 2: step 3 of 12: HTTP 500 from the API.",
    ]


# ---------------------------------------------------------------------------- where the numbers came from


def test_run_metadata_in_every_report_file(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    with_requests = [dict(r, recorded=7, replayed=5) if r["model"] == FAKE else r for r in records]
    run = run_metadata(
        with_requests,
        base_url="https://user:sk-secret@example.com:8443/api/v1?api-key=sk-secret#x",
        record_mode="once",
        now=now,
    )
    write_reports(with_requests, tmp_path, run=run)
    saved = json.loads((tmp_path / "summary.json").read_text())["run"]
    assert saved == run
    assert run["created"] == "2026-01-02T03:04:05Z"
    assert run["base_url"] == "https://example.com:8443/api/v1"
    assert run["record_mode"] == "once" and run["seeds"] == [0]
    assert (run["requests_recorded"], run["requests_replayed"]) == (14, 10)  # two model rows
    # The package's own version, which is also that of the distribution as installed (its name
    # changed to pytest-bandit-bench in 0.1.0: an older install may still carry the old one).
    assert run["bandit_bench"] == bandit_bench.__version__ == importlib.metadata.version(DISTRIBUTION)
    assert run["numpy"] == np.__version__ and run["python"] == platform.python_version()
    assert run["openai"] == importlib.metadata.version("openai")
    assert run["vcrpy"] == importlib.metadata.version("vcrpy")
    assert run["git_commit"] is None  # no repository was named
    for name in ("summary.json", "report.md", "report.html", "summary.csv", "steps.jsonl"):
        assert "sk-secret" not in (tmp_path / name).read_text()
    md = (tmp_path / "report.md").read_text()
    assert "- base URL: https://example.com:8443/api/v1" in md
    assert "- requests recorded: 14" in md and "- record mode: once" in md
    html = (tmp_path / "report.html").read_text()
    assert "<dt>base URL</dt><dd>https://example.com:8443/api/v1</dd>" in html
    assert "<dt>written (UTC)</dt><dd>2026-01-02T03:04:05Z</dd>" in html


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1"),
        ("http://me:pw@127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("https://token@host/v1?key=abc", "https://host/v1"),
        ("http://[::1]:9/v1", "http://[::1]:9/v1"),
        (None, None),
    ],
)
def test_public_url_drops_credentials(url: str | None, expected: str | None) -> None:
    assert public_url(url) == expected


def test_git_commit_inside_and_outside_a_checkout(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "f").write_text("a")
    git("add", "f")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "f").write_text("b")
    assert git_commit(tmp_path) == f"{head} + local changes"
