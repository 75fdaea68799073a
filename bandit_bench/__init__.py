"""bandit-bench: does this language model explore, in context, when it has to?

The public API. Nothing heavy is imported here (no openai, vcr, pandas or matplotlib), so
``import bandit_bench`` and pytest start-up stay fast.
"""

from __future__ import annotations

from .agents.base import Agent, AgentError, Decision, EpisodeContext
from .bandit import BanditInstance, draw_instance
from .episode import StepRecord, Trajectory, run_episode
from .specs import (
    BUILTIN_CONFIGS,
    INSTANCE_PRESETS,
    CaseConfig,
    DesignSpec,
    InstanceSpec,
    RunSpec,
    SpecError,
    instance_preset,
)

__all__ = [
    "BUILTIN_CONFIGS",
    "INSTANCE_PRESETS",
    "Agent",
    "AgentError",
    "BanditInstance",
    "CaseConfig",
    "Decision",
    "DesignSpec",
    "EpisodeContext",
    "InstanceSpec",
    "RunSpec",
    "SpecError",
    "StepRecord",
    "Trajectory",
    "draw_instance",
    "instance_preset",
    "run_episode",
]
__version__ = "0.1.0"
