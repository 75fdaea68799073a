"""pytester's in-process runs drop modules first imported inside them; pandas and matplotlib do
not survive being imported twice in one process, so they are imported once up front."""

from __future__ import annotations

import matplotlib  # noqa: F401
import pandas  # noqa: F401
