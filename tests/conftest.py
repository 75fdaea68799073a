"""Shared fixtures: the local OpenAI-compatible simulator, started on 127.0.0.1 and stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bandit_bench.simulator import Policy, Simulator

pytest_plugins = ["pytester"]


@pytest.fixture
def simulator() -> Iterator[Callable[..., Simulator]]:
    """Factory: ``simulator(policy, latency=0.0)`` returns a running simulator; all are stopped."""
    started: list[Simulator] = []

    def start(policy: Policy | None = None, latency: float = 0.0) -> Simulator:
        sim = Simulator(policy, latency=latency)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
