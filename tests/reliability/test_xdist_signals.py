"""Real signals under ``-n 2`` (issue 20): complete episodes reach disk as they complete, and
stopping is stopping.

A real ``pytest -n 2`` records two cases (two models, 3 episodes x 4 steps each) against the
simulator in this process. The simulator holds the second request of episode 2 of each case
open until the test ends, so when the signal lands episodes 0 and 1 of each case are complete
and on disk (the test waits for their files: they were written while the case was still
running), and each worker has a request in flight. After SIGINT to the process group, SIGTERM
or SIGKILL of the controller, or SIGKILL of both workers: the run ends (the held requests are
dropped: with ``--request-timeout`` far above the test's waits, a run that waited for them would
fail the test), no request reaches the server after the signal, the folders hold exactly the
four complete episodes, and the rerun with ``--record-mode=once`` sends exactly the requests of
the two missing episodes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import spawn_pytest

from bandit_bench.core.seeding import api_seed
from bandit_bench.core.specs import config_from_table
from bandit_bench.servers.simulator import SimReply, cycle

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

WAIT = 120.0  # upper bound for a state to be reached; never a timing assertion
EPISODES, HORIZON = 3, 4
MODELS = ("sim/a", "sim/b")
TABLE = {
    "design": "BNRN0",
    "instance": "hard",
    "horizon": HORIZON,
    "episodes": EPISODES,
    "min_format_compliance": 0.0,
}
PYPROJECT = "[tool.bandit_bench.configs.quick]\n" + "".join(
    f"{k} = {json.dumps(v)}\n" for k, v in TABLE.items()
)
HELD_SEED = api_seed(0, config_from_table("quick", dict(TABLE)).instance.key, 2)


class Hold:
    """Answers round-robin, but holds the second request of episode 2 of every case until the
    test ends; counts the requests that arrive after :meth:`signalled`."""

    def __init__(self) -> None:
        self.answer = cycle()
        self.held = 0
        self.after_signal = 0
        self.teardown = threading.Event()
        self._signalled = False
        self._seen: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def signalled(self) -> None:
        with self._lock:
            self._signalled = True

    def __call__(self, body: dict[str, Any], call: int) -> SimReply:
        key = (body["model"], body["seed"])
        with self._lock:
            n = self._seen[key] = self._seen.get(key, 0) + 1
            self.after_signal += self._signalled
            hold = body["seed"] == HELD_SEED and n == 2
            self.held += hold
        if hold:
            self.teardown.wait(WAIT * 3)
        return self.answer(body, call)


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    return folder


def _wait_for(condition: Callable[[], bool], what: str, out: Path | None = None) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        detail = out.read_text() if out is not None and out.exists() else ""
        assert time.monotonic() < deadline, f"gave up waiting for {what}\n{detail}"
        time.sleep(0.02)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _episode_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".json" and p.name != "manifest.json")


def _case_folder(project: Path, model: str) -> Path:
    return project / "cassettes" / model / "quick"


def _assert_kept(project: Path) -> None:
    """Episodes 0 and 1 of each case, whole and listed; nothing else, no temporary file."""
    for model in MODELS:
        folder = _case_folder(project, model)
        assert _episode_files(folder) == ["000.json", "001.json"]
        assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert sorted(manifest["episodes"]) == ["000.json", "001.json"]
        for name in ("000.json", "001.json"):
            cassette = json.loads((folder / name).read_text(encoding="utf-8"))
            assert len(cassette["interactions"]) == HORIZON


def _rerun_records_only_the_missing(project: Path, simulator) -> None:
    sim = simulator(cycle())
    run = spawn_pytest(
        project, "-n", "2", "--model", ",".join(MODELS), "--bandit-config", "quick",
        f"--base-url={sim.base_url}", "--record-mode=once", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = run.communicate(timeout=WAIT)
    assert run.returncode == 0, out
    assert "2 passed" in out
    assert sim.calls == len(MODELS) * HORIZON  # episode 2 of each case, nothing else
    assert {b["seed"] for b in sim.requests} == {HELD_SEED}
    for model in MODELS:
        assert _episode_files(_case_folder(project, model)) == ["000.json", "001.json", "002.json"]


def _start_held_run(
    tmp_path: Path, simulator, dist: tuple[str, ...] = ("-n", "2")
) -> tuple[subprocess.Popen[str], Hold, Path, Path]:
    hold = Hold()
    sim = simulator(hold)
    project = _project(tmp_path / "project")
    out = tmp_path / "run.out"
    with out.open("w") as sink:
        run = spawn_pytest(
            project, *dist, "--model", ",".join(MODELS), "--bandit-config", "quick",
            f"--base-url={sim.base_url}", "--record-mode=once", "--request-timeout=600", "--max-retries=0",
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    _wait_for(lambda: hold.held == 2 or run.poll() is not None, "both held requests", out)
    assert run.poll() is None, out.read_text()
    # Episodes 0 and 1 are on disk while their case still runs (its episode 2 is held).
    _wait_for(
        lambda: all(
            _case_folder(project, m).is_dir()
            and _episode_files(_case_folder(project, m)) == ["000.json", "001.json"]
            for m in MODELS
        ),
        "episodes 0 and 1 on disk",
        out,
    )
    return run, hold, project, out


@pytest.mark.parametrize("how", ["sigint-group", "sigterm-controller"])
def test_ctrl_c_or_sigterm_keeps_complete_episodes_and_stops(tmp_path: Path, simulator, how: str) -> None:
    run, hold, project, out = _start_held_run(tmp_path, simulator)
    workers = _children(run.pid)
    try:
        hold.signalled()
        if how == "sigint-group":
            os.killpg(run.pid, signal.SIGINT)
        else:
            run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=WAIT)
        _wait_for(lambda: not any(_alive(w) for w in workers), "the workers to exit", out)
    finally:
        hold.teardown.set()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    text = out.read_text()
    assert code == 2, text  # interrupted
    assert hold.after_signal == 0, text
    _assert_kept(project)
    _rerun_records_only_the_missing(project, simulator)


def test_a_killed_controller_stops_its_workers(tmp_path: Path, simulator) -> None:
    run, hold, project, out = _start_held_run(tmp_path, simulator)
    workers = _children(run.pid)
    assert len(workers) == 2
    try:
        hold.signalled()
        run.kill()
        run.wait(timeout=WAIT)
        # They notice the lost controller and drop their held requests (else they would wait for
        # them until --request-timeout=600).
        _wait_for(lambda: not any(_alive(w) for w in workers), "the orphaned workers to exit", out)
    finally:
        hold.teardown.set()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    assert hold.after_signal == 0, out.read_text()
    _assert_kept(project)
    _rerun_records_only_the_missing(project, simulator)


def test_killed_workers_keep_their_episodes_and_their_cases_show_as_crashed(
    tmp_path: Path, simulator
) -> None:
    run, hold, project, out = _start_held_run(tmp_path, simulator)
    try:
        workers = _children(run.pid)
        assert len(workers) == 2
        hold.signalled()
        for w in workers:
            os.kill(w, signal.SIGKILL)
        code = run.wait(timeout=WAIT)
    finally:
        hold.teardown.set()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    text = out.read_text()
    assert code == 1, text
    assert hold.after_signal == 0, text
    for model in MODELS:
        # Each crashed case is a row of the table, as crashed; its recorded steps are counted.
        assert f"{model}-quick" in text
        line = next(line for line in text.splitlines() if line.startswith(f"{model} (2 of 3) "))
        assert line.rstrip().endswith("CRASHED"), text
        assert f"{model} x quick: crashed (its xdist worker died): episodes 0, 1 saved" in text
    # 2 complete episodes (8 steps) + the first step of episode 2, per case.
    assert "requests: 18 recorded, 0 replayed (record mode once)" in text, text
    summary = json.loads((project / "reports" / "summary.json").read_text(encoding="utf-8"))
    assert sorted(r["model"] for r in summary["rows"] if r["kind"] == "model") == list(MODELS)
    _assert_kept(project)
    _rerun_records_only_the_missing(project, simulator)


def test_workers_in_their_own_checkout_stream_episodes_to_the_controller(tmp_path: Path, simulator) -> None:
    """``--tx popen//chdir=<copy>``: the workers share no folder with the controller; each
    complete episode travels to it as it completes, before the case ends."""
    copies = [tmp_path / "w1", tmp_path / "w2"]
    for c in copies:
        _project(c)
    tx = ["-p", "xdist", "--dist=load", *(f"--tx=popen//chdir={c}" for c in copies)]
    run, hold, project, out = _start_held_run(tmp_path, simulator, tuple(tx))
    try:
        hold.signalled()
        os.killpg(run.pid, signal.SIGINT)
        code = run.wait(timeout=WAIT)
    finally:
        hold.teardown.set()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert code == 2, out.read_text()
    _assert_kept(project)
    for c in copies:
        assert not (c / "cassettes").exists()
    shutil.rmtree(project / "reports", ignore_errors=True)
    _rerun_records_only_the_missing(project, simulator)
