"""Shared fixtures: the local OpenAI-compatible simulator, started on 127.0.0.1 and stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import matplotlib
import pytest

from bandit_bench.simulator import Policy, Simulator

# pytester's in-process runs drop the modules first imported inside them; libraries imported
# anew in the same process then disagree with themselves (pandas' JSON writer, matplotlib's
# classes, httpx2's map of httpcore2 exceptions). Everything the plugin imports lazily is
# therefore imported once, here, with the lazy parts of the HTTP stack exercised.
matplotlib.use("Agg")

import httpcore2  # noqa: E402, F401
import httpx2  # noqa: E402
import matplotlib.backends.backend_agg  # noqa: E402, F401
import matplotlib.pyplot  # noqa: E402, F401
import openai  # noqa: E402
import pandas  # noqa: E402, F401
import vcr.request  # noqa: E402, F401
import vcr.serialize  # noqa: E402, F401

import bandit_bench.collector  # noqa: E402, F401
import bandit_bench.compare  # noqa: E402, F401
import bandit_bench.evaluation  # noqa: E402, F401
import bandit_bench.html_report  # noqa: E402, F401
import bandit_bench.report  # noqa: E402, F401
import bandit_bench.runner  # noqa: E402, F401

openai.OpenAI(api_key="x", http_client=httpx2.Client(transport=httpx2.HTTPTransport())).close()

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
