"""A JSON file that several processes update in turn: the budget's and the rate limit's ledgers.

One read-change-write under an exclusive ``flock`` (between processes, xdist workers included)
and a ``threading.Lock`` (between the episode threads of one process, which share the file
descriptor table and so would not exclude each other through ``flock`` on separate opens)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def update_ledger(
    path: Path,
    lock: threading.Lock,
    change: Callable[[dict[str, Any]], Any],
    defaults: dict[str, Any] | None = None,
) -> Any:
    """Apply ``change`` to the ledger's state (``defaults`` filled in) and write it back; returns
    what ``change`` returned."""
    import fcntl

    with lock, open(path, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        text = fh.read()
        state = {**(defaults or {}), **(json.loads(text) if text else {})}
        out = change(state)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(state))
        fh.flush()
        return out
