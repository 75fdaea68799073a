"""Hook specifications: how another project extends the bandit-bench plugin.

Registered by the plugin's ``pytest_addhooks``; implement them in a ``conftest.py`` or a plugin
of your own (see docs/extending.md), as pytest-recording's ``pytest_recording_configure``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bandit_bench.core.agents.base import Agent
    from bandit_bench.core.specs import CaseConfig


@pytest.hookspec(firstresult=True)
def pytest_bandit_bench_agent(model: str, config: CaseConfig) -> Callable[[], Agent] | None:
    """Supply the agent of a case yourself, instead of a model behind an API.

    Called once per case, with the case's model id (``--model``) and config. Return a callable
    that makes a fresh agent (an object with a ``name`` and ``choose(history, ctx) -> Decision``,
    see ``bandit_bench.Agent``), called once per episode; or None to leave the case to the
    plugin (an API model or ``baseline/*``). The first non-None answer wins.

    The case then runs in-process (``bandit_bench.running.custom.run_agent_case``): no request,
    no cassette, on the same instances as every other model, and its row joins the report.
    """
