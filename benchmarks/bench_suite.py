"""Speed at suite scale (issue 23), each row a ratio of two runs taken side by side in one run.

    python benchmarks/bench_suite.py [--quick] [--suite]

Rows (every run goes through pytest in a fresh process, as a user runs it, against the local
simulator on 127.0.0.1; nothing reaches the network):

1. a replayed step end to end through pytest (prompt, lookup, response, parsing, step record,
   the step's share of the report) as the per-step slope of a T = 510 and a T = 10 case, 10
   episodes each, design BSSC~0 - against the bare openai client answering the same requests
   through ``httpx2.MockTransport`` (the requests prepared in advance: the client's own cost);
   as a user reruns it (pytest's cache holds the 1000-episode reference rows of the last run)
   and cold (``-p no:cacheprovider``: computed at every run, as on a fresh CI checkout);
2. the same replay at ``--concurrency 1`` against the default 8;
3. ``bandit-bench report`` on the folder of the ``paper`` suite (37 configs, 2 episodes x 10
   steps), and the page's size;
4. the whole offline replay of that suite;
5. a recording case with 8 episodes in flight against the simulator at 0.25 s a call, minus
   its offline replay, in units of T x latency;
6. (``--suite``) the README's test command and the fast loop.

The machine's load (``os.getloadavg``) is printed before and after: on a shared machine the
absolute times move with it; the ratios are of sides measured back to back. CPU times are the
children's (``RUSAGE_CHILDREN``), steadier than wall time when the cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from bandit_bench.running.llm import make_client
from bandit_bench.servers.simulator import SimReply, Simulator, arm_names_from_request, cycle

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child and its children, stdout) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):  # 1: a threshold failed, which the timing does not mind
        raise RuntimeError(
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return wall, cpu, done.stdout


def project(configs: dict[str, tuple[str, int, int]]) -> Path:
    """A folder with a pyproject.toml declaring ``name -> (design, horizon, episodes)`` configs."""
    tmp = Path(tempfile.mkdtemp(prefix="bandit-bench-suite-"))
    text = "".join(
        f'[tool.bandit_bench.configs.{name}]\ndesign = "{design}"\ninstance = "hard"\n'
        f"horizon = {horizon}\nepisodes = {episodes}\n\n"
        for name, (design, horizon, episodes) in configs.items()
    )
    (tmp / "pyproject.toml").write_text(text)
    return tmp


def any_design() -> Callable[[dict, int], SimReply]:
    """cycle() for the button designs, a fixed answer for the others (adverts, distributions)."""
    buttons = cycle()

    def policy(body: dict, call: int) -> SimReply:
        names = arm_names_from_request(body)
        system = str(body["messages"][0].get("content", ""))
        if "distribution over" in system:
            labels = names or ["A", "B", "C", "D", "E"]
            return SimReply(
                content="<Answer>" + ",".join(f"{n}:{1 / len(labels):.2f}" for n in labels) + "</Answer>"
            )
        if names:
            return buttons(body, call)
        return SimReply(content="<Answer>A</Answer>")

    return policy


def record(cwd: Path, args: list[str], policy: Callable[[dict, int], SimReply] | None = None) -> None:
    with Simulator(policy or cycle()) as sim:
        timed([*PYTEST, *args, f"--base-url={sim.base_url}", "--record-mode=once", "-n", "2"], cwd)


def floor_per_step(cwd: Path, model: str, configs: list[str]) -> dict[str, tuple[float, float]]:
    """(CPU, wall) seconds of the bare client answering each config's recorded requests in memory."""
    from bandit_bench.recording.transport import case_dir

    out = {}
    for name in configs:
        pairs = []
        for path in sorted(case_dir(cwd / "cassettes", model, name).glob("[0-9]*.json")):
            for i in json.loads(path.read_text())["interactions"]:
                pairs.append((json.loads(i["request"]["body"]), i["response"]["body"]["string"].encode()))
        answers = iter([a for _, a in pairs])

        def answer(request: httpx2.Request, answers: Any = answers) -> httpx2.Response:
            return httpx2.Response(200, headers={"content-type": "application/json"}, content=next(answers))

        client = make_client("http://127.0.0.1:9/v1", None, httpx2.MockTransport(answer), max_retries=0)
        start, wall = time.process_time(), time.perf_counter()
        for body, _ in pairs:
            client.chat.completions.create(**body)
        out[name] = (time.process_time() - start, time.perf_counter() - wall)
        client.close()
    return out


def row_replay_slope(repeats: int, big: int) -> list[str]:
    small = 10
    cwd = project({"s_small": ("BSSC~0", small, 10), "s_big": ("BSSC~0", big, 10)})
    run = ["--model", "sim/cycle", "--bandit-config", "s_small", "--bandit-config", "s_big"]
    record(cwd, run)
    steps = (big - small) * 10
    sides: dict[str, list[float]] = {
        k: [] for k in ("wall", "cpu", "cold_wall", "cold_cpu", "floor", "floor_wall", "c1", "c8")
    }
    warm = [sys.executable, "-m", "pytest", "-q", "--model", "sim/cycle", "--bandit-config"]
    for config in ("s_small", "s_big"):
        timed([*warm, config], cwd)  # fills pytest's cache, as a user's first run does
    for _ in range(repeats):
        # Interleaved: a burst of load on the shared machine lands on every side.
        w_small, c_small, _ = timed([*warm, "s_small"], cwd)
        w_big, c_big, _ = timed([*warm, "s_big"], cwd)
        cw_small, cc_small, _ = timed([*PYTEST, "--model", "sim/cycle", "--bandit-config", "s_small"], cwd)
        cw_big, cc_big, _ = timed([*PYTEST, "--model", "sim/cycle", "--bandit-config", "s_big"], cwd)
        floor = floor_per_step(cwd, "sim/cycle", ["s_small", "s_big"])
        sides["wall"].append((w_big - w_small) / steps)
        sides["cpu"].append((c_big - c_small) / steps)
        sides["cold_wall"].append((cw_big - cw_small) / steps)
        sides["cold_cpu"].append((cc_big - cc_small) / steps)
        sides["floor"].append((floor["s_big"][0] - floor["s_small"][0]) / steps)
        sides["floor_wall"].append((floor["s_big"][1] - floor["s_small"][1]) / steps)
        w1, _, _ = timed(
            [*PYTEST, "--model", "sim/cycle", "--bandit-config", "s_big", "--concurrency", "1"], cwd
        )
        sides["c1"].append(w1)
        sides["c8"].append(cw_big)
    m = {k: statistics.median(v) for k, v in sides.items()}
    # The least of the repeats as well: load on a shared machine only ever adds time, so the
    # minimum is the steadier estimate of a cost (the timeit documentation's advice).
    low = {k: min(v) for k, v in sides.items()}
    return [
        f"1. replayed step end to end through pytest, slope T={big} vs T={small}, 10 episodes, BSSC~0, "
        f"median of {repeats}: CPU {m['cpu'] * 1000:.2f} ms, wall {m['wall'] * 1000:.2f} ms per step "
        f"vs the bare client's {m['floor'] * 1000:.2f} ms CPU, {m['floor_wall'] * 1000:.2f} ms wall: "
        f"{m['cpu'] / m['floor']:.2f}x CPU, {m['wall'] / m['floor_wall']:.2f}x wall (goal <= 1.3x); cold "
        f"(-p no:cacheprovider, the reference rows computed again): {m['cold_cpu'] / m['floor']:.2f}x CPU, "
        f"{m['cold_wall'] / m['floor_wall']:.2f}x wall; least of {repeats}: "
        f"{low['cpu'] / low['floor']:.2f}x CPU, "
        f"{low['wall'] / low['floor_wall']:.2f}x wall, cold {low['cold_cpu'] / low['floor']:.2f}x CPU",
        f"2. the T={big} replay at --concurrency 1 vs the default 8: {m['c1']:.2f} s vs {m['c8']:.2f} s "
        f"(default / sequential = {m['c8'] / m['c1']:.2f}; goal: never slower than sequential)",
    ]


def row_paper_suite(repeats: int) -> list[str]:
    cwd = project({})
    run = ["--model", "sim/cycle", "--bandit-config", "paper", "--episodes", "2", "--horizon", "10"]
    record(cwd, run, any_design())
    reports = cwd / "reports"
    report_cmd = [str(Path(sys.executable).parent / "bandit-bench"), "report", str(reports)]
    walls, cpus, replays = [], [], []
    for _ in range(repeats):
        w, c, _ = timed(report_cmd, cwd)
        walls.append(w)
        cpus.append(c)
        replays.append(timed([*PYTEST, *run], cwd)[0])
    steps = sum(len(line) > 0 for line in (reports / "steps.jsonl").read_text().splitlines())
    llm_steps = 37 * 2 * 10
    size = (reports / "report.html").stat().st_size
    return [
        f"3. bandit-bench report on the paper suite's folder (37 configs, 2 x 10 steps; {steps} step lines "
        f"with the reference rows): median {statistics.median(walls):.2f} s wall, "
        f"{statistics.median(cpus):.2f} s CPU (goal <= 4 s); report.html {size / 1e6:.2f} MB",
        f"4. the whole offline replay of that suite ({llm_steps} replayed steps): median "
        f"{statistics.median(replays):.2f} s wall",
    ]


def row_recording(latency: float, repeats: int) -> list[str]:
    horizon, episodes = 10, 8
    cwd = project({"rec": ("BNRN0", horizon, episodes)})
    run = ["--model", "sim/cycle", "--bandit-config", "rec"]
    ratios = []
    for _ in range(repeats):
        with Simulator(cycle(), latency=latency) as sim:
            w_rec, _, out = timed([*PYTEST, *run, f"--base-url={sim.base_url}", "--record-mode=rewrite"], cwd)
        w_replay, _, _ = timed([*PYTEST, *run], cwd)
        ratios.append((w_rec - w_replay) / (horizon * latency))
    return [
        f"5. recording {episodes} episodes in flight x T={horizon} at L={latency * 1000:.0f} ms a call, "
        f"minus the offline replay of the same case: median {statistics.median(ratios):.2f} x T x L "
        f"(runs: {', '.join(f'{r:.2f}' for r in ratios)}; goal <= 1.2)"
    ]


def row_suite() -> list[str]:
    full = timed([sys.executable, "-m", "pytest", "-n", "2", "-q", "tests"], ROOT)
    fast = timed([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "tests"], ROOT)
    return [
        f"7. the README's test command (pytest -n 2 tests): {full[0]:.0f} s wall, {full[1]:.0f} s CPU "
        f"(goal <= 240 s); the fast loop (pytest -m 'not slow' tests): {fast[0]:.0f} s wall, "
        f"{fast[1]:.0f} s CPU (goal < 60 s)"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="T = 110 instead of 510, one repeat")
    parser.add_argument("--suite", action="store_true", help="also time the test suite (minutes)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; {load()}"
    )
    lines = [
        *row_replay_slope(repeats, 110 if args.quick else 510),
        *row_paper_suite(repeats),
        *row_recording(0.25, repeats),
        "6. rate limits: --max-rpm / --max-tpm, one ledger for the session shared by every case and "
        "xdist worker, a pause for all on 429 (tests/reliability/test_rate_limit.py, against the simulator)",
    ]
    if args.suite:
        lines += row_suite()
    for line in lines:
        print(line)
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
