"""Issue 19, response side: each provider's documented reply shapes, end to end.

Every row runs ``run_case`` against a simulator personality (bandit_bench/servers/simulator.py,
which cites each provider's documentation) on 127.0.0.1, through the real openai client and the
cassette transport, and pins what a user gets: the arm taken, the reason of an invalid step, the
reasoning text and tokens kept per step, tokens and cost, the failure or error line, what the
cassette holds and that a replay with no server reproduces the recording.

THOUGHT has 36 words; the no-chain-of-thought design BNRN0 allows 20 tokens, so every reasoning
personality is cut off there while still thinking (its first 20 words quote ``<Answer>red</Answer>``,
which must never be read as the answer); BSSC0 allows 800, so the model answers blue (arm 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import case_config, record_case

from bandit_bench.core.episode import Trajectory
from bandit_bench.core.replies import Price
from bandit_bench.core.specs import CaseConfig
from bandit_bench.plugin.spend import Budget
from bandit_bench.recording.transport import clear_endpoint_stops
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.reporting.tables import summary_row
from bandit_bench.running.runner import CaseResult, RunOptions, run_case
from bandit_bench.servers import simulator as sims
from bandit_bench.servers.simulator import THOUGHT, SimReply, Simulator, scripted

UNREACHABLE = "http://127.0.0.1:9/v1"
CUT = " ".join(THOUGHT.split()[:20])
FAST = {"retry-after-ms": "1"}


@pytest.fixture(autouse=True)
def _no_daily_cap_left_behind() -> Iterator[None]:
    yield
    clear_endpoint_stops()


def _config(design: str, horizon: int = 3, episodes: int = 1) -> CaseConfig:
    return case_config(f"prov-{design}", design, horizon=horizon, episodes=episodes)


def _record(
    sim: Simulator,
    tmp: Path,
    config: CaseConfig,
    *,
    budget: Any = None,
    max_retries: int = 1,
    model: str = "sim/p",
) -> CaseResult:
    return record_case(
        sim,
        tmp / "cassettes",
        config,
        model,
        concurrency=1,
        max_retries=max_retries,
        request_timeout=5.0,
        budget=budget,
    )


def _replay(tmp: Path, config: CaseConfig, model: str = "sim/p") -> CaseResult:
    return run_case(model, config, RunOptions(base_url=UNREACHABLE, cassette_dir=tmp / "cassettes"))


def _steps(traj: Trajectory) -> list[tuple[Any, ...]]:
    return [
        (s.arm if s.valid else None, s.valid, s.reason, s.reasoning, s.reasoning_tokens, s.finish_reason)
        for s in traj.steps
    ]


def _cassette_text(tmp: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted((tmp / "cassettes").rglob("[0-9]*.json")))


# ---------------------------------------------------------------------------- reasoning replies

# personality -> reasoning text kept when it answers and when cut off (Gemini returns no
# thoughts), then (reasoning tokens, completion tokens) of each: reasoning tokens as the provider
# reports them (none in its usage for <think> in the content or Mistral's parts), completion
# tokens as billed (the simulator counts words; <think> and </think> are words of the content).
REASONING: dict[str, tuple[str | None, str | None, tuple[int, int], tuple[int, int]]] = {
    "openrouter-reasoning": (THOUGHT, CUT, (36, 37), (20, 20)),
    "deepseek-reasoner": (THOUGHT, CUT, (36, 37), (20, 20)),
    "gemini-thinking": (None, None, (36, 37), (20, 20)),
    "groq-qwen3-think": (THOUGHT, CUT, (0, 39), (0, 21)),
    "mistral-parts": (THOUGHT, CUT, (0, 37), (0, 20)),
    # Local servers and Anthropic (docs/providers.md, "Per provider"): usage without
    # completion_tokens_details, so no reasoning tokens are known; Anthropic returns no thought.
    "llamacpp-reasoning-content": (THOUGHT, CUT, (0, 37), (0, 20)),
    "llamacpp-deepseek-legacy": (THOUGHT, CUT, (0, 37), (0, 20)),
    "ollama-reasoning": (THOUGHT, CUT, (0, 37), (0, 20)),
    "lmstudio-reasoning-content": (THOUGHT, CUT, (0, 37), (0, 20)),
    "lmstudio-gpt-oss-reasoning": (THOUGHT, CUT, (0, 37), (0, 20)),
    "anthropic-hidden-thinking": (None, None, (0, 37), (0, 20)),
}


@pytest.mark.parametrize("name", list(REASONING))
def test_a_reasoning_model_answers_from_its_final_text_and_keeps_its_thoughts(
    tmp_path: Path, name: str
) -> None:
    shown, _, (reasoning, completion), _ = REASONING[name]
    config = _config("BSSC0")
    with Simulator(sims.REPLY_PERSONALITIES[name]()) as sim:
        result = _record(sim, tmp_path, config)
        assert sim.calls == 3 and sim.errors == []
    [traj] = result.trajectories
    assert traj.error is None
    # Blue (arm 0) every time: the thought's <Answer>red</Answer> is never read as the answer.
    assert _steps(traj) == [(0, True, "", shown, reasoning, "stop")] * 3
    # Reasoning tokens are output tokens: 36 thought + 1 answer word, whichever field said so.
    assert [s.completion_tokens for s in traj.steps] == [completion] * 3
    record = case_record(result)
    assert record["passed"] and record["reasoning_tokens"] == 3 * reasoning and record["cut_off_steps"] == 0
    replay = _replay(tmp_path, config)
    assert replay.replayed == 3 and _steps(replay.trajectories[0]) == _steps(traj)


@pytest.mark.parametrize("name", list(REASONING))
def test_a_reply_cut_off_while_reasoning_is_not_a_format_failure_and_says_how_to_raise_the_limit(
    tmp_path: Path, name: str
) -> None:
    _, shown, _, (reasoning, completion) = REASONING[name]
    config = _config("BNRN0")
    with Simulator(sims.REPLY_PERSONALITIES[name]()) as sim:
        result = _record(sim, tmp_path, config)
        assert [r["max_tokens"] for r in sim.requests] == [20] * 3
    [traj] = result.trajectories
    assert traj.error is None
    assert _steps(traj) == [(None, False, "reasoning-cut-off", shown, reasoning, "length")] * 3
    assert [s.completion_tokens for s in traj.steps] == [completion] * 3
    record = case_record(result)
    assert record["cut_off_steps"] == 3 and record["errors"] == []
    [failure] = record["failures"]
    assert failure.startswith("format compliance 0.00 < 0.90 (95% CI [0.00, 0.56]) on 3 steps; ")
    assert (
        "3 of 3 replies ran out of tokens before a valid answer (finish_reason 'length', 3 of them "
        in failure
    )
    assert (
        "still reasoning): they could not answer in the budget, which is not answering in the wrong "
        in failure
    )
    assert "raise the token limit: --request-profile reasoning_allowance=N" in failure
    row = summary_row(record)
    assert row["cut_off_rate"] == 1.0 and row["format_compliance"] == 0.0
    replay = _replay(tmp_path, config)
    assert _steps(replay.trajectories[0]) == _steps(traj)


def test_deepseek_r1_with_only_a_closing_think_tag_answers_after_it(tmp_path: Path) -> None:
    """DeepSeek-R1's chat template opens <think> in the prompt: the reply holds only </think>."""
    config = _config("BSSC0", horizon=2)
    with Simulator(sims.think_in_content(opened=False)) as sim:
        result = _record(sim, tmp_path, config)
    [traj] = result.trajectories
    assert _steps(traj) == [(0, True, "", THOUGHT, 0, "stop")] * 2
    assert traj.steps[0].raw == f"{THOUGHT}\n</think>\n\n<Answer>blue</Answer>"


def test_llamacpp_deepseek_legacy_sends_the_thought_twice_and_it_is_kept_once(tmp_path: Path) -> None:
    """--reasoning-format deepseek-legacy: <think> in the content and reasoning_content both."""
    config = _config("BSSC0", horizon=1)
    with Simulator(sims.llamacpp_reasoning(legacy=True)) as sim:
        result = _record(sim, tmp_path, config)
    [step] = result.trajectories[0].steps
    assert (step.arm, step.reasoning, step.raw) == (
        0,
        THOUGHT,
        f"<think>{THOUGHT}</think><Answer>blue</Answer>",
    )
    assert _steps(_replay(tmp_path, config).trajectories[0]) == _steps(result.trajectories[0])


def test_a_refusal_keeps_its_text(tmp_path: Path) -> None:
    """OpenAI's ``message.refusal`` (content null) is kept in steps.jsonl, not a raw null."""
    refusal = SimReply(None, message_extra={"refusal": "I can't help with that."})
    with Simulator(scripted([refusal])) as sim:
        result = _record(sim, tmp_path, _config("BNRN0", horizon=1))
    [step] = result.trajectories[0].steps
    assert (step.valid, step.reason, step.raw) == (False, "refusal", "[refusal] I can't help with that.")


# ---------------------------------------------------------------------------- tokens and cost


def _prompt_words(sim: Simulator) -> list[int]:
    return [sum(len(str(m["content"]).split()) for m in r["messages"]) for r in sim.requests]


@pytest.mark.parametrize("byok", [False, True], ids=["credits", "byok"])
def test_the_report_and_the_budget_charge_the_same_provider_cost(tmp_path: Path, byok: bool) -> None:
    """OpenRouter's usage.cost, plus cost_details.upstream_inference_cost for a BYOK request (cost
    is then only the 5 % fee): the report's cost column and --max-cost's ledger agree exactly,
    and a price table does not override what the provider said."""
    config = _config("BSSC0")
    budget = Budget(10.0, Budget.create_ledger(tmp_path), {"sim/p": Price(prompt=1000.0, completion=1000.0)})
    with Simulator(sims.openrouter_reasoning(byok=byok)) as sim:
        result = _record(sim, tmp_path, config, budget=budget)
        words = _prompt_words(sim)
    charge = [(w + 37) * 1e-6 for w in words]
    expected = [c * 0.05 + c if byok else c for c in charge]
    assert [s.cost for s in result.trajectories[0].steps] == pytest.approx(expected, rel=1e-12)
    row = summary_row(case_record(result), budget.prices)
    assert row["cost_usd"] == pytest.approx(sum(expected), rel=1e-12)
    assert budget.state()["spent"] == pytest.approx(row["cost_usd"], rel=1e-12)


def test_gemini_thoughts_count_as_billed_output_tokens_at_the_price(tmp_path: Path) -> None:
    """No reported cost: tokens x price, the thoughts outside completion_tokens included."""
    price = Price(prompt=1.0, completion=10.0)
    budget = Budget(10.0, Budget.create_ledger(tmp_path), {"sim/p": price})
    with Simulator(sims.gemini_thinking()) as sim:
        result = _record(sim, tmp_path, _config("BSSC0", horizon=2), budget=budget)
        words = _prompt_words(sim)
    steps = result.trajectories[0].steps
    assert [(s.prompt_tokens, s.completion_tokens, s.reasoning_tokens, s.cost) for s in steps] == [
        (w, 37, 36, None) for w in words
    ]
    expected = sum(w * 1.0 + 37 * 10.0 for w in words) / 1e6
    row = summary_row(case_record(result), budget.prices)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert budget.state()["spent"] == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------- errors as errors

ERROR_KINDS = ("finish_reason", "choice", "top-level")


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_an_error_inside_a_200_is_retried_and_never_recorded(tmp_path: Path, kind: str) -> None:
    config = _config("BNRN0", horizon=2)
    # Step 2's first answer carries the error; its retry succeeds.
    with Simulator(sims.error_inside_200(kind, after=1, times=1)) as sim:
        result = _record(sim, tmp_path, config)
        assert sim.calls == 3 and sim.requests[1] == sim.requests[2]
    [traj] = result.trajectories
    assert traj.error is None and [(s.arm, s.valid) for s in traj.steps] == [(0, True), (0, True)]
    text = _cassette_text(tmp_path)
    assert json.loads(text)["interactions"].__len__() == 2
    assert "Provider returned error" not in text and '"error"' not in text
    assert _replay(tmp_path, config).replayed == 2


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_an_error_inside_a_200_that_persists_errors_the_episode(tmp_path: Path, kind: str) -> None:
    config = _config("BNRN0", horizon=2)
    with Simulator(sims.error_inside_200(kind, after=1)) as sim:
        result = _record(sim, tmp_path, config)
        assert sim.calls == 3
        url = f"{sim.base_url}/chat/completions"
    [traj] = result.trajectories
    detail = "Provider returned error [provider said: 'upstream overloaded']"
    if kind == "finish_reason":  # the choice's error object is read before the finish reason
        pass
    assert traj.error == (
        f"step 2 of 2: model sim/p: HTTP 200 from {url} is not a chat completion (the provider reported "
        f"an error inside the answer: {detail})" + traj.error.split(detail + ")")[1]
    )
    assert traj.error.endswith(" after 1 retries")
    record = case_record(result)
    assert record["errors"] and record["failures"][0].startswith("1 of 1 episodes errored")
    assert list((tmp_path / "cassettes").rglob("[0-9]*.json")) == []


@pytest.mark.parametrize(
    ("provider", "status", "said"),
    [
        (
            "openai",
            429,
            "Error code: 429 - You exceeded your current quota, please check your plan and billing "
            "details. (insufficient_quota)",
        ),
        (
            "openrouter",
            402,
            "Error code: 402 - Insufficient credits. Add more using https://openrouter.ai/credits",
        ),
    ],
)
def test_out_of_credits_is_not_retried_keeps_complete_episodes_and_says_what_to_do(
    tmp_path: Path, provider: str, status: int, said: str
) -> None:
    config = _config("BNRN0", horizon=2, episodes=2)
    # Episode 0 completes; episode 1's first request finds the account empty.
    with Simulator(sims.out_of_credits(provider, after=2)) as sim:
        result = _record(sim, tmp_path, config, max_retries=2)
        assert sim.calls == 3  # no retry: it cannot succeed
        url = f"{sim.base_url}/chat/completions"
    ok, empty = result.trajectories
    assert ok.error is None
    assert empty.error == (
        f"step 1 of 2: model sim/p: HTTP {status} from {url} (not retried): out of credits: {said}. "
        "No retry can succeed: add credits to the account behind the key (or raise the key's credit "
        "limit), then run again with --record-mode=once: complete episodes are kept and only the "
        "missing ones are recorded"
    )
    assert [p.name for p in (tmp_path / "cassettes").rglob("[0-9]*.json")] == ["000.json"]


def test_a_free_tier_daily_cap_stops_the_run_at_once_and_says_when_it_resets(tmp_path: Path) -> None:
    config = _config("BNRN0", horizon=2, episodes=3)
    reset_ms = 4_102_444_800_000  # 2100-01-01 00:00 UTC
    with Simulator(sims.daily_cap(reset_ms, after=2)) as sim:
        result = _record(sim, tmp_path, config, max_retries=2)
        # Episode 0 (2 requests), one 429 for episode 1 (not retried), nothing for episode 2.
        assert sim.calls == 3
        # Another case of the same model in the same session sends nothing either.
        again = _record(sim, tmp_path / "again", _config("BSSC0", horizon=1))
        assert sim.calls == 3
        url = f"{sim.base_url}/chat/completions"
        host = sim.base_url.rsplit("/v1", 1)[0]
    done, capped, unsent = result.trajectories
    assert done.error is None
    advice = (
        "The daily request cap is used up; it resets at 2100-01-01 00:00 UTC. The run sends no more "
        "requests for this model to this endpoint: complete episodes are kept, and --record-mode=once "
        "after the reset records only the missing ones (or use a paid model, or add credits to raise "
        "the cap)."
    )
    assert capped.error == (
        f"step 1 of 2: model sim/p: HTTP 429 from {url} (not retried): Error code: 429 - Rate limit "
        "exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day. " + advice
    )
    unsent_error = f"request not sent: {host} answered an earlier request for sim/p with HTTP 429, " + advice
    assert unsent.error == f"step 1 of 2: {unsent_error}"
    assert again.trajectories[0].error == f"step 1 of 1: {unsent_error}"
    assert [p.name for p in (tmp_path / "cassettes").rglob("[0-9]*.json")] == ["000.json"]


def test_a_moderation_refusal_shows_the_providers_reason(tmp_path: Path) -> None:
    with Simulator(sims.moderation_403()) as sim:
        result = _record(sim, tmp_path, _config("BNRN0", horizon=1))
        assert sim.calls == 1
        url = f"{sim.base_url}/chat/completions"
    assert result.trajectories[0].error == (
        f"step 1 of 1: model sim/p: HTTP 403 from {url} (not retried): Error code: 403 - sim/moderated "
        'requires moderation on OpenRouter. Your input was flagged for "violence" [flagged for violence; '
        "flagged input 'You are in a room with five buttons...'; provider Sim; model sim/moderated]. The "
        "provider's moderation refused this prompt: the bandit prompt cannot be changed to pass it, so "
        "choose another provider or model"
    )


def test_a_422_whose_message_is_an_object_shows_the_providers_detail(tmp_path: Path) -> None:
    with Simulator(sims.mistral_422()) as sim:
        result = _record(sim, tmp_path, _config("BNRN0", horizon=1))
        assert sim.calls == 1
        url = f"{sim.base_url}/chat/completions"
    assert result.trajectories[0].error == (
        f"step 1 of 1: model sim/p: HTTP 422 from {url} (not retried): Error code: 422 - body.seed: "
        "Extra inputs are not permitted (invalid_request_error). "
        # The refused field names the request-profile setting that fixes it (19a, point 4).
        "The request profile can change what is sent: --request-profile 'seed=random_seed' (or the same "
        'keys in [tool.bandit_bench.models."MODEL"] in pyproject.toml; seed=random_seed: Mistral\'s name '
        "for it; or seed=omit)"
    )


def test_a_paid_malformed_200_is_not_retried_and_is_charged(tmp_path: Path) -> None:
    """Content that is neither text nor documented parts, with usage saying it was paid."""
    body = {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": {"answer": "blue"}}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "cost": 0.25},
    }
    budget = Budget(10.0, Budget.create_ledger(tmp_path), {"sim/p": Price(prompt=1.0, completion=1.0)})
    with Simulator(scripted([SimReply(body=body, headers=FAST)] * 3)) as sim:
        result = _record(sim, tmp_path, _config("BNRN0", horizon=1), budget=budget, max_retries=2)
        assert sim.calls == 1
    error = result.trajectories[0].error
    assert error is not None and "yet it was billed (3 output tokens): not retried" in error
    assert budget.state()["spent"] == pytest.approx(0.25)


def test_lists_of_parts_are_recorded_and_replayed(tmp_path: Path) -> None:
    """Content as a list of parts is a documented shape now: recorded, not retried as malformed."""
    config = _config("BSSC0", horizon=2)
    with Simulator(sims.mistral_parts()) as sim:
        _record(sim, tmp_path, config)
        assert sim.calls == 2
    text = _cassette_text(tmp_path)
    assert '\\"type\\": \\"thinking\\"' in text
    assert [s.arm for s in _replay(tmp_path, config).trajectories[0].steps] == [0, 0]


def test_the_report_keeps_reasoning_per_step_and_separates_cut_off_from_format(tmp_path: Path) -> None:
    from bandit_bench.reporting.writer import write_reports

    config = _config("BNRN0", horizon=2)
    with Simulator(sims.openrouter_reasoning()) as sim:
        result = _record(sim, tmp_path, config)
    folder = tmp_path / "reports"
    write_reports([case_record(result)], folder)
    steps = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]
    assert [
        (s["valid"], s["reason"], s["finish_reason"], s["reasoning"], s["reasoning_tokens"], s["raw"])
        for s in steps
    ] == [(False, "reasoning-cut-off", "length", CUT, 20, "")] * 2
    [row] = json.loads((folder / "summary.json").read_text())["rows"]
    assert (row["format_compliance"], row["cut_off_rate"], row["reasoning_tokens"]) == (0.0, 1.0, 40)
    note = (
        "sim/p x prov-BNRN0: 1.00 of the steps ran out of tokens before a valid answer (finish_reason "
        "`length`): could not answer in the budget, not a wrong format"
    )
    assert f"- {note}" in (folder / "report.md").read_text()
    assert note.replace("`", "") in (folder / "report.html").read_text()
