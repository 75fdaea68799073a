"""The one small protocol every agent implements, and what an agent returns per step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from bandit_bench.core.bandit import BanditInstance


@dataclass(frozen=True)
class Decision:
    """What an agent answered at one step.

    ``arm`` is the arm asked for; ``distribution`` is set instead for distribution (D) designs
    and the harness samples from it. An invalid answer has neither: the harness picks.
    """

    valid: bool
    arm: int | None = None
    distribution: tuple[float, ...] | None = None
    raw: str | None = None
    reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    cost: float | None = None
    # Reasoning models: the thoughts (reasoning fields, thinking parts, <think>) and their tokens,
    # which completion_tokens includes; why the reply ended ("stop", "length", ...).
    reasoning: str | None = None
    reasoning_tokens: int = 0
    finish_reason: str | None = None


@dataclass(frozen=True)
class EpisodeContext:
    instance: BanditInstance
    arm_names: tuple[str, ...]
    # Handed to algorithms that randomise; never the global numpy state.
    rng: np.random.Generator


class AgentError(RuntimeError):
    """A step could not be completed (API fault after retries, missing or stale cassette).

    The episode ends as errored; it is never counted as a format failure.
    """


@runtime_checkable
class Agent(Protocol):
    name: str

    def choose(self, history: Sequence[tuple[int, int]], ctx: EpisodeContext) -> Decision:
        """Next decision given the past (arm, reward) pairs of this episode."""
        ...
