"""docs/extending.md's examples, run as written: the agent hook through pytest, the library alone."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "extending.md"

PYPROJECT = """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 10
episodes = 3
min_format_compliance = 1.0
min_best_arm_rate = 0.0
"""


def _block(label: str) -> str:
    """The fenced block after ``<!-- tested: label -->`` in docs/extending.md."""
    found = re.search(rf"<!-- tested: {re.escape(label)} -->\n```\w+\n(.*?)```", DOC.read_text(), re.S)
    assert found is not None, f"docs/extending.md has no block marked 'tested: {label}'"
    return found.group(1)


def test_the_library_example_prints_what_the_page_says():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_block("library"), str(DOC), "exec"), {"__name__": "extending_example"})
    assert out.getvalue() == _block("library output")


def test_the_agent_hook_example_runs_its_agent_beside_the_plugins_models(bench_project):
    project = bench_project(PYPROJECT)
    project.makeconftest(_block("conftest.py"))
    result = project.runpytest("--model", "mine/greedy,baseline/ucb", "--bandit-config", "quick", "-v")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines_random(
        [
            "*test_bandit[[]mine/greedy-quick[]] PASSED*",
            "*test_bandit[[]baseline/ucb-quick[]] PASSED*",
            "requests: 0 recorded, 0 replayed*",
        ]
    )
    rows = {
        r["model"]: r for r in json.loads((project.path / "reports" / "summary.json").read_text())["rows"]
    }
    assert rows["mine/greedy"]["episodes"] == 3
    assert rows["mine/greedy"]["format_compliance"] == 1.0
    assert not (project.path / "cassettes").exists()  # nothing was sent, nothing recorded


def test_an_agent_error_fails_the_case_as_an_api_fault_does(bench_project):
    project = bench_project(PYPROJECT)
    project.makeconftest(
        "from bandit_bench import AgentError\n\n"
        "class Broken:\n"
        "    name = 'broken'\n\n"
        "    def choose(self, history, ctx):\n"
        "        raise AgentError('the solver timed out')\n\n"
        "def pytest_bandit_bench_agent(model, config):\n"
        "    return Broken if model == 'mine/broken' else None\n"
    )
    result = project.runpytest("--model", "mine/broken", "--bandit-config", "quick")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*3 of 3 episodes errored*", "*episodes 0, 1, 2: step 1 of 10: the solver timed out*"]
    )
