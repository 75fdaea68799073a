"""A case's verdict: metrics of its trajectories against the config's thresholds.

``case_record`` turns a :class:`~bandit_bench.runner.CaseResult` into plain JSON-safe Python
types: that is what crosses pytest-xdist's process boundary in ``report.user_properties`` and
what the report module reads back.
"""

from __future__ import annotations

from typing import Any

from .early_stop import effective_thresholds
from .metrics import EpisodeBatch, Estimate, summarize
from .runner import CaseResult

LABELS = {"format_compliance": "format compliance", "best_arm_rate": "best-arm rate"}


def _estimate_dict(e: Estimate) -> dict[str, float]:
    return {"value": e.value, "low": e.low, "high": e.high, "n": e.n}


def _error_lines(errors: list[str], limit: int = 5) -> str:
    """The first error whole; the next ones only up to their first sentence (which names the
    cassette or the status), since they usually repeat the same advice."""
    lines = [f"  {errors[0]}"]
    for err in errors[1:limit]:
        head, sep, _ = err.partition(". ")
        lines.append(f"  {head}{'.' if sep else ''}")
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return "\n".join(lines)


def _stopped(result: CaseResult) -> dict[str, Any] | None:
    if result.budget_stopped:
        n, ran = result.config.run.episodes, len(result.trajectories)
        note = f"stopped by the budget after {ran} of {n} episodes (episodes {result.budget_stopped} not run)"
        return {"reason": "budget", "episodes_run": ran, "episodes": n, "note": note}
    return result.settled.to_dict() if result.settled is not None else None


def case_record(
    result: CaseResult, *, min_format_compliance: float | None = None, min_best_arm_rate: float | None = None
) -> dict[str, Any]:
    cfg = result.config
    thresholds = effective_thresholds(cfg, min_format_compliance, min_best_arm_rate)
    complete = [t for t in result.trajectories if t.error is None and len(t.steps) == t.horizon]
    metrics: dict[str, dict[str, float]] = {}
    if complete:
        metrics = {
            k: _estimate_dict(v) for k, v in summarize(EpisodeBatch.from_trajectories(complete)).items()
        }
    steps = [s for t in result.trajectories for s in t.steps]
    costs = [s.cost for s in steps if s.cost is not None]
    failures: list[str] = []
    errors = result.errors
    if errors:
        failures.append(f"{len(errors)} of {cfg.run.episodes} episodes errored:\n" + _error_lines(errors))
    elif result.budget_stopped:
        failures.append(result.budget_note)
    elif result.settled is not None and not result.settled.passed:
        # Stopped early: only what the remaining episodes could not have changed is reported.
        failures += [*result.settled.reasons, result.settled.note]
    else:
        n_ep = len(complete)
        for key, threshold in thresholds.items():
            m = metrics[key]
            if m["value"] < threshold:
                failures.append(
                    f"{LABELS[key]} {m['value']:.3f} (95% CI {m['low']:.3f}-{m['high']:.3f}) is below the "
                    f"threshold {threshold:.3f} over {n_ep} episodes x {cfg.instance.horizon} steps"
                )
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
        "thresholds": thresholds,
        "metrics": metrics,
        "steps": len(steps),
        "prompt_tokens": sum(s.prompt_tokens for s in steps),
        "completion_tokens": sum(s.completion_tokens for s in steps),
        "provider_cost": sum(costs) if costs else None,
        "errors": errors,
        "failures": failures,
        "passed": not failures,
        "episodes_run": len(result.trajectories),
        "stopped": _stopped(result),
        "budget_stopped": list(result.budget_stopped),
        "recorded": result.recorded,
        "replayed": result.replayed,
        "trajectories": [t.to_dict() for t in result.trajectories],
    }
