"""A case run by an agent of your own: the ``Agent`` protocol on the case's instances.

No HTTP and no cassette: the agent is called in-process. The instances, reward tables and the
harness's choice for an invalid answer are the ones every model of the case sees (common random
numbers, see ``core.bandit``), so the report sets your agent beside the models and baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bandit_bench.core.agents.base import Agent
    from bandit_bench.core.specs import CaseConfig
    from bandit_bench.running.runner import CaseResult


def run_agent_case(name: str, config: CaseConfig, make_agent: Callable[[], Agent]) -> CaseResult:
    """Run the config's N episodes with a fresh ``make_agent()`` each, one after the other.

    ``name`` is the row's model id in the report. An ``AgentError`` raised by the agent ends its
    episode as errored (as an API fault does for a model); any other exception propagates.
    """
    from bandit_bench.core.bandit import draw_instance
    from bandit_bench.core.episode import run_episode
    from bandit_bench.core.prompts import arm_names
    from bandit_bench.running.runner import CaseResult

    result = CaseResult(model=name, config=config)
    names = arm_names(config.design.scenario, config.instance.k)
    for episode in range(config.run.episodes):
        instance, harness_rng, policy_rng = draw_instance(config.instance, config.run.seed, episode)
        result.trajectories.append(run_episode(make_agent(), instance, harness_rng, policy_rng, names))
    return result


__all__ = ["run_agent_case"]
