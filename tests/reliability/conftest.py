"""Reliability tests (issue 5): hostile replies, API faults, interrupted runs, secrets, bad
configuration, concurrency. Every server is the local simulator on 127.0.0.1.

pytester's in-process runs drop modules first imported inside them; pandas and matplotlib do
not survive being imported twice in one process, so they (and the parts of matplotlib the HTML
report draws with) are imported once up front.
"""

from __future__ import annotations

import matplotlib  # noqa: F401
import matplotlib.backends.backend_agg  # noqa: F401
import matplotlib.figure  # noqa: F401
import matplotlib.lines  # noqa: F401
import pandas  # noqa: F401
