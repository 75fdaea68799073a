"""A JSON file that several processes update in turn: the budget's and the rate limit's ledgers.

One read-change-write under a ``filelock`` lock file beside the ledger (between processes, xdist
workers included; the same library locks the case folders) and a ``threading.Lock`` (between
the episode threads of one process, which share one filelock object)."""

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
    import filelock

    with (
        lock,
        filelock.FileLock(lock_file(path), thread_local=False),
        open(path, "r+", encoding="utf-8") as fh,
    ):
        text = fh.read()
        state = {**(defaults or {}), **(json.loads(text) if text else {})}
        out = change(state)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(state))
        fh.flush()
        return out


def lock_file(path: Path) -> Path:
    """The ledger's lock file: ``<ledger>.lock`` beside it."""
    return path.with_name(path.name + ".lock")


def remove_ledger(path: Path) -> None:
    """Delete the ledger and its lock file (the session that made it, at its end)."""
    path.unlink(missing_ok=True)
    lock_file(path).unlink(missing_ok=True)
