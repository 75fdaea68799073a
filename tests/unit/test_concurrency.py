"""Episodes of a case in flight at once: they really overlap, and change nothing in the results."""

from __future__ import annotations

from pathlib import Path

import bandit_bench.running.runner as runner
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.recording.transport import load_cassette
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import RateLimiter, RunOptions, run_case
from bandit_bench.servers.simulator import cycle

CFG = CaseConfig(
    name="conc",
    design=DesignSpec.parse("BNRN0"),
    instance=InstanceSpec(k=3, delta=0.5, horizon=4),
    run=RunSpec(episodes=4, seed=7),
)


def _run(sim, tmp: Path, concurrency: int) -> tuple[dict, dict[str, list]]:
    result = run_case(
        "sim/cycle",
        CFG,
        RunOptions(base_url=sim.base_url, record_mode="once", cassette_dir=tmp, concurrency=concurrency),
    )
    # Bodies, in order: headers carry the Date of the recording.
    files = {}
    for p in sorted(tmp.rglob("[0-9]*.json")):
        requests, responses = load_cassette(p)
        files[p.relative_to(tmp).as_posix()] = [
            (q.body, r["body"]["string"]) for q, r in zip(requests, responses, strict=True)
        ]
    record = case_record(result)
    for traj in record["trajectories"]:
        for step in traj["steps"]:
            step["latency"] = 0.0  # the one field that depends on timing
    return record, files


def test_episodes_overlap_and_results_equal_the_serial_run(simulator, tmp_path):
    sim = simulator(cycle(), latency=0.05)
    parallel, parallel_files = _run(sim, tmp_path / "c4", 4)
    assert sim.max_in_flight > 1, "episodes never overlapped"
    serial_sim = simulator(cycle(), latency=0.0)
    serial, serial_files = _run(serial_sim, tmp_path / "c1", 1)
    assert serial_sim.max_in_flight == 1
    # Same decisions, same metrics, identical recorded request and response bodies.
    assert parallel == serial
    assert list(parallel_files) == [f"sim/cycle/conc/00{i}.json" for i in range(4)]
    assert parallel_files == serial_files


def test_rate_limiter_spaces_request_starts(monkeypatch):
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(runner.time, "sleep", sleep)
    limiter = RateLimiter(4.0)
    for _ in range(4):
        limiter.wait()
    # The first request goes at once; the next ones a quarter of a second apart.
    assert slept == [0.25, 0.25, 0.25]


def test_a_replay_runs_its_episodes_in_the_calling_thread_and_a_recording_in_threads(simulator, tmp_path):
    import threading

    def threads(mode: str, base_url: str) -> set[str]:
        seen: set[str] = set()
        opts = RunOptions(
            base_url=base_url,
            record_mode=mode,
            cassette_dir=tmp_path,
            concurrency=4,
            progress=lambda _: seen.add(threading.current_thread().name),
        )
        assert not run_case("sim/cycle", CFG, opts).errors
        return seen

    sim = simulator(cycle(), latency=0.02)
    assert threads("once", sim.base_url) <= {f"episode-{k}" for k in range(4)}
    here = {threading.current_thread().name}
    # Nothing left to record: no latency to hide, threads would only contend for the GIL.
    assert threads("once", sim.base_url) == here
    assert threads("none", "http://127.0.0.1:9/v1") == here
    assert threads("new_episodes", sim.base_url) <= {f"episode-{k}" for k in range(4)}
