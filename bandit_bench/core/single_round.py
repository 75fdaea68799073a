"""The paper's single-round experiment (appendix E, Figure 19): one decision per history.

A cheap screen: instead of an episode of T decisions, the agent gets a history of t = 30
rounds played by another policy (uniformly at random, UCB or Thompson sampling) on the hard
instance, told the horizon is T as in an episode, and makes one decision. Scored per decision:

- greedy: the chosen arm has the largest average reward among the arms pulled in the history
  (ties count), or was never pulled (the per-round rule of
  :func:`~bandit_bench.core.metrics.episode_greedy_frac`);
- least: the chosen arm is among the arms pulled least often in the history (LeastFrac).

An "episode" of a single-round config is one history and its decision: the history policy
plays rounds 1..t from the episode's own generator (so every model and baseline sees the very
same history on the very same reward table), then the agent under test chooses round t + 1.
The trajectory holds the t history rounds and the decision; its cassette holds one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bandit_bench.core.agents.base import Agent, Decision, EpisodeContext
    from bandit_bench.core.episode import Trajectory

from bandit_bench.core.specs import HISTORY_SOURCES

__all__ = ["HISTORY_SOURCES", "HistoryThenAgent", "decision_stats"]


class HistoryThenAgent:
    """Plays ``length`` rounds with the baseline ``source`` (from ``ctx.rng``), then asks ``agent``."""

    def __init__(self, source: str, agent: Agent, length: int) -> None:
        from bandit_bench.core.agents.baselines import BaselineAgent

        if source not in HISTORY_SOURCES:
            raise ValueError(f"history source: got {source!r}; expected one of {', '.join(HISTORY_SOURCES)}")
        self._source = BaselineAgent(source)
        self._agent = agent
        self.length = length
        self.name = getattr(agent, "name", type(agent).__name__)

    def choose(self, history: Sequence[tuple[int, int]], ctx: EpisodeContext) -> Decision:
        if len(history) < self.length:
            return self._source.choose(history, ctx)
        return self._agent.choose(history, ctx)


def decision_stats(trajectories: Sequence[Trajectory], length: int) -> dict[str, np.ndarray]:
    """Per history: whether the decision (round ``length`` + 1) was valid, greedy, among the
    least pulled arms, and the best arm. Each array has one entry per trajectory."""
    valid, greedy, least, best = [], [], [], []
    for tr in trajectories:
        if len(tr.steps) != length + 1:
            raise ValueError(
                f"episode {tr.episode}: {len(tr.steps)} steps; a single-round episode has the "
                f"{length} history rounds and one decision"
            )
        counts = np.zeros(tr.k, dtype=np.int64)
        sums = np.zeros(tr.k, dtype=np.int64)
        for s in tr.steps[:length]:
            counts[s.arm] += 1
            sums[s.arm] += s.reward
        decision = tr.steps[length]
        avg = np.divide(sums, counts, out=np.full(tr.k, -np.inf), where=counts > 0)
        arm = decision.arm
        valid.append(decision.valid)
        greedy.append(bool(counts[arm] == 0 or avg[arm] >= avg.max()))
        least.append(bool(counts[arm] == counts.min()))
        best.append(arm == tr.best_arm)
    return {
        "format_compliance": np.array(valid, dtype=bool),
        "greedy_frac": np.array(greedy, dtype=bool),
        "least_frac": np.array(least, dtype=bool),
        "best_arm_rate": np.array(best, dtype=bool),
    }
