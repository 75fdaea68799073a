"""The record modes, one row each: what a mode replays and what it records.

The one statement of the policy: the cassette transport, the case folder, the cost estimate and
the runner read it from here. The names are pytest-recording's (vcrpy's), with ``rewrite``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecordMode:
    """What a run in this mode does with a case's cassettes."""

    name: str
    # Answers requests from an existing cassette (which must then match today's requests).
    replays: bool
    # Records an episode whose cassette is missing.
    records_missing_episodes: bool
    # Records the steps an existing cassette lacks (after the ones it answers).
    records_missing_steps: bool
    # The case folder then holds only this run's episodes: files it did not write are removed.
    rewrites_folder: bool = False

    @property
    def records_every_request(self) -> bool:
        """Sends every request to the API and replaces each episode's file (``all``, ``rewrite``):
        appended to the old interactions (vcrpy's ``all``), a replay would answer with the older ones."""
        return not self.replays


_MODES = (
    RecordMode("none", replays=True, records_missing_episodes=False, records_missing_steps=False),
    RecordMode("once", replays=True, records_missing_episodes=True, records_missing_steps=False),
    RecordMode("new_episodes", replays=True, records_missing_episodes=True, records_missing_steps=True),
    RecordMode("all", replays=False, records_missing_episodes=True, records_missing_steps=True),
    RecordMode(
        "rewrite",
        replays=False,
        records_missing_episodes=True,
        records_missing_steps=True,
        rewrites_folder=True,
    ),
)
MODES = {m.name: m for m in _MODES}
RECORD_MODES = tuple(MODES)
# Modes that may replay a file; they refuse one the case's manifest does not list.
REPLAYING_MODES = tuple(m.name for m in _MODES if m.replays)


def record_mode(name: str) -> RecordMode:
    """The mode called ``name``; ValueError naming the modes for any other."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ValueError(f"record mode: got {name!r}; expected one of {RECORD_MODES}") from None


def requests_to_send(mode: RecordMode, recorded: int | None, horizon: int) -> int:
    """How many of an episode's ``horizon`` requests a run in ``mode`` sends to the API, given
    the interactions its cassette holds (None: no cassette). Assumes the cassette matches
    today's prompts (a stale one fails in replay instead)."""
    if recorded is None:
        return horizon if mode.records_missing_episodes else 0
    if mode.records_every_request:
        return horizon
    if mode.records_missing_steps:
        return max(0, horizon - recorded)
    return 0
