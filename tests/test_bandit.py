"""The benchmark: one item per model x config (see `pytest --help`, group bandit-bench)."""

from __future__ import annotations


def test_bandit(bandit_case):
    bandit_case.run_and_check()
