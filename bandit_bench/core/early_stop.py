"""Sequential early stopping: stop starting episodes once the remaining ones cannot change the verdict.

What the verdict depends on (``evaluation.case_record``): a case passes when none of its
episodes errored and both pooled shares over its N complete episodes x T steps reach their
thresholds: format compliance (valid replies) >= ``min_format_compliance`` and best-arm rate
(pulls of the best arm) >= ``min_best_arm_rate``. Every complete episode has exactly T steps,
so each pooled share is ``count / (N * T)``, the mean of the N per-episode shares.

The rule, checked after each wave of episodes (episodes in index order, waves of
``ceil(N / 5)``): after n of N episodes with ``c`` valid steps (or best-arm pulls), the final
share lies in ``[c / (N T), (c + (N - n) T) / (N T)]`` whatever the remaining episodes do. A
metric is settled when both ends fall on the same side of its threshold; the verdict is settled
when one metric is settled below its threshold (fail) or both are settled at or above (pass).

Error rate: zero. The rule only stops when every possible outcome of the remaining episodes
gives the same verdict, so the verdict of the stopped run equals the full run's (the shipped
benchmark, benchmarks/bench_early_stop.py, measures it). One thing it cannot foresee: an
episode that would have *errored* (an API fault) in the full run is never started.

Why not a probabilistic test over episodes (Hoeffding-Serfling for sampling without
replacement, Bonferroni over the looks)? With the presets' N = 5 or 10 episodes it settles
later than this exact rule at every look: at alpha = 0.05 split over the four looks of N = 10
and the two metrics, its margin
is 0.67 after 4 episodes and 0.31 after 8, while the exact rule already fails a 0.9 threshold
after 4 episodes whose compliance is below 0.75.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bandit_bench.core.episode import Trajectory
    from bandit_bench.core.specs import CaseConfig

RULE = "the remaining episodes cannot change it"
CONFIDENCE = "100%: the full run's verdict, exactly"
WAVES = 5
LABELS = {"format_compliance": "format compliance", "best_arm_rate": "best-arm rate"}


def wave_size(episodes: int) -> int:
    """Episodes per wave: about five looks per case, fixed by N alone so replay stops at the same point."""
    return max(1, math.ceil(episodes / WAVES))


def effective_thresholds(
    config: CaseConfig,
    min_format_compliance: float | None = None,
    min_best_arm_rate: float | None = None,
) -> dict[str, float]:
    """The thresholds the verdict uses: the config's, or the command line's overrides."""
    return {
        "format_compliance": config.min_format_compliance
        if min_format_compliance is None
        else min_format_compliance,
        "best_arm_rate": config.min_best_arm_rate if min_best_arm_rate is None else min_best_arm_rate,
    }


@dataclass(frozen=True)
class Settlement:
    """A verdict the remaining episodes cannot change, found after ``episodes_run`` of ``episodes``."""

    episodes_run: int
    episodes: int
    passed: bool
    reasons: tuple[str, ...]

    @property
    def note(self) -> str:
        verdict = "pass" if self.passed else "fail"
        return (
            f"stopped after {self.episodes_run} of {self.episodes} episodes: verdict settled "
            f"({verdict}; rule: {RULE}; confidence {CONFIDENCE})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": "settled",
            "episodes_run": self.episodes_run,
            "episodes": self.episodes,
            "passed": self.passed,
            "rule": RULE,
            "confidence": CONFIDENCE,
            "reasons": list(self.reasons),
            "note": self.note,
        }


def counts(trajectory: Trajectory) -> dict[str, int]:
    """Per-episode counts the verdict pools: valid steps and pulls of the best arm."""
    return {
        "format_compliance": sum(1 for s in trajectory.steps if s.valid),
        "best_arm_rate": sum(1 for s in trajectory.steps if s.arm == trajectory.best_arm),
    }


def settle(done: Sequence[Trajectory], episodes: int, thresholds: Mapping[str, float]) -> Settlement | None:
    """The settled verdict after the episodes ``done`` (a prefix, in episode order), or None.

    Errored or incomplete episodes settle nothing here: the runner stops on them by itself.
    """
    n = len(done)
    if n == 0 or n >= episodes or any(t.error is not None or len(t.steps) != t.horizon for t in done):
        return None
    horizon = done[0].horizon
    total = episodes * horizon
    left = (episodes - n) * horizon
    passes, fails = [], []
    for key, threshold in thresholds.items():
        c = sum(counts(t)[key] for t in done)
        # The same float division the pooled mean makes (count / steps), so ties decide alike.
        low, high = c / total, (c + left) / total
        label = LABELS[key]
        if low >= threshold:
            passes.append(
                f"{label} is at least {low:.3f} >= {threshold:.3f} even if the {episodes - n} remaining "
                "episodes scored 0"
            )
        elif high < threshold:
            fails.append(
                f"{label} {c / (n * horizon):.3f} over {n} of {episodes} episodes x {horizon} steps: even if "
                f"the {episodes - n} remaining episodes were perfect it would reach only {high:.3f}, below "
                f"the threshold {threshold:.3f}"
            )
    if fails:
        return Settlement(n, episodes, False, tuple(fails))
    if len(passes) == len(thresholds):
        return Settlement(n, episodes, True, tuple(passes))
    return None
