"""Report files from case records, tokens and cost, and `bandit-bench report DIR` re-rendering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.cli import main
from bandit_bench.evaluation import case_record
from bandit_bench.report import (
    SUMMARY_COLUMNS,
    ReportDirError,
    case_episodes,
    load_report_dir,
    write_reports,
)
from bandit_bench.runner import run_case
from bandit_bench.settings import Price
from bandit_bench.specs import BUILTIN_CONFIGS

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
        fake.update(model=FAKE, prompt_tokens=2_000_000, completion_tokens=1_000_000, provider_cost=0.0123)
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
    rows = json.loads((report_dir / "summary.json").read_text())
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    fake = next(r for r in rows if r["model"] == FAKE)
    assert fake["min_best_arm_rate"] == 0.9 and fake["min_format_compliance"] == 0.9
    assert fake["seed"] == 0
    assert fake["passed"] is False


def test_cost_from_the_price_table(report_dir: Path) -> None:
    rows = json.loads((report_dir / "summary.json").read_text())
    fake = next(r for r in rows if r["model"] == FAKE)
    # 2M prompt tokens at $0.15/M + 1M completion tokens at $0.60/M.
    assert fake["cost_usd"] == pytest.approx(0.90)
    md = (report_dir / "report.md").read_text()
    assert "| cost |" in md
    assert "| 2000000+1000000 | $0.9000 | FAIL |" in md
    assert "Tokens: 4000000 prompt + 2000000 completion. Cost: $1.80 over 2 of 6 rows" in md
    html = (report_dir / "report.html").read_text()
    assert "$0.9000" in html and "Cost: $1.80 over 2 of 6 rows" in html


def test_cost_falls_back_to_the_providers_figure(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    write_reports(records, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| $0.0123 | FAIL |" in md
    assert "| 0+0 | - | reference |" in md


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
    # Written before seed, thresholds and cost were columns: re-rendering still works.
    rows = json.loads((report_dir / "summary.json").read_text())
    for r in rows:
        for col in ("seed", "min_format_compliance", "min_best_arm_rate", "cost_usd", "kind"):
            del r[col]
    (report_dir / "summary.json").write_text(json.dumps(rows))
    assert main(["report", str(report_dir)]) == 0
    assert "| 2000000+1000000 | - | FAIL |" in (report_dir / "report.md").read_text()


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
        ('{"model": "x"}', "summary.json: holds a JSON dict; expected a list of summary rows"),
        ('[{"model": "x"}]', "row 0 has no config, k, delta, horizon, episodes"),
        ("[1]", "row 0 is int; expected an object"),
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
    assert "steps.jsonl, line 3: got" in err and "expected an object with the keys model, config" in err


def test_steps_that_do_not_fit_the_summary(report_dir: Path) -> None:
    lines = [json.loads(x) for x in (report_dir / "steps.jsonl").read_text().splitlines()]
    lines[0]["arm"] = 99
    (report_dir / "steps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ReportDirError, match="the steps do not fit the summary row"):
        data = load_report_dir(report_dir)
        case_episodes(data.summary, data.steps)


def test_an_empty_run_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "summary.json").write_text("[]")
    (tmp_path / "steps.jsonl").write_text("")
    assert main(["report", str(tmp_path)]) == 0
    assert "(no cases)" in (tmp_path / "report.md").read_text()
    assert "<img" not in (tmp_path / "report.html").read_text()
