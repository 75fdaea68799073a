"""One writer per cassette folder (issue 12, points 5 and 8).

Two processes recording the same case wait for each other through the case folder's lock, so no
episode is paid for twice; xdist workers whose checkout is not the controller's send what they
recorded to the controller, which alone writes cassettes. Real ``pytest`` processes, real sockets
to the simulator, real files.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import spawn_pytest

from bandit_bench.servers.simulator import SimReply, cycle

WAIT = 120.0  # upper bound for waits; reaching the state is what the tests check, never how fast
MODEL = "sim/m"
EPISODES, HORIZON = 3, 4
PYPROJECT = f"""
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = {HORIZON}
episodes = {EPISODES}
min_format_compliance = 0.0
"""
TEST_FILE = "def test_bandit(bandit_case):\n    bandit_case.run_and_check()\n"
WAITING = "another process is recording into"


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (folder / "test_bench_case.py").write_text(TEST_FILE, encoding="utf-8")
    return folder


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def _cassettes(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- 5. two processes


def test_two_processes_recording_one_case_pay_for_it_once(tmp_path: Path, simulator) -> None:
    """A holds the case folder's lock from start-up; B, started while A's first request is
    held at the server, says it waits, then replays what A recorded under ``once``."""
    release = threading.Event()
    answer = cycle()

    def policy(body: dict[str, Any], call: int) -> SimReply:
        if call == 0:
            release.wait(WAIT)  # A's first request waits until B is known to be waiting
        return answer(body, call)

    sim = simulator(policy, latency=0.02)
    project = _project(tmp_path / "project")
    run = ("--model", MODEL, "--bandit-config", "quick", "--base-url", sim.base_url, "--record-mode=once")
    with (tmp_path / "a.out").open("w") as a_out:
        a = spawn_pytest(project, *run, "--report-dir=reports-a", stdout=a_out, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: sim.calls >= 1 or a.poll() is not None, "A's first request")
            assert a.poll() is None, (tmp_path / "a.out").read_text()
            b = spawn_pytest(
                project, *run, "--report-dir=reports-b", stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            assert b.stderr is not None
            seen = []
            for line in b.stderr:  # B's start-up: it finds the lock taken and says so
                seen.append(line)
                if WAITING in line:
                    break
            assert any(WAITING in line for line in seen), "".join(seen)
            assert seen[-1] == (
                f"[bandit-bench] {MODEL} x quick: another process is recording into "
                f"{project / 'cassettes' / 'sim' / 'm' / 'quick'}; waiting for it to finish "
                "(what it recorded is then replayed, not paid for again)\n"
            )
            assert a.poll() is None  # A is still recording: its first request is held
            release.set()
            b_stdout, b_stderr = b.communicate(timeout=WAIT)
            assert a.wait(timeout=WAIT) == 0, (tmp_path / "a.out").read_text()
        finally:
            release.set()
            for proc in (a, locals().get("b")):
                if proc is not None and proc.poll() is None:
                    proc.kill()
    a_text = (tmp_path / "a.out").read_text()
    assert b.returncode == 0, b_stdout + b_stderr
    assert "1 passed" in a_text and "1 passed" in b_stdout

    # Exactly one episode-set reached the server: each episode's seed, HORIZON requests each.
    assert sim.errors == []
    assert sim.calls == EPISODES * HORIZON
    per_seed = Counter(body["seed"] for body in sim.requests)
    assert sorted(per_seed.values()) == [HORIZON] * EPISODES
    assert f"requests: {EPISODES * HORIZON} recorded, 0 replayed (record mode once)" in a_text
    assert f"requests: 0 recorded, {EPISODES * HORIZON} replayed (record mode once)" in b_stdout

    folder = project / "cassettes" / "sim" / "m" / "quick"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",
        "000.json",
        "001.json",
        "002.json",
        "manifest.json",
    ]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"] == MODEL and sorted(manifest["episodes"]) == ["000.json", "001.json", "002.json"]

    # A replay of the folder reproduces each run's results.
    c = spawn_pytest(
        project, "--model", MODEL, "--bandit-config", "quick", "--record-mode=none", "--report-dir=reports-c",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    c_out, _ = c.communicate(timeout=WAIT)
    assert c.returncode == 0, c_out
    assert sim.calls == EPISODES * HORIZON
    summaries = {name: (project / name / "summary.csv").read_bytes() for name in ("reports-a", "reports-b")}
    replayed = (project / "reports-c" / "summary.csv").read_bytes()
    assert summaries == {"reports-a": replayed, "reports-b": replayed}


# ---------------------------------------------------------------------------- 8. one writer


def test_workers_with_their_own_checkout_send_cassettes_to_the_controller(tmp_path: Path, simulator) -> None:
    """``--tx popen//chdir=<folder>``: each worker runs in another copy of the project, as
    ``ssh=`` or ``socket=`` workers on other machines do; what they record lands in the
    controller's cassette folder, and nothing in theirs."""
    sim = simulator(cycle(), latency=0.01)
    controller = _project(tmp_path / "controller")
    workers = [_project(tmp_path / f"worker{i}") for i in (1, 2)]
    run = spawn_pytest(
        controller, "-p", "xdist", "--dist=load", *(f"--tx=popen//chdir={w}" for w in workers),
        "--model", "sim/a,sim/b", "--bandit-config", "quick", "--base-url", sim.base_url,
        "--record-mode=once", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = run.communicate(timeout=WAIT)
    assert run.returncode == 0, out
    assert "2 passed" in out
    assert sim.calls == 2 * EPISODES * HORIZON
    assert _cassettes(controller / "cassettes") == [
        f"sim/{m}/quick/{f}"
        for m in "ab"
        for f in (".lock", "000.json", "001.json", "002.json", "manifest.json")
    ]
    for worker in workers:
        # xdist copies pytest itself into a chdir worker's folder; nothing of the run lands there.
        assert not (worker / "cassettes").exists() and not (worker / "reports").exists()
        assert [f for f in _cassettes(worker) if f.endswith(".json")] == []
    for m in "ab":
        folder = controller / "cassettes" / "sim" / m / "quick"
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["model"] == f"sim/{m}"
        assert sorted(manifest["episodes"]) == ["000.json", "001.json", "002.json"]
        models = {
            json.loads(i["request"]["body"])["model"]
            for e in range(EPISODES)
            for i in json.loads((folder / f"{e:03d}.json").read_text(encoding="utf-8"))["interactions"]
        }
        assert models == {f"sim/{m}"}
    assert (controller / "reports" / "summary.csv").is_file()
