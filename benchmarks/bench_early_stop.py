"""Does --early-stop save requests without changing verdicts? Measured over simulator policies.

    python benchmarks/bench_early_stop.py [--seeds 20] [--quick]

For each policy and base seed, one case (design BNSN0, hard instance K=5, T=25, N=10 episodes)
runs in full against the local simulator (real HTTP, the real openai client, cassettes written).
Early stopping is then applied to the full run's episodes with the runner's own waves and rule,
once per threshold set; for seed 0 of every policy and threshold set the runner itself runs the
case live with early stopping, and the simulator's call count and the verdict must match.
Reported: the share of requests saved and the number of verdicts that differ from the full run's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bandit_bench.core.early_stop import settle, wave_size
from bandit_bench.core.episode import Trajectory
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import Policy, SimReply, Simulator, arm_names_from_request

EPISODES, HORIZON = 10, 25
DESIGN = DesignSpec.parse("BNSN0")  # summarized history: what the UCB-like policy reads


def _unit(body: dict[str, Any], salt: str) -> float:
    """A reproducible uniform draw in [0, 1) from the request itself (messages and episode seed)."""
    key = json.dumps([body["messages"], body.get("seed"), salt], sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def _answer(name: str) -> SimReply:
    return SimReply(content=f"<Answer>{name}</Answer>")


def always_invalid() -> Policy:
    return lambda body, call: SimReply(content="I would press the blue button.")


def always_first() -> Policy:
    return lambda body, call: _answer(arm_names_from_request(body)[0])


def uniform() -> Policy:
    def policy(body: dict[str, Any], call: int) -> SimReply:
        names = arm_names_from_request(body)
        return _answer(names[int(_unit(body, "arm") * len(names))])

    return policy


_SUMMARY = re.compile(r"^(\w+) button: pressed (\d+) times(?: with average reward ([0-9.]+))?$", re.M)


def ucb_like() -> Policy:
    """UCB (mean + sqrt(1/n), each arm once first) on the summarized history the prompt shows."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        rows = _SUMMARY.findall(body["messages"][-1]["content"])
        untried = [name for name, count, _ in rows if int(count) == 0]
        if untried:
            return _answer(untried[0])
        scores = [float(mean) + (1.0 / int(count)) ** 0.5 for _, count, mean in rows]
        return _answer(rows[scores.index(max(scores))][0])

    return policy


def valid_with(p: float) -> Policy:
    """A valid uniform answer with probability p, else a reply without a tag: right at a threshold."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        if _unit(body, "valid") >= p:
            return SimReply(content="Let me think about the blue button.")
        names = arm_names_from_request(body)
        return _answer(names[int(_unit(body, "arm") * len(names))])

    return policy


@dataclass(frozen=True)
class Scenario:
    policy: str
    make: Callable[[], Policy]
    # (min_format_compliance, min_best_arm_rate) sets, each judged and stopped separately;
    # AT_MEDIAN puts the best-arm threshold at the median of the policy's own full runs.
    thresholds: tuple[tuple[float, float | str], ...]


QUICK, PAPER = (0.9, 0.0), (0.9, 0.4)  # the T = 25 presets' thresholds, the T = 100 presets'
AT_MEDIAN = (0.9, "median")
SCENARIOS = (
    Scenario("always-invalid", always_invalid, (QUICK, PAPER)),
    Scenario("always-first", always_first, (QUICK, PAPER, AT_MEDIAN)),
    Scenario("uniform", uniform, (QUICK, PAPER)),
    Scenario("ucb-like", ucb_like, (QUICK, PAPER, AT_MEDIAN)),
    Scenario("valid-90%", lambda: valid_with(0.9), (QUICK,)),  # its compliance straddles 0.9
)


def config(seed: int, fc: float, bar: float) -> CaseConfig:
    return CaseConfig(
        name=f"s{seed}",
        design=DESIGN,
        instance=InstanceSpec(k=5, delta=0.2, horizon=HORIZON),
        run=RunSpec(episodes=EPISODES, seed=seed),
        min_format_compliance=fc,
        min_best_arm_rate=bar,
    )


@dataclass
class Tally:
    cases: int = 0
    full_passed: int = 0
    flips: int = 0
    requests_full: int = 0
    requests_early: int = 0


def stopped_at(trajs: list[Trajectory], fc: float, bar: float) -> tuple[int, bool | None]:
    """Episodes the runner's --early-stop would run (its waves, its rule) and the settled verdict."""
    size = wave_size(EPISODES)
    thresholds = {"format_compliance": fc, "best_arm_rate": bar}
    for n in range(size, EPISODES, size):
        settled = settle(trajs[:n], EPISODES, thresholds)
        if settled is not None:
            return n, settled.passed
    return EPISODES, None


def run(seeds: int) -> dict[tuple[str, float, float], Tally]:
    tallies: dict[tuple[str, float, float], Tally] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sc in SCENARIOS:
            model = f"sim/{sc.policy}"
            with Simulator(sc.make()) as sim:
                live = RunOptions(
                    base_url=sim.base_url, api_key="bench", cassette_dir=Path(tmp), record_mode="once"
                )
                fulls = [run_case(model, config(seed, 0.0, 0.0), live) for seed in range(seeds)]
                for full in fulls:
                    assert not full.errors, full.errors
                rates = sorted(case_record(f)["metrics"]["best_arm_rate"]["value"] for f in fulls)
                for fc, bar_spec in sc.thresholds:
                    bar = rates[len(rates) // 2] if bar_spec == "median" else float(bar_spec)
                    t = tallies.setdefault((sc.policy, fc, bar), Tally())
                    for seed, full in enumerate(fulls):
                        passed = case_record(full, min_format_compliance=fc, min_best_arm_rate=bar)["passed"]
                        n, settled = stopped_at(full.trajectories, fc, bar)
                        t.cases += 1
                        t.full_passed += passed
                        t.flips += settled is not None and settled != passed
                        t.requests_full += EPISODES * HORIZON
                        t.requests_early += n * HORIZON
                        if seed == 0:
                            # The runner itself, live: it sends exactly those requests, same verdict.
                            calls = sim.calls
                            opts = RunOptions(
                                base_url=sim.base_url,
                                api_key="bench",
                                cassette_dir=Path(tmp, "live-check", f"{fc}-{bar}"),
                                record_mode="once",
                                early_stop=True,
                            )
                            early = run_case(model, config(seed, fc, bar), opts)
                            assert sim.calls - calls == n * HORIZON, (sim.calls - calls, n)
                            assert case_record(early)["passed"] == (passed if settled is None else settled)
    return tallies


def table(tallies: dict[tuple[str, float, float], Tally]) -> str:
    lines = [
        "| policy | thresholds (format, best arm) | cases | full passes | requests saved | flips |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    total = Tally()
    for (policy, fc, bar), t in tallies.items():
        saved = 1 - t.requests_early / t.requests_full
        lines.append(
            f"| {policy} | {fc:.2f}, {bar:.2f} | {t.cases} | {t.full_passed} | {saved:.0%} | {t.flips} |"
        )
        total.cases += t.cases
        total.flips += t.flips
        total.requests_full += t.requests_full
        total.requests_early += t.requests_early
    saved = 1 - total.requests_early / total.requests_full
    lines.append(f"| all | | {total.cases} | | {saved:.0%} | {total.flips} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="base seeds per policy (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 seeds: a smoke run")
    args = parser.parse_args(argv)
    seeds = 3 if args.quick else args.seeds
    start = time.perf_counter()
    tallies = run(seeds)
    print(f"early stopping over {seeds} seeds x {len(SCENARIOS)} policies, N={EPISODES}, T={HORIZON}:")
    print(table(tallies))
    flips = sum(t.flips for t in tallies.values())
    print(f"({time.perf_counter() - start:.0f} s) stated error rate 0: {flips} flips observed")
    return 1 if flips else 0


if __name__ == "__main__":
    sys.exit(main())
