"""Interrupted runs: Ctrl-C or a killed process mid-episode, then a resumed recording; damaged files.

A recording runs in a child process (``python -c`` with ``run_case``) against a simulator in this
process. The simulator's policy holds chosen episodes at their second step until the test has
sent the signal, so which episodes are complete when it lands is fixed, not a matter of timing.
Afterwards every cassette on disk must be complete and readable by vcrpy's own reader, no
temporary file may remain, and a later ``once`` run must record exactly what is missing.
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

from bandit_bench.core.seeding import api_seed
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.recording.transport import cassette_path
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import SimReply, Simulator, always

MODEL = "sim/interrupted"
EPISODES, HORIZON = 4, 3
CONFIG = CaseConfig(
    name="interrupted",
    design=DesignSpec.parse("BNRN0"),
    instance=InstanceSpec(k=5, delta=0.2, horizon=HORIZON),
    run=RunSpec(episodes=EPISODES, seed=0),
)
WAIT = 60.0  # generous upper bound for a state to be reached; never a timing assertion

CHILD = """
import sys
from pathlib import Path
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec

config = CaseConfig(
    name="interrupted",
    design=DesignSpec.parse("BNRN0"),
    instance=InstanceSpec(k=5, delta=0.2, horizon=int(sys.argv[4])),
    run=RunSpec(episodes=int(sys.argv[5]), seed=0),
)
opts = RunOptions(
    base_url=sys.argv[1], api_key="sk-test", cassette_dir=Path(sys.argv[2]), record_mode="once",
    concurrency=int(sys.argv[3]), max_retries=0, request_timeout=20.0,
)
try:
    result = run_case("sim/interrupted", config, opts)
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
    sys.exit(130)
print("COMPLETED", result.errors, flush=True)
"""

SEED_TO_EPISODE = {api_seed(0, CONFIG.instance.key, e): e for e in range(EPISODES)}


class Gate:
    """A policy answering ``blue`` at once, except for ``held`` episodes from their second step on:
    step 2 waits for :attr:`release`, later steps for :attr:`teardown` (they come only if the
    interrupt was not yet seen, and then end in the child's own timeout)."""

    def __init__(self, held: set[int]) -> None:
        self.held = held
        self.release = threading.Event()
        self.teardown = threading.Event()
        self.reached: set[int] = set()
        self._lock = threading.Lock()
        self._calls: dict[int, int] = {}
        self.inner = always(0)

    def __call__(self, body: dict[str, Any], call: int) -> SimReply:
        episode = SEED_TO_EPISODE[body["seed"]]
        with self._lock:
            step = self._calls.get(episode, 0)
            self._calls[episode] = step + 1
            if episode in self.held and step == 1:
                self.reached.add(episode)
        if episode in self.held and step == 1:
            self.release.wait(WAIT)
        elif episode in self.held and step > 1:
            self.teardown.wait(WAIT)
        return self.inner(body, call)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never reached: {what}")
        time.sleep(0.01)


def _assert_complete_cassettes(cassettes: Path, expected: list[int]) -> None:
    """Exactly these episodes' cassettes, each whole and read by vcrpy's own reader; no leftovers."""
    from vcr.serialize import deserialize
    from vcr.serializers import jsonserializer

    files = sorted(p for p in cassettes.rglob("[0-9]*.json") if p.is_file())
    assert files == [cassette_path(cassettes, MODEL, CONFIG.name, e) for e in expected]
    # Beside them only the manifest and the lock file: no temporary file left.
    others = {p.name for p in cassettes.rglob("*") if p.is_file() and p not in files}
    assert others == ({"manifest.json", ".lock"} if files else set())
    for path in files:
        requests, responses = deserialize(path.read_text(encoding="utf-8"), jsonserializer)
        assert len(requests) == len(responses) == HORIZON
        assert [r["status"]["code"] for r in responses] == [200] * HORIZON
        seeds = {json.loads(r.body)["seed"] for r in requests}
        assert seeds == {api_seed(0, CONFIG.instance.key, int(path.stem))}


@pytest.mark.parametrize(
    ("how", "concurrency", "held", "complete"),
    [
        ("sigint", 4, {1, 3}, [0, 2]),  # Ctrl-C while episodes run in the thread pool
        ("sigint", 1, {1}, [0]),  # Ctrl-C in a serial run (episodes 2 and 3 never start)
        ("sigkill", 4, {1, 3}, [0, 2]),  # a killed worker: no clean-up code runs at all
    ],
    ids=["ctrl-c-pool", "ctrl-c-serial", "kill-9"],
)
def test_an_interrupted_recording_leaves_whole_cassettes_and_resumes(
    tmp_path: Path, how: str, concurrency: int, held: set[int], complete: list[int]
) -> None:
    cassettes = tmp_path / "cassettes"
    gate = Gate(held)
    sim = Simulator(gate)
    sim.start()
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                sim.base_url,
                str(cassettes),
                str(concurrency),
                str(HORIZON),
                str(EPISODES),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            expected_files = [cassette_path(cassettes, MODEL, CONFIG.name, e) for e in complete]
            _wait_for(lambda: gate.reached == held, "held episodes at their second step")
            _wait_for(lambda: all(p.exists() for p in expected_files), "complete episodes saved")
            child.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
            if how == "sigint":
                # Pool threads wait for their reply before they see the cancellation.
                gate.release.set()
            out, err = child.communicate(timeout=WAIT)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
    finally:
        gate.release.set()
        gate.teardown.set()
        sim.stop()

    if how == "sigint":
        assert child.returncode == 130, err
        assert out.strip() == "INTERRUPTED"
    else:
        assert child.returncode == -signal.SIGKILL
    _assert_complete_cassettes(cassettes, complete)
    recorded_before = {p: p.read_bytes() for p in cassettes.rglob("[0-9]*.json")}

    # A later `once` run records only the missing episodes and replays the others untouched.
    missing = [e for e in range(EPISODES) if e not in complete]
    with Simulator(always(0)) as sim2:
        opts = RunOptions(
            base_url=sim2.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode="once"
        )
        resumed = run_case(MODEL, CONFIG, opts)
        assert sim2.calls == len(missing) * HORIZON
        assert sorted({SEED_TO_EPISODE[b["seed"]] for b in sim2.requests}) == missing
    assert resumed.errors == []
    assert (resumed.recorded, resumed.replayed) == (len(missing) * HORIZON, len(complete) * HORIZON)
    for path, data in recorded_before.items():
        assert path.read_bytes() == data
    _assert_complete_cassettes(cassettes, list(range(EPISODES)))

    # And now everything replays offline.
    replay = run_case(MODEL, CONFIG, RunOptions(base_url="http://127.0.0.1:9/v1", cassette_dir=cassettes))
    assert replay.errors == [] and replay.replayed == EPISODES * HORIZON


def test_ctrl_c_drops_requests_in_flight_without_waiting_for_the_server(tmp_path: Path) -> None:
    """In process, so the order is fixed: Ctrl-C lands while episodes 1 and 3 wait for their
    step-2 reply. run_case must raise while the server still holds both requests (they are
    dropped, not awaited), keep the complete episodes' cassettes and write no partial one."""
    cassettes = tmp_path / "cassettes"
    gate = Gate({1, 3})
    complete = [cassette_path(cassettes, MODEL, CONFIG.name, e) for e in (0, 2)]

    def interrupt() -> None:
        _wait_for(lambda: gate.reached == {1, 3} and all(p.exists() for p in complete), "held episodes")
        os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt in the main thread

    with Simulator(gate) as sim:
        opts = RunOptions(
            base_url=sim.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode="once"
        )
        helper = threading.Thread(target=interrupt)
        helper.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                run_case(MODEL, CONFIG, opts)
            # Never released: the two held requests were still inside the server.
            assert not gate.release.is_set() and sim.in_flight == 2
        finally:
            helper.join()
            gate.release.set()
            gate.teardown.set()
        per_episode = [SEED_TO_EPISODE[b["seed"]] for b in sim.requests]
    assert sorted(per_episode) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    _assert_complete_cassettes(cassettes, [0, 2])


DRIP_CHILD = """
import sys
from pathlib import Path
import bandit_bench.running.runner as runner
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec

runner.CANCEL_GRACE = 3600.0  # only a second Ctrl-C can end the wait
config = CaseConfig(
    name="drip", design=DesignSpec.parse("BNRN0"), instance=InstanceSpec(k=5, delta=0.2, horizon=1),
    run=RunSpec(episodes=2, seed=0),
)
opts = RunOptions(
    base_url=sys.argv[1], api_key="sk-test", cassette_dir=Path(sys.argv[2]), record_mode="once",
    concurrency=2, max_retries=1, request_timeout=600.0,
)
try:
    run_case("sim/drip", config, opts)
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
    sys.exit(130)
print("COMPLETED", flush=True)
"""


def test_ctrl_c_cancels_a_dripping_request_and_a_second_ctrl_c_leaves_a_backoff_sleep(tmp_path: Path) -> None:
    """Episode 0's server drips its answer a byte every half second (minutes in all); episode
    1's answers 503 with Retry-After: 100, so its client sleeps 100 s before retrying. The first
    Ctrl-C must drop the dripping request (the server sees its client go); the second must end
    the run at once, although a thread still sleeps; no threading traceback, no cassette."""
    drip_config = CaseConfig(
        name="drip",
        design=DesignSpec.parse("BNRN0"),
        instance=InstanceSpec(k=5, delta=0.2, horizon=1),
        run=RunSpec(episodes=2, seed=0),
    )
    dripping_seed = api_seed(0, drip_config.instance.key, 0)

    def policy(body: dict[str, Any], call: int) -> SimReply:
        if body["seed"] == dripping_seed:
            return SimReply("<Answer>blue</Answer>", drip=0.5)
        return SimReply(status=503, headers={"Retry-After": "100"})

    cassettes = tmp_path / "cassettes"
    with Simulator(policy) as sim:
        child = subprocess.Popen(
            [sys.executable, "-c", DRIP_CHILD, sim.base_url, str(cassettes)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(lambda: sim.calls == 2 and sim.in_flight == 1, "one request dripping, one answered 503")
            child.send_signal(signal.SIGINT)
            _wait_for(lambda: sim.in_flight == 0, "the dripping request dropped by the client")
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=WAIT)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
    assert child.returncode == 130, err
    assert out.strip() == "INTERRUPTED"
    assert "Traceback" not in err and "threading" not in err, err
    assert not cassettes.exists() or not any(cassettes.rglob("*"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All episodes recorded once for the module; tests work on copies."""
    cassettes = tmp_path_factory.mktemp("recorded") / "cassettes"
    with Simulator(always(0)) as sim:
        opts = RunOptions(
            base_url=sim.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode="once"
        )
        assert run_case(MODEL, CONFIG, opts).errors == []
    return cassettes


def _copy(recorded: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(recorded, tmp_path / "cassettes"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE: dict[str, Callable[[Path], object]] = {
    "truncated": _truncate,
    "empty": lambda p: p.write_bytes(b""),
    "not-json": lambda p: p.write_text("<html>oops</html>"),
    "not-utf8": lambda p: p.write_bytes(b"\xff\xfe\x00garbage"),
    "json-list": lambda p: p.write_text("[]"),
    "json-null": lambda p: p.write_text("null"),
    "no-interactions-key": lambda p: p.write_text('{"version": 1}'),
    "vcrpy-v0-format": lambda p: p.write_text('[{"request": {}, "response": {}}]'),
    "interaction-without-response-body": lambda p: p.write_text(
        json.dumps(
            {
                "version": 1,
                "interactions": [
                    {
                        "request": {
                            "method": "POST",
                            "uri": "http://x/v1/chat/completions",
                            "body": "{}",
                            "headers": {},
                        },
                        "response": {"status": {"code": 200, "message": "OK"}, "headers": {}},
                    }
                ],
            }
        )
    ),
    "request-body-a-number": lambda p: p.write_text(
        json.dumps(
            {
                "version": 1,
                "interactions": [
                    {
                        "request": {
                            "method": "POST",
                            "uri": "http://x/v1/chat/completions",
                            "body": 3,
                            "headers": {},
                        },
                        "response": {"status": {"code": 200}, "headers": {}, "body": {"string": "{}"}},
                    }
                ],
            }
        )
    ),
    "nested-too-deep": lambda p: p.write_text("[" * 200_000 + "]" * 200_000),
}


def _edit(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    """Damage a real recorded cassette by editing one field of its first interaction."""

    def damage(path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data["interactions"][0])
        path.write_text(json.dumps(data), encoding="utf-8")

    return damage


def _response(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(interaction: dict[str, Any]) -> None:
        target = interaction["response"]
        *parents, last = field.split(".")
        for name in parents:
            target = target[name]
        target[last] = value

    return change


def _replace_with(make: Callable[[Path], object]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.unlink()
        make(path)

    return damage


# Damage whose message says exactly what is wrong: id -> (damage, the text in parentheses).
NAMED_DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "header-value-a-number": (
        _edit(_response("headers", {"Content-Type": 5})),
        "interaction 1: response header 'Content-Type' holds 5, not text",
    ),
    "header-value-null": (
        _edit(_response("headers", {"Content-Type": [None]})),
        "interaction 1: response header 'Content-Type' holds [None], not text",
    ),
    "body-string-a-list": (
        _edit(_response("body.string", ["a"])),
        "interaction 1: response.body.string is ['a'], not text",
    ),
    "uri-an-integer": (
        _edit(lambda i: i["request"].__setitem__("uri", 5)),
        "interaction 1: request.uri is 5, not text",
    ),
    "status-500": (
        _edit(_response("status.code", 500)),
        "interaction 1: status 500, but a cassette holds only successful (2xx) answers",
    ),
    "status-999": (_edit(_response("status.code", 999)), "interaction 1: status 999 is not an HTTP status"),
    "body-not-json": (
        _edit(_response("body.string", "<html>upstream error</html>")),
        "interaction 1: the response is not a chat completion: the body is not JSON",
    ),
    "choices-a-string": (
        _edit(_response("body.string", '{"choices": "oops"}')),
        "interaction 1: the response is not a chat completion: 'choices' is not a list (got 'oops')",
    ),
    "a-fifo": (_replace_with(os.mkfifo), "it is a FIFO, not a regular file: it was not read"),
    "a-directory": (_replace_with(Path.mkdir), "it is a directory, not a regular file: it was not read"),
    "a-symlink-to-dev-zero": (
        _replace_with(lambda p: p.symlink_to("/dev/zero")),
        "it is a character device (a symlink to /dev/zero), not a regular file: it was not read",
    ),
    "too-large": (
        # Sparse: the size is real, the disk space is not used.
        lambda p: os.truncate(p, 300 * 1024 * 1024),
        f"{300 * 1024 * 1024} bytes, more than the {256 * 1024 * 1024} a cassette may hold: it was not read",
    ),
}


@pytest.mark.parametrize(
    ("damage", "mode"),
    [(d, "none") for d in DAMAGE]
    + [("truncated", "once"), ("truncated", "new_episodes"), ("json-null", "once")],
)
def test_a_damaged_cassette_errors_naming_the_file(
    recorded: Path, tmp_path: Path, damage: str, mode: str
) -> None:
    cassettes = _copy(recorded, tmp_path)
    bad = cassette_path(cassettes, MODEL, CONFIG.name, 2)
    DAMAGE[damage](bad)

    with Simulator(always(0)) as sim:
        opts = RunOptions(base_url=sim.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode=mode)
        result = run_case(MODEL, CONFIG, opts)  # must not raise
        assert sim.calls == 0  # the other episodes replay; the damaged one is not re-recorded silently
    [error] = result.errors
    assert error.startswith(f"episode 2: cassette {bad} is unreadable or not a vcrpy JSON cassette (")
    assert "Delete it, or re-record it with --record-mode=rewrite. To record it again: pytest" in error
    assert "Traceback" not in error
    assert [t.episode for t in result.trajectories if t.error is None] == [0, 1, 3]
    record = case_record(result)
    assert record["passed"] is False
    assert record["failures"] == [f"1 of {EPISODES} episodes errored:\n  {error}"]


@pytest.mark.parametrize("damage", list(NAMED_DAMAGE))
def test_every_damaged_cassette_shape_names_the_file_what_is_wrong_and_the_fix(
    recorded: Path, tmp_path: Path, damage: str
) -> None:
    """Never a raw TypeError, never 'HTTP 500 from https://openrouter.ai/...', never a hang on a
    FIFO or /dev/zero: the file, what is wrong with it, and the command that replaces it."""
    cassettes = _copy(recorded, tmp_path)
    bad = cassette_path(cassettes, MODEL, CONFIG.name, 2)
    make_damage, what = NAMED_DAMAGE[damage]
    make_damage(bad)
    result = run_case(MODEL, CONFIG, RunOptions(base_url="http://127.0.0.1:9/v1", cassette_dir=cassettes))
    [error] = result.errors
    expected = (
        f"episode 2: cassette {bad} is unreadable or not a vcrpy JSON cassette ({what}). "
        "Delete it, or re-record it with --record-mode=rewrite. To record it again: pytest --model "
        f"{MODEL} --bandit-config '{CONFIG.name}' --record-mode=rewrite --cassette-dir={cassettes} "
        "--base-url=http://127.0.0.1:9/v1 (with the server running; it is sent no key unless given one: "
        "--api-key-env NAME or --api-key)"
    )
    assert error == expected
    assert [t.episode for t in result.trajectories if t.error is None] == [0, 1, 3]

    # rewrite replaces whatever file is there (it never reads it); a folder it cannot replace.
    with Simulator(always(0)) as sim:
        opts = RunOptions(base_url=sim.base_url, cassette_dir=cassettes, record_mode="rewrite")
        rewritten = run_case(MODEL, CONFIG, opts)
    if damage == "a-directory":
        [error] = rewritten.errors
        assert error.startswith(f"episode 2: cassette {bad} could not be written (IsADirectoryError: ")
        return
    assert rewritten.errors == []
    _assert_complete_cassettes(cassettes, list(range(EPISODES)))


@pytest.mark.parametrize("damage", ["truncated", "not-json"])
def test_rewrite_replaces_a_damaged_cassette(recorded: Path, tmp_path: Path, damage: str) -> None:
    cassettes = _copy(recorded, tmp_path)
    bad = cassette_path(cassettes, MODEL, CONFIG.name, 2)
    DAMAGE[damage](bad)
    with Simulator(always(0)) as sim:
        opts = RunOptions(
            base_url=sim.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode="rewrite"
        )
        result = run_case(MODEL, CONFIG, opts)
        assert sim.calls == EPISODES * HORIZON  # rewrite records every episode anew
    assert result.errors == []
    _assert_complete_cassettes(cassettes, list(range(EPISODES)))
    replay = run_case(MODEL, CONFIG, RunOptions(base_url="http://127.0.0.1:9/v1", cassette_dir=cassettes))
    assert replay.errors == [] and replay.replayed == EPISODES * HORIZON


def test_a_leftover_temporary_file_is_ignored(recorded: Path, tmp_path: Path) -> None:
    """A process killed inside save_cassette can leave ``.NNN.json.XXXX.tmp``: replay ignores it."""
    from bandit_bench.plugin.cases import discover_models

    cassettes = _copy(recorded, tmp_path)
    folder = cassette_path(cassettes, MODEL, CONFIG.name, 0).parent
    (folder / ".000.json.abc123.tmp").write_text('{"interactions": [')
    assert discover_models(cassettes) == [MODEL]
    replay = run_case(MODEL, CONFIG, RunOptions(base_url="http://127.0.0.1:9/v1", cassette_dir=cassettes))
    assert replay.errors == [] and replay.replayed == EPISODES * HORIZON


def test_through_the_plugin_a_damaged_cassette_names_the_file_and_rewrite_replaces_it(bench_project) -> None:
    pytester = bench_project(
        '[tool.bandit_bench.configs.quick]\ndesign = "BNRN0"\ninstance = "hard"\nhorizon = 2\n'
        "episodes = 2\nmin_format_compliance = 0.0\n",
    )
    run = ["--model", MODEL, "--bandit-config", "quick"]
    with Simulator(always(0)) as sim:
        pytester.runpytest(*run, "--base-url", sim.base_url, "--record-mode=once").assert_outcomes(passed=1)
    bad = cassette_path(pytester.path / "cassettes", MODEL, "quick", 1)
    _truncate(bad)

    replay = pytester.runpytest(*run, "--base-url", "http://127.0.0.1:9/v1")
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines(
        [
            "*sim/interrupted-quick: 1 of 2 episodes errored:",
            f"  episode 1: cassette {bad} is unreadable or "
            "not a vcrpy JSON cassette (JSONDecodeError: *). Delete it, or re-record it with "
            "--record-mode=rewrite. To record it again: pytest --model sim/interrupted --bandit-config "
            "'quick' --record-mode=rewrite --cassette-dir=* --base-url=http://127.0.0.1:9/v1 "
            "(with the server running*",
        ]
    )
    assert "Traceback" not in replay.stdout.str() + replay.stderr.str()

    with Simulator(always(0)) as sim:
        rewrite = pytester.runpytest(*run, "--base-url", sim.base_url, "--record-mode=rewrite")
        rewrite.assert_outcomes(passed=1)
        assert sim.calls == 2 * 2
    pytester.runpytest(*run, "--base-url", "http://127.0.0.1:9/v1").assert_outcomes(passed=1)
