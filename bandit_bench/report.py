"""Reports: case records -> pandas tables -> summary.csv, summary.json, steps.jsonl, report.md, report.html.

Every file is written through a temporary file and renamed, so two runs writing the same
folder never interleave rows and a reader never sees half a file.

``report.md`` and ``report.html`` are functions of ``summary.json`` and ``steps.jsonl`` alone:
:func:`load_report_dir` reads a folder back and :func:`rerender_reports` writes both again
(``bandit-bench report DIR``) without running anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import METRIC_NAMES as METRICS  # one list of metrics, in column order
from .metrics import EpisodeBatch

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_COLUMNS = (
    "model",
    "config",
    "kind",
    "source",
    "design",
    "k",
    "delta",
    "horizon",
    "constrained",
    "episodes",
    "seed",
    "steps",
    *METRICS,
    "format_compliance_low",
    "format_compliance_high",
    "best_arm_rate_low",
    "best_arm_rate_high",
    "min_format_compliance",
    "min_best_arm_rate",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "passed",
    "expected_failure",
    "errors",
    "episodes_run",
    "stopped",
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
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be read by others
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


def row_kind(model: str) -> str:
    """``model`` (measured), ``baseline`` (a classic algorithm, measured on the same instances)
    or ``published`` (the paper's own numbers, transcribed: ``paper/gpt-4``)."""
    if model.startswith("baseline/"):
        return "baseline"
    if model.startswith("paper/"):
        return "published"
    return "model"


def summary_row(record: Mapping[str, Any], prices: Mapping[str, Any] | None = None) -> dict[str, Any]:
    metrics = record.get("metrics") or {}
    row: dict[str, Any] = {
        "model": record["model"],
        "config": record["config"],
        "kind": record.get("kind") or row_kind(record["model"]),
        # Where a published row's numbers come from ("Figure 11(a), row BNRN0"); None if measured.
        "source": record.get("source"),
        "design": record["design"],
        "k": record["k"],
        "delta": record["delta"],
        "horizon": record["horizon"],
        "constrained": record["constrained"],
        "episodes": record["episodes"],
        "seed": record.get("seed"),
        "steps": record["steps"],
    }
    for m in METRICS:
        row[m] = metrics[m]["value"] if m in metrics else None
    for m in ("format_compliance", "best_arm_rate"):
        row[f"{m}_low"] = metrics[m]["low"] if m in metrics else None
        row[f"{m}_high"] = metrics[m]["high"] if m in metrics else None
    thresholds = record.get("thresholds") or {}
    row["min_format_compliance"] = thresholds.get("format_compliance")
    row["min_best_arm_rate"] = thresholds.get("best_arm_rate")
    row["prompt_tokens"] = record["prompt_tokens"]
    row["completion_tokens"] = record["completion_tokens"]
    row["cost_usd"] = _cost(record, prices or {})
    row["passed"] = record["passed"]
    row["expected_failure"] = record.get("expected_failure", False)
    row["errors"] = len(record.get("errors", []))
    # Fewer than planned when --early-stop settled the verdict; "stopped" then says why.
    row["episodes_run"] = record.get("episodes_run", record["episodes"])
    stopped = record.get("stopped")
    row["stopped"] = stopped.get("note") if isinstance(stopped, Mapping) else None
    return row


_KIND_ORDER = {"model": 0, "baseline": 1, "published": 2}


def _sorted(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    # Models first, then baselines, then the paper's published rows, each by name: the same
    # order whatever the worker count.
    return sorted(
        records,
        key=lambda r: (r["config"], _KIND_ORDER[r.get("kind") or row_kind(r["model"])], r["model"]),
    )


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
        # A rescaled reward a rounding error below zero must not print as "-0.00".
        return f"{value if round(value, digits) != 0 else 0.0:.{digits}f}"
    return str(value)


def format_cost(value: Any) -> str:
    """USD with enough digits to see a cheap run; "-" when neither a price nor the provider said."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"${value:.2f}" if value >= 1 else f"${value:.4f}"


def verdict(row: Any) -> str:
    if row["kind"] == "baseline":
        return "reference"
    if row["kind"] == "published":
        return "published"
    if row["errors"]:
        return "ERROR"
    if row["expected_failure"]:
        return "xfail" if not row["passed"] else "XPASS"
    return "pass" if row["passed"] else "FAIL"


def _episodes_cell(row: Any) -> str:
    run = row.get("episodes_run")
    if isinstance(row.get("stopped"), str) and run is not None and run == run and int(run) < row["episodes"]:
        return f"{int(run)} of {row['episodes']}"
    return str(row["episodes"])


def stopped_notes(summary: pd.DataFrame) -> list[str]:
    """One line per case that --early-stop ended before its last episode."""
    return [
        f"{r['model']} x {r['config']}: {r['stopped']}"
        for _, r in summary.iterrows()
        if isinstance(r.get("stopped"), str)
    ]


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
                "config": r["config"]
                + (" (constrained)" if r["constrained"] and "constrained" not in r["config"] else ""),
                "episodes": _episodes_cell(r),
                "format": _fmt(r["format_compliance"], 2),
                "best arm (95% CI)": _fmt(r["best_arm_rate"], 2) + ci,
                "SuffFail(T/2)": _fmt(r["suffix_failure_freq"], 2),
                "K*MinFrac": _fmt(r["k_min_frac"], 2),
                "GreedyFrac": _fmt(r["greedy_frac"], 2),
                "MedianReward": _fmt(r["median_reward"], 2),
                "regret": _fmt(r["mean_regret"], 2),
                "tokens": "-"
                if r["kind"] == "published"
                else f"{int(r['prompt_tokens'])}+{int(r['completion_tokens'])}",
                "cost": format_cost(r["cost_usd"]),
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
    if frame.empty:
        return "(no cases)"
    header = "| " + " | ".join(frame.columns) + " |"
    sep = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, sep, *body])


def totals_line(summary: pd.DataFrame) -> str:
    """Tokens and cost over the whole run; the cost counts the rows where it is known."""
    prompt = int(summary["prompt_tokens"].fillna(0).sum())
    completion = int(summary["completion_tokens"].fillna(0).sum())
    costs = summary["cost_usd"].dropna()
    line = f"Tokens: {prompt} prompt + {completion} completion."
    if len(costs):
        line += (
            f" Cost: {format_cost(float(costs.sum()))} over {len(costs)} of {len(summary)} rows "
            "(from `[tool.bandit_bench.prices]`, else the provider's reported cost)."
        )
    else:
        line += " Cost: unknown (set `[tool.bandit_bench.prices]` in pyproject.toml, USD per 1M tokens)."
    return line


def render_markdown(summary: pd.DataFrame) -> str:
    return (
        "# bandit-bench report\n\n"
        "One row per model x config; `baseline/*` rows are classic algorithms on the very same "
        "instances and reward tables (common random numbers). Best-arm rate with its 95% Wilson "
        "interval over pulls; SuffFail(T/2) is the share of episodes that never pick the best arm "
        "in the second half; K*MinFrac is K times the smallest share of pulls any arm got. "
        "`paper/*` rows (verdict `published`) are the paper's own numbers for the same design, "
        "instance and horizon, transcribed from its tables (`source` in summary.json), never measured "
        "here; episodes is the paper's replicate count.\n\n"
        + markdown_table(summary)
        + "\n\n"
        + "".join(f"- {note}\n" for note in stopped_notes(summary))
        + ("\n" if stopped_notes(summary) else "")
        + totals_line(summary)
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
        "report.html": report_dir / "report.html",
    }
    atomic_write(paths["summary.csv"], summary.to_csv(index=False))
    table = json.loads(summary.to_json(orient="records"))
    atomic_write(paths["summary.json"], json.dumps(table, indent=2) + "\n")
    steps = list(step_rows(records))
    atomic_write(paths["steps.jsonl"], "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in steps))
    # Both human reports come from exactly what the two data files hold (the JSON round trip
    # included), so `bandit-bench report DIR` re-renders them identically.
    rows = [_summary_row(row, i, paths["summary.json"]) for i, row in enumerate(table)]
    _write_rendered(ReportData(report_dir, rows, steps), paths)
    return paths


# ---------------------------------------------------------------------------- reading a folder back

SUMMARY_FILE = "summary.json"
STEPS_FILE = "steps.jsonl"
_REQUIRED_SUMMARY = ("model", "config", "k", "delta", "horizon", "episodes")
_REQUIRED_STEP = ("model", "config", "episode", "t", "arm", "reward", "valid", "best_arm")
# Columns a folder written by an older version may lack, with the value that means "unknown".
_SUMMARY_DEFAULTS: dict[str, Any] = {
    "kind": None,
    "design": "",
    "constrained": False,
    "seed": None,
    "steps": 0,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "cost_usd": None,
    "passed": False,
    "expected_failure": False,
    "errors": 0,
    "episodes_run": None,
    "stopped": None,
}
_RERUN = "Re-run the benchmark with `pytest --report-dir DIR` to write a fresh report folder."


class ReportDirError(ValueError):
    """A report folder is missing, incomplete or corrupt; the message says what was expected."""


@dataclass(frozen=True)
class ReportData:
    """A report folder's data: the rows of ``summary.json`` and the lines of ``steps.jsonl``."""

    directory: Path
    summary: list[dict[str, Any]]
    steps: list[dict[str, Any]]

    def summary_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.summary, columns=list(SUMMARY_COLUMNS))


@dataclass(frozen=True)
class CaseEpisodes:
    """The complete episodes of one model x config, with their episode indices (for pairing)."""

    model: str
    config: str
    episodes: np.ndarray
    batch: EpisodeBatch


def _summary_row(row: Any, i: int, path: Path) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ReportDirError(
            f"{path}: row {i} is {type(row).__name__}; expected an object with the keys "
            f"{', '.join(_REQUIRED_SUMMARY)}. {_RERUN}"
        )
    missing = [k for k in _REQUIRED_SUMMARY if k not in row]
    if missing:
        raise ReportDirError(
            f"{path}: row {i} has no {', '.join(missing)}; expected every row to hold "
            f"{', '.join(_REQUIRED_SUMMARY)}. {_RERUN}"
        )
    out = {col: row.get(col) for col in SUMMARY_COLUMNS}
    for col, default in _SUMMARY_DEFAULTS.items():
        if out[col] is None:
            out[col] = default
    if out["kind"] is None:
        out["kind"] = row_kind(str(row["model"]))
    return out


def _read_summary(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportDirError(
            f"{path}: no such file; expected the {SUMMARY_FILE} a pytest run writes into its report folder. "
            f"{_RERUN}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ReportDirError(f"{path}: unreadable ({err}); expected a UTF-8 JSON file. {_RERUN}") from None
    except json.JSONDecodeError as err:
        raise ReportDirError(
            f"{path}: not valid JSON ({err}); expected the list of summary rows pytest writes. {_RERUN}"
        ) from None
    if not isinstance(data, list):
        raise ReportDirError(
            f"{path}: holds a JSON {type(data).__name__}; expected a list of summary rows. {_RERUN}"
        )
    return [_summary_row(row, i, path) for i, row in enumerate(data)]


def _read_steps(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportDirError(
            f"{path}: no such file; expected the {STEPS_FILE} a pytest run writes beside {SUMMARY_FILE}. "
            f"{_RERUN}"
        )
    steps: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    step = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ReportDirError(
                        f"{path}, line {lineno}: not valid JSON ({err}); expected one JSON object per line. "
                        f"{_RERUN}"
                    ) from None
                if not isinstance(step, dict) or any(k not in step for k in _REQUIRED_STEP):
                    raise ReportDirError(
                        f"{path}, line {lineno}: got {line.strip()[:80]!r}; expected an object with the keys "
                        f"{', '.join(_REQUIRED_STEP)}. {_RERUN}"
                    )
                steps.append(step)
    except (OSError, UnicodeDecodeError) as err:
        raise ReportDirError(f"{path}: unreadable ({err}); expected a UTF-8 text file. {_RERUN}") from None
    return steps


def load_report_dir(report_dir: Path) -> ReportData:
    """Read ``summary.json`` and ``steps.jsonl`` back; :class:`ReportDirError` says what is wrong."""
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        what = "a file" if report_dir.exists() else "no such folder"
        raise ReportDirError(
            f"{report_dir}: {what}; expected a report folder holding {SUMMARY_FILE} and {STEPS_FILE} "
            f"(pytest writes one into --report-dir, reports/ by default). {_RERUN}"
        )
    summary = _read_summary(report_dir / SUMMARY_FILE)
    steps = _read_steps(report_dir / STEPS_FILE)
    return ReportData(report_dir, summary, steps)


def case_episodes(
    summary: Sequence[Mapping[str, Any]], steps: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str], CaseEpisodes]:
    """Group step lines into each summary row's complete episodes (t = 0..T-1, no gap).

    Episodes cut short by an error are left out, as they are from the summary's metrics.
    Rows with no complete episode are absent from the result.
    """
    by_case: dict[tuple[str, str], dict[int, list[Mapping[str, Any]]]] = {}
    for s in steps:
        by_case.setdefault((s["model"], s["config"]), {}).setdefault(int(s["episode"]), []).append(s)
    out: dict[tuple[str, str], CaseEpisodes] = {}
    for row in summary:
        key = (row["model"], row["config"])
        horizon = int(row["horizon"])
        episodes = []
        for ep, ep_steps in sorted(by_case.get(key, {}).items()):
            ordered = sorted(ep_steps, key=lambda s: int(s["t"]))
            if [int(s["t"]) for s in ordered] == list(range(horizon)):
                episodes.append((ep, ordered))
        if not episodes:
            continue
        try:
            batch = EpisodeBatch.from_arrays(
                arms=[[int(s["arm"]) for s in ep_steps] for _, ep_steps in episodes],
                rewards=[[int(s["reward"]) for s in ep_steps] for _, ep_steps in episodes],
                valid=[[bool(s["valid"]) for s in ep_steps] for _, ep_steps in episodes],
                best_arm=[int(ep_steps[0]["best_arm"]) for _, ep_steps in episodes],
                k=int(row["k"]),
                delta=float(row["delta"]),
            )
        except (TypeError, ValueError) as err:
            raise ReportDirError(
                f"{key[0]} x {key[1]}: the steps do not fit the summary row (k={row['k']}, "
                f"delta={row['delta']}, T={horizon}): {err}. {_RERUN}"
            ) from None
        out[key] = CaseEpisodes(key[0], key[1], np.array([ep for ep, _ in episodes], dtype=np.int64), batch)
    return out


def _write_rendered(data: ReportData, paths: Mapping[str, Path]) -> None:
    from .html_report import render_html

    atomic_write(paths["report.md"], render_markdown(data.summary_frame()))
    atomic_write(paths["report.html"], render_html(data.summary, data.steps))


def rerender_reports(report_dir: Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` again from the folder's data files; runs nothing."""
    data = load_report_dir(report_dir)
    paths = {name: data.directory / name for name in ("report.md", "report.html")}
    _write_rendered(data, paths)
    return paths
