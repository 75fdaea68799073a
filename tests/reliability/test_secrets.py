"""Secrets: the API key reaches the server and nothing else; no cassette, report or log holds it.

The plugin reads the key from ``--api-key``, else ``OPENROUTER_API_KEY``, else ``OPENAI_API_KEY``.
A recording runs through pytester against the simulator with a DEBUG log file, then a replay
runs; every byte the runs wrote (cassettes, reports, log, pytest's cache) and everything they
printed is scanned.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, cast

import pytest

from bandit_bench.recording import make_transport
from bandit_bench.simulator import SimReply, Simulator, always

PYPROJECT = """
[tool.bandit_bench.configs.tiny]
design = "BNRN0"
instance = "hard"
horizon = 3
episodes = 2
min_format_compliance = 0.0
"""
KEY_VARS = ("OPENROUTER_API_KEY", "OPENAI_API_KEY")


def _headers(sim: Simulator, call: int) -> dict[str, str]:
    return {k.lower(): v for k, v in sim.headers[call].items()}


def _everything_written(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("key_var", [*KEY_VARS, "--api-key"])
def test_the_key_reaches_the_server_and_nothing_the_run_writes(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch, key_var: str
) -> None:
    key = f"sk-or-v1-{secrets.token_hex(24)}"
    cookie = f"cf_session_{secrets.token_hex(12)}"
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    by_option = ["--api-key", key] if key_var == "--api-key" else []
    if not by_option:
        monkeypatch.setenv(key_var, key)

    sim = Simulator()
    answer = always(0)

    def policy(body: dict[str, Any], call: int) -> SimReply:
        # A provider that sets a session cookie, and one that quotes the key back in an error body
        # (as some proxies do): neither may end up in a file or a message.
        if body["model"] == "sim/echo":
            auth = _headers(sim, call).get("authorization", "")
            return SimReply(status=401, content=f"bad key {auth}")
        reply = answer(body, call)
        return SimReply(reply.content, headers={"Set-Cookie": f"session={cookie}; Path=/"})

    sim.policy = policy
    bench_project(PYPROJECT)
    with sim:
        args = ["--bandit-config", "tiny", "--base-url", sim.base_url, "--max-retries", "0"]
        logging_args = ["--log-file", "run.log", "--log-file-level", "DEBUG", "-rA", "-v"]
        recorded = pytester.runpytest(
            "--model", "sim/secret,sim/echo", "--record-mode=once", *args, *logging_args, *by_option
        )
        recorded.assert_outcomes(passed=1, failed=1)
        # The key did travel: every request carried it, as a bearer token and nowhere else.
        assert sim.calls == 2 * 3 + 2  # sim/echo: each of its two episodes ends at its first request
        sent = [_headers(sim, i) for i in range(sim.calls)]
        assert {h.get("authorization") for h in sent} == {f"Bearer {key}"}
        # The transport drops Set-Cookie before the client sees it: no cookie is ever sent back.
        assert all("cookie" not in h for h in sent)
    # The error message kept the rest of what the server said.
    recorded.stdout.fnmatch_lines(["*sim/echo*HTTP 401*(not retried)*bad key Bearer [[]redacted[]]*"])

    replayed = pytester.runpytest(
        "--model", "sim/secret", "--bandit-config", "tiny", "--log-file", "replay.log"
    )
    replayed.assert_outcomes(passed=1)

    written = _everything_written(pytester.path)
    cassettes = [p for p in written if p.is_relative_to(pytester.path / "cassettes")]
    assert sorted(p.relative_to(pytester.path).as_posix() for p in cassettes) == [
        "cassettes/sim/secret/tiny/000.json",
        "cassettes/sim/secret/tiny/001.json",
    ]
    assert (pytester.path / "run.log").stat().st_size > 0
    assert any(p.is_relative_to(pytester.path / "reports") for p in written)
    outputs = {
        "record stdout": recorded.stdout.str(),
        "record stderr": recorded.stderr.str(),
        "replay stdout": replayed.stdout.str(),
        "replay stderr": replayed.stderr.str(),
    }
    for what, data in [
        *((str(p), d) for p, d in written.items()),
        *((k, v.encode()) for k, v in outputs.items()),
    ]:
        assert key.encode() not in data, what
        assert key[-16:].encode() not in data, what  # not even a piece of it
    # Cookies, and any Authorization header, stay out of cassettes and reports.
    for path, data in written.items():
        if path.suffix != ".log":
            assert cookie.encode() not in data, path
        if path in cassettes:
            text = data.decode("utf-8").lower()
            assert "authorization" not in text and "bearer" not in text and "cookie" not in text, path


def test_the_transport_keeps_no_credential_of_any_kind(tmp_path: Path) -> None:
    """Header and query-string credentials, sent and received, never reach the cassette file."""
    import httpx2

    secret = secrets.token_hex(16)
    completion = {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "<Answer>red</Answer>"}}],
    }

    def upstream(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            json=completion,
            headers={
                "Set-Cookie": f"s={secret}",
                "X-Request-Id": "req-1",
                "Www-Authenticate": f"Bearer {secret}",
            },
        )

    path = tmp_path / "c.json"
    transport = make_transport(path, "once", "https://api.example/v1", httpx2.MockTransport(upstream))
    client = httpx2.Client(transport=cast(httpx2.BaseTransport, transport))
    response = client.post(
        f"https://api.example/v1/chat/completions?api_key={secret}&token={secret}&foo=bar",
        json={"model": "m", "messages": []},
        headers={
            "Authorization": f"Bearer {secret}",
            "api-key": secret,
            "x-api-key": secret,
            "Cookie": f"s={secret}",
            "OpenAI-Organization": secret,
            "Proxy-Authorization": f"Basic {secret}",
            "X-Custom-Token": secret,
        },
    )
    assert response.status_code == 200
    assert transport.save()
    text = path.read_text(encoding="utf-8")
    assert secret not in text
    [interaction] = json.loads(text)["interactions"]
    assert interaction["request"]["uri"] == "https://api.example/v1/chat/completions?foo=bar"
    assert {k.lower() for k in interaction["request"]["headers"]} <= {
        "content-type",
        "accept",
        "accept-encoding",
    }
    assert "set-cookie" not in {k.lower() for k in interaction["response"]["headers"]}
