"""The bill's arithmetic: which requests a record mode sends, and the token approximation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bandit_bench.recording import pending_requests, safe_component
from bandit_bench.settings import Price, load_settings
from bandit_bench.spend import approx_tokens, estimate_case, price_of

ROOT = Path(__file__).resolve().parents[2]
SMOL = "local/smollm2-135m-instruct"


def _write(path: Path, interactions: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"interactions": [{}] * interactions, "version": 1}))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", {}),
        ("once", {1: 5, 3: 5}),
        ("new_episodes", {1: 5, 2: 3, 3: 5}),
        ("all", {0: 5, 1: 5, 2: 5, 3: 5}),
        ("rewrite", {0: 5, 1: 5, 2: 5, 3: 5}),
    ],
)
def test_pending_requests_per_record_mode(tmp_path, mode, expected):
    _write(tmp_path / "m/x/c/000.json", 5)
    _write(tmp_path / "m/x/c/002.json", 2)  # an episode cut short (new_episodes completes it)
    assert pending_requests(tmp_path, "m/x", "c", 4, 5, mode) == expected


def test_pending_requests_refuses_an_unknown_mode(tmp_path):
    with pytest.raises(ValueError, match="record mode: got 'twice'"):
        pending_requests(tmp_path, "m", "c", 1, 1, "twice")


def test_price_is_per_million_tokens():
    assert price_of(Price(prompt=0.15, completion=0.60), 1_000_000, 500_000) == pytest.approx(0.45)


def _recorded_prompt_tokens(config_name: str) -> tuple[int, int]:
    """(usage.prompt_tokens the server counted, chars/4 of the very prompts it was sent)."""
    counted = approximated = 0
    for path in (ROOT / "cassettes" / SMOL / safe_component(config_name)).glob("*.json"):
        for it in json.loads(path.read_text())["interactions"]:
            counted += json.loads(it["response"]["body"]["string"])["usage"]["prompt_tokens"]
            sent = json.loads(it["request"]["body"])["messages"]
            approximated += sum(approx_tokens(m["content"]) for m in sent)
    return counted, approximated


@pytest.mark.parametrize("config_name", ["BNRN0-hard-T25", "BSSC~0-hard-T25", "BNSN0-hard-T25-constrained"])
def test_chars_over_four_is_calibrated_on_the_shipped_smollm2_cassettes(config_name):
    settings = load_settings(ROOT / "pyproject.toml")
    counted, approximated = _recorded_prompt_tokens(config_name)
    # The approximation on the prompts actually sent: within 4% of the server's count.
    assert abs(approximated / counted - 1) < 0.04
    # The bill, which renders stand-in histories before any reply exists: within 10%.
    est = estimate_case(SMOL, settings.configs[config_name], ROOT / "cassettes", "all", {}, settings.configs)
    assert est.requests == 5 * 25
    assert abs(est.prompt_tokens / counted - 1) < 0.10
    assert est.cost_max is None and est.completion_source == "this model (125 replies)"
