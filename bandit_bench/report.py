"""Reports: case records -> pandas tables -> summary.csv, summary.json, steps.jsonl, report.md.

Every file is written through a temporary file and renamed, so two runs writing the same
folder never interleave rows and a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

METRICS = (
    "format_compliance",
    "best_arm_rate",
    "best_arm_rate_second_half",
    "suffix_failure_freq",
    "k_min_frac",
    "greedy_frac",
    "median_reward",
    "mean_regret",
)
SUMMARY_COLUMNS = (
    "model",
    "config",
    "kind",
    "design",
    "k",
    "delta",
    "horizon",
    "constrained",
    "episodes",
    "steps",
    *METRICS,
    "format_compliance_low",
    "format_compliance_high",
    "best_arm_rate_low",
    "best_arm_rate_high",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "passed",
    "expected_failure",
    "errors",
)
STEP_COLUMNS = (
    "model",
    "config",
    "episode",
    "t",
    "arm",
    "reward",
    "valid",
    "raw",
    "reason",
    "prompt_tokens",
    "completion_tokens",
    "best_arm",
)


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cost(record: Mapping[str, Any], prices: Mapping[str, Any]) -> float | None:
    price = prices.get(record["model"])
    if price is not None:
        return (record["prompt_tokens"] * price.prompt + record["completion_tokens"] * price.completion) / 1e6
    cost = record.get("provider_cost")
    return float(cost) if cost is not None else None


def summary_row(record: Mapping[str, Any], prices: Mapping[str, Any] | None = None) -> dict[str, Any]:
    metrics = record.get("metrics") or {}
    row: dict[str, Any] = {
        "model": record["model"],
        "config": record["config"],
        "kind": "baseline" if record["model"].startswith("baseline/") else "model",
        "design": record["design"],
        "k": record["k"],
        "delta": record["delta"],
        "horizon": record["horizon"],
        "constrained": record["constrained"],
        "episodes": record["episodes"],
        "steps": record["steps"],
    }
    for m in METRICS:
        row[m] = metrics[m]["value"] if m in metrics else None
    for m in ("format_compliance", "best_arm_rate"):
        row[f"{m}_low"] = metrics[m]["low"] if m in metrics else None
        row[f"{m}_high"] = metrics[m]["high"] if m in metrics else None
    row["prompt_tokens"] = record["prompt_tokens"]
    row["completion_tokens"] = record["completion_tokens"]
    row["cost_usd"] = _cost(record, prices or {})
    row["passed"] = record["passed"]
    row["expected_failure"] = record.get("expected_failure", False)
    row["errors"] = len(record.get("errors", []))
    return row


def _sorted(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    # Models first, baselines after, each by name: the same order whatever the worker count.
    return sorted(records, key=lambda r: (r["config"], r["model"].startswith("baseline/"), r["model"]))


def summary_frame(
    records: Iterable[Mapping[str, Any]], prices: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    import pandas as pd

    rows = [summary_row(r, prices) for r in _sorted(records)]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def step_rows(records: Iterable[Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
    for r in _sorted(records):
        for traj in r.get("trajectories", []):
            for s in traj["steps"]:
                yield {
                    "model": r["model"],
                    "config": r["config"],
                    "episode": traj["episode"],
                    "t": s["t"],
                    "arm": s["arm"],
                    "reward": s["reward"],
                    "valid": s["valid"],
                    "raw": s["raw"],
                    "reason": s["reason"],
                    "prompt_tokens": s["prompt_tokens"],
                    "completion_tokens": s["completion_tokens"],
                    "best_arm": traj["best_arm"],
                }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def verdict(row: Any) -> str:
    if row["kind"] == "baseline":
        return "reference"
    if row["errors"]:
        return "ERROR"
    if row["expected_failure"]:
        return "xfail" if not row["passed"] else "XPASS"
    return "pass" if row["passed"] else "FAIL"


def display_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The human table: one row per model x config, baselines marked as reference rows."""
    import pandas as pd

    rows = []
    for _, r in summary.iterrows():
        ci = ""
        if r["best_arm_rate_low"] is not None and r["best_arm_rate_low"] == r["best_arm_rate_low"]:
            ci = f" [{r['best_arm_rate_low']:.2f}, {r['best_arm_rate_high']:.2f}]"
        rows.append(
            {
                "model": r["model"],
                "config": r["config"] + (" (constrained)" if r["constrained"] else ""),
                "episodes": r["episodes"],
                "format": _fmt(r["format_compliance"], 2),
                "best arm (95% CI)": _fmt(r["best_arm_rate"], 2) + ci,
                "SuffFail(T/2)": _fmt(r["suffix_failure_freq"], 2),
                "K*MinFrac": _fmt(r["k_min_frac"], 2),
                "GreedyFrac": _fmt(r["greedy_frac"], 2),
                "MedianReward": _fmt(r["median_reward"], 2),
                "regret": _fmt(r["mean_regret"], 2),
                "tokens": f"{int(r['prompt_tokens'])}+{int(r['completion_tokens'])}",
                "verdict": verdict(r),
            }
        )
    return pd.DataFrame(rows)


def text_table(summary: pd.DataFrame) -> str:
    frame = display_frame(summary)
    if frame.empty:
        return "(no cases)"
    return str(frame.to_string(index=False))


def markdown_table(summary: pd.DataFrame) -> str:
    frame = display_frame(summary)
    header = "| " + " | ".join(frame.columns) + " |"
    sep = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, sep, *body])


def render_markdown(summary: pd.DataFrame) -> str:
    return (
        "# bandit-bench report\n\n"
        "One row per model x config; `baseline/*` rows are classic algorithms on the very same "
        "instances and reward tables (common random numbers). Best-arm rate with its 95% Wilson "
        "interval over pulls; SuffFail(T/2) is the share of episodes that never pick the best arm "
        "in the second half; K*MinFrac is K times the smallest share of pulls any arm got.\n\n"
        + markdown_table(summary)
        + "\n"
    )


def write_reports(
    records: Iterable[Mapping[str, Any]], report_dir: Path, prices: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    records = list(records)
    summary = summary_frame(records, prices)
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary.csv": report_dir / "summary.csv",
        "summary.json": report_dir / "summary.json",
        "steps.jsonl": report_dir / "steps.jsonl",
        "report.md": report_dir / "report.md",
    }
    atomic_write(paths["summary.csv"], summary.to_csv(index=False))
    table = json.loads(summary.to_json(orient="records"))
    atomic_write(paths["summary.json"], json.dumps(table, indent=2) + "\n")
    atomic_write(
        paths["steps.jsonl"], "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in step_rows(records))
    )
    atomic_write(paths["report.md"], render_markdown(summary))
    return paths
