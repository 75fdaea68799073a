"""A rate limit for the whole session: requests and tokens per minute, shared through one file.

Providers limit an account, not a test case: OpenAI counts requests and tokens per minute per
organization and model, and answers 429 with ``x-ratelimit-*`` headers and, often,
``Retry-After`` (https://platform.openai.com/docs/guides/rate-limits); OpenRouter likewise
answers 429 with ``Retry-After`` when a model's limit is hit
(https://openrouter.ai/docs/api-reference/limits). ``--max-rps`` spaces the starts of one
case's requests only; under ``-n 8`` over a suite, eight workers each run cases at that rate.

:class:`SessionRateLimit` is one ledger file (like the budget's) updated under an exclusive
``flock`` by every thread of every xdist worker on the machine:

* requests: starts are spaced ``60 / rpm`` seconds apart (no burst), across the session;
* tokens: a request reserves its estimate (prompt characters / 4 plus its ``max_tokens``, as
  OpenAI counts a request against the limit before it runs) and starts only once the last
  minute's reservations leave room for it;
* a 429 sets a shared pause (the server's ``Retry-After``, else 1, 2, 4 ... s up to 30 s) that
  every request of the session waits out, and doubles the spacing (at most 16 times the
  configured one); each success after that takes a step back toward it, so the session slows
  down together and recovers together instead of every worker retrying at its own pace.

Only requests sent to the API count: replayed steps never wait.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WINDOW = 60.0  # seconds: limits are per minute
MAX_SLOWDOWN = 16.0
MAX_PAUSE = 30.0  # seconds, when the server gives no Retry-After
MAX_RETRY_AFTER = 120.0  # the openai client's own cap on a server's Retry-After
CHARS_PER_TOKEN = 4


def estimate_tokens(body: bytes) -> int:
    """What a request counts against a tokens-per-minute limit: its prompt (characters / 4,
    the body's JSON included: a slight overestimate) plus the completion it may produce."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return math.ceil(len(body) / CHARS_PER_TOKEN)
    limit = data.get("max_tokens") or data.get("max_completion_tokens") or 0
    messages: list[Any] = data["messages"] if isinstance(data.get("messages"), list) else []
    prompt = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict))
    return math.ceil(prompt / CHARS_PER_TOKEN) + (int(limit) if isinstance(limit, (int, float)) else 0)


def retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header, if any and sane."""
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return min(MAX_RETRY_AFTER, max(0.0, float(ms) / 1000))
        value = headers.get("retry-after")
        if value is not None:
            return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except (TypeError, ValueError, AttributeError):
        pass
    return None


class SessionRateLimit:
    """``rpm`` requests and ``tpm`` tokens per minute (either may be None) for the session."""

    def __init__(
        self,
        ledger: Path | str,
        rpm: float | None = None,
        tpm: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rpm is None and tpm is None:
            raise ValueError("rpm or tpm: expected at least one limit")
        self.ledger = Path(ledger)
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    @staticmethod
    def create_ledger(directory: Path | str | None = None) -> Path:
        fd, name = tempfile.mkstemp(prefix="bandit-bench-rate-", suffix=".json", dir=directory)
        with os.fdopen(fd, "w") as fh:
            json.dump(_fresh(), fh)
        return Path(name)

    def _update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        from bandit_bench.running.ledger import update_ledger

        return update_ledger(self.ledger, self._lock, change, _fresh())

    def state(self) -> dict[str, Any]:
        return dict(self._update(lambda s: dict(s)))

    def acquire(self, tokens: int = 0, cancel: threading.Event | None = None) -> float:
        """Wait for this request's turn and take it; returns the start time given."""
        if self.tpm is not None and tokens > self.tpm:
            tokens = int(self.tpm)  # a request larger than the whole limit goes alone in its minute

        def take(s: dict[str, Any]) -> float:
            now = self._clock()
            start = max(now, float(s["paused_until"]))
            if self.rpm is not None:
                start = max(start, float(s["next_start"]))
            window = [(t, n) for t, n in s["tokens"] if t > now - WINDOW]
            if self.tpm is not None:
                # The earliest start at which the reservations of the minute before it leave
                # room for these tokens: wait for the oldest ones to leave the window.
                used = sum(n for t, n in window if t > start - WINDOW)
                for t, n in sorted(window):
                    if used + tokens <= self.tpm:
                        break
                    if t > start - WINDOW:
                        start = t + WINDOW
                        used -= n
            if self.rpm is not None:
                s["next_start"] = start + WINDOW / self.rpm * float(s["slowdown"])
            if tokens:
                window.append((start, tokens))
            s["tokens"] = window
            s["requests"] = int(s["requests"]) + 1
            return start

        start = float(self._update(take))
        while True:
            delay = start - self._clock()
            if delay <= 0:
                return start
            if cancel is not None and cancel.is_set():
                from bandit_bench.running.deadline import Cancelled

                # A BaseException, as for a request in flight: the client does not retry it.
                raise Cancelled("the run was interrupted while a request waited for the rate limit")
            self._sleep(min(delay, 0.5))

    def limited(self, wait: float | None) -> None:
        """A 429: everyone pauses (``wait`` seconds from the server, else an exponential pause)
        and the spacing doubles."""

        def change(s: dict[str, Any]) -> None:
            now = self._clock()
            s["throttled"] = int(s["throttled"]) + 1
            streak = int(s["streak"]) + 1
            s["streak"] = streak
            pause = wait if wait is not None else min(MAX_PAUSE, 2.0 ** (streak - 1))
            s["paused_until"] = max(float(s["paused_until"]), now + pause)
            s["slowdown"] = min(MAX_SLOWDOWN, float(s["slowdown"]) * 2)

        self._update(change)

    def succeeded(self) -> None:
        """A request went through: the spacing takes a step back toward the configured one."""

        def change(s: dict[str, Any]) -> None:
            s["streak"] = 0
            if s["slowdown"] > 1.0:
                s["slowdown"] = max(1.0, float(s["slowdown"]) * 0.9)

        if self._slowed():
            self._update(change)

    def _slowed(self) -> bool:
        # Read without the lock: a stale answer only delays the recovery step by one request.
        try:
            data = json.loads(self.ledger.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return True
        return float(data.get("slowdown", 1.0)) > 1.0 or int(data.get("streak", 0)) > 0

    def describe(self) -> str:
        parts = [f"{self.rpm:g} requests" if self.rpm else "", f"{self.tpm:g} tokens" if self.tpm else ""]
        return " and ".join(p for p in parts if p) + " per minute for the session"


def _fresh() -> dict[str, Any]:
    return {
        "next_start": 0.0,
        "paused_until": 0.0,
        "slowdown": 1.0,
        "streak": 0,
        "tokens": [],
        "requests": 0,
        "throttled": 0,
    }


class LimitGuard:
    """What a cassette transport asks before it sends a request to the API, and tells after."""

    def __init__(self, limit: SessionRateLimit, cancel: threading.Event | None = None) -> None:
        self.limit = limit
        self.cancel = cancel

    def before(self, body: bytes) -> None:
        self.limit.acquire(estimate_tokens(body) if self.limit.tpm is not None else 0, self.cancel)

    def after(self, status: int, headers: Any) -> None:
        if status == 429:
            self.limit.limited(retry_after(headers))
        elif 200 <= status < 300:
            self.limit.succeeded()
