"""Speed targets of bandit-bench, each measured side by side in one run and printed as a ratio.

    python benchmarks/bench_speed.py [--quick]

Everything runs against the local simulator (a real HTTP server on 127.0.0.1) through the real
openai client. The machines are shared and noisy: each figure is the best of several repeats,
and every target is a ratio of two measurements taken back to back.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

from bandit_bench.core.bandit import draw_instance
from bandit_bench.core.episode import run_episode
from bandit_bench.core.prompts import arm_names
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.recording.transport import load_cassette, make_transport
from bandit_bench.running.llm import LLMAgent, make_client
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import Simulator, cycle

DESIGN = DesignSpec.parse("BSSC~0")  # summarized history: the prompt size does not grow with t


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def config(horizon: int, episodes: int) -> CaseConfig:
    return CaseConfig(
        name=f"bench-T{horizon}-N{episodes}",
        design=DESIGN,
        instance=InstanceSpec(k=5, delta=0.2, horizon=horizon),
        run=RunSpec(episodes=episodes),
    )


def one_episode(client_transport: httpx2.BaseTransport, horizon: int, base_url: str) -> None:
    cfg = config(horizon, 1)
    instance, harness, policy = draw_instance(cfg.instance, 0, 0)
    client = make_client(base_url, "bench", client_transport, max_retries=0)
    agent = LLMAgent("sim/cycle", DESIGN, client)
    traj = run_episode(agent, instance, harness, policy, arm_names("B", 5))
    assert traj.error is None, traj.error
    client.close()


def target_concurrency(latency: float, horizon: int, episodes: int) -> str:
    with Simulator(cycle(), latency=latency) as sim:
        cfg = config(horizon, episodes)

        def run(c: int) -> Callable[[], object]:
            return lambda: run_case(
                "sim/cycle",
                cfg,
                RunOptions(
                    base_url=sim.base_url,
                    record_mode="all",
                    concurrency=c,
                    cassette_dir=Path(tempfile.mkdtemp()),
                ),
            )

        serial = best_of(run(1), 1)
        parallel = best_of(run(episodes), 2)
    floor = horizon * latency
    return (
        f"1. live concurrency: N={episodes} episodes x T={horizon} steps, L={latency * 1000:.0f} ms/call: "
        f"C=1 {serial:.2f} s, C={episodes} {parallel:.2f} s = {parallel / floor:.2f} x T*L (target <= 1.2); "
        f"the serial loop is {serial / floor:.1f} x T*L"
    )


def _record_cassette(path: Path, horizon: int) -> None:
    with Simulator(cycle()) as sim:
        t = make_transport(path, "all", sim.base_url, httpx2.HTTPTransport())
        one_episode(t, horizon, sim.base_url)  # type: ignore[arg-type]
        t.save()


def target_replay(horizon: int, repeats: int) -> str:
    """Replay vs the client's floor, and a large cassette vs a small one, at equal call counts."""
    tmp = Path(tempfile.mkdtemp())
    small, big = tmp / "small.json", tmp / "big.json"
    _record_cassette(small, 10)
    _record_cassette(big, horizon)
    base = "http://127.0.0.1:9/v1"
    _, responses = load_cassette(big)
    bodies = [r["body"]["string"] for r in responses]

    def replay_big() -> None:
        one_episode(make_transport(big, "none", base), horizon, base)  # type: ignore[arg-type]

    def replay_small() -> None:
        # The same number of calls as the big episode, served by a 10-interaction cassette.
        for _ in range(horizon // 10):
            one_episode(make_transport(small, "none", base), 10, base)  # type: ignore[arg-type]

    def floor() -> None:
        it = iter(bodies)
        transport = httpx2.MockTransport(
            lambda request: httpx2.Response(
                200, content=next(it), headers={"content-type": "application/json"}
            )
        )
        one_episode(transport, horizon, base)

    # Interleaved repeats, best of each: load on the shared machine hits all three alike.
    best = {"replay": float("inf"), "floor": float("inf"), "small": float("inf")}
    for _ in range(repeats):
        for name, fn in (("replay", replay_big), ("floor", floor), ("small", replay_small)):
            best[name] = min(best[name], best_of(fn, 1) / horizon)
    r, f, sm = best["replay"], best["floor"], best["small"]
    return (
        f"2. replay: {r * 1000:.2f} ms/call vs the client's floor with httpx2.MockTransport "
        f"{f * 1000:.2f} ms/call = {r / f:.2f}x (target <= 1.3); per call with {horizon} interactions "
        f"on disk vs 10: {r * 1000:.2f} / {sm * 1000:.2f} ms = {r / sm:.2f}x (target <= 1.2)"
    )


def target_recording(horizon: int, repeats: int) -> str:
    with Simulator(cycle()) as sim:
        tmp = Path(tempfile.mkdtemp())

        def plain() -> None:
            one_episode(httpx2.HTTPTransport(), horizon, sim.base_url)

        def recording() -> None:
            t = make_transport(tmp / "rec.json", "rewrite", sim.base_url, httpx2.HTTPTransport())
            one_episode(t, horizon, sim.base_url)  # type: ignore[arg-type]
            t.save()

        # Interleaved, best of each: the machine's load hits both alike.
        plain_t = rec_t = float("inf")
        for _ in range(repeats):
            plain_t = min(plain_t, best_of(plain, 1))
            rec_t = min(rec_t, best_of(recording, 1))
    return (
        f"3. recording: T={horizon} against the simulator, recording on {rec_t:.2f} s vs off {plain_t:.2f} s "
        f"= {rec_t / plain_t:.2f}x (target <= 1.2)"
    )


def target_startup(repeats: int) -> str:
    tmp = Path(tempfile.mkdtemp())
    configs = "\n".join(
        f'[tool.bandit_bench.configs.c{i}]\ndesign = "BNRN0"\ninstance = "hard"\nhorizon = {10 + i}\n'
        for i in range(20)
    )
    (tmp / "pyproject.toml").write_text(
        configs + "\n[tool.pytest.ini_options]\naddopts = '-p no:cacheprovider'\n"
    )
    (tmp / "test_bandit.py").write_text("def test_bandit(bandit_case):\n    bandit_case.run_and_check()\n")
    models = ",".join(f"baseline/{b}" for b in ("ucb", "ts", "greedy", "eps_greedy", "uniform"))
    with_plugin = [
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "--model",
        models,
        *[a for i in range(20) for a in ("--bandit-config", f"c{i}")],
    ]
    without = [
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "no:bandit_bench",
        "test_bandit.py",
    ]
    out = subprocess.run(with_plugin, cwd=tmp, capture_output=True, text=True, check=False).stdout
    cases = sum(1 for line in out.splitlines() if "::test_bandit[" in line)

    def run(cmd: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(cmd, cwd=tmp, capture_output=True, check=False)

    t_with = best_of(run(with_plugin), repeats)
    t_without = best_of(run(without), repeats)
    return (
        f"4. start-up: pytest --collect-only with {cases} cases {t_with:.2f} s vs pytest without the plugin "
        f"{t_without:.2f} s: the plugin adds {t_with - t_without:.2f} s (target < 0.3 s)"
    )


def target_memory(episodes: int, horizon: int) -> str:
    tmp = Path(tempfile.mkdtemp())
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from pathlib import Path
        from bandit_bench.running.runner import RunOptions, run_case
        from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
        cfg = CaseConfig(name="mem", design=DesignSpec.parse("BSSC~0"),
                         instance=InstanceSpec(k=5, delta=0.2, horizon={horizon}),
                         run=RunSpec(episodes={episodes}))
        r = run_case("sim/cycle", cfg, RunOptions(base_url=sys.argv[1], record_mode=sys.argv[2],
                     cassette_dir=Path(sys.argv[3])))
        assert not r.errors, r.errors
        print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
        """
    )
    peaks = {}
    with Simulator(cycle()) as sim:
        for mode in ("all", "none"):
            out = subprocess.run(
                [sys.executable, "-c", script, sim.base_url, mode, str(tmp)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            peaks[mode] = int(out.strip().splitlines()[-1]) / 1024
    return (
        f"5. memory: a case of {episodes} x {horizon} = {episodes * horizon} interactions peaks at "
        f"{peaks['all']:.0f} MB recording and {peaks['none']:.0f} MB replaying (target < 300 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args()
    reps = 2 if args.quick else 5
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    print(target_concurrency(latency=0.1 if args.quick else 0.25, horizon=10, episodes=8))
    print(target_replay(horizon=200 if args.quick else 1000, repeats=reps))
    print(target_recording(horizon=100 if args.quick else 300, repeats=reps))
    print(target_startup(repeats=reps))
    print(target_memory(episodes=10, horizon=100))
    print("6. rate limits: --max-rps caps request starts per case (RateLimiter in runner.py); see the tests")


if __name__ == "__main__":
    main()
