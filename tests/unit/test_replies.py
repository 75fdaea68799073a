"""core/replies.py on hand-made bodies: the documented shapes, one rule each."""

from __future__ import annotations

import pytest

from bandit_bench.core.parsing import parse_completion_reply
from bandit_bench.core.replies import (
    CAP_MIN_WAIT,
    Price,
    completion_error,
    content_problem,
    cost_usd,
    daily_cap_reset,
    describe_error_body,
    out_of_credits,
    read_reply,
    read_usage,
    should_not_retry,
    split_thinking,
)

NAMES = ("blue", "green", "red")


def _body(message: dict, finish: str | None = "stop", usage: dict | None = None) -> dict:
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<Answer>red</Answer>", ("<Answer>red</Answer>", None, False)),
        (
            "<think>hmm <Answer>red</Answer></think>\n<Answer>blue</Answer>",
            ("<Answer>blue</Answer>", "hmm <Answer>red</Answer>", False),
        ),
        # DeepSeek-R1: the template opened <think> in the prompt.
        ("hmm</think><Answer>blue</Answer>", ("<Answer>blue</Answer>", "hmm", False)),
        # Cut off inside the thought: no answer text at all.
        ("<think>maybe <Answer>red</Answer> but", ("", "maybe <Answer>red</Answer> but", True)),
        ("<THINK>a</THINK>b", ("b", "a", False)),
        ("<think>a</think>b<think>c", ("b", "a\nc", True)),
    ],
)
def test_split_thinking(text: str, expected: tuple) -> None:
    assert split_thinking(text) == expected


def test_an_answer_quoted_inside_an_unfinished_thought_is_never_taken() -> None:
    reply = read_reply(_body({"content": "<think>I pick <Answer>red</Answer>"}, finish="length"))
    parsed = parse_completion_reply(reply, NAMES)
    assert (parsed.valid, parsed.reason) == (False, "reasoning-cut-off")
    # The same cut, but with finish_reason "stop" (a stop sequence): still no answer.
    reply = read_reply(_body({"content": "<think>I pick <Answer>red</Answer>"}))
    assert parse_completion_reply(reply, NAMES).reason == "reasoning-cut-off"


def test_reasoning_fields_parts_and_refusal() -> None:
    reply = read_reply(
        _body({"content": "<Answer>green</Answer>", "reasoning": "r", "reasoning_content": "r"})
    )
    assert (reply.text, reply.reasoning) == ("<Answer>green</Answer>", "r")  # one text, not twice
    parts = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "t1"}, {"type": "text", "text": "t2"}]},
        {"type": "reference", "reference_ids": [1]},
        {"type": "text", "text": "<Answer>red</Answer>"},
    ]
    reply = read_reply(_body({"content": parts}))
    assert (reply.text, reply.reasoning, reply.raw) == (
        "<Answer>red</Answer>",
        "t1t2",
        "<Answer>red</Answer>",
    )
    assert parse_completion_reply(reply, NAMES).arm == 2
    # Magistral marks a thinking chunk it never finished.
    open_part = [{"type": "thinking", "thinking": "t", "closed": False}]
    assert (
        parse_completion_reply(read_reply(_body({"content": open_part})), NAMES).reason == "reasoning-cut-off"
    )
    refused = read_reply(_body({"content": None, "refusal": "no"}))
    assert (refused.raw, parse_completion_reply(refused, NAMES).reason) == ("[refusal] no", "refusal")
    # Empty content, finish "length", nothing said of reasoning: empty, as before.
    assert (
        parse_completion_reply(read_reply(_body({"content": ""}, finish="length")), NAMES).reason == "empty"
    )


def _usage(completion: int) -> dict:
    return {"prompt_tokens": 5, "completion_tokens": completion, "total_tokens": 5 + completion}


@pytest.mark.parametrize(
    ("message", "finish", "completion", "reason"),
    [
        # Anthropic's OpenAI layer with extended thinking: no thought returned, no
        # completion_tokens_details, but the thinking billed in completion_tokens.
        ({"content": ""}, "length", 20, "reasoning-cut-off"),
        ({"content": None}, "length", 20, "reasoning-cut-off"),
        # Nothing billed: an empty reply, as before.
        ({"content": ""}, "length", 0, "empty"),
        # Something written, even blank: what was written is judged, not a hidden thought.
        ({"content": "   "}, "length", 20, "empty"),
        ({"content": "<Answer>re"}, "length", 20, "truncated"),
        # Not cut off by the limit: an empty reply.
        ({"content": ""}, "stop", 20, "empty"),
        # A refusal is not a hidden thought.
        ({"content": None, "refusal": "no"}, "length", 20, "refusal"),
    ],
)
def test_billed_tokens_with_nothing_written_are_a_hidden_thought_cut_off(
    message: dict, finish: str, completion: int, reason: str
) -> None:
    reply = read_reply(_body(message, finish=finish, usage=_usage(completion)))
    assert parse_completion_reply(reply, NAMES).reason == reason


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("text", None),
        (None, None),
        ([{"type": "text", "text": "x"}], None),
        (42, "choices[0].message.content is not text (got 42), nor a list of parts"),
        (
            [{"type": "image_url", "image_url": {}}],
            "choices[0].message.content[0] is not a part bandit-bench reads",
        ),
        ([{"type": "text", "text": 3}], "choices[0].message.content[0] is not a part"),
    ],
)
def test_content_shapes(content: object, problem: str | None) -> None:
    got = content_problem(content)
    assert got == problem if problem is None else got is not None and got.startswith(problem)


def test_usage_reasoning_tokens_gemini_total_and_byok_cost() -> None:
    # OpenAI/OpenRouter: reasoning inside completion_tokens.
    u = read_usage({"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60,
                    "completion_tokens_details": {"reasoning_tokens": 40}})  # fmt: skip
    assert (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens, u.provider_cost) == (10, 50, 40, None)
    # Gemini: thoughts only in total_tokens.
    u = read_usage({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 95})
    assert (u.completion_tokens, u.reasoning_tokens) == (85, 80)
    # OpenRouter without BYOK repeats cost as upstream_inference_cost: not added twice.
    u = read_usage({"cost": 0.5, "is_byok": False, "cost_details": {"upstream_inference_cost": 0.5}})
    assert u.provider_cost == 0.5
    u = read_usage({"cost": 0.05, "is_byok": True, "cost_details": {"upstream_inference_cost": 1.0}})
    assert u.provider_cost == pytest.approx(1.05)
    with pytest.raises(ValueError, match="total_tokens"):
        read_usage({"total_tokens": -1})


def test_one_cost_rule() -> None:
    price = Price(prompt=1.0, completion=2.0)
    assert cost_usd(0.3, 1_000_000, 1_000_000, price) == 0.3
    assert cost_usd(None, 1_000_000, 1_000_000, price) == 3.0
    assert cost_usd(None, 10, 10, None) is None


def test_errors_inside_a_200() -> None:
    error = {"code": 502, "message": "Provider returned error", "metadata": {"raw": "boom"}}
    assert completion_error({"error": error}) == "Provider returned error [provider said: 'boom']"
    assert completion_error(_body({"content": ""}) | {"choices": [{"error": error}]}) is not None
    only_reason = _body({"content": ""}, finish="error")
    only_reason["choices"][0]["native_finish_reason"] = "upstream_error"
    assert completion_error(only_reason) == "finish_reason 'error' (native: upstream_error)"
    assert completion_error(_body({"content": "x"})) is None


def test_error_bodies_in_the_providers_words() -> None:
    mistral = {"object": "error", "message": {"detail": [{"loc": ["body", "seed"], "msg": "Extra inputs"}]},
               "type": "invalid_request_error"}  # fmt: skip
    assert describe_error_body(mistral) == "body.seed: Extra inputs (invalid_request_error)"
    assert describe_error_body({"detail": [{"loc": ["body", "x"], "msg": "bad"}]}) == "body.x: bad"
    openai = {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}
    assert describe_error_body(openai) == "quota (insufficient_quota)"
    assert (
        out_of_credits(429, openai) and out_of_credits(402, None) and not out_of_credits(429, {"error": {}})
    )


def test_a_daily_cap_is_a_429_with_nothing_left_until_a_reset_far_away() -> None:
    now = 1_764_000_000.0  # late 2025, in seconds
    far_ms = str(int((now + 6 * 3600) * 1000))
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": far_ms}
    assert daily_cap_reset(429, None, headers, now) == pytest.approx(now + 6 * 3600)
    # Seconds work too; in the body's metadata.headers too (OpenRouter repeats them there).
    body = {
        "error": {
            "metadata": {"headers": {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(now + 7200)}}
        }
    }
    assert daily_cap_reset(429, body, {}, now) == now + 7200
    # A reset within minutes is an ordinary rate limit: retried.
    soon = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(now + CAP_MIN_WAIT - 1)}
    assert daily_cap_reset(429, None, soon, now) is None
    assert daily_cap_reset(429, None, {**headers, "X-RateLimit-Remaining": "3"}, now) is None
    assert should_not_retry(429, b"{}", headers, now) and not should_not_retry(429, b"{}", soon, now)
    assert not should_not_retry(500, b"{}", headers, now)
