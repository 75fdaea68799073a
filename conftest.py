"""This repository's own defaults for its benchmark run (the plugin itself is in bandit_bench)."""

from __future__ import annotations
