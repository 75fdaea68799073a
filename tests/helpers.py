"""Helpers several test modules share: small configs, a recording run against a simulator,
and the pyproject tables the plugin tests write into their projects.

Imported as ``helpers``: ``tests/`` is on ``sys.path`` because ``tests/conftest.py`` is loaded
from it (pytest's default ``prepend`` import mode; ``tests`` is not a package).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.running.runner import CaseResult, RunOptions, run_case
from bandit_bench.servers.simulator import Simulator

# A config of two 3-step episodes that any reply passes (for tests of files, not verdicts).
TINY_PYPROJECT = """
[tool.bandit_bench.configs.tiny]
design = "BNRN0"
instance = "hard"
horizon = 3
episodes = 2
min_format_compliance = 0.0
"""

# Ten 4-step episodes that any reply in format passes: early stopping settles it before ten.
TEN_EPISODES_PYPROJECT = """
[tool.bandit_bench.configs.ten]
design = "BNRN0"
instance = "hard"
horizon = 4
episodes = 10
min_format_compliance = 0.9
"""

# `quick` passes a model that always answers in format; `picky` fails every model but the best.
QUICK_AND_PICKY_PYPROJECT = """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 6
episodes = 3
min_format_compliance = 0.9
min_best_arm_rate = 0.0

[tool.bandit_bench.configs.picky]
design = "BSSC~0"
instance = "hard"
horizon = 6
episodes = 3
min_best_arm_rate = 0.9
"""


def case_config(
    name: str,
    design: str = "BNRN0",
    *,
    k: int = 5,
    delta: float = 0.2,
    horizon: int = 3,
    episodes: int = 1,
    seed: int = 0,
) -> CaseConfig:
    """A config built in code, with the default thresholds."""
    return CaseConfig(
        name=name,
        design=DesignSpec.parse(design),
        instance=InstanceSpec(k=k, delta=delta, horizon=horizon),
        run=RunSpec(episodes=episodes, seed=seed),
    )


def record_case(
    sim: Simulator, cassettes: Path, config: CaseConfig, model: str, **options: Any
) -> CaseResult:
    """``run_case`` recording (``--record-mode=once``) from ``sim`` into ``cassettes``, with a
    test key; ``options`` are further :class:`RunOptions` fields."""
    opts = RunOptions(
        base_url=sim.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode="once", **options
    )
    return run_case(model, config, opts)


def record_quick(project: pytest.Pytester, base_url: str, *args: str) -> pytest.RunResult:
    """The plugin recording ``sim/cycle`` x ``quick`` (of :data:`QUICK_AND_PICKY_PYPROJECT`)."""
    return project.runpytest(
        "--model",
        "sim/cycle",
        "--bandit-config",
        "quick",
        "--base-url",
        base_url,
        "--record-mode=once",
        *args,
    )


def spawn_pytest(project: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    """A real ``pytest`` process in ``project``, for tests that signal or kill it; not an xdist
    worker of this suite (its environment says nothing of one) and with no addopts of ours."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTEST_ADDOPTS": ""}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        text=True,
        **kw,
    )
