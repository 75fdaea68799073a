"""What bandit-bench relies on in its dependencies beyond their documented API.

Each test names the place that relies on it; it fails when a new release of the dependency
changes that behaviour, before a run shows it as a wrong message or a lost feature. The upper
bounds in pyproject.toml keep such a release out until these pass on it.
"""

from __future__ import annotations

import inspect

import pytest

from bandit_bench.servers.simulator import SimReply, Simulator, scripted


def test_openai_retries_exactly_the_statuses_the_error_messages_say_it_does() -> None:
    # running/llm.py says "after N retries" or "(not retried)" by _RETRIED_STATUSES and >= 500:
    # the client's own rule is a private method (openai._base_client, _should_retry).
    import httpx2
    import openai

    from bandit_bench.running.llm import _RETRIED_STATUSES

    client = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    retried = [s for s in range(400, 600) if client._should_retry(httpx2.Response(s))]
    assert retried == [s for s in range(400, 600) if s in _RETRIED_STATUSES or s >= 500]
    # ...and the server's x-should-retry header over the status (running/llm.py client_retries).
    from bandit_bench.running.llm import client_retries

    for flag in ("true", "false", "maybe"):
        for status in (400, 409, 429, 500, 503):
            response = httpx2.Response(status, headers={"X-Should-Retry": flag})
            assert client._should_retry(response) == client_retries(status, {"X-Should-Retry": flag})


def test_openai_numbers_each_attempt_in_the_retry_count_header() -> None:
    # running/llm.py _retries_made reads the undocumented x-stainless-retry-count request header.
    import openai

    with Simulator(
        scripted([SimReply(status=500), SimReply(status=500), SimReply("<Answer>red</Answer>")])
    ) as sim:
        client = openai.OpenAI(api_key="sk-test", base_url=sim.base_url, max_retries=2)
        client.with_options(timeout=5.0).chat.completions.create(
            model="sim/x", messages=[{"role": "user", "content": "hi"}]
        )
        counts = [{k.lower(): v for k, v in h.items()}.get("x-stainless-retry-count") for h in sim.headers]
    assert counts == ["0", "1", "2"]


def test_httpx2_keeps_its_connection_pool_where_the_deadline_transport_replaces_it() -> None:
    # running/deadline.py DeadlineTransport swaps HTTPTransport._pool for a pool with its own
    # network backend: httpx2 has no parameter for one.
    import httpcore2
    import httpx2

    transport = httpx2.HTTPTransport()
    assert isinstance(transport._pool, httpcore2.ConnectionPool)
    assert {"ssl_context", "network_backend"} <= set(inspect.signature(httpcore2.ConnectionPool).parameters)


def test_pytest_builds_a_modules_object_in_getobj_and_capture_can_be_suspended() -> None:
    # plugin/plugin.py: the shipped benchmark module overrides Module._getobj (imported as the
    # package module it is); _write_stderr writes past capture with the capture manager's
    # global_and_fixture_disabled().
    from _pytest.capture import CaptureManager

    assert callable(getattr(pytest.Module, "_getobj", None))
    assert callable(getattr(CaptureManager, "global_and_fixture_disabled", None))


def test_vcrpy_serializes_a_cassette_as_the_shipped_ones_are_written() -> None:
    # recording/transport.py reads and writes cassettes with vcr.serialize (not in vcrpy's
    # documented API): its signature and its format version.
    from vcr.serialize import CASSETTE_FORMAT_VERSION, deserialize, serialize
    from vcr.serializers import jsonserializer

    assert list(inspect.signature(serialize).parameters) == ["cassette_dict", "serializer"]
    assert list(inspect.signature(deserialize).parameters) == ["cassette_string", "serializer"]
    assert CASSETTE_FORMAT_VERSION == 1
    assert deserialize(serialize({"requests": [], "responses": []}, jsonserializer), jsonserializer) == (
        [],
        [],
    )
