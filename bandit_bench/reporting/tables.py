"""Reports: case records -> pandas tables -> summary.csv, summary.json, steps.jsonl, report.md, report.html.

Every file is written through a temporary file and renamed, so two runs writing the same
folder never interleave rows and a reader never sees half a file.

``report.md`` and ``report.html`` are functions of ``summary.json`` and ``steps.jsonl`` alone:
:func:`load_report_dir` reads a folder back, and :mod:`bandit_bench.reporting.writer` writes it
and renders both again (``bandit-bench report DIR``) without running anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bandit_bench.core.metrics import METRIC_NAMES as METRICS  # one list of metrics, in column order
from bandit_bench.core.metrics import EpisodeBatch
from bandit_bench.reporting.scale import is_scale_reference

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
    # Share of steps whose reply ran out of tokens (finish_reason "length") before a valid
    # answer: could not answer in the budget, as opposed to answering in the wrong format.
    "cut_off_rate",
    "best_arm_rate_low",
    "best_arm_rate_high",
    "min_format_compliance",
    "min_best_arm_rate",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "passed",
    "expected_failure",
    "errors",
    "episodes_run",
    "stopped",
    # What each request carried besides the prompt (running.profiles.describe), and where the
    # design's defining parameters were not honoured (the case is then marked "*").
    "request",
    "request_note",
    # The single-round screen (appendix E): the history policy, and LeastFrac of the decisions.
    "single_round",
    "least_frac",
    "threshold_note",
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
    # Added for reasoning models (issue 19): why the reply ended, its thoughts and their tokens
    # (included in completion_tokens), the provider's reported cost of the step.
    "finish_reason",
    "reasoning",
    "reasoning_tokens",
    "cost",
)


def atomic_write(path: Path, text: str) -> None:
    """A report file, whole or not at all, with no secret in it (the one atomic writer:
    :func:`~bandit_bench.recording.transport.write_text_atomic`)."""
    from bandit_bench.recording.redaction import redact
    from bandit_bench.recording.transport import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, redact(text))  # no secret reaches a report file, whatever a server echoed


def _cost(record: Mapping[str, Any], prices: Mapping[str, Any]) -> float | None:
    """The case's cost by the one rule --max-cost uses too (core.replies.cost_usd), step by step:
    the provider's reported cost where it gave one, the rest of the tokens at the price table."""
    from bandit_bench.core.replies import cost_usd

    price = prices.get(record["model"])
    reported = record.get("provider_cost")
    if "unreported_prompt_tokens" in record:
        prompt, completion = record["unreported_prompt_tokens"], record["unreported_completion_tokens"]
    elif reported is None:  # a record of an older version: no step said a cost
        prompt, completion = record["prompt_tokens"], record["completion_tokens"]
    else:
        prompt = completion = 0
    if reported is not None and not (prompt or completion):
        return float(reported)
    rest = cost_usd(None, prompt, completion, price)
    if rest is None:
        return None  # some steps have no reported cost and the model no price: unknown
    return rest + float(reported or 0.0)


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
    # The single-round screen (appendix E): which history policy, and LeastFrac of the decisions.
    row["single_round"] = record.get("single_round") or None
    row["least_frac"] = metrics["least_frac"]["value"] if "least_frac" in metrics else None
    for m in ("format_compliance", "best_arm_rate"):
        row[f"{m}_low"] = metrics[m]["low"] if m in metrics else None
        row[f"{m}_high"] = metrics[m]["high"] if m in metrics else None
    thresholds = record.get("thresholds") or {}
    row["min_format_compliance"] = thresholds.get("format_compliance")
    row["min_best_arm_rate"] = thresholds.get("best_arm_rate")
    row["prompt_tokens"] = record["prompt_tokens"]
    row["completion_tokens"] = record["completion_tokens"]
    row["reasoning_tokens"] = record.get("reasoning_tokens")
    # Over the steps format compliance counts (those of complete episodes); None for old records.
    measured = (metrics.get("format_compliance") or {}).get("n")
    cut = record.get("cut_off_steps")
    row["cut_off_rate"] = cut / measured if cut is not None and measured else None
    row["cost_usd"] = _cost(record, prices or {})
    row["passed"] = record["passed"]
    row["expected_failure"] = record.get("expected_failure", False)
    row["errors"] = len(record.get("errors", []))
    # Fewer than planned when --early-stop settled the verdict; "stopped" then says why.
    row["episodes_run"] = record.get("episodes_run", record["episodes"])
    stopped = record.get("stopped")
    row["stopped"] = stopped.get("note") if isinstance(stopped, Mapping) else None
    request = record.get("request")
    if isinstance(request, Mapping) and request:
        from bandit_bench.running.profiles import describe

        row["request"] = describe(request)
    else:
        row["request"] = None
    notes = record.get("request_notes") or []
    row["request_note"] = "; ".join(str(n) for n in notes) or None
    row["threshold_note"] = record.get("threshold_note")
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
                    "finish_reason": s.get("finish_reason"),
                    "reasoning": s.get("reasoning"),
                    "reasoning_tokens": s.get("reasoning_tokens", 0),
                    "cost": s.get("cost"),
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


# ---------------------------------------------------------------------------- human tables

# Rows of these kinds are not measured in this run's verdicts: classic algorithms on the same
# instances, and numbers published in the paper.
REFERENCE_KINDS = ("baseline", "published")
TABLE_WIDTH = 120
MEDIAN_REWARD_SCALE = (
    "MedianReward is the median over episodes of the time-averaged reward, rescaled so that "
    "0 is what a bad arm pays and 1 what the best arm pays; below 0 is possible (luck, or a "
    "model that avoids the best arm)."
)


def kind_of(row: Mapping[str, Any]) -> str:
    """ "model", "baseline" or "published" (rows of older folders may lack the kind)."""
    kind = row.get("kind")
    if kind in ("model", *REFERENCE_KINDS):
        return str(kind)
    return row_kind(str(row["model"]))


def threshold_text(value: Any) -> str:
    """ ">= 0.90", or "not checked" for a threshold that cannot fail (none, or 0)."""
    if value is None or (isinstance(value, float) and value != value) or value <= 0:
        return "not checked"
    return f">= {value:.2f}"


def _whole(value: Any) -> Any:
    # A column with a gap (published rows have no seed) comes back from pandas as floats.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def config_facts(row: Mapping[str, Any]) -> str:
    """What a config is: design, instance, episodes, seed, thresholds."""
    parts = [
        f"design {row.get('design') or '?'}",
        f"K = {row['k']}",
        f"delta = {row['delta']}",
        f"T = {row['horizon']}",
        f"{row['episodes']} episodes",
    ]
    if row.get("seed") is not None:
        parts.append(f"seed {_whole(row['seed'])}")
    if row.get("constrained"):
        parts.append("constrained decoding")
    checks = (
        f"thresholds: format {threshold_text(row.get('min_format_compliance'))}, "
        f"best arm {threshold_text(row.get('min_best_arm_rate'))}{_note(row)}"
    )
    return ", ".join(parts) + "; " + checks


def _note(row: Mapping[str, Any]) -> str:
    note = row.get("threshold_note")
    return f" ({note})" if isinstance(note, str) and note else ""


def instance_facts(row: Mapping[str, Any]) -> str:
    seed = f", seed {_whole(row['seed'])}" if row.get("seed") is not None else ""
    single = f", one decision after {row['single_round']}'s history" if row.get("single_round") else ""
    facts = f"K = {row['k']}, delta = {row['delta']}, T = {row['horizon']}, {row['episodes']} episodes"
    return facts + seed + single


@dataclass(frozen=True)
class TableBlock:
    """A group of table rows under one title: a config's models (and the paper's published rows
    for it), or the reference rows of one instance, shared by every config on it."""

    kind: str  # "config" or "baseline"
    title: str
    facts: str
    rows: tuple[Mapping[str, Any], ...]
    brief: str = ""  # title and facts in the terminal's few words


def _brief_instance(row: Mapping[str, Any]) -> str:
    seed = f" seed {_whole(row['seed'])}" if row.get("seed") is not None else ""
    single = f"; one decision after {row['single_round']}'s history" if row.get("single_round") else ""
    return f"K={row['k']} delta={row['delta']} T={row['horizon']} N={row['episodes']}{seed}{single}"


def _brief_config(config: str, row: Mapping[str, Any]) -> str:
    design = str(row.get("design") or "")
    parts = [_brief_instance(row)]
    if design and design not in config:
        parts.insert(0, f"design {design}")
    if row.get("constrained") and "constrained" not in config:
        parts.append("constrained")
    checks = (
        f"format {threshold_text(row.get('min_format_compliance'))}, "
        f"best arm {threshold_text(row.get('min_best_arm_rate'))}{_note(row)}"
    )
    return f"{config} ({', '.join(parts)}; {checks})"


_SAME_REFERENCE = ("model", "k", "delta", "horizon", "episodes", "seed", "single_round", *METRICS)


def table_blocks(rows: Sequence[Mapping[str, Any]]) -> list[TableBlock]:
    """The human tables' grouping: per config its models and published rows, then per instance
    its reference rows.

    A baseline runs on the instances of (K, delta, T, episodes, seed), whatever the prompt
    design, so its row is the same for every config on that instance: it is shown once, with
    the configs it stands beside. Rows that differ in any metric are kept apart.
    """
    blocks: list[TableBlock] = []
    by_config: dict[str, list[Mapping[str, Any]]] = {}
    references: dict[tuple[Any, ...], tuple[Mapping[str, Any], list[str]]] = {}
    for r in rows:
        if kind_of(r) == "baseline":
            key = tuple(r.get(c) for c in _SAME_REFERENCE)
            references.setdefault(key, (r, []))[1].append(str(r["config"]))
        else:
            by_config.setdefault(r["config"], []).append(r)
    for config, members in by_config.items():
        # Measured rows first. The facts are the config's (a baseline's row if no model ran it),
        # not the paper's replicate count and thresholds.
        members.sort(key=lambda r: kind_of(r) == "published")
        measured = [r for r in rows if r["config"] == config and kind_of(r) != "published"]
        first = (measured or members)[0]
        brief = _brief_config(str(config), first)
        blocks.append(TableBlock("config", str(config), config_facts(first), tuple(members), brief))
    by_instance: dict[tuple[Any, ...], list[tuple[Mapping[str, Any], list[str]]]] = {}
    for r, names in references.values():
        by_instance.setdefault(tuple(r.get(c) for c in _SAME_REFERENCE[1:7]), []).append((r, names))
    # Each instance's paired rows, then its 1000-episode rows right after them.
    spec_order: dict[tuple[Any, ...], int] = {}
    for key in by_instance:
        spec_order.setdefault(key[:3] + key[4:], len(spec_order))

    def place(key: tuple[Any, ...]) -> tuple[int, bool]:
        return spec_order[key[:3] + key[4:]], all(is_scale_reference(r) for r, _ in by_instance[key])

    for shared in [by_instance[key] for key in sorted(by_instance, key=place)]:
        configs = list(dict.fromkeys(c for _, cs in shared for c in cs))
        if all(is_scale_reference(r) for r, _ in shared):
            # Same spec, many more episodes, not the paired ones: say so wherever it shows.
            title = f"reference algorithms at the paper's scale on {instance_facts(shared[0][0])}"
            facts = (
                "the instance spec of " + ", ".join(configs) + ", not the paired episodes above: "
                "the paper's baseline rows use 1000 replicates"
            )
            brief = (
                f"reference algorithms at the paper's scale ({_brief_instance(shared[0][0])}), "
                f"the instance spec of {', '.join(configs)}, unpaired"
            )
            blocks.append(TableBlock("baseline", title, facts, tuple(r for r, _ in shared), brief))
            continue
        title = f"reference algorithms on {instance_facts(shared[0][0])}"
        facts = "the same instances and reward tables as " + ", ".join(configs)
        brief = (
            f"reference algorithms ({_brief_instance(shared[0][0])}), the instances of {', '.join(configs)}"
        )
        blocks.append(TableBlock("baseline", title, facts, tuple(r for r, _ in shared), brief))
    return blocks


def model_text(row: Mapping[str, Any]) -> str:
    """The model cell: a published row says how many replicates the paper ran, a case that
    stopped early how many of its episodes ran."""
    if kind_of(row) == "published":
        return f"{row['model']} (N={row['episodes']})"
    mark = " *" if isinstance(row.get("request_note"), str) else ""
    if isinstance(row.get("stopped"), str):
        return f"{row['model']}{mark} ({episodes_text(row)})"
    return f"{row['model']}{mark}"


def verdict(row: Any) -> str:
    kind = kind_of(row)
    if kind == "baseline":
        return "reference"
    if kind == "published":
        return "published"
    if row["errors"]:
        # A case whose xdist worker died (plugin.collector.CRASHED): it stays in the table.
        return "CRASHED" if str(row.get("stopped") or "").startswith("crashed (") else "ERROR"
    if row["expected_failure"]:
        return "xfail" if not row["passed"] else "XPASS"
    return "pass" if row["passed"] else "FAIL"


def episodes_text(row: Mapping[str, Any]) -> str:
    """ "3 of 5" for a case --early-stop (or the budget) ended early, else the planned count."""
    run = row.get("episodes_run")
    if isinstance(row.get("stopped"), str) and run is not None and run == run and int(run) < row["episodes"]:
        return f"{int(run)} of {row['episodes']}"
    return str(row["episodes"])


def cut_off_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per model row whose replies ran out of tokens before answering."""
    notes = []
    for r in rows:
        rate = r.get("cut_off_rate")
        if kind_of(r) == "model" and isinstance(rate, float) and rate == rate and rate > 0:
            notes.append(
                f"{r['model']} x {r['config']}: {rate:.2f} of the steps ran out of tokens before a valid "
                "answer (finish_reason `length`): could not answer in the budget, not a wrong format "
                "(`cut_off_rate`; steps.jsonl has each reply's `finish_reason` and `reasoning`)."
            )
    return notes


def stopped_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per case that --early-stop ended before its last episode, and per case ("*")
    whose design's defining parameter the request could not carry."""
    return [
        f"{r['model']} x {r['config']}: {r['stopped']}" for r in rows if isinstance(r.get("stopped"), str)
    ] + [
        f"* {r['model']} x {r['config']}: {r['request_note']}"
        for r in rows
        if isinstance(r.get("request_note"), str)
    ]


def request_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What each measured case's requests carried besides the prompt."""
    return [
        f"{r['model']} x {r['config']}: {r['request']}"
        for r in rows
        if kind_of(r) == "model" and isinstance(r.get("request"), str)
    ]


def _tokens(row: Mapping[str, Any]) -> str:
    if kind_of(row) == "published":
        return "-"
    return f"{int(row.get('prompt_tokens') or 0)}+{int(row.get('completion_tokens') or 0)}"


def _count(n: int) -> str:
    """A token count in at most 6 characters: 1283, 43.2k, 2.0M."""
    if n < 10_000:
        return str(n)
    if n < 999_950:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.1f}M"


def _short_tokens(row: Mapping[str, Any]) -> str:
    if kind_of(row) == "published":
        return "-"
    return f"{_count(int(row.get('prompt_tokens') or 0))}+{_count(int(row.get('completion_tokens') or 0))}"


def _ci(row: Mapping[str, Any], metric: str) -> str:
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or high is None or low != low:
        return ""
    return f" [{low:.2f}, {high:.2f}]"


# (header, value of a row); the terminal drops the intervals, the report files keep them.
def _columns(with_ci: bool) -> list[tuple[str, Callable[[Mapping[str, Any]], str]]]:
    def ci(metric: str) -> Callable[[Mapping[str, Any]], str]:
        return lambda r: _fmt(r.get(metric), 2) + (_ci(r, metric) if with_ci else "")

    return [
        ("model", model_text),
        ("format", ci("format_compliance")),
        ("best arm", ci("best_arm_rate")),
        ("SuffFail(T/2)" if with_ci else "SuffFail", lambda r: _fmt(r.get("suffix_failure_freq"), 2)),
        ("K*MinFrac", lambda r: _fmt(r.get("k_min_frac"), 2)),
        ("GreedyFrac", lambda r: _fmt(r.get("greedy_frac"), 2)),
        ("MedianReward" if with_ci else "MedReward", lambda r: _fmt(r.get("median_reward"), 2)),
        ("regret", lambda r: _fmt(r.get("mean_regret"), 2)),
        ("tokens in+out", _tokens if with_ci else _short_tokens),
        ("cost", lambda r: format_cost(r.get("cost_usd"))),
        ("verdict", verdict),
    ]


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ") or [indent]


def text_table(rows: Sequence[Mapping[str, Any]], width: int = TABLE_WIDTH) -> str:
    """The terminal table: one header row, then per block a title line and its rows.

    Fits ``width`` columns: no intervals (they are in the report files), and a model id too long
    for its column gets a line of its own above its numbers.
    """
    from bandit_bench.reporting.columns import aligned_line

    blocks = table_blocks(rows)
    if not blocks:
        return "(no cases)"
    columns = _columns(with_ci=False)
    cells = {id(r): [f(r) for _, f in columns[1:]] for b in blocks for r in b.rows}
    widths = [max(len(h), *(len(c[i]) for c in cells.values())) for i, (h, _) in enumerate(columns[1:])]
    rest = sum(widths) + len(widths)  # one space before each
    longest = max(len(model_text(r)) for b in blocks for r in b.rows)
    model_width = max(len("model"), min(longest, width - rest))

    def line(first: str, values: Sequence[str]) -> str:
        # One space apart (the table must fit `width`), numbers right-aligned.
        numbers = range(1, 1 + len(values))
        return aligned_line([first, *values], [model_width, *widths], right=numbers, sep=" ")

    out = [line("model", [h for h, _ in columns[1:]])]
    for b in blocks:
        out += _wrap(f"-- {b.brief or b.title}", width)
        for r in b.rows:
            name = model_text(r)
            if len(name) > model_width:
                out.append(name)
                name = ""
            out.append(line(name, cells[id(r)]))
    return "\n".join(out)


_MD_ESCAPES = {"\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]"}
_MD_ESCAPES.update({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def markdown_text(text: str) -> str:
    """``text`` shown as itself in Markdown: a model id such as ``<img src=x onerror=...>`` is
    not HTML that a viewer rendering HTML in Markdown would run, nor a link or emphasis."""
    return "".join(_MD_ESCAPES.get(c, c) for c in text)


def no_html(text: str) -> str:
    """``text`` with no HTML a Markdown viewer would render (for lines whose own Markdown, such as
    `code`, is meant: notes and request lines that name a model)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One markdown table per block, each under its title, with the 95% intervals."""
    blocks = table_blocks(rows)
    if not blocks:
        return "(no cases)"
    columns = _columns(with_ci=True)
    out = []
    for b in blocks:
        out += [f"**{b.title}** ({b.facts})", ""]
        out.append("| " + " | ".join(h for h, _ in columns) + " |")
        out.append("| " + " | ".join("---" for _ in columns) + " |")
        for r in b.rows:
            cells = [f(r) for _, f in columns]
            # The model id is the one cell a user names: escaped whole; the numbers need only |.
            cells = [markdown_text(cells[0]), *(c.replace("|", "\\|") for c in cells[1:])]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out).rstrip("\n")


def totals_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """Tokens and cost over the whole run; the cost counts the rows where it is known."""
    prompt = sum(int(r.get("prompt_tokens") or 0) for r in rows)
    completion = sum(int(r.get("completion_tokens") or 0) for r in rows)
    costs = [
        float(r["cost_usd"]) for r in rows if r.get("cost_usd") is not None and r["cost_usd"] == r["cost_usd"]
    ]
    line = f"Tokens: {prompt} prompt + {completion} completion."
    if costs:
        line += (
            f" Cost: {format_cost(sum(costs))} over {len(costs)} of {len(rows)} rows "
            "(the provider's reported cost, else the tokens at `[tool.bandit_bench.prices]`: the rule "
            "`--max-cost` charges by)."
        )
    else:
        line += " Cost: unknown (set `[tool.bandit_bench.prices]` in pyproject.toml, USD per 1M tokens)."
    return line


def metadata_markdown(run: Mapping[str, Any]) -> str:
    from bandit_bench.reporting.provenance import metadata_lines

    return "\n".join(f"- {label}: {value}" for label, value in metadata_lines(run))


def render_markdown(
    rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any] | None = None, preface: str = ""
) -> str:
    """report.md; ``preface`` (the grids of :mod:`~bandit_bench.reporting.grid`) goes first."""
    grids = preface.rstrip("\n")
    return (
        "# bandit-bench report\n\n"
        + (grids + "\n\n## Per config\n\n" if grids else "")
        + "Per config, the models, then the paper's published rows for it (`paper/*`, verdict "
        "`published`: its own numbers for the same design, instance and horizon, transcribed from its "
        "tables, `source` in summary.json, never measured here); then per instance the classic "
        "algorithms (reference rows), run on the very same instances and reward tables (common random "
        "numbers), shown once for all the configs on that instance. Rates with their 95% Wilson "
        "interval (format over steps, best arm over pulls). SuffFail(T/2) is the share of episodes "
        "that never pick the best arm in the second half; K*MinFrac is K times the smallest share of "
        "pulls any arm got. "
        + MEDIAN_REWARD_SCALE
        + "\n\n"
        + markdown_table(rows)
        + "\n\n"
        + "".join(f"- {no_html(note)}\n" for note in stopped_notes(rows) + cut_off_notes(rows))
        + ("\n" if stopped_notes(rows) + cut_off_notes(rows) else "")
        + totals_line(rows)
        + (
            "\n\n## What each case sent\n\nBesides the prompt, from its request profile "
            "(docs/providers.md):\n\n" + "".join(f"- {no_html(line)}\n" for line in request_lines(rows))
            if request_lines(rows)
            else ""
        )
        + "\n\n## Where these numbers came from\n\n"
        + metadata_markdown(run or {})
        + "\n"
    )


def summary_rows(
    records: Iterable[Mapping[str, Any]], prices: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The rows of summary.json (NaN as None, numpy types as Python's)."""
    return list(json.loads(summary_frame(records, prices).to_json(orient="records")))


# ---------------------------------------------------------------------------- reading a folder back

SUMMARY_FILE = "summary.json"
STEPS_FILE = "steps.jsonl"
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
    "single_round": None,
    "least_frac": None,
}
_RERUN = "Re-run the benchmark with `pytest --report-dir DIR` to write a fresh report folder."


class ReportDirError(ValueError):
    """A report folder is missing, incomplete or corrupt; the message says what was expected."""


@dataclass(frozen=True)
class ReportData:
    """A report folder's data: ``summary.json`` (its rows and run metadata) and ``steps.jsonl``."""

    directory: Path
    summary: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    # Where the numbers came from (summary.json's "run"); empty for a folder of an older version.
    run: dict[str, Any] = field(default_factory=dict)

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


def _summary_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row checked by ``core.formats.SummaryRow``, with the columns an older version lacks."""
    out = {col: row.get(col) for col in SUMMARY_COLUMNS}
    for col, default in _SUMMARY_DEFAULTS.items():
        if out[col] is None:
            out[col] = default
    if out["kind"] is None:
        out["kind"] = row_kind(str(row["model"]))
    return out


def _read_summary(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and the run metadata; a bare list of rows is a folder of an older version."""
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
            f"{path}: not valid JSON ({err}); expected the object pytest writes "
            f'({{"run": ..., "rows": [...]}}). {_RERUN}'
        ) from None
    except RecursionError:
        raise ReportDirError(
            f"{path}: JSON nested deeper than Python's parser goes; expected the object pytest writes "
            f'({{"run": ..., "rows": [...]}}). {_RERUN}'
        ) from None
    from bandit_bench.core.formats import FormatError, SummaryFile, check

    if isinstance(data, list):
        data = {"rows": data}  # a folder of an older version: its rows without the run metadata
    try:
        check(SummaryFile, data)
    except FormatError as err:
        raise ReportDirError(f"{path}: {err}. {_RERUN}") from None
    return [_summary_row(row) for row in data["rows"]], data.get("run", {})


def _read_steps(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ReportDirError(
            f"{path}: no such file; expected the {STEPS_FILE} a pytest run writes beside {SUMMARY_FILE}. "
            f"{_RERUN}"
        )
    from pydantic import ValidationError

    from bandit_bench.core.formats import StepLine, as_format_error

    # The model's validator without building a model per line: the lines stay plain dicts, and
    # the check costs about a third of json.loads per line.
    validate = StepLine.__pydantic_validator__.validate_python
    steps: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    step = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as err:
                    why = "nested too deep" if isinstance(err, RecursionError) else str(err)
                    raise ReportDirError(
                        f"{path}, line {lineno}: not valid JSON ({why}); expected one JSON object per line. "
                        f"{_RERUN}"
                    ) from None
                try:
                    validate(step)
                except ValidationError as err:
                    raise ReportDirError(
                        f"{path}, line {lineno}: {as_format_error(StepLine, err)}. {_RERUN}"
                    ) from None
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
    summary, run = _read_summary(report_dir / SUMMARY_FILE)
    steps = _read_steps(report_dir / STEPS_FILE)
    return ReportData(report_dir, summary, steps, run)


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
