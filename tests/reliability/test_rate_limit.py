"""A session-wide rate limit (--max-rpm / --max-tpm): one ledger for every case and worker,
and a pause for all of them when the provider answers 429."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import case_config

from bandit_bench.core.specs import CaseConfig
from bandit_bench.running.ratelimit import SessionRateLimit, estimate_tokens, retry_after
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import SimReply, cycle


def _config(name: str) -> CaseConfig:
    return case_config(name, k=3, delta=0.5, horizon=4, episodes=4, seed=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _limit(ledger: Path, clock: FakeClock, **kw: Any) -> SessionRateLimit:
    return SessionRateLimit(ledger, clock=clock, sleep=clock.sleep, **kw)


def test_requests_per_minute_are_spaced_across_every_holder_of_the_ledger(tmp_path: Path) -> None:
    clock = FakeClock()
    ledger = SessionRateLimit.create_ledger(tmp_path)
    # Two objects on one file: two xdist workers.
    a, b = _limit(ledger, clock, rpm=60), _limit(ledger, clock, rpm=60)
    starts = [a.acquire(), b.acquire(), a.acquire(), b.acquire()]
    assert starts == [1000.0, 1001.0, 1002.0, 1003.0]
    assert a.state()["requests"] == 4


def test_tokens_per_minute_wait_for_the_oldest_reservations_to_leave_the_minute(tmp_path: Path) -> None:
    clock = FakeClock()
    limit = _limit(SessionRateLimit.create_ledger(tmp_path), clock, tpm=100)
    assert limit.acquire(40) == 1000.0
    clock.now += 10
    assert limit.acquire(40) == 1010.0
    # 80 of 100 used in the last minute: 40 more must wait until the first 40 are a minute old.
    assert limit.acquire(40) == 1060.0
    assert clock.now == 1060.0


def test_a_429_pauses_everyone_and_slows_the_session_until_it_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    ledger = SessionRateLimit.create_ledger(tmp_path)
    a, b = _limit(ledger, clock, rpm=60), _limit(ledger, clock, rpm=60)
    assert a.acquire() == 1000.0
    a.limited(retry_after({"retry-after": "7"}))
    # b never saw the 429: it waits out the pause all the same, and the spacing is doubled.
    assert b.acquire() == 1007.0
    assert a.acquire() == 1009.0
    assert a.state()["slowdown"] == 2.0 and a.state()["throttled"] == 1
    # Without Retry-After the pause grows with each 429 in a row: 1, 2, 4 s ...
    b.limited(None)
    assert b.state()["paused_until"] == clock.now + 2.0
    for _ in range(30):
        a.succeeded()
    assert a.state()["slowdown"] == 1.0 and a.state()["streak"] == 0


def test_the_token_estimate_counts_the_prompt_and_the_completion_it_may_produce() -> None:
    body = (
        b'{"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "' + b"x" * 400 + b'"}]}'
    )
    assert estimate_tokens(body) == 100 + 50
    assert retry_after({"retry-after-ms": "1500"}) == 1.5 and retry_after({}) is None


def _limited_server(per_second: int) -> tuple[Any, list[float], list[float]]:
    """A policy that answers 429 (Retry-After: 1) to a request beyond ``per_second`` in the
    last second, like a provider enforcing an account's limit."""
    arrivals: list[float] = []
    refused: list[float] = []
    lock = threading.Lock()
    answer = cycle()

    def policy(body: dict[str, Any], call: int) -> SimReply:
        now = time.monotonic()
        with lock:
            recent = [t for t in arrivals if t > now - 1.0]
            if len(recent) >= per_second:
                refused.append(now)
                return SimReply(status=429, headers={"Retry-After": "1"}, content="rate limited")
            arrivals.append(now)
        return answer(body, call)

    return policy, arrivals, refused


def _two_workers(sim: Any, tmp_path: Path, **opts: Any) -> list[Any]:
    """Two cases at once, each with its own options object (as two xdist workers have)."""
    results: list[Any] = [None, None]

    def work(i: int) -> None:
        given = {"max_retries": 0, **{k: v(i) if callable(v) else v for k, v in opts.items()}}
        options = RunOptions(
            base_url=sim.base_url,
            record_mode="once",
            cassette_dir=tmp_path / "cassettes",
            concurrency=4,
            **given,
        )
        results[i] = run_case("sim/cycle", _config(f"case{i}"), options)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# Seconds of paced requests against a server: out of the fast loop.
@pytest.mark.slow
def test_one_limit_for_the_session_keeps_two_workers_under_the_servers_limit(
    simulator, tmp_path: Path
) -> None:
    policy, arrivals, refused = _limited_server(per_second=10)
    sim = simulator(policy)
    ledger = SessionRateLimit.create_ledger(tmp_path)
    # 6 requests a second for the whole session (a margin for the sockets' jitter), each worker
    # with its own object on the ledger.
    results = _two_workers(sim, tmp_path, rate_limit=lambda i: SessionRateLimit(ledger, rpm=360))
    assert [r.errors for r in results] == [[], []]
    assert refused == [] and len(arrivals) == 2 * 4 * 4
    assert SessionRateLimit(ledger, rpm=360).state()["requests"] == 32


# Seconds of paced requests against a server: out of the fast loop.
@pytest.mark.slow
def test_a_limit_per_case_is_not_one_for_the_session(simulator, tmp_path: Path) -> None:
    # The account's rate as a limit per case (--max-rps 10): two cases at once send twice it.
    policy, arrivals, refused = _limited_server(per_second=10)
    sim = simulator(policy)
    results = _two_workers(sim, tmp_path, max_rps=10.0)
    assert refused, "two cases at 10 requests a second each never exceeded 10 a second"
    assert any(r.errors for r in results)  # without retries, the 429s error episodes


# Seconds of paced requests against a server: out of the fast loop.
@pytest.mark.slow
def test_after_429s_the_session_slows_down_together_and_every_episode_completes(
    simulator, tmp_path: Path
) -> None:
    # Configured too high for the account (20 a second against 6): the 429s pause and slow the
    # whole session, and the client's retries then get through.
    policy, arrivals, refused = _limited_server(per_second=6)
    sim = simulator(policy)
    ledger = SessionRateLimit.create_ledger(tmp_path)
    results = _two_workers(
        sim, tmp_path, rate_limit=lambda i: SessionRateLimit(ledger, rpm=1200), max_retries=4
    )
    assert [r.errors for r in results] == [[], []]
    state = SessionRateLimit(ledger, rpm=1200).state()
    assert refused and state["throttled"] == len(refused)
    assert len(arrivals) == 32
