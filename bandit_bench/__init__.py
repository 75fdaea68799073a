"""bandit-bench: does this language model explore, in context, when it has to?

The public API. Names resolve on first use (PEP 562), so ``import bandit_bench`` - which
pytest does for the plugin at every start - imports nothing heavy: not openai, vcr, pandas or
matplotlib, and not even numpy until a name that needs it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": ".agents.base",
    "AgentError": ".agents.base",
    "Decision": ".agents.base",
    "EpisodeContext": ".agents.base",
    "BanditInstance": ".bandit",
    "draw_instance": ".bandit",
    "StepRecord": ".episode",
    "Trajectory": ".episode",
    "run_episode": ".episode",
    "BUILTIN_CONFIGS": ".specs",
    "INSTANCE_PRESETS": ".specs",
    "CaseConfig": ".specs",
    "DesignSpec": ".specs",
    "InstanceSpec": ".specs",
    "RunSpec": ".specs",
    "SpecError": ".specs",
    "instance_preset": ".specs",
    "RunOptions": ".runner",
    "run_case": ".runner",
    "render_messages": ".prompts",
    "arm_names": ".prompts",
    "parse_reply": ".parsing",
}
__all__ = [
    "Agent",
    "AgentError",
    "BUILTIN_CONFIGS",
    "BanditInstance",
    "CaseConfig",
    "Decision",
    "DesignSpec",
    "EpisodeContext",
    "INSTANCE_PRESETS",
    "InstanceSpec",
    "RunOptions",
    "RunSpec",
    "SpecError",
    "StepRecord",
    "Trajectory",
    "arm_names",
    "draw_instance",
    "instance_preset",
    "parse_reply",
    "render_messages",
    "run_case",
    "run_episode",
]

if TYPE_CHECKING:
    from .agents.base import Agent, AgentError, Decision, EpisodeContext
    from .bandit import BanditInstance, draw_instance
    from .episode import StepRecord, Trajectory, run_episode
    from .parsing import parse_reply
    from .prompts import arm_names, render_messages
    from .runner import RunOptions, run_case
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bandit_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
