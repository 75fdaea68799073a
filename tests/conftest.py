"""Shared fixtures: the local OpenAI-compatible simulator, started on 127.0.0.1 and stopped."""

from __future__ import annotations

import importlib
import inspect
import re
import signal
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bandit_bench.servers.simulator import Policy, Simulator

pytest_plugins = ["pytester"]

# A suite started in the background by a non-interactive shell (`cmd &`, nohup, some CI runners)
# inherits SIGINT ignored, and so does every process its tests start: the tests of Ctrl-C would
# then see nothing happen and wait for their timeouts. Ctrl-C is what they test: restore it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The `slow` marker (registered in pyproject.toml) is put here on every test that runs a whole
# pytest session inside itself (the `pytester` fixture, which `bench_project` uses) or starts
# another process, sends a signal or opens a browser, in its own body or in a helper of its
# module it calls: a new test of that kind is marked without anyone remembering to. The fast
# loop, `pytest -m "not slow" tests`, is then the unit and in-process library tests.
_STARTS_PROCESSES = re.compile(r"\b(subprocess|Popen|send_signal|os\.kill|sys\.executable|chromium)\b")


def _starts_processes(fn: Any, module: types.ModuleType, seen: set[str]) -> bool:
    """Whether ``fn``'s source, or that of a function of ``module`` it names, starts processes."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return False
    if _STARTS_PROCESSES.search(source):
        return True
    for name in getattr(getattr(fn, "__code__", None), "co_names", ()):
        helper = getattr(module, name, None)
        if name not in seen and inspect.isfunction(helper) and helper.__module__ == module.__name__:
            seen.add(name)
            if _starts_processes(helper, module, seen):
                return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn, module = getattr(item, "function", None), getattr(item, "module", None)
        if "pytester" in getattr(item, "fixturenames", ()) or (
            fn is not None and module is not None and _starts_processes(fn, module, set())
        ):
            item.add_marker(pytest.mark.slow)


# pytester's in-process runs drop the modules first imported inside them; libraries imported
# anew in the same process then disagree with themselves (pandas' JSON writer, matplotlib's
# classes, httpx2's map of httpcore2 exceptions). Everything the plugin imports lazily is
# therefore imported before the first pytester test, and only then: a plain run of a few unit
# tests must start light.
_PRELOAD = (
    "httpcore2",
    "httpx2",
    "matplotlib.backends.backend_agg",
    "matplotlib.pyplot",
    "openai",
    "pandas",
    "vcr.request",
    "vcr.serialize",
    "bandit_bench.plugin.collector",
    "bandit_bench.reporting.compare",
    "bandit_bench.reporting.evaluation",
    "bandit_bench.reporting.html",
    "bandit_bench.reporting.tables",
    "bandit_bench.reporting.writer",
    "bandit_bench.running.runner",
)
_preloaded = False


@pytest.fixture(autouse=True)
def _preload_for_pytester(request: pytest.FixtureRequest) -> None:
    global _preloaded
    if _preloaded or "pytester" not in request.fixturenames:
        return
    import matplotlib

    matplotlib.use("Agg")
    for name in _PRELOAD:
        importlib.import_module(name)
    import httpx2
    import openai

    # The HTTP stack imports parts of itself on first use: use it once.
    openai.OpenAI(api_key="x", http_client=httpx2.Client(transport=httpx2.HTTPTransport())).close()
    _preloaded = True


BENCH_TEST = "def test_bandit(bandit_case):\n    bandit_case.run_and_check()\n"


@pytest.fixture
def bench_project(pytester: pytest.Pytester) -> Callable[..., pytest.Pytester]:
    """Factory: ``bench_project(pyproject, own_test=False)`` makes pytester's folder a project
    using the plugin: the given ``pyproject.toml`` and, with ``own_test``, a test of its own
    (``test_bench_case.py``) using the ``bandit_case`` fixture. Without one the plugin runs the
    benchmark it ships (``bandit_bench/plugin/benchmark.py::test_bandit[...]``)."""

    def make(pyproject: str | None = None, own_test: bool = False) -> pytest.Pytester:
        if own_test:
            pytester.makepyfile(test_bench_case=BENCH_TEST)
        if pyproject is not None:
            pytester.makefile(".toml", pyproject=pyproject)
        return pytester

    return make


@pytest.fixture
def simulator() -> Iterator[Callable[..., Simulator]]:
    """Factory: ``simulator(policy, latency=0.0)`` returns a running simulator; all are stopped."""
    started: list[Simulator] = []

    def start(policy: Policy | None = None, latency: float = 0.0, **kw: Any) -> Simulator:
        sim = Simulator(policy, latency=latency, **kw)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
