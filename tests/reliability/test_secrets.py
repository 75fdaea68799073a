"""Secrets: a key reaches its own endpoint and nothing else; no file or line of output holds it.

Which key goes where (bandit_bench.running.credentials): ``--api-key``, else the variable named by
``--api-key-env``, else ``OPENROUTER_API_KEY`` for https://openrouter.ai and ``OPENAI_API_KEY``
for https://api.openai.com, else none. Recordings run through pytester against the simulator,
which echoes what it was sent (in a 200 body, a response header, a 401 message); every byte
the runs wrote (cassettes, reports, junit XML, a DEBUG log, pytest's cache) and everything
they printed is scanned.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, cast

import pytest
from helpers import TINY_PYPROJECT

from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.recording.redaction import Secret
from bandit_bench.recording.transport import make_transport
from bandit_bench.running.credentials import key_problem, select_api_key
from bandit_bench.running.runner import RunOptions, record_command, run_case
from bandit_bench.servers.simulator import SimReply, Simulator, always

PYPROJECT = TINY_PYPROJECT
KEY_VARS = ("OPENROUTER_API_KEY", "OPENAI_API_KEY")


def _headers(sim: Simulator, call: int) -> dict[str, str]:
    return {k.lower(): v for k, v in sim.headers[call].items()}


def _everything_written(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _decoys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Both providers' variables set, as on a researcher's machine: neither may reach a local server."""
    decoys = {var: f"sk-decoy-{var.lower()}-{secrets.token_hex(16)}" for var in KEY_VARS}
    for var, value in decoys.items():
        monkeypatch.setenv(var, value)
    return decoys


def _hostile_policy(sim: Simulator, cookie: str) -> Any:
    answer = always(0)

    def policy(body: dict[str, Any], call: int) -> SimReply:
        # A provider that sets a session cookie and echoes the credential it was sent in the 200
        # body and in a header, and one that quotes it back in an error body.
        if body["model"] == "sim/echo":
            auth = _headers(sim, call).get("authorization", "")
            return SimReply(status=401, content=f"bad key {auth}")
        reply = answer(body, call)
        return SimReply(reply.content, echo_auth=True, headers={"Set-Cookie": f"session={cookie}; Path=/"})

    return policy


@pytest.mark.parametrize("how", ["--api-key-env", "--api-key"])
def test_neither_the_key_nor_the_url_password_reaches_any_byte_written_or_printed(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    key = f"sk-sim-{secrets.token_hex(24)}"
    password = f"pw{secrets.token_hex(12)}"
    cookie = f"cf_session_{secrets.token_hex(12)}"
    decoys = _decoys(monkeypatch)
    monkeypatch.setenv("SIM_KEY", key)
    by = ["--api-key-env", "SIM_KEY"] if how == "--api-key-env" else ["--api-key", key]
    sim = Simulator()
    sim.policy = _hostile_policy(sim, cookie)
    bench_project(PYPROJECT)
    common = ["--bandit-config", "tiny", "--max-retries", "0", "-rA", "-v", "-l"]
    outputs: dict[str, str] = {}
    with sim:
        with_password = sim.base_url.replace("http://", f"http://bench:{password}@")
        runs = {
            "key": ["--base-url", sim.base_url, *by, "--cassette-dir=keyed"],
            "password": ["--base-url", with_password, "--cassette-dir=passworded"],
        }
        for name, args in runs.items():
            result = pytester.runpytest(
                "--model", "sim/secret,sim/echo", "--record-mode=once", *common, *args,
                "--log-file", f"{name}.log", "--log-file-level", "DEBUG",
                f"--junitxml={name}.xml", f"--report-dir=reports-{name}",
            )  # fmt: skip
            result.assert_outcomes(passed=1, failed=1)
            outputs[f"{name} stdout"] = result.stdout.str()
            outputs[f"{name} stderr"] = result.stderr.str()
            # The error message kept the rest of what the server said.
            result.stdout.fnmatch_lines(["*sim/echo*HTTP 401*(not retried)*bad key * [[]redacted[]]. *"])
            # The advice says where the key came from, or that none was sent and how to send one.
            advice = {
                "key": "Check the API key (sent from SIM_KEY)"
                if how == "--api-key-env"
                else "(sent from --api-key)",
                "password": "No API key was sent: no key is sent to this endpoint unless one is given",
            }[name]
            assert advice in result.stdout.str()
        # Each credential did travel, to this server only and as a header: the key as a bearer
        # token, the URL's user:password as HTTP Basic (httpx's rule for credentials in a URL).
        assert sim.calls == 2 * (2 * 3 + 2)  # sim/echo: each episode ends at its first request
        sent = [_headers(sim, i) for i in range(sim.calls)]
        import base64

        basic = "Basic " + base64.b64encode(f"bench:{password}".encode()).decode()
        assert {h.get("authorization") for h in sent[:8]} == {f"Bearer {key}"}
        assert {h.get("authorization") for h in sent[8:]} == {basic}
        assert all("cookie" not in h for h in sent)
        for decoy in decoys.values():
            assert not any(decoy in json.dumps(h) for h in sent)

    replayed = pytester.runpytest(
        "--model", "sim/secret", "--bandit-config", "tiny", "--cassette-dir=passworded",
        "--base-url", with_password, "--log-file", "replay.log", "-l",
    )  # fmt: skip
    replayed.assert_outcomes(passed=1)
    outputs["replay stdout"], outputs["replay stderr"] = replayed.stdout.str(), replayed.stderr.str()

    written = _everything_written(pytester.path)
    for folder in ("keyed", "passworded"):
        cassettes = sorted(p.relative_to(pytester.path).as_posix() for p in written if folder in p.parts)
        assert cassettes == [
            f"{folder}/sim/secret/tiny/.lock",
            f"{folder}/sim/secret/tiny/000.json",
            f"{folder}/sim/secret/tiny/001.json",
            f"{folder}/sim/secret/tiny/manifest.json",  # its base URL is searched for secrets below too
        ]
    for name in ("key", "password"):
        assert (pytester.path / f"{name}.log").stat().st_size > 0
        assert (pytester.path / f"{name}.xml").stat().st_size > 0
        assert (pytester.path / f"reports-{name}" / "steps.jsonl").stat().st_size > 0
    # What the server echoed is kept, redacted, in the raw reply: record and replay agree.
    steps = (pytester.path / "reports-password" / "steps.jsonl").read_text(encoding="utf-8")
    assert "your key is Basic [redacted]" in steps
    steps = (pytester.path / "reports-key" / "steps.jsonl").read_text(encoding="utf-8")
    assert "your key is Bearer [redacted]" in steps
    secrets_to_find = {"key": key, "password": password, "basic": basic.split()[1], **decoys}
    for what, data in [
        *((str(p), d) for p, d in written.items()),
        *((k, v.encode()) for k, v in outputs.items()),
    ]:
        for name, secret in secrets_to_find.items():
            assert secret.encode() not in data, (name, what)
            assert secret[-12:].encode() not in data, (name, what)  # not even a piece of it
    # Cookies, and any Authorization header, stay out of cassettes and reports.
    for path, data in written.items():
        if path.suffix != ".log":
            assert cookie.encode() not in data, path
        if path.suffix == ".json" and {"keyed", "passworded"} & set(path.parts):
            text = data.decode("utf-8").lower()
            assert "authorization" not in text and "cookie" not in text, path
            assert "bench:" not in text and "@127.0.0.1" not in text, path  # the uri has no user:password


@pytest.mark.parametrize(
    ("base_url", "options", "expected"),
    [
        ("https://openrouter.ai/api/v1", {}, "OPENROUTER_API_KEY"),
        ("https://eu.openrouter.ai/api/v1", {}, "OPENROUTER_API_KEY"),
        ("https://api.openai.com/v1", {}, "OPENAI_API_KEY"),
        ("https://API.OpenAI.com./v1", {}, "OPENAI_API_KEY"),
        # look-alikes and clear text get nothing from the environment
        ("https://evilopenrouter.ai/api/v1", {}, None),
        ("https://openrouter.ai.evil.com/api/v1", {}, None),
        ("https://api.openai.com@evil.com/v1", {}, None),
        ("https://api.openai.com:443@evil.com/v1", {}, None),
        ("https://openrouter.ai\\@evil.com/v1", {}, None),
        ("https://OpenRouter.AI./api/v1", {}, "OPENROUTER_API_KEY"),
        ("https://openr\u043euter.ai/api/v1", {}, None),  # a Cyrillic o
        ("https://xn--openrutr-f0g.ai/api/v1", {}, None),  # an IDN spelling
        ("https://openrouter\uff0eai/api/v1", {}, None),  # a full-width dot: the parsers disagree
        ("https://api.openai.com.evil.com/v1", {}, None),
        ("https://evil.com/v1#@api.openai.com", {}, None),
        ("https://openrouter.ai.example.com/v1", {}, None),
        ("https://example.com/openrouter.ai/v1", {}, None),
        ("https://evil.example/v1?u=https://api.openai.com", {}, None),
        ("http://openrouter.ai/api/v1", {}, None),
        ("http://127.0.0.1:8001/v1", {}, None),
        ("http://localhost:11434/v1", {}, None),
        # a named variable or an explicit key goes to any endpoint, the key first
        ("http://127.0.0.1:8001/v1", {"api_key_env": "MY_KEY"}, "MY_KEY"),
        ("https://openrouter.ai/api/v1", {"api_key_env": "MY_KEY"}, "MY_KEY"),
        ("http://127.0.0.1:8001/v1", {"api_key": "sk-explicit-1234"}, "--api-key"),
        ("https://api.openai.com/v1", {"api_key": "sk-explicit-1234", "api_key_env": "MY_KEY"}, "--api-key"),
    ],
)
def test_the_key_is_chosen_by_endpoint(base_url: str, options: dict[str, str], expected: str | None) -> None:
    environ = {
        "OPENROUTER_API_KEY": "sk-or-xxxxxxxxxxxx",
        "OPENAI_API_KEY": "sk-oa-xxxxxxxxxxxx",
        "MY_KEY": "sk-my-xxxxxxxxxxxx",
    }
    key = select_api_key(base_url, environ=environ, **options)
    if expected is None:
        assert key is None
        return
    assert key is not None and key.source == expected
    assert key.reveal() == {"--api-key": "sk-explicit-1234", **environ}[expected]


def test_through_the_plugin_a_local_server_gets_no_key_unless_one_is_named(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both provider variables set, a local --base-url: no Authorization header at all; the ini
    twin of --api-key-env names the variable to send."""
    _decoys(monkeypatch)
    monkeypatch.setenv("LOCAL_KEY", "sk-local-0123456789")
    bench_project(PYPROJECT)
    run = ["--model", "sim/local", "--bandit-config", "tiny", "--record-mode=once"]
    with Simulator(always(0)) as sim:
        pytester.runpytest(*run, "--base-url", sim.base_url).assert_outcomes(passed=1)
        assert sim.calls == 6
        assert all("authorization" not in _headers(sim, i) for i in range(6))
        pytester.makeini("[pytest]\nbandit_api_key_env = LOCAL_KEY\n")
        pytester.runpytest(*run, "--base-url", sim.base_url, "--record-mode=rewrite").assert_outcomes(
            passed=1
        )
        assert {_headers(sim, i).get("authorization") for i in range(6, 12)} == {"Bearer sk-local-0123456789"}


def test_an_openai_key_is_not_sent_to_openrouter_and_the_hint_names_the_variable(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-oa-0123456789abcdef")
    bench_project(PYPROJECT)
    result = pytester.runpytest("--model", "sim/x", "--bandit-config", "tiny", "--record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*episodes 0, 1: cassette * must be recorded (record mode 'once') but no API key is set: "
         "export OPENROUTER_API_KEY=... (or pass --api-key), or replay with --record-mode=none."]
    )  # fmt: skip
    assert "OPENAI_API_KEY" not in result.stdout.str()


def test_no_repr_shows_the_key_even_under_show_locals(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest -l prints every frame's locals on a crash: RunOptions, the Secret, the URL."""
    key = f"sk-sim-{secrets.token_hex(20)}"
    password = f"pw{secrets.token_hex(10)}"
    monkeypatch.setenv("SIM_KEY", key)
    bench_project(PYPROJECT)
    # A bug deep in a step (here: the parser raising) must not print the key with the locals.
    pytester.makeconftest(
        "import pytest\n"
        "import bandit_bench.running.llm as llm\n"
        "def boom(*a, **k):\n    raise RuntimeError('parser bug')\n"
        "@pytest.fixture(autouse=True)\n"
        "def _parser_bug(monkeypatch):\n    monkeypatch.setattr(llm, 'parse_completion_reply', boom)\n"
    )
    with Simulator(always(0)) as sim:
        url = sim.base_url.replace("http://", f"http://bench:{password}@")
        result = pytester.runpytest(
            "--model", "sim/crash", "--bandit-config", "tiny", "--record-mode=once", "--concurrency=1",
            "--base-url", url, "--api-key-env", "SIM_KEY", "-l", "--tb=long",
        )  # fmt: skip
    result.assert_outcomes(failed=1)
    out = result.stdout.str() + result.stderr.str()
    assert "parser bug" in out and "opts " in out  # locals were shown...
    assert key not in out and key[-12:] not in out  # ...but not the key
    assert password not in out
    assert repr(Secret(key, "X")) == "Secret(source='X', value='[redacted]')" == str(Secret(key, "X"))
    opts = RunOptions(base_url=url, api_key=key)
    assert key not in repr(opts) and password not in repr(opts)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "sk-abc\n",
            "the API key has leading or trailing whitespace (a newline?) (check the variable SIM_KEY)",
        ),
        ("sk-ab\u00e7d", "the API key contains a non-ASCII character (check the variable SIM_KEY)"),
        ("sk-a b", "the API key contains a space or a control character (check the variable SIM_KEY)"),
    ],
    ids=["trailing-newline", "non-ascii", "inner-space"],
)
def test_a_key_that_cannot_be_a_header_says_so_and_names_its_variable(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    assert key_problem(Secret(value, "SIM_KEY")) == problem
    monkeypatch.setenv("SIM_KEY", value)
    bench_project(PYPROJECT)
    with Simulator(always(0)) as sim:
        result = pytester.runpytest(
            "--model", "sim/k", "--bandit-config", "tiny", "--record-mode=once",
            "--base-url", sim.base_url, "--api-key-env", "SIM_KEY",
        )  # fmt: skip
        assert sim.calls == 0
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*the API key (SIM_KEY): got '[[]redacted[]]'*" + problem[0].upper() + problem[1:]]
    )
    # Through the library: the episode errors with the same words, and nothing is sent.
    config = CaseConfig(
        name="k", design=DesignSpec.parse("BNRN0"), instance=InstanceSpec(k=5, delta=0.2, horizon=1),
        run=RunSpec(episodes=1, seed=0),
    )  # fmt: skip
    opts = RunOptions(
        base_url="http://127.0.0.1:9/v1", api_key=Secret(value, "SIM_KEY"),
        cassette_dir=pytester.path / "lib", record_mode="once",
    )  # fmt: skip
    assert run_case("sim/k", config, opts).errors == [f"episode 0: cannot send the request: {problem}"]


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
        f"https://api.example/v1/chat/completions?api_key={secret}&token={secret}&foo=bar&api-version=2024-06-01",
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
    # Every query parameter may be a credential (?code=, ?sig=) but the public api-version.
    assert interaction["request"]["uri"] == "https://api.example/v1/chat/completions?api-version=2024-06-01"
    assert {k.lower() for k in interaction["request"]["headers"]} <= {
        "content-type",
        "accept",
        "accept-encoding",
    }
    assert "set-cookie" not in {k.lower() for k in interaction["response"]["headers"]}


def test_record_hints_name_the_variable_the_endpoint_reads_and_hide_url_credentials() -> None:
    config = CaseConfig(
        name="k", design=DesignSpec.parse("BNRN0"), instance=InstanceSpec(k=5, delta=0.2, horizon=1),
        run=RunSpec(episodes=1, seed=0),
    )  # fmt: skip
    base = f"pytest --model m/x {config.cli_args} --record-mode=once"
    assert record_command("m/x", config, RunOptions()) == f"OPENROUTER_API_KEY=... {base}"
    assert record_command("m/x", config, RunOptions(base_url="https://api.openai.com/v1")) == (
        f"OPENAI_API_KEY=... {base} --base-url=https://api.openai.com/v1"
    )
    assert record_command("m/x", config, RunOptions(base_url="http://127.0.0.1:8/v1", api_key_env="MY")) == (
        f"MY=... {base} --api-key-env=MY --base-url=http://127.0.0.1:8/v1"
    )
    local = record_command("m/x", config, RunOptions(base_url="http://bob:hunter2secret@127.0.0.1:8/v1"))
    assert local == (
        f"{base} --base-url=http://USER:PASSWORD@127.0.0.1:8/v1 (with the server running; it is sent no "
        "key unless given one: --api-key-env NAME or --api-key)"
    )


def test_the_library_case_record_holds_no_echoed_key(tmp_path: Path) -> None:
    """Without the plugin (which redacts its record again) the transport's own redaction is
    what keeps a key the server echoes out of the trajectory and the case record."""
    from bandit_bench.reporting.evaluation import case_record

    key = f"sk-lib-{secrets.token_hex(16)}"
    config = CaseConfig(
        name="tiny", design=DesignSpec.parse("BNRN0"), instance=InstanceSpec(k=5, delta=0.2, horizon=2),
        run=RunSpec(episodes=1, seed=0),
    )  # fmt: skip
    with Simulator(lambda body, call: SimReply(always(0)(body, call).content, echo_auth=True)) as sim:
        opts = RunOptions(
            base_url=sim.base_url, api_key=Secret(key, "SIM_KEY"), cassette_dir=tmp_path, record_mode="once"
        )
        result = run_case("sim/lib", config, opts)
        assert sim.calls == 2
    assert result.errors == []
    text = json.dumps(case_record(result))
    assert "your key is Bearer [redacted]" in text  # the echo is kept, redacted
    assert key not in text
    assert key[-12:] not in text


# ---------------------------------------------------------------------------- round 3 (issue 21)


def _escaped_echo_policy(sim: Simulator) -> Any:
    """A server that echoes the key it was sent in every disguise: JSON-escaped (``\\/`` and
    ``\\u00XX``), base64-encoded, split over two headers, and every other reply in UTF-16."""
    import base64

    answer = always(0)

    def policy(body: dict[str, Any], call: int) -> SimReply:
        auth = _headers(sim, call).get("authorization", "")
        key = auth.split(" ", 1)[1] if " " in auth else auth
        if body["model"] == "sim/echo":
            # A 401 whose message quotes the query too, as a gateway's access log would.
            return SimReply(status=401, content=f"bad key {key} for {sim.paths[call]}")
        text = answer(body, call).content or ""
        completion = {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "system_fingerprint": "FP_SLASHED",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"{text} u:U_ESCAPED b64:{base64.b64encode(auth.encode()).decode()}",
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        }
        raw = json.dumps(completion)
        raw = raw.replace("FP_SLASHED", key.replace("/", "\\/"))
        raw = raw.replace("U_ESCAPED", "".join(f"\\u{ord(c):04x}" for c in key))
        half = len(key) // 2
        headers = {"X-Key-Head": key[:half], "X-Key-Tail": key[half:]}
        if call % 2:
            headers["Content-Type"] = "application/json; charset=utf-16"
            return SimReply(raw=raw.encode("utf-16"), headers=headers)
        return SimReply(raw=raw.encode(), headers=headers)

    return policy


def _b64_cores(value: str) -> list[str]:
    """The base64 spellings of ``value`` inside a longer text, at each byte alignment."""
    import base64

    raw = value.encode()
    return [
        base64.b64encode(b"\0" * s + raw).decode()[(s * 8 + 5) // 6 : ((s + len(raw)) * 8) // 6]
        for s in range(3)
    ]


@pytest.mark.parametrize("key_kind", ["long-with-slash", "short"])
def test_escaped_encoded_split_and_query_secrets_reach_no_byte_even_in_a_keyless_replay(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch, key_kind: str
) -> None:
    """Issue 21, points 1-3: a key in the base URL's query (?api-key=, ?code=, ?sig=), a key the
    server echoes escaped, base64-encoded, split over two headers or in a UTF-16 body, and a key
    of 5 characters. Recorded through the real client and sockets; then replayed in a new process
    that knows no key (so nothing can redact there: what the cassette holds is what it writes),
    and replayed with no server and a missing cassette (the "To record it" hint); every byte
    written and printed is searched."""
    key = f"sk/{secrets.token_hex(20)}" if key_kind == "long-with-slash" else secrets.token_hex(3)[:5]
    query_key, code, sig = (f"q{secrets.token_hex(12)}", f"c{secrets.token_hex(10)}", secrets.token_hex(2))
    decoys = _decoys(monkeypatch)
    monkeypatch.setenv("SIM_KEY", key)
    sim = Simulator()
    sim.policy = _escaped_echo_policy(sim)
    bench_project(PYPROJECT)
    outputs: dict[str, str] = {}
    query = f"?api-key={query_key}&code={code}&sig={sig}&api-version=2024-06-01"
    with sim:
        url = sim.base_url + query
        result = pytester.runpytest(
            "--model", "sim/secret,sim/echo", "--bandit-config", "tiny", "--record-mode=once",
            "--base-url", url, "--api-key-env", "SIM_KEY", "--max-retries", "0", "-rA", "-v", "-l",
            "--junitxml=rec.xml", "--report-dir=reports-rec", "--log-file=rec.log", "--log-file-level=DEBUG",
        )  # fmt: skip
        result.assert_outcomes(passed=1, failed=1)
        outputs["rec"] = result.stdout.str() + result.stderr.str()
        # The query travelled, whole, on every request (the client's default_query).
        assert all(p.endswith(f"/chat/completions{query}") for p in sim.paths), sim.paths[0]
        assert {_headers(sim, i).get("authorization") for i in range(sim.calls)} == {f"Bearer {key}"}
    # The 401 names the endpoint with its query values hidden but the public one.
    result.stdout.fnmatch_lines(
        [
            "*sim/echo*HTTP 401 from http://127.0.0.1:*/v1/chat/completions?api-key=[[]redacted[]]&code=[[]redacted[]]&sig=[[]redacted[]]&api-version=2024-06-01*"
        ]
    )
    monkeypatch.delenv("SIM_KEY")
    for var in decoys:
        monkeypatch.delenv(var)
    # A keyless replay in a process of its own: nothing registered, nothing to redact with.
    replayed = pytester.runpytest_subprocess(
        "--model", "sim/secret", "--bandit-config", "tiny", "--base-url", "http://127.0.0.1:9/v1",
        "--report-dir=reports-replay", "--junitxml=replay.xml", "-rA", "-l",
    )  # fmt: skip
    replayed.assert_outcomes(passed=1)
    outputs["replay"] = replayed.stdout.str() + replayed.stderr.str()
    # No server, a missing cassette, a base URL with credentials in its query: the hint shows
    # where they go, not what they are (stdout and junit XML).
    hinted = pytester.runpytest_subprocess(
        "--model", "sim/missing", "--bandit-config", "tiny", "--base-url", "http://127.0.0.1:9/v1" + query,
        "--report-dir=reports-hint", "--junitxml=hint.xml",
    )  # fmt: skip
    hinted.assert_outcomes(failed=1)
    outputs["hint"] = hinted.stdout.str() + hinted.stderr.str()
    assert (
        "--base-url='http://127.0.0.1:9/v1?api-key=VALUE&code=VALUE&sig=VALUE&api-version=2024-06-01'"
        in outputs["hint"]
    )
    # A refused connection prints the URL the same way.
    refused = pytester.runpytest_subprocess(
        "--model", "sim/refused", "--bandit-config", "tiny", "--record-mode=once", "--max-retries=0",
        "--base-url", "http://127.0.0.1:9/v1" + query, "--report-dir=reports-refused",
    )  # fmt: skip
    refused.assert_outcomes(failed=1)
    outputs["refused"] = refused.stdout.str() + refused.stderr.str()
    assert (
        "request to http://127.0.0.1:9/v1/chat/completions?api-key=[redacted]&code=[redacted]"
        in outputs["refused"]
    )

    steps = (pytester.path / "reports-replay" / "steps.jsonl").read_text(encoding="utf-8")
    assert "u:[redacted] b64:" in steps  # the decoded echo was replaced, and replays as recorded
    cassette = json.loads((pytester.path / "cassettes/sim/secret/tiny/000.json").read_text(encoding="utf-8"))
    assert cassette["interactions"][0]["response"]["headers"] == {"Content-Type": ["application/json"]}
    assert cassette["interactions"][0]["request"]["uri"].endswith("/chat/completions?api-version=2024-06-01")
    needles = {"query_key": query_key, "code": code, **decoys}
    if len(key) >= 8:
        # A 5-character key is searched for as a token only (below): as a bare substring it
        # can turn up by chance in the report's base64 images (91338 did in one run).
        needles.update({"key": key, "key[-12:]": key[-12:], "key escaped": key.replace("/", "\\/")})
        needles.update({f"key b64 {i}": core for i, core in enumerate(_b64_cores(f"Bearer {key}"))})
    written = _everything_written(pytester.path)
    for what, data in [
        *((str(p), d) for p, d in written.items()),
        *((k, v.encode()) for k, v in outputs.items()),
    ]:
        for name, needle in needles.items():
            assert needle.encode() not in data, (name, what)
        # A short key or sig is searched for as a token, as it is redacted.
        import re

        for name, short in (("short key", key), ("sig", sig)):
            assert not re.search(
                rb"(?<![A-Za-z0-9])" + re.escape(short.encode()) + rb"(?![A-Za-z0-9])", data
            ), (name, what)


def test_a_redirect_from_the_endpoint_is_not_followed_and_carries_no_key(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21, point 5: the endpoint answers 307 to another host; nothing reaches that host."""
    key = f"sk-sim-{secrets.token_hex(16)}"
    monkeypatch.setenv("SIM_KEY", key)
    bench_project(PYPROJECT)
    with Simulator(always(0)) as elsewhere:
        target = elsewhere.base_url + "/chat/completions"
        with Simulator(lambda body, call: SimReply(status=307, headers={"Location": target})) as sim:
            result = pytester.runpytest(
                "--model", "sim/redirect", "--bandit-config", "tiny", "--record-mode=once",
                "--base-url", sim.base_url, "--api-key-env", "SIM_KEY", "--max-retries=0",
            )  # fmt: skip
            assert sim.calls == 2
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*episodes 0, 1: step 1 of 3: model sim/redirect: HTTP 307 from "
            "http://127.0.0.1:*/v1/chat/completions (not retried)*"
        ]
    )
    assert elsewhere.calls == 0
    assert key not in result.stdout.str()


@pytest.mark.parametrize(
    "url",
    ["http://alice:{pw}@[::1/v1", "http://alice:{pw}@host:port/v1", "ftp://alice:{pw}@host/v1?api-key={pw}"],
)
def test_an_unusable_base_url_is_a_usage_error_that_does_not_show_its_password(
    pytester: pytest.Pytester, bench_project: Any, url: str
) -> None:
    """Issue 21, point 4: no traceback, and -l shows no local holding the password."""
    password = f"pw{secrets.token_hex(10)}"
    bench_project(PYPROJECT)
    result = pytester.runpytest(
        "--model", "sim/x", "--bandit-config", "tiny", "--base-url", url.format(pw=password),
        "-l", "--tb=long",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert "--base-url: got" in out and "expected an http(s) URL" in out
    assert "Traceback" not in out and password not in out and password[-8:] not in out


def test_the_block_network_clash_names_the_endpoint_without_its_credentials(
    pytester: pytest.Pytester, bench_project: Any
) -> None:
    pytest.importorskip("pytest_recording")
    password, query_key = f"pw{secrets.token_hex(10)}", f"q{secrets.token_hex(10)}"
    bench_project(PYPROJECT)
    result = pytester.runpytest(
        "--model", "sim/x", "--bandit-config", "tiny", "--record-mode=once", "--block-network",
        "--base-url", f"http://alice:{password}@127.0.0.1:9/v1?api-key={query_key}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the requests to http://127.0.0.1:9/v1?api-key=[[]redacted[]] for sim/x*"])
    assert password not in result.stderr.str() and query_key not in result.stderr.str()
