"""A chat completion's decoded JSON -> the answer text, the model's thoughts, its tokens and cost.

Pure functions over plain JSON values (no openai, no network), used by the agent to read a reply,
by the cassette transport to decide whether a 200 may be recorded, and by the report and the
``--max-cost`` budget to price a reply by one rule (:func:`cost_usd`).

The shapes read here, each as its provider documents it:

* ``message.content`` as text, or as a list of parts: ``{"type": "text", "text": ...}``,
  ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}], "closed": bool}`` and
  ``{"type": "reference", ...}`` (Mistral's Magistral -2507 and later, "Native reasoning":
  https://docs.mistral.ai/capabilities/reasoning/native).
* ``message.reasoning`` (OpenRouter, "Reasoning Tokens": https://openrouter.ai/docs/use-cases/reasoning-tokens;
  Groq with ``reasoning_format=parsed``: https://console.groq.com/docs/reasoning) and
  ``message.reasoning_content`` (DeepSeek, "Reasoning Model (deepseek-reasoner)":
  https://api-docs.deepseek.com/guides/reasoning_model; vLLM's reasoning parsers until
  ``reasoning`` replaced it, vllm-project/vllm#27752 and #33402; llama.cpp's
  server by default, ``--reasoning-format auto``: ggml-org/llama.cpp common/common.h; LM Studio
  0.3.9+ with "separate reasoning_content" on, https://lmstudio.ai/docs/app/api-changelog).
  ``message.reasoning`` is also Ollama's OpenAI layer (ollama/ollama openai/openai.go, v0.11.1+)
  and LM Studio's for gpt-oss (0.3.23+). A thought the token limit cut stays in these fields
  (llama.cpp keeps an unclosed thought as reasoning), with ``finish_reason: "length"``.
* ``<think>...</think>`` inside the content (Groq's default ``reasoning_format=raw`` for Qwen3,
  Together's DeepSeek-R1, Magistral -2506, llama.cpp with ``--reasoning-format none`` or both
  ways with ``deepseek-legacy``, older Ollama and LM Studio, any server without a reasoning
  parser). DeepSeek-R1's chat template opens ``<think>`` in the prompt, so a reply may hold
  only the closing tag.
* ``message.refusal`` (OpenAI: the model declined; the content is then null).
* ``usage``: ``completion_tokens`` counts reasoning tokens on OpenAI and OpenRouter, with
  ``completion_tokens_details.reasoning_tokens`` as the breakdown
  (https://openrouter.ai/docs/use-cases/usage-accounting); Gemini's OpenAI-compatible endpoint
  leaves its thoughts out of ``completion_tokens`` but counts them in ``total_tokens`` (Gemini's
  usage metadata: ``thoughtsTokenCount`` is outside ``candidatesTokenCount``, inside
  ``totalTokenCount``, https://ai.google.dev/api/generate-content#UsageMetadata; mozilla-ai/any-llm#1290),
  so the difference is output the provider bills. llama.cpp, Ollama and Anthropic's OpenAI layer
  itemise nothing (``completion_tokens`` holds the thoughts; reasoning tokens stay 0: unknown).
  ``usage.cost`` is OpenRouter's charge; for a BYOK
  request (``is_byok: true``) it is only OpenRouter's fee and the provider's own charge is
  ``cost_details.upstream_inference_cost`` (non-BYOK replies repeat ``cost`` there, so it is
  added only for BYOK).
* Errors inside a 200: a top-level ``error`` object, ``choices[0].error`` or
  ``finish_reason: "error"`` (OpenRouter, "Errors and Debugging": "any error occurred while the
  LLM is producing the output will be emitted in the response body",
  https://openrouter.ai/docs/api/reference/errors-and-debugging).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Price",
    "Reply",
    "Usage",
    "completion_error",
    "content_problem",
    "cost_usd",
    "daily_cap_reset",
    "describe_error_body",
    "out_of_credits",
    "read_reply",
    "read_usage",
    "should_not_retry",
    "split_thinking",
    "cap_advice",
]


@dataclass(frozen=True)
class Price:
    """USD per million tokens (``[tool.bandit_bench.prices]``)."""

    prompt: float
    completion: float


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    # Every output token the provider bills, reasoning included (Gemini's thoughts too).
    completion_tokens: int = 0
    # Of which reasoning (hidden or shown); 0 when the provider does not say.
    reasoning_tokens: int = 0
    # What the provider says the request cost (OpenRouter), BYOK upstream cost included.
    provider_cost: float | None = None


@dataclass(frozen=True)
class Reply:
    """One reply, read. ``text`` is the final answer text: the only text an answer is parsed from."""

    text: str | None
    # The reply as it came, for steps.jsonl: the content (a list of parts as its text parts), a
    # tool call or a refusal described in brackets.
    raw: str | None
    reasoning: str | None
    # The reply ended inside a thought that was never closed: it holds no answer.
    unfinished_thought: bool
    refusal: str | None
    finish_reason: str | None
    usage: Usage


def cost_usd(
    provider_cost: float | None, prompt_tokens: float, completion_tokens: float, price: Price | None
) -> float | None:
    """The one cost rule, for the report's cost column and for ``--max-cost`` alike.

    What the provider reported when it did, else the tokens (reasoning included) at ``price``;
    None when neither is known.
    """
    if provider_cost is not None:
        return provider_cost
    if price is None:
        return None
    return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1e6


# ---------------------------------------------------------------------------- content


_THINK_RE = re.compile(r"<(/?)think>", re.IGNORECASE)


def split_thinking(text: str) -> tuple[str, str | None, bool]:
    """(answer text, thought text or None, whether the text ends inside an unclosed ``<think>``).

    Text outside ``<think>...</think>`` is the answer; text before a closing tag that has no
    opening one is a thought too (DeepSeek-R1's template opens it in the prompt). Text with no
    such tag comes back unchanged.
    """
    if "think>" not in text.lower():
        return text, None, False
    answer: list[str] = []
    thought: list[str] = []
    inside = False
    last = 0
    for m in _THINK_RE.finditer(text):
        segment = text[last : m.start()]
        if m.group(1):
            thought.append(segment)
            inside = False
        else:
            (thought if inside else answer).append(segment)
            inside = True
        last = m.end()
    (thought if inside else answer).append(text[last:])
    thoughts = "\n".join(t.strip() for t in thought if t.strip())
    return "".join(answer).strip(), thoughts or None, inside


_TEXT_PART_TYPES = ("text",)
_THINKING_PART_TYPES = ("thinking",)
# Documented parts that carry neither answer nor thought (Mistral's source references).
_IGNORED_PART_TYPES = ("reference",)


def _thinking_text(value: Any) -> str | None:
    """A thinking part's text: a string, or a list of text parts (Mistral's ThinkChunk)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value
    ):
        return "".join(p["text"] for p in value)
    return None


def content_problem(content: Any) -> str | None:
    """Why ``message.content`` is not a shape bandit-bench reads (None: text, null or documented parts)."""
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"choices[0].message.content is not text (got {_show(content)}), nor a list of parts"
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
            continue
        if kind in _THINKING_PART_TYPES and _thinking_text(part.get("thinking")) is not None:
            continue
        if kind in _IGNORED_PART_TYPES:
            continue
        return (
            f"choices[0].message.content[{i}] is not a part bandit-bench reads (text, thinking or "
            f"reference; got {_show(part)})"
        )
    return None


def _read_content(content: Any) -> tuple[str | None, str | None, bool]:
    """(text, thinking from parts, a thinking part left open); content already checked."""
    if content is None or isinstance(content, str):
        return content, None, False
    texts: list[str] = []
    thoughts: list[str] = []
    open_thought = False
    for part in content:
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            texts.append(part["text"])
        elif kind in _THINKING_PART_TYPES:
            thoughts.append(_thinking_text(part["thinking"]) or "")
            # Magistral marks a thinking chunk the model never finished with "closed": false.
            open_thought = part.get("closed") is False
    return "".join(texts), "\n".join(t for t in thoughts if t) or None, open_thought and not "".join(texts)


def read_reply(data: Mapping[str, Any]) -> Reply:
    """Read a chat completion (decoded JSON). Raises ``ValueError`` on a shape it cannot read."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices[0] object in the completion")
    choice = choices[0]
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise ValueError("choices[0].message is not an object")
    problem = content_problem(message.get("content"))
    if problem is not None:
        raise ValueError(problem)
    text, part_thoughts, open_part = _read_content(message.get("content"))
    field_thoughts = [
        message[name]
        for name in ("reasoning_content", "reasoning")
        if isinstance(message.get(name), str) and message[name].strip()
    ]
    tag_thought = None
    unfinished = open_part
    if text is not None:
        text = _valid_unicode(text)
        answer, tag_thought, inside = split_thinking(text)
        unfinished = unfinished or inside
        text = answer if tag_thought is not None or inside else text
    thoughts: list[str] = []
    for t in (*field_thoughts, part_thoughts, tag_thought):
        if t and t not in thoughts:  # OpenRouter may send the same text in two fields
            thoughts.append(t)
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else None
    raw = _raw(message, refusal)
    finish = choice.get("finish_reason")
    return Reply(
        text=text,
        raw=raw,
        reasoning=_valid_unicode("\n\n".join(thoughts)) if thoughts else None,
        unfinished_thought=unfinished,
        refusal=refusal,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=read_usage(data.get("usage")),
    )


def _raw(message: Mapping[str, Any], refusal: str | None) -> str | None:
    content = message.get("content")
    if isinstance(content, str):
        return _valid_unicode(content)
    if isinstance(content, list):
        text = "".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text")
        if text:
            return _valid_unicode(text)
    if refusal:
        return _valid_unicode(f"[refusal] {refusal}")
    calls = message.get("tool_calls")
    if calls:
        parts = []
        for c in calls:
            fn = (c.get("function") or {}) if isinstance(c, dict) else {}
            parts.append(f"{fn.get('name')}({fn.get('arguments')})")
        return "[tool call] " + "; ".join(parts)
    return None


def _valid_unicode(text: str) -> str:
    """Lone surrogates (a reply cut inside an emoji by a UTF-16 server) become U+FFFD.

    JSON carries them as escapes, but no UTF-8 file can hold them: left as they are, they would
    crash the report writer at the end of a paid run.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# ---------------------------------------------------------------------------- usage and cost


# The largest count or amount a reply may report: every whole number up to it is exact as a
# float, which the report sums into (10**346 tokens overflowed that sum at the session's end).
MAX_USAGE_NUMBER = 2**53


def is_count(value: Any) -> bool:
    """A token count a reply may report: absent, or a whole number in [0, MAX_USAGE_NUMBER]."""
    return value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_USAGE_NUMBER
    )


def is_amount(value: Any) -> bool:
    """A cost a reply may report: a finite number in [0, MAX_USAGE_NUMBER] (an int of 400 digits
    is compared as an int: ``math.isfinite`` would overflow converting it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return 0 <= value <= MAX_USAGE_NUMBER
    return math.isfinite(value) and 0 <= value <= MAX_USAGE_NUMBER


def _count(value: Any, name: str) -> int:
    if value is None:
        return 0
    if not is_count(value):
        raise ValueError(f"usage.{name} {_show(value)} is not a whole number in [0, {MAX_USAGE_NUMBER}]")
    return int(value)


def _money(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if not is_amount(value):
        raise ValueError(f"{name} {_show(value)} is not a finite number in [0, {MAX_USAGE_NUMBER}]")
    return float(value)


def read_usage(usage: Any) -> Usage:
    """Tokens (reasoning included) and the provider's cost; raises ``ValueError`` on nonsense."""
    if usage is None:
        return Usage()
    if not isinstance(usage, Mapping):
        raise ValueError(f"usage is not an object (got {_show(usage)})")
    prompt = _count(usage.get("prompt_tokens"), "prompt_tokens")
    completion = _count(usage.get("completion_tokens"), "completion_tokens")
    details = usage.get("completion_tokens_details")
    reasoning = 0
    if isinstance(details, Mapping):
        reasoning = _count(details.get("reasoning_tokens"), "completion_tokens_details.reasoning_tokens")
    total = _count(usage.get("total_tokens"), "total_tokens")
    if total > prompt + completion:
        # Gemini: thoughts are billed output that completion_tokens leaves out.
        hidden = total - prompt - completion
        completion += hidden
        reasoning = max(reasoning, hidden)
    cost = _money(usage.get("cost"), "usage.cost")
    cost_details = usage.get("cost_details")
    if cost is not None and usage.get("is_byok") is True and isinstance(cost_details, Mapping):
        upstream = _money(
            cost_details.get("upstream_inference_cost"), "usage.cost_details.upstream_inference_cost"
        )
        cost += upstream or 0.0
    return Usage(prompt, completion, min(reasoning, completion), cost)


# ---------------------------------------------------------------------------- errors


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"(a whole number of {len(str(abs(value)))} digits)"  # repr of a huge int is slow
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _message_text(message: Any) -> str:
    """An error message as text: a string, or an object (Mistral's 422 ``{"detail": [...]}``)."""
    if isinstance(message, str):
        return message
    if isinstance(message, Mapping) and isinstance(message.get("detail"), list):
        return "; ".join(_detail_item(d) for d in message["detail"])
    if isinstance(message, list):
        return "; ".join(_detail_item(d) for d in message)
    return json.dumps(message, ensure_ascii=False, default=str)


def _detail_item(item: Any) -> str:
    """A pydantic-style validation item: ``body.seed: Extra inputs are not permitted``."""
    if isinstance(item, Mapping) and "msg" in item:
        loc = item.get("loc")
        where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
        return f"{where}: {item['msg']}" if where else str(item["msg"])
    return json.dumps(item, ensure_ascii=False, default=str)


def _metadata_text(metadata: Any) -> str:
    """OpenRouter's error metadata: moderation reasons and flagged text, or the provider's raw error."""
    if not isinstance(metadata, Mapping):
        return ""
    parts = []
    reasons = metadata.get("reasons")
    if isinstance(reasons, list) and reasons:
        parts.append("flagged for " + ", ".join(str(r) for r in reasons))
    flagged = metadata.get("flagged_input")
    if isinstance(flagged, str) and flagged:
        parts.append(f"flagged input {_show(flagged, 120)}")
    for name in ("provider_name", "model_slug"):
        if isinstance(metadata.get(name), str):
            parts.append(f"{name.split('_')[0]} {metadata[name]}")
    raw = metadata.get("raw")
    if raw is not None:
        parts.append(f"provider said: {_show(raw if isinstance(raw, str) else json.dumps(raw), 300)}")
    return "; ".join(parts)


def describe_error_body(body: Any) -> str:
    """The provider's own words from an error body, whatever its shape ("" when none).

    ``{"error": {"message", "code", "type", "metadata"}}`` (OpenAI, OpenRouter), Mistral's
    ``{"object": "error", "message": {"detail": [...]}}`` and FastAPI's ``{"detail": [...]}``.
    """
    if isinstance(body, str):
        return body.strip()
    if not isinstance(body, Mapping):
        return ""
    error = body.get("error", body)
    if isinstance(error, str):
        return error
    if not isinstance(error, Mapping):
        return _message_text(error)
    parts = []
    message = error.get("message", error.get("detail"))
    if message is not None:
        parts.append(_message_text(message))
    kinds = [str(error[k]) for k in ("type", "code") if isinstance(error.get(k), str)]
    if kinds:
        parts.append("(" + ", ".join(dict.fromkeys(kinds)) + ")")
    meta = _metadata_text(error.get("metadata"))
    if meta:
        parts.append(f"[{meta}]")
    return " ".join(parts)


def completion_error(data: Any) -> str | None:
    """The error a provider reported inside a 200 answer, described; None when there is none."""
    if not isinstance(data, Mapping):
        return None
    if isinstance(data.get("error"), (Mapping, str)) and data.get("error"):
        return describe_error_body({"error": data["error"]}) or "an error object"
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else None
    if choice is None:
        return None
    if choice.get("error"):
        return describe_error_body({"error": choice["error"]}) or "an error object in choices[0]"
    if choice.get("finish_reason") == "error":
        native = choice.get("native_finish_reason")
        return "finish_reason 'error'" + (f" (native: {native})" if isinstance(native, str) else "")
    return None


def _error_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        return {}
    error = body.get("error", body)
    return error if isinstance(error, Mapping) else {}


def out_of_credits(status: int, body: Any) -> bool:
    """A refusal no retry can fix: 402 (OpenRouter: "insufficient credits") or OpenAI's 429
    ``insufficient_quota`` ("You exceeded your current quota, please check your plan and billing
    details", https://platform.openai.com/docs/guides/error-codes)."""
    if status == 402:
        return True
    error = _error_object(body)
    return status == 429 and "insufficient_quota" in (str(error.get("code")), str(error.get("type")))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


# A 429 whose window resets further away than this is a daily cap, not a burst limit: waiting
# it out inside a run is pointless.
CAP_MIN_WAIT = 15 * 60.0


def daily_cap_reset(status: int, body: Any, headers: Mapping[str, str], now: float) -> float | None:
    """When a request cap that is used up resets (Unix seconds), or None when this is no such cap.

    OpenRouter's free models allow a fixed number of requests per UTC day; past it they answer
    429 with ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset`` in milliseconds since the
    epoch, as response headers and again in ``error.metadata.headers``
    (https://openrouter.ai/docs/api/reference/limits).
    """
    if status != 429:
        return None
    meta = _error_object(body).get("metadata")
    inner = meta.get("headers") if isinstance(meta, Mapping) else None
    sources = [headers, inner if isinstance(inner, Mapping) else {}]
    for source in sources:
        remaining = _header(source, "x-ratelimit-remaining")
        reset = _header(source, "x-ratelimit-reset")
        if remaining is None or reset is None:
            continue
        try:
            left, at = float(remaining), float(reset)
        except ValueError:
            continue
        if left > 0 or not math.isfinite(at):
            continue
        at = at / 1000.0 if at > 1e11 else at  # milliseconds (OpenRouter) or seconds
        if at - now >= CAP_MIN_WAIT:
            return at
    return None


def cap_advice(reset: float) -> str:
    """What to do about a used-up daily cap, in the same words for every episode it stops."""
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(reset, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"The daily request cap is used up; it resets at {when}. The run sends no more requests "
        "for this model to this endpoint: complete episodes are kept, and --record-mode=once after "
        "the reset records only the missing ones (or use a paid model, or add credits to raise the cap)."
    )


def should_not_retry(status: int, content: bytes, headers: Mapping[str, str], now: float) -> bool:
    """Whether a failed answer can only fail again: out of credits, or a daily cap used up."""
    if status not in (402, 429):
        return False
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    return out_of_credits(status, body) or daily_cap_reset(status, body, headers, now) is not None
