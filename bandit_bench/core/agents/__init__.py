"""Agents: the protocol, the LLM agent (the only importer of openai) and numpy baselines."""

from __future__ import annotations

from bandit_bench.core.agents.base import Agent, AgentError, Decision, EpisodeContext

__all__ = ["Agent", "AgentError", "Decision", "EpisodeContext"]
