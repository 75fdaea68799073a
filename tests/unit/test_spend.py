"""The bill's arithmetic: which requests a record mode sends, and the token approximation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bandit_bench.plugin.settings import Price, load_settings
from bandit_bench.plugin.spend import (
    Budget,
    BudgetExhausted,
    approx_tokens,
    estimate_case,
    price_of,
    reply_cost,
    request_bound,
)
from bandit_bench.recording.transport import pending_requests, safe_component

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
    for path in (ROOT / "cassettes" / SMOL / safe_component(config_name)).glob("[0-9]*.json"):
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
    # Completion lengths come from every cassette of the design: BNSN0 has the T = 100 ones too.
    replies = 125 + (10 * 100 if config_name.startswith("BNSN0") else 0)
    assert est.cost_max is None and est.completion_source == f"this model ({replies} replies)"


def test_a_bill_reads_each_recorded_file_once_and_says_what_each_case_alone_says(monkeypatch) -> None:
    import bandit_bench.plugin.spend as spend

    settings = load_settings(ROOT / "pyproject.toml")
    names = ["BNRN0-hard-T25", "BSSC~0-hard-T25", "BNSN0-hard-T25-constrained", "BNSN0-hard-T100-constrained"]

    class Case:
        def __init__(self, name: str) -> None:
            self.model, self.config = SMOL, settings.configs[name]

    alone = [
        estimate_case(SMOL, settings.configs[n], ROOT / "cassettes", "all", {}, settings.configs)
        for n in names
    ]
    reads: list[Path] = []
    real = spend._completion_tokens
    monkeypatch.setattr(spend, "_completion_tokens", lambda path: reads.append(path) or real(path))
    bill = spend.estimate_cases([Case(n) for n in names], ROOT / "cassettes", "all", {}, settings.configs)
    assert bill == alone
    # The two BNSN0 cases share their design's files: each file is read once for the bill.
    assert reads and len(reads) == len(set(reads))


# ---------------------------------------------------------------------------- the budget

PRICE = Price(prompt=1.0, completion=10.0)


def _reply(**usage: object) -> bytes:
    return json.dumps({"choices": [{}], "usage": usage}).encode()


def test_reply_cost_prefers_the_providers_figure_and_refuses_nonsense():
    assert reply_cost(_reply(prompt_tokens=100, completion_tokens=10, cost=0.5), PRICE) == 0.5
    assert reply_cost(_reply(prompt_tokens=100, completion_tokens=10), PRICE) == pytest.approx(200 / 1e6)
    for bad in (-1, float("nan"), float("inf"), True, "0.1"):
        # A negative, non-finite or non-numeric cost is not believed: the tokens price the reply.
        assert reply_cost(_reply(prompt_tokens=100, completion_tokens=10, cost=bad), PRICE) == pytest.approx(
            2e-4
        )
    assert reply_cost(b"<html>", PRICE) is None
    assert reply_cost(_reply(), PRICE) is None


def test_request_bound_counts_every_body_byte_as_a_token_and_max_tokens_in_full():
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 100}], "max_tokens": 20}).encode()
    assert request_bound(body, PRICE) == pytest.approx((len(body) * 1.0 + 20 * 10.0) / 1e6)


def test_one_ledger_is_shared_by_every_budget_object_of_a_session(tmp_path):
    ledger = Budget.create_ledger(tmp_path)
    worker_a = Budget(1.0, ledger, {"m": PRICE})
    worker_b = Budget(1.0, ledger, {"m": PRICE})
    assert worker_a.reserve(0.6)
    # The other worker sees the reservation: 0.6 + 0.5 would exceed the limit.
    assert not worker_b.reserve(0.5)
    worker_a.settle(0.6, 0.1)
    # Once refused, always refused: the run stops starting requests even if a cheaper one would fit.
    assert not worker_a.reserve(0.01)
    assert worker_b.state() == {"spent": 0.1, "reserved": 0.0, "refused": 2}


def test_a_guard_charges_replies_errors_and_unknown_outcomes(tmp_path):
    budget = Budget(10.0, Budget.create_ledger(tmp_path), {"m": PRICE})
    guard = budget.guard("m")
    body = json.dumps({"max_tokens": 30000}).encode()  # bound: 21 prompt + 30000 completion tokens
    bound = guard.before(body)
    assert bound == pytest.approx((21 * 1.0 + 30000 * 10.0) / 1e6)
    guard.after(bound, 200, _reply(cost=0.25))  # within its bound
    guard.after(guard.before(body), 503, b"{}")  # an error status is not billed
    guard.after(guard.before(body), None)  # a timeout may have been billed: charged at its bound
    assert budget.state()["spent"] == pytest.approx(0.25 + bound)
    small = Budget(bound / 2, Budget.create_ledger(tmp_path), {"m": PRICE}).guard("m")
    with pytest.raises(BudgetExhausted, match=r"budget --max-cost \$.* reached: the next request of m"):
        small.before(body)
    assert small.refused


def test_a_reply_over_its_bound_is_charged_in_full_and_reaches_the_budget(tmp_path):
    budget = Budget(10.0, Budget.create_ledger(tmp_path), {"m": PRICE})
    guard = budget.guard("m")
    body = json.dumps({"max_tokens": 20}).encode()
    bound = guard.before(body)
    guard.after(bound, 200, _reply(prompt_tokens=10, completion_tokens=5000))  # 5000 > max_tokens 20
    state = budget.state()
    assert state["spent"] == pytest.approx((10 * 1.0 + 5000 * 10.0) / 1e6)
    assert state["over_bound"].startswith("a reply of m cost $0.0500, more than the $0.0002 reserved")
    with pytest.raises(BudgetExhausted, match="reached"):
        guard.before(body)  # far within the limit, but the budget counts as reached
    with pytest.raises(BudgetExhausted, match="needs a token limit in each request"):
        budget.guard("m").before(json.dumps({"messages": []}).encode())
