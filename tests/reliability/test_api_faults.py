"""API faults while recording (``record_mode="once"``), through the real openai client.

Transient faults are retried by the openai client's own machinery (``max_retries``) and the
episode completes; the cassette then holds the successful responses only. Persistent faults end
the episode as errored, with the HTTP status (or the kind of network failure) and the model in
the message; the case fails on the error, not on format compliance, and no cassette is written.

Wall time: the client's backoff sleeps about 0.4-0.5 s before a retry unless the server says
otherwise, so HTTP faults carry ``retry-after-ms: 1`` where the test is not about that header,
and every run allows a single retry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import case_config, record_case

from bandit_bench.core.specs import CaseConfig
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import CaseResult, RunOptions, run_case
from bandit_bench.servers.simulator import SimReply, Simulator, scripted

MODEL = "sim/faulty"
OK_BLUE = SimReply("<Answer>blue</Answer>")
OK_RED = SimReply("<Answer>red</Answer>")
FAST = {"retry-after-ms": "1"}
TIMEOUT = 0.2  # request_timeout of these runs; the slow reply takes longer

# Faults the client retries, and how each shows in the message once the retries are spent.
RETRIED: dict[str, tuple[SimReply, str]] = {
    "429-retry-after": (
        SimReply(status=429, headers={"Retry-After": "1"}),
        "HTTP 429 from {url} after 1 retries",
    ),
    "429-no-retry-after": (SimReply(status=429), "HTTP 429 from {url} after 1 retries"),
    "500": (SimReply(status=500, headers=FAST), "HTTP 500 from {url} after 1 retries"),
    "502": (SimReply(status=502, headers=FAST), "HTTP 502 from {url} after 1 retries"),
    "503": (SimReply(status=503, headers=FAST), "HTTP 503 from {url} after 1 retries"),
    "timeout": (
        SimReply("<Answer>blue</Answer>", delay=TIMEOUT * 3),
        "request to {url} timed out after 1 retries",
    ),
    "connection-reset": (SimReply(fault="reset"), "request to {url} connection failed after 1 retries"),
    "not-json-200": (
        SimReply(fault="not-json"),
        "HTTP 200 from {url} is not a chat completion (the body is not JSON): '<html>upstream error</html>' "
        "after 1 retries",
    ),
    "no-choices-200": (
        SimReply(fault="no-choices"),
        "HTTP 200 from {url} is not a chat completion (no 'choices' in the body)",
    ),
}
# Traces of error answers that must never reach a cassette.
ERROR_MARKERS = ("simulated fault", "upstream error", '"choices": []', '"code": 4', '"code": 5')


def _config(horizon: int = 2) -> CaseConfig:
    return case_config("faults", horizon=horizon)


def _record(sim: Simulator, cassettes: Path, config: CaseConfig, max_retries: int = 1) -> CaseResult:
    return record_case(sim, cassettes, config, MODEL, max_retries=max_retries, request_timeout=TIMEOUT)


@pytest.mark.parametrize("fault", list(RETRIED))
def test_a_transient_fault_is_retried_and_only_successes_are_recorded(tmp_path: Path, fault: str) -> None:
    reply, _ = RETRIED[fault]
    cassettes = tmp_path / "cassettes"
    # Step 1 answers at once; step 2 fails once, then its retry succeeds.
    with Simulator(scripted([OK_BLUE, reply, OK_RED])) as sim:
        result = _record(sim, cassettes, _config())
        assert sim.calls == 3
        assert sim.errors == []
        # The retry is the same request again (same prompt), not a new step.
        assert sim.requests[1] == sim.requests[2]

    [traj] = result.trajectories
    assert traj.error is None
    assert [(s.arm, s.valid, s.raw) for s in traj.steps] == [
        (0, True, "<Answer>blue</Answer>"),
        (2, True, "<Answer>red</Answer>"),
    ]
    assert (result.recorded, result.replayed) == (2, 0)

    [path] = sorted(cassettes.rglob("[0-9]*.json"))
    assert path == cassettes / "sim" / "faulty" / "faults" / "000.json"
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert [i["response"]["status"]["code"] for i in data["interactions"]] == [200, 200]
    bodies = [json.loads(i["response"]["body"]["string"]) for i in data["interactions"]]
    assert [b["choices"][0]["message"]["content"] for b in bodies] == [OK_BLUE.content, OK_RED.content]
    for marker in ERROR_MARKERS:
        assert marker not in text, marker
    assert "retry-after" not in text.lower()

    # The cassette replays the episode with no server.
    replay = run_case(MODEL, _config(), RunOptions(base_url="http://127.0.0.1:9/v1", cassette_dir=cassettes))
    assert replay.errors == [] and replay.replayed == 2
    assert [s.arm for s in replay.trajectories[0].steps] == [0, 2]


# Retry-After: 1 costs a second per retry; once (above) is enough.
@pytest.mark.parametrize("fault", [f for f in RETRIED if f != "429-retry-after"])
def test_a_persistent_fault_errors_the_episode_and_writes_nothing(tmp_path: Path, fault: str) -> None:
    reply, expected = RETRIED[fault]
    cassettes = tmp_path / "cassettes"
    with Simulator(scripted([OK_BLUE, reply, reply])) as sim:
        result = _record(sim, cassettes, _config())
        assert sim.calls == 3  # step 1, then step 2 and its one retry
        url = f"{sim.base_url}/chat/completions"

    [traj] = result.trajectories
    assert [s.arm for s in traj.steps] == [0]  # the step before the fault is kept in memory...
    assert traj.error is not None
    assert traj.error.startswith(f"step 2 of 2: model {MODEL}: " + expected.format(url=url))
    assert "Traceback" not in traj.error
    assert list(cassettes.rglob("*")) == []  # ...but a partial episode never becomes a cassette

    record = case_record(result)
    assert record["errors"] == [f"episode 0: {traj.error}"]
    assert record["passed"] is False
    assert record["metrics"] == {}  # an errored episode is not scored, so not a format failure
    assert record["failures"] == [f"1 of 1 episodes errored:\n  episode 0: {traj.error}"]
    assert not any("format compliance" in f for f in record["failures"])


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (400, ". The endpoint refused the request: check that it accepts the config's parameters"),
        (401, ". Check the API key (sent from RunOptions.api_key)"),
        (404, ". Check the model id and --base-url"),
    ],
    ids=str,
)
def test_a_client_error_is_not_retried_and_says_what_to_check(
    tmp_path: Path, status: int, advice: str
) -> None:
    with Simulator(scripted([SimReply(status=status)])) as sim:
        result = _record(sim, tmp_path, _config(horizon=1))
        assert sim.calls == 1
        url = f"{sim.base_url}/chat/completions"
    [traj] = result.trajectories
    assert traj.error is not None and traj.error.startswith(
        f"step 1 of 1: model {MODEL}: HTTP {status} from {url} (not retried): "
        f"Error code: {status} - simulated fault{advice}"
    )
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize(
    ("status", "flag", "calls", "said"),
    [(400, "true", 3, "after 2 retries"), (503, "false", 1, "(not retried)")],
    ids=["400-retry-true", "503-retry-false"],
)
def test_the_servers_x_should_retry_decides_and_the_message_says_what_the_client_did(
    tmp_path: Path, status: int, flag: str, calls: int, said: str
) -> None:
    """OpenAI's servers send x-should-retry, and the client obeys it over the status: a 400
    marked retryable is retried, a 503 marked final is not, and the message says which."""
    headers = {"x-should-retry": flag, **FAST}
    with Simulator(scripted([SimReply(status=status, headers=headers)] * 3)) as sim:
        result = _record(sim, tmp_path, _config(horizon=1), max_retries=2)
        assert sim.calls == calls
        url = f"{sim.base_url}/chat/completions"
    error = result.trajectories[0].error
    assert error is not None
    assert error.startswith(f"step 1 of 1: model {MODEL}: HTTP {status} from {url} {said}: ")


def test_a_retry_after_beyond_the_clients_limit_is_honoured_by_not_retrying(tmp_path: Path) -> None:
    """The transport hands the server's Retry-After to the client: an hour means give up now.
    The message counts the retries actually made (none), not the ones allowed (two)."""
    with Simulator(scripted([SimReply(status=429, headers={"Retry-After": "3600"})])) as sim:
        result = _record(sim, tmp_path, _config(horizon=1), max_retries=2)
        assert sim.calls == 1
    error = result.trajectories[0].error
    assert error is not None and re.search(r"model sim/faulty: HTTP 429 from \S+ after 0 retries", error)
    assert list(tmp_path.rglob("*")) == []


def test_retries_follow_max_retries(tmp_path: Path) -> None:
    """Two failures then success: too few with max_retries=1, enough with max_retries=2."""
    script = [SimReply(status=503, headers=FAST), SimReply(status=503, headers=FAST), OK_BLUE]
    with Simulator(scripted(script)) as sim:
        short = _record(sim, tmp_path / "one", _config(horizon=1), max_retries=1)
        assert sim.calls == 2
    assert short.trajectories[0].error is not None and "HTTP 503" in short.trajectories[0].error
    with Simulator(scripted(script)) as sim:
        enough = _record(sim, tmp_path / "two", _config(horizon=1), max_retries=2)
        assert sim.calls == 3
    assert enough.errors == []
    assert [s.raw for s in enough.trajectories[0].steps] == ["<Answer>blue</Answer>"]
    assert len(list((tmp_path / "two").rglob("[0-9]*.json"))) == 1


def test_through_the_plugin_a_faulty_case_fails_even_when_declared_expected(bench_project) -> None:
    """An errored case is a failure with the status and model in its message, never an xfail."""
    pytester = bench_project(
        """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 2
episodes = 1

[tool.bandit_bench.xfail]
"sim/faulty" = ["quick"]
""",
    )
    with Simulator(scripted([SimReply(status=503, headers=FAST)] * 2)) as sim:
        result = pytester.runpytest(
            "--model", MODEL, "--bandit-config", "quick", "--base-url", sim.base_url,
            "--record-mode=once", "--max-retries", "1",
        )  # fmt: skip
        assert sim.calls == 2
        url = f"{sim.base_url}/chat/completions"
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*sim/faulty-quick: 1 of 1 episodes errored:",
            f"  episode 0: step 1 of 2: model {MODEL}: "
            f"HTTP 503 from {url} after 1 retries: Error code: 503 - simulated fault*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert not (pytester.path / "cassettes").exists()


def test_request_timeout_bounds_the_whole_request_not_each_read(tmp_path: Path) -> None:
    """A server dripping its answer a byte every 0.3 s never trips a per-read timeout and would
    take over a minute; the request is cut off at --request-timeout (the message says which
    limit ran out), and retried like a timeout."""
    drip = SimReply("<Answer>blue</Answer>", drip=0.3)
    with Simulator(scripted([drip, drip])) as sim:
        opts = RunOptions(
            base_url=sim.base_url, api_key="sk-test", cassette_dir=tmp_path, record_mode="once",
            max_retries=1, request_timeout=1.0,
        )  # fmt: skip
        result = run_case(MODEL, _config(horizon=1), opts)
        assert sim.calls == 2  # both tries dropped mid-body
        url = f"{sim.base_url}/chat/completions"
    [traj] = result.trajectories
    assert traj.error is not None and traj.error.startswith(
        f"step 1 of 1: model {MODEL}: request to {url} timed out after 1 retries "
        "(ReadTimeout: the whole request took longer than 1 s)."
    )
    assert list(tmp_path.rglob("*")) == []
