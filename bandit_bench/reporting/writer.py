"""The report folder written: data files first, then the two human reports rendered from them.

Its own module because it is the one place that needs both the tables and the HTML page
(:mod:`bandit_bench.reporting.html` reads the tables' data model; the tables never import it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bandit_bench.reporting.tables import (
    ReportData,
    _summary_row,
    atomic_write,
    load_report_dir,
    render_markdown,
    step_rows,
    summary_frame,
)


def write_reports(
    records: Iterable[Mapping[str, Any]],
    report_dir: Path,
    prices: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the report folder.

    ``run`` is the run's metadata (:func:`~bandit_bench.reporting.provenance.run_metadata` of the
    records when not given)."""
    from bandit_bench.reporting.provenance import run_metadata

    records = list(records)
    summary = summary_frame(records, prices)
    run = dict(run) if run is not None else run_metadata(records)
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary.csv": report_dir / "summary.csv",
        "summary.json": report_dir / "summary.json",
        "steps.jsonl": report_dir / "steps.jsonl",
        "report.md": report_dir / "report.md",
        "report.html": report_dir / "report.html",
    }
    atomic_write(paths["summary.csv"], summary.to_csv(index=False))
    table = json.loads(summary.to_json(orient="records"))
    document = json.loads(json.dumps({"run": run, "rows": table}))
    atomic_write(paths["summary.json"], json.dumps(document, indent=2) + "\n")
    steps = list(step_rows(records))
    atomic_write(paths["steps.jsonl"], "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in steps))
    # Both human reports come from exactly what the two data files hold (the JSON round trip
    # included), so `bandit-bench report DIR` re-renders them identically.
    rows = [_summary_row(row, i, paths["summary.json"]) for i, row in enumerate(table)]
    _write_rendered(ReportData(report_dir, rows, steps, document["run"]), paths)
    return paths


def _write_rendered(data: ReportData, paths: Mapping[str, Path]) -> None:
    from bandit_bench.reporting.html import render_html

    atomic_write(paths["report.md"], render_markdown(data.summary, data.run))
    atomic_write(paths["report.html"], render_html(data.summary, data.steps, data.run))


def rerender_reports(report_dir: Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` again from the folder's data files; runs nothing."""
    data = load_report_dir(report_dir)
    paths = {name: data.directory / name for name in ("report.md", "report.html")}
    _write_rendered(data, paths)
    return paths
