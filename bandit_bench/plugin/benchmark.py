"""The benchmark the plugin runs: one item per model x config.

The plugin collects this module itself when a run asks for the benchmark (``--model``,
``--bandit-config``, ``--cassette-dir`` or their ini twins), so a repository needs no test file
of its own. A project that wants its own test function writes the same three lines with the
``bandit_case`` fixture; the plugin then runs that test instead of this one.
"""

from __future__ import annotations

from typing import Any


def test_bandit(bandit_case: Any) -> None:
    bandit_case.run_and_check()
