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
    "Agent": ".core.agents.base",
    "AgentError": ".core.agents.base",
    "Decision": ".core.agents.base",
    "EpisodeContext": ".core.agents.base",
    "BanditInstance": ".core.bandit",
    "draw_instance": ".core.bandit",
    "StepRecord": ".core.episode",
    "Trajectory": ".core.episode",
    "run_episode": ".core.episode",
    "BUILTIN_CONFIGS": ".core.specs",
    "INSTANCE_PRESETS": ".core.specs",
    "CaseConfig": ".core.specs",
    "DesignSpec": ".core.specs",
    "InstanceSpec": ".core.specs",
    "RunSpec": ".core.specs",
    "SpecError": ".core.specs",
    "instance_preset": ".core.specs",
    "RunOptions": ".running.runner",
    "run_case": ".running.runner",
    "render_messages": ".core.prompts",
    "arm_names": ".core.prompts",
    "parse_reply": ".core.parsing",
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
    from bandit_bench.core.agents.base import Agent, AgentError, Decision, EpisodeContext
    from bandit_bench.core.bandit import BanditInstance, draw_instance
    from bandit_bench.core.episode import StepRecord, Trajectory, run_episode
    from bandit_bench.core.parsing import parse_reply
    from bandit_bench.core.prompts import arm_names, render_messages
    from bandit_bench.core.specs import (
        BUILTIN_CONFIGS,
        INSTANCE_PRESETS,
        CaseConfig,
        DesignSpec,
        InstanceSpec,
        RunSpec,
        SpecError,
        instance_preset,
    )
    from bandit_bench.running.runner import RunOptions, run_case


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bandit_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
