"""pytester's in-process runs drop the modules first imported inside them, and some libraries
(pandas, matplotlib) break when imported a second time in one process. Everything the plugin
imports lazily is therefore imported once, up front."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import httpx2  # noqa: E402, F401
import matplotlib.pyplot  # noqa: E402, F401
import openai  # noqa: E402, F401
import pandas  # noqa: E402, F401
import vcr.serialize  # noqa: E402, F401

import bandit_bench.collector  # noqa: E402, F401
import bandit_bench.evaluation  # noqa: E402, F401
import bandit_bench.report  # noqa: E402, F401
