"""The cassette transport speaks vcrpy's format both ways, and matches what a replay needs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import openai
import vcr

from bandit_bench.recording.transport import (
    canonical_body,
    cassette_path,
    load_cassette,
    make_transport,
    safe_component,
)
from bandit_bench.servers.simulator import always

SHIPPED = Path(__file__).parents[2] / "cassettes/local/smollm2-135m-instruct/BNRN0-hard-T25/000.json"


def _first_request(path: Path) -> dict:
    return json.loads(json.loads(path.read_text())["interactions"][0]["request"]["body"])


def test_vcrpy_itself_replays_a_shipped_cassette():
    body = _first_request(SHIPPED)
    replayer = vcr.VCR(serializer="json", record_mode="none", match_on=["method", "path", "body"])
    with replayer.use_cassette(str(SHIPPED)) as cassette:
        client = openai.OpenAI(base_url="http://127.0.0.1:38647/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(**body)
    assert cassette.play_count == 1
    assert reply.choices[0].message.content == "You chose to choose blue, which is the next button."


def test_replay_ignores_the_recording_base_url_and_key_order(tmp_path):
    # The shipped cassette was recorded on 127.0.0.1:38647/v1; replay under another base URL.
    transport = make_transport(SHIPPED, "none", "https://api.example.org/proxy/v1")
    body = _first_request(SHIPPED)
    shuffled = json.dumps(dict(reversed(list(body.items()))))  # same JSON, other key order
    client = httpx2.Client(transport=transport)  # type: ignore[arg-type]
    response = client.post("https://api.example.org/proxy/v1/chat/completions", content=shuffled)
    assert response.json()["choices"][0]["message"]["content"].startswith("You chose")
    assert transport.replayed == 1


def test_recorded_file_is_read_by_vcrpys_own_serializer(simulator, tmp_path):
    sim = simulator(always(2))
    path = tmp_path / "c.json"
    transport = make_transport(path, "once", sim.base_url, httpx2.HTTPTransport())
    client = openai.OpenAI(
        base_url=sim.base_url, api_key="sk-test", http_client=httpx2.Client(transport=transport)
    )
    messages = [{"role": "system", "content": "must be exactly one of blue, green, red."}]
    client.chat.completions.create(model="sim/x", messages=messages)
    assert transport.save()
    requests, responses = load_cassette(path)
    assert [r.method for r in requests] == ["POST"]
    assert (
        json.loads(responses[0]["body"]["string"])["choices"][0]["message"]["content"]
        == "<Answer>red</Answer>"
    )
    assert "authorization" not in {k.lower() for k in requests[0].headers}


def test_cassette_paths_are_file_safe_and_stable():
    assert cassette_path("cassettes", "openai/gpt-4o-mini", "BSSC~0-hard-T25", 3) == Path(
        "cassettes/openai/gpt-4o-mini/BSSCt0-hard-T25/003.json"
    )
    assert safe_component("..") == "_" and safe_component("m:free") == "m_free"


def test_canonical_body_sorts_keys_and_drops_spaces():
    assert (
        canonical_body(b'{"b": 1, "a": [1, 2]}') == canonical_body('{"a":[1,2],"b":1}') == '{"a":[1,2],"b":1}'
    )
    assert canonical_body(b"not json") == "not json" and canonical_body(None) == ""
