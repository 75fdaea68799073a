"""A case's verdict: metrics of its trajectories against the config's thresholds.

``case_record`` turns a :class:`~bandit_bench.running.runner.CaseResult` into plain JSON-safe Python
types: that is what crosses pytest-xdist's process boundary in ``report.user_properties`` and
what the report module reads back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bandit_bench.core.early_stop import effective_thresholds
from bandit_bench.core.episode import StepRecord, Trajectory
from bandit_bench.core.metrics import EpisodeBatch, Estimate, summarize
from bandit_bench.running.runner import CaseResult

LABELS = {"format_compliance": "format compliance", "best_arm_rate": "best-arm rate"}


def _estimate_dict(e: Estimate) -> dict[str, float]:
    return {"value": e.value, "low": e.low, "high": e.high, "n": e.n}


def _error_lines(errors: list[str], limit: int = 5) -> str:
    """Identical messages once, with their episode numbers ("episodes 0, 2, 4: ..."); at most
    ``limit`` distinct messages, the first whole and the next ones up to their first sentence
    (which names the cassette or the status), since they usually repeat the same advice."""
    # Each episode's own cassette is named by its index: the same fault in several episodes is
    # one message with "<episode>" for the index (a message seen once keeps its real path).
    groups: dict[str, list[tuple[str, str]]] = {}
    for err in errors:
        head, sep, message = err.partition(": ")
        if not (sep and head.startswith("episode ")):
            head, message = "", err
        episode = head.removeprefix("episode ")
        key = re.sub(rf"/0*{re.escape(episode)}\.json", "/<episode>.json", message) if episode else message
        groups.setdefault(key, []).append((episode, message))
    lines = []
    for i, (key, members) in enumerate(groups.items()):
        if i == limit:
            lines.append(f"  ... and {len(groups) - limit} more distinct errors")
            break
        message = members[0][1] if len(members) == 1 else key
        if i > 0:
            first, dot, _ = message.partition(". ")
            message = first + ("." if dot else "")
        numbered = [e for e, _ in members if e]
        if not numbered:
            lines.append(f"  {message}")
        else:
            word = "episode" if len(numbered) == 1 else "episodes"
            lines.append(f"  {word} {', '.join(numbered)}: {message}")
    return "\n".join(lines)


# How to give a model more tokens; the request profile's setting (docs/providers.md).
RAISE_LIMIT_HINT = (
    "To give it room, raise the token limit: --request-profile reasoning_allowance=N (or "
    "reasoning_allowance / token_limit in its [tool.bandit_bench.models] table; docs/providers.md)"
)


def cut_off_text(n: int, n_steps: int, steps: list[Any]) -> str:
    """What the token limit did to a case: replies that could not answer in the budget."""
    still = sum(1 for s in steps if s.reason == "reasoning-cut-off")
    how = f", {still} of them still reasoning" if still else ""
    return (
        f"{n} of {n_steps} replies ran out of tokens before a valid answer (finish_reason 'length'"
        f"{how}): they could not answer in the budget, which is not answering in the wrong format. "
        + RAISE_LIMIT_HINT
    )


def _stopped(result: CaseResult) -> dict[str, Any] | None:
    if result.budget_stopped:
        n, ran = result.config.run.episodes, len(result.trajectories)
        note = f"stopped by the budget after {ran} of {n} episodes (episodes {result.budget_stopped} not run)"
        return {"reason": "budget", "episodes_run": ran, "episodes": n, "note": note}
    return result.settled.to_dict() if result.settled is not None else None


def _distinct(value: float, threshold: float) -> tuple[str, str]:
    """Two decimals, or more when two would print a value below its threshold as equal to it."""
    for digits in (2, 3, 4):
        a, b = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if a != b:
            return a, b
    return f"{value:.6f}", f"{threshold:.6f}"


def _case_metrics(result: CaseResult) -> tuple[list[Trajectory], dict[str, dict[str, float]]]:
    """The complete episodes of the case, and its metrics over them with their intervals."""
    cfg = result.config
    metrics: dict[str, dict[str, float]] = {}
    if cfg.single_round:
        # One decision per history: its shares, each with a Wilson interval over the decisions.
        from bandit_bench.core.metrics import wilson
        from bandit_bench.core.single_round import decision_stats

        length = cfg.history_length
        complete = [t for t in result.trajectories if t.error is None and len(t.steps) == length + 1]
        for name, hits in decision_stats(complete, length).items() if complete else ():
            low, high = wilson(int(hits.sum()), hits.size)
            metrics[name] = {"value": float(hits.mean()), "low": low, "high": high, "n": int(hits.size)}
    else:
        complete = [t for t in result.trajectories if t.error is None and len(t.steps) == t.horizon]
        if complete:
            metrics = {
                k: _estimate_dict(v) for k, v in summarize(EpisodeBatch.from_trajectories(complete)).items()
            }
    return complete, metrics


def _case_failures(
    result: CaseResult,
    thresholds: Mapping[str, float],
    complete: Sequence[Trajectory],
    metrics: Mapping[str, Mapping[str, float]],
    cut_off: list[StepRecord],
) -> list[str]:
    """Why the case fails, one line a reason: errors, the budget, an early-stop verdict, or each
    metric below its threshold (with the replies cut off by the token limit)."""
    cfg = result.config
    errors = result.errors
    if errors:
        return [f"{len(errors)} of {cfg.run.episodes} episodes errored:\n" + _error_lines(errors)]
    if result.budget_stopped:
        return [result.budget_note]
    if result.settled is not None and not result.settled.passed:
        # Stopped early: only what the remaining episodes could not have changed is reported.
        return [*result.settled.reasons, result.settled.note]
    failures: list[str] = []
    n_steps = len(complete) if cfg.single_round else len(complete) * cfg.instance.horizon
    for key, threshold in thresholds.items():
        m = metrics[key]
        if m["value"] < threshold:
            value, limit = _distinct(m["value"], threshold)
            line = (
                f"{LABELS[key]} {value} < {limit} (95% CI [{m['low']:.2f}, {m['high']:.2f}]) "
                f"on {n_steps} steps"
            )
            if key == "format_compliance" and cut_off:
                line += "; " + cut_off_text(len(cut_off), n_steps, cut_off)
            failures.append(line)
    return failures


def case_record(
    result: CaseResult, *, min_format_compliance: float | None = None, min_best_arm_rate: float | None = None
) -> dict[str, Any]:
    cfg = result.config
    thresholds = effective_thresholds(cfg, min_format_compliance, min_best_arm_rate)
    complete, metrics = _case_metrics(result)
    steps = [s for t in result.trajectories for s in t.steps]
    costs = [s.cost for s in steps if s.cost is not None]
    unreported = [s for s in steps if s.cost is None]
    measured = [s for t in complete for s in t.steps]
    cut_off = [s for s in measured if not s.valid and s.finish_reason == "length"]
    failures = _case_failures(result, thresholds, complete, metrics, cut_off)
    errors = result.errors
    return {
        "model": result.model,
        "config": cfg.name,
        "design": cfg.design.code,
        "k": cfg.instance.k,
        "delta": cfg.instance.delta,
        "horizon": cfg.instance.horizon,
        "episodes": cfg.run.episodes,
        "seed": cfg.run.seed,
        "constrained": cfg.constrained,
        "single_round": cfg.single_round,
        "thresholds": thresholds,
        # Why the best-arm threshold is what it is, when --horizon recomputed it.
        "threshold_note": cfg.threshold_note or None,
        "metrics": metrics,
        "steps": len(steps),
        "prompt_tokens": sum(s.prompt_tokens for s in steps),
        "completion_tokens": sum(s.completion_tokens for s in steps),
        "provider_cost": sum(costs) if costs else None,
        # Tokens of the steps whose provider reported no cost: priced at the price table
        # (reporting.tables: one cost rule with --max-cost, core.replies.cost_usd).
        "unreported_prompt_tokens": sum(s.prompt_tokens for s in unreported),
        "unreported_completion_tokens": sum(s.completion_tokens for s in unreported),
        "reasoning_tokens": sum(s.reasoning_tokens for s in steps),
        # Steps of complete episodes whose reply hit the token limit before a valid answer.
        "cut_off_steps": len(cut_off),
        "errors": errors,
        "failures": failures,
        "passed": not failures,
        "episodes_run": len(result.trajectories),
        "stopped": _stopped(result),
        "budget_stopped": list(result.budget_stopped),
        "recorded": result.recorded,
        "replayed": result.replayed,
        # What each request carried besides the prompt, and what of the design it did not honour.
        "request": dict(result.request),
        "request_notes": list(result.request_notes),
        "trajectories": [t.to_dict() for t in result.trajectories],
    }
