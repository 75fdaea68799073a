"""A local OpenAI-compatible simulator: a real HTTP server on 127.0.0.1 with scripted replies.

It stands in for a hosted API in tests and benchmarks (none is reachable from CI) and is named
as what it is: cassettes it produces live under ``sim/...`` model ids, never a provider's name.
Requests travel through the real openai client and real sockets; the policy decides the reply.

Policies see the request's JSON body and the call number and return a :class:`SimReply`: a
reply text, or a fault (HTTP status, a reset connection, a body that is not JSON, a 200 without
``choices``, a delay longer than the client's timeout).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class SimReply:
    content: str | None = None
    status: int = 200
    # "reset" closes the socket without answering; "not-json" and "no-choices" send a broken 200.
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"
    tool_call: bool = False
    # A hostile server: quote the request's Authorization header back in the reply's text and in
    # an ``X-Debug`` response header (as some debugging proxies do).
    echo_auth: bool = False
    # Send this JSON value as the whole 200 body instead of a chat completion (malformed shapes).
    body: Any = None
    # Send the body one byte at a time, this many seconds apart (a server that never stalls long
    # enough for a per-read timeout, yet never finishes).
    drip: float = 0.0
    # Provider shapes (see the personalities below): fields merged into the message (reasoning,
    # reasoning_content, refusal), into choices[0] (error, native_finish_reason) and into the
    # body (a top-level error); content as a list of parts; a usage block sent as given.
    message_extra: dict[str, Any] = field(default_factory=dict)
    choice_extra: dict[str, Any] = field(default_factory=dict)
    body_extra: dict[str, Any] = field(default_factory=dict)
    parts: list[Any] | None = None
    usage: dict[str, Any] | None = None
    # The whole JSON body of an error status (default: {"error": {"message", "code"}}).
    error_body: Any = None
    # Send these bytes as the whole 200 body, as they are (another encoding, gzip, an escaped
    # echo); ``headers`` say what they are (Content-Type, Content-Encoding).
    raw: bytes | None = None


Policy = Callable[[dict[str, Any], int], SimReply]

_NAMES_RE = re.compile(r"must be exactly one of ([^.]+?)\.|named ([^.]+?)\. When")


def arm_names_from_request(body: dict[str, Any]) -> list[str]:
    """The arm names a design's system prompt lists (buttons or advertisements); where the
    request profile folded the system prompt into the first user message, from there."""
    messages = body.get("messages", [])
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    if not system:
        system = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
    m = _NAMES_RE.search(system or "")
    if not m:
        return []
    return [n.strip() for n in (m.group(1) or m.group(2)).split(",")]


def always(index: int = 0) -> Policy:
    """Always answers the arm at ``index`` of the names listed in the prompt."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        names = arm_names_from_request(body)
        return SimReply(content=f"<Answer>{names[index % len(names)]}</Answer>" if names else "no names")

    return policy


def cycle() -> Policy:
    """Round-robin over the arms, by the number of rounds shown in the prompt."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        names = arm_names_from_request(body)
        user = body["messages"][-1]["content"]
        m = re.search(r"played (\d+) times|interacted with (\d+) users", user)
        played = int(next(g for g in m.groups() if g)) if m else call
        return SimReply(content=f"<Answer>{names[played % len(names)]}</Answer>")

    return policy


_RAW_LINE = re.compile(r"^(\w+) button, reward (\d)$", re.M)
_SUMMARY_LINE = re.compile(r"^(\w+) button: pressed (\d+) times(?: with average reward ([\d.]+))?$", re.M)


def greedy_reader() -> Policy:
    """Reads the buttons history the prompt shows (raw or summarized) and answers the arm with
    the largest average reward among the arms pressed so far, the first listed on a tie; with
    nothing pressed yet, the first arm. A scripted greedy agent: every decision is greedy."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        names = arm_names_from_request(body)
        user = body["messages"][-1]["content"]
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for name, reward in _RAW_LINE.findall(user):
            counts[name] = counts.get(name, 0) + 1
            sums[name] = sums.get(name, 0.0) + int(reward)
        for name, pressed, average in _SUMMARY_LINE.findall(user):
            if int(pressed) > 0:
                counts[name] = int(pressed)
                sums[name] = float(average) * int(pressed)
        pulled = [n for n in names if counts.get(n)]
        if not pulled:
            return SimReply(content=f"<Answer>{names[0]}</Answer>")
        best = max(pulled, key=lambda n: (sums[n] / counts[n], -names.index(n)))
        return SimReply(content=f"<Answer>{best}</Answer>")

    return policy


def scripted(replies: Sequence[SimReply | str]) -> Policy:
    """Replies in order; fails loudly when the script runs out (a test asked for more calls)."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        if call >= len(replies):
            raise RuntimeError(f"simulator script exhausted: call {call + 1} but only {len(replies)} replies")
        r = replies[call]
        return SimReply(content=r) if isinstance(r, str) else r

    return policy


# ---------------------------------------------------------------------------- provider personalities
#
# Each answers the way its provider documents (cited at each); tests/reliability/test_providers.py
# drives every one through the real openai client. Token counts are words, as everywhere in the
# simulator. A reasoning personality thinks THOUGHT (its words are its reasoning tokens) before it
# answers ``<Answer>{first arm}</Answer>``; the request's token limit (``max_completion_tokens``,
# else ``max_tokens``) covers thoughts and answer together, so a limit below their sum ends the
# reply inside the thought with ``finish_reason: "length"`` and no answer.

# 36 words; the first 20 (a no-chain-of-thought design's max_tokens) quote an answer tag that
# is not the model's answer.
THOUGHT = (
    "No button has paid yet. Maybe <Answer>red</Answer> is worth a try, but first let me count "
    "the rewards of each button again, since every one is as good as another so far and I should "
    "explore."
)


def _limit(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _words(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def _prompt_words(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))


def _word_usage(body: dict[str, Any], thought: str, answer: str, **details: Any) -> dict[str, Any]:
    """Usage with a word for a token, the thought counted in ``completion_tokens`` (as every
    provider below bills it), and ``details``' keys added as the provider sends them."""
    prompt = _prompt_words(body)
    completion = len(thought.split()) + len(answer.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        **details,
    }


def _thinking(body: dict[str, Any], index: int) -> tuple[str, str, bool]:
    """(thought, answer, finished): the thought cut at the token limit when it runs out first."""
    names = arm_names_from_request(body)
    answer = f"<Answer>{names[index % len(names)]}</Answer>" if names else "no names"
    limit = _limit(body)
    need = len(THOUGHT.split()) + len(answer.split())
    if limit is None or limit >= need:
        return THOUGHT, answer, True
    return _words(THOUGHT, limit), "", False


def openrouter_reasoning(index: int = 0, cost_per_token: float = 1e-6, byok: bool = False) -> Policy:
    """OpenRouter routing a reasoning model: ``message.reasoning`` beside the content
    (https://openrouter.ai/docs/use-cases/reasoning-tokens), usage with
    ``completion_tokens_details.reasoning_tokens`` inside ``completion_tokens`` and ``cost``
    (https://openrouter.ai/docs/use-cases/usage-accounting); reasoning that fills the token limit
    leaves ``content`` empty with ``finish_reason: "length"``. With ``byok``, ``cost`` is only
    OpenRouter's fee (5 % here) and the provider's charge is ``cost_details.upstream_inference_cost``.
    """

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        reasoning, completion = len(thought.split()), len(thought.split()) + len(answer.split())
        prompt = _prompt_words(body)
        charge = (prompt + completion) * cost_per_token
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
            "cost": charge * 0.05 if byok else charge,
            "is_byok": byok,
            "cost_details": {"upstream_inference_cost": charge},
        }
        return SimReply(
            content=answer,
            finish_reason="stop" if done else "length",
            message_extra={"reasoning": thought, "refusal": None},
            choice_extra={"native_finish_reason": "stop" if done else "max_tokens"},
            usage=usage,
        )

    return policy


def deepseek_reasoner(index: int = 0) -> Policy:
    """DeepSeek's ``deepseek-reasoner``: the chain of thought in ``message.reasoning_content``,
    the final answer in ``content`` (https://api-docs.deepseek.com/guides/reasoning_model), with
    ``completion_tokens_details.reasoning_tokens``; ``max_tokens`` counts the chain of thought."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        return SimReply(
            content=answer,
            finish_reason="stop" if done else "length",
            message_extra={"reasoning_content": thought},
            usage=_word_usage(
                body, thought, answer, completion_tokens_details={"reasoning_tokens": len(thought.split())}
            ),
        )

    return policy


def gemini_thinking(index: int = 0) -> Policy:
    """Gemini's OpenAI-compatible endpoint on a thinking model: the thoughts are not returned and
    count outside ``completion_tokens`` but inside ``total_tokens``, as Gemini's own usage
    metadata counts ``thoughtsTokenCount`` outside ``candidatesTokenCount`` and inside
    ``totalTokenCount`` (https://ai.google.dev/api/generate-content#UsageMetadata; the gap as
    users met it: mozilla-ai/any-llm#1290, router-for-me/CLIProxyAPI#5733); a limit spent on
    thoughts gives ``content: null``, ``finish_reason: "length"``."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        prompt = _prompt_words(body)
        shown = len(answer.split())
        return SimReply(
            content=answer if done else None,
            finish_reason="stop" if done else "length",
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": shown,
                "total_tokens": prompt + shown + len(thought.split()),
            },
        )

    return policy


def think_in_content(index: int = 0, opened: bool = True) -> Policy:
    """Reasoning inside the content: Groq's default ``reasoning_format: "raw"`` for Qwen3
    ("Includes reasoning within think tags", https://console.groq.com/docs/reasoning) and Together's
    DeepSeek-R1 (``<think>...</think>`` then the answer). ``opened=False``: the reply holds only the
    closing tag, as when the model's chat template opens ``<think>`` in the prompt (DeepSeek-R1).
    At a small limit the reply ends inside the thought - which quotes an ``<Answer>`` tag."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        head = "<think>\n" if opened else ""
        content = f"{head}{thought}\n</think>\n\n{answer}" if done else f"{head}{thought}"
        return SimReply(content=content, finish_reason="stop" if done else "length")

    return policy


def mistral_parts(index: int = 0) -> Policy:
    """Mistral's Magistral (-2507 and later): ``content`` is a list of chunks, a ``thinking``
    chunk (its own list of text chunks) then a ``text`` chunk
    (https://docs.mistral.ai/capabilities/reasoning/native)."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        parts: list[Any] = [{"type": "thinking", "thinking": [{"type": "text", "text": thought}]}]
        if done:
            parts.append({"type": "text", "text": answer})
        return SimReply(
            parts=parts, finish_reason="stop" if done else "length", usage=_word_usage(body, thought, answer)
        )

    return policy


def llamacpp_reasoning(index: int = 0, legacy: bool = False) -> Policy:
    """llama.cpp's server on a thinking model: ``--reasoning-format`` defaults to ``auto``, "same
    as deepseek, using ``message.reasoning_content``" (ggml-org/llama.cpp common/common.h at
    001d906a, tools/server/README.md at 00dc8057); ``legacy`` plays ``deepseek-legacy``, which
    "keeps ``<think>`` tags in ``message.content`` while also populating
    ``message.reasoning_content``". A thought the token limit cuts stays reasoning (an unclosed tag
    is allowed: common/chat-parser.cpp ``try_parse_reasoning`` at 05e5139a), the content holds no
    answer and ``finish_reason`` is ``"length"`` (tools/server/server-task.cpp
    ``to_json_oaicompat_chat``). Usage has no ``completion_tokens_details``: ``completion_tokens``
    is every decoded token, thoughts included (``usage_json_oaicompat``)."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        if legacy:
            content = f"<think>{thought}</think>{answer}" if done else f"<think>{thought}"
        else:
            content = answer
        return SimReply(
            content=content,
            finish_reason="stop" if done else "length",
            message_extra={"reasoning_content": thought},
            usage=_word_usage(body, thought, answer, prompt_tokens_details={"cached_tokens": 0}),
        )

    return policy


def ollama_thinking(index: int = 0) -> Policy:
    """Ollama's OpenAI-compatible endpoint on a thinking model: the thought in ``message.reasoning``
    (ollama/ollama openai/openai.go ``ToChatCompletion``, since v0.11.1), thinking on by default
    for models that can think (server/routes.go, v0.12.4: "Thinking is enabled by default in the
    CLI and API for supported models", docs/capabilities/thinking.mdx). Usage is
    ``prompt_tokens``/``completion_tokens``/``total_tokens`` only, ``completion_tokens`` being
    ``eval_count``, every generated token; ``max_tokens`` (``num_predict``) reached gives
    ``finish_reason: "length"`` with the thought so far and empty content."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        return SimReply(
            content=answer,
            finish_reason="stop" if done else "length",
            message_extra={"reasoning": thought},
            usage=_word_usage(body, thought, answer),
        )

    return policy


def anthropic_thinking(index: int = 0) -> Policy:
    """Anthropic's OpenAI SDK compatibility with extended thinking on (``extra_body.thinking``):
    "the OpenAI SDK won't return Claude's detailed thought process", and
    ``usage.completion_tokens_details`` is "Always empty"
    (https://platform.claude.com/docs/en/api/openai-sdk), while the thinking tokens are billed as
    output ("The billed output token count will not match the count of tokens you see in the
    response", https://platform.claude.com/docs/en/build-with-claude/extended-thinking). A limit
    spent on thinking leaves the content empty with ``finish_reason: "length"``; only the billed
    ``completion_tokens`` say that something was written."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        thought, answer, done = _thinking(body, index)
        return SimReply(
            content=answer,
            finish_reason="stop" if done else "length",
            usage=_word_usage(body, thought, answer),
        )

    return policy


def _then(fault: SimReply, after: int, index: int) -> Policy:
    """``after`` plain answers of arm ``index``, then ``fault`` for every later call."""
    plain = always(index)

    def policy(body: dict[str, Any], call: int) -> SimReply:
        return plain(body, call) if call < after else fault

    return policy


def error_inside_200(
    kind: str = "finish_reason", after: int = 0, index: int = 0, times: int = 10**9
) -> Policy:
    """OpenRouter's errors after the model started: status 200 with the error in the body
    (https://openrouter.ai/docs/api/reference/errors-and-debugging): ``kind`` "finish_reason"
    (``finish_reason: "error"`` and ``choices[0].error``), "choice" (``choices[0].error`` only) or
    "top-level" (an ``error`` object and no choices). ``times`` faults, then plain answers again."""
    error = {"code": 502, "message": "Provider returned error", "metadata": {"raw": "upstream overloaded"}}
    if kind == "top-level":
        fault = SimReply(body={"error": error, "user_id": "user_sim"})
    elif kind == "choice":
        fault = SimReply(content="", choice_extra={"error": error})
    else:
        fault = SimReply(content="", finish_reason="error", choice_extra={"error": error})
    plain = always(index)

    def policy(body: dict[str, Any], call: int) -> SimReply:
        return fault if after <= call < after + times else plain(body, call)

    return policy


def out_of_credits(provider: str = "openai", after: int = 0, index: int = 0) -> Policy:
    """No credit left: OpenAI's 429 ``insufficient_quota``
    (https://platform.openai.com/docs/guides/error-codes: "You exceeded your current quota, please
    check your plan and billing details") or OpenRouter's 402 ("Your account or API key has
    insufficient credits", https://openrouter.ai/docs/api/reference/errors-and-debugging)."""
    body: dict[str, Any]
    if provider == "openai":
        body = {
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        }
        fault = SimReply(status=429, error_body=body)
    else:
        body = {
            "error": {
                "code": 402,
                "message": "Insufficient credits. Add more using https://openrouter.ai/credits",
            }
        }
        fault = SimReply(status=402, error_body=body)
    return _then(fault, after, index)


def daily_cap(reset_ms: int, after: int = 0, index: int = 0) -> Policy:
    """OpenRouter's free-model daily cap: 429 with ``X-RateLimit-Remaining: 0`` and
    ``X-RateLimit-Reset`` in milliseconds, as headers and in ``error.metadata.headers``
    (https://openrouter.ai/docs/api/reference/limits)."""
    limits = {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_ms)}
    body = {
        "error": {
            "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model "
            "requests per day",
            "code": 429,
            "metadata": {"headers": limits, "provider_name": None},
        }
    }
    return _then(SimReply(status=429, headers=limits, error_body=body), after, index)


def moderation_403(after: int = 0) -> Policy:
    """OpenRouter's moderation refusal: 403 whose ``error.metadata`` holds ``reasons``,
    ``flagged_input``, ``provider_name`` and ``model_slug``
    (https://openrouter.ai/docs/api/reference/errors-and-debugging, "Moderation Errors")."""
    body = {
        "error": {
            "code": 403,
            "message": "sim/moderated requires moderation on OpenRouter. "
            'Your input was flagged for "violence"',
            "metadata": {
                "reasons": ["violence"],
                "flagged_input": "You are in a room with five buttons...",
                "provider_name": "Sim",
                "model_slug": "sim/moderated",
            },
        }
    }
    return _then(SimReply(status=403, error_body=body), after, 0)


def mistral_422() -> Policy:
    """Mistral's validation refusal: 422 whose ``message`` is an object of pydantic ``detail``
    items, e.g. for ``seed`` (reported in mistralai client issues; Mistral names it ``random_seed``:
    https://docs.mistral.ai/api/#tag/chat)."""
    body = {
        "object": "error",
        "message": {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "seed"],
                    "msg": "Extra inputs are not permitted",
                    "input": 0,
                }
            ]
        },
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    return _then(SimReply(status=422, error_body=body), 0, 0)


REPLY_PERSONALITIES: dict[str, Callable[[], Policy]] = {
    "openrouter-reasoning": openrouter_reasoning,
    "deepseek-reasoner": deepseek_reasoner,
    "gemini-thinking": gemini_thinking,
    "groq-qwen3-think": think_in_content,
    "together-r1-think": lambda: think_in_content(opened=False),
    "mistral-parts": mistral_parts,
    "llamacpp-reasoning-content": llamacpp_reasoning,
    "llamacpp-deepseek-legacy": lambda: llamacpp_reasoning(legacy=True),
    "ollama-reasoning": ollama_thinking,
    # LM Studio 0.3.9+ with "separate reasoning_content" on (App Settings > Developer), and 0.3.23+
    # for gpt-oss (``message.reasoning``): https://lmstudio.ai/docs/app/api-changelog.
    "lmstudio-reasoning-content": llamacpp_reasoning,
    "lmstudio-gpt-oss-reasoning": ollama_thinking,
    "anthropic-hidden-thinking": anthropic_thinking,
    "openrouter-error-in-200": error_inside_200,
    "openai-out-of-credits": out_of_credits,
    "openrouter-out-of-credits": lambda: out_of_credits("openrouter"),
    "openrouter-moderation": moderation_403,
    "mistral-422": mistral_422,
}


NAMED_POLICIES: dict[str, Callable[[], Policy]] = {
    "always-first": lambda: always(0),
    "always-last": lambda: always(-1),
    "cycle": cycle,
    "greedy-reader": greedy_reader,
}


# ---------------------------------------------------------------------------- personalities
#
# A personality answers the request side the way one provider documents it: what it refuses
# (and with which error body), where it wants the key and the api-version, and which
# constrained-decoding fields it honours (the reply is then forced into the allowed answers) or
# silently ignores. The reply itself still comes from the policy.


@dataclass(frozen=True)
class Refusal:
    status: int
    body: Any


_ANSWER_RE = re.compile(r"<Answer>\s*(.*?)\s*</Answer>", re.IGNORECASE | re.DOTALL)


def _policy_choice(content: str | None, allowed: Sequence[str]) -> str:
    """The arm the policy's reply names when it is allowed, else the first allowed one."""
    m = _ANSWER_RE.search(content or "")
    name = m.group(1) if m else None
    return name if isinstance(name, str) and name in allowed else allowed[0]


def _forced(body: dict[str, Any], reply: SimReply, honours: Sequence[str]) -> SimReply:
    """What a server that honours the ``honours`` constraint fields replies: only allowed answers."""
    if reply.status != 200 or reply.fault or reply.body is not None:
        return reply
    extra = body.get("structured_outputs")
    if "structured_outputs" in honours and isinstance(extra, dict) and isinstance(extra.get("regex"), str):
        allowed = re.findall(r"\(([^()]*)\)", extra["regex"])
        names = [re.sub(r"\\(.)", r"\1", n) for n in allowed[0].split("|")] if allowed else []
        if names:
            return replace(reply, content=f"<Answer>{_policy_choice(reply.content, names)}</Answer>")
    fmt = body.get("response_format")
    if "response_format" in honours and isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", {}).get("schema", {})
        names = schema.get("properties", {}).get("answer", {}).get("enum", [])
        if names:
            return replace(reply, content=json.dumps({"answer": _policy_choice(reply.content, names)}))
    if "grammar" in honours and isinstance(body.get("grammar"), str):
        names = re.findall(r'"((?:[^"\\]|\\.)*)"', body["grammar"].split("(", 1)[-1])
        names = [n for n in names if n != "</Answer>"]
        if names:
            return replace(reply, content=f"<Answer>{_policy_choice(reply.content, names)}</Answer>")
    return reply


def _openai_error(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


# https://platform.openai.com/docs/api-reference/chat/create: the fields the API knows.
_OPENAI_FIELDS = {
    "model", "messages", "max_completion_tokens", "max_tokens", "temperature", "seed", "top_p", "stop",
    "n", "stream", "stream_options", "response_format", "reasoning_effort", "tools", "tool_choice",
    "parallel_tool_calls", "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
    "frequency_penalty", "user", "metadata", "store", "service_tier", "verbosity", "prediction",
}  # fmt: skip


def _openai_reasoning(path: str, headers: Mapping[str, str], body: dict[str, Any]) -> Refusal | None:
    """A strict OpenAI reasoning model (o-series, gpt-5): the 400s of
    https://platform.openai.com/docs/guides/reasoning, worded as the API words them."""
    unknown = sorted(set(body) - _OPENAI_FIELDS)
    if unknown:
        message = f"Unrecognized request argument supplied: {unknown[0]}"
        return Refusal(400, _openai_error(message, None, None))
    if "max_tokens" in body:
        return Refusal(
            400,
            _openai_error(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            ),
        )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        return Refusal(
            400,
            _openai_error(
                f"Unsupported value: 'temperature' does not support {temperature:g} with this model. "
                "Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            ),
        )
    return None


# https://docs.mistral.ai/api/#tag/chat/operation/chat_completion_v1_chat_completions_post
_MISTRAL_FIELDS = {
    "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
    "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n",
    "prediction", "parallel_tool_calls", "prompt_mode", "safe_prompt",
}  # fmt: skip


def _mistral(path: str, headers: Mapping[str, str], body: dict[str, Any]) -> Refusal | None:
    """Mistral's API validates the body strictly: an unknown field (``seed``: Mistral's is
    ``random_seed``) is a 422 whose ``message`` is an object (pydantic's extra_forbidden)."""
    unknown = sorted(set(body) - _MISTRAL_FIELDS)
    if not unknown:
        return None
    detail = [
        {"type": "extra_forbidden", "loc": ["body", k], "msg": "Extra inputs are not permitted", "input": v}
        for k, v in ((k, body[k]) for k in unknown)
    ]
    return Refusal(
        422,
        {
            "object": "error",
            "message": {"detail": detail},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )


_OPUS_47 = re.compile(r"claude-(opus-4[-.][7-9]|opus-5|4\.[7-9]-opus)")


def _anthropic(path: str, headers: Mapping[str, str], body: dict[str, Any]) -> Refusal | None:
    """Anthropic's OpenAI SDK compatibility (https://docs.anthropic.com/en/api/openai-sdk):
    seed and response_format are ignored; Claude Opus 4.7 and later refuse temperature with
    400 "`temperature` is deprecated for this model"."""
    if "temperature" in body and _OPUS_47.search(str(body.get("model", ""))):
        return Refusal(
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "`temperature` is deprecated for this model.",
                },
            },
        )
    return None


_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/[^/]+/chat/completions$")


def _azure_classic(path: str, headers: Mapping[str, str], body: dict[str, Any]) -> Refusal | None:
    """Azure OpenAI's classic data plane
    (https://learn.microsoft.com/azure/ai-foundry/openai/reference): POST
    /openai/deployments/{deployment}/chat/completions?api-version=..., key in an ``api-key``
    header (a Bearer token is an Entra ID token, not the key)."""
    route, _, query = path.partition("?")
    if not _AZURE_DEPLOYMENT.search(route.rstrip("/")):
        return Refusal(404, {"error": {"code": "404", "message": "Resource not found"}})
    if "api-version=" not in query:
        return Refusal(404, {"error": {"code": "404", "message": "Resource not found"}})
    lower = {k.lower(): v for k, v in headers.items()}
    if not lower.get("api-key"):
        return Refusal(
            401,
            {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API endpoint. Make "
                    "sure to provide a valid key for an active subscription and use a correct regional API "
                    "endpoint for your resource.",
                }
            },
        )
    return _openai_reasoning(path, headers, body) if _is_reasoning(body) else None


def _azure_v1(path: str, headers: Mapping[str, str], body: dict[str, Any]) -> Refusal | None:
    """Azure OpenAI's v1 API (https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle):
    /openai/v1/chat/completions with no api-version; the key as a Bearer token or an api-key header."""
    route = path.partition("?")[0].rstrip("/")
    if not route.endswith("/openai/v1/chat/completions"):
        return Refusal(404, {"error": {"code": "404", "message": "Resource not found"}})
    lower = {k.lower(): v for k, v in headers.items()}
    if not (lower.get("api-key") or lower.get("authorization", "").startswith("Bearer ")):
        return Refusal(401, {"error": {"code": "401", "message": "Access denied due to missing key."}})
    return _openai_reasoning(path, headers, body) if _is_reasoning(body) else None


def _is_reasoning(body: dict[str, Any]) -> bool:
    return bool(re.match(r"(o[134]|gpt-5)", str(body.get("model", "")).rsplit("/", 1)[-1]))


def _no_system_role(path: str, headers: Mapping[str, str], body: dict[str, Any]) -> Refusal | None:
    """A chat template with no system role (Gemma's raises "System role not supported"), as vLLM
    reports a template error: 400 with its own error object."""
    if any(m.get("role") == "system" for m in body.get("messages", []) if isinstance(m, dict)):
        return Refusal(
            400,
            {
                "object": "error",
                "message": "System role not supported",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        )
    return None


@dataclass(frozen=True)
class Personality:
    """How one provider treats the request: ``check`` refuses (None: accepted); ``honours``
    lists the constrained-decoding fields it applies (others are ignored, as unknown fields)."""

    check: Callable[[str, Mapping[str, str], dict[str, Any]], Refusal | None] | None = None
    honours: tuple[str, ...] = ()
    # What GET /v1/models says in each entry's "owned_by" (the servers that name themselves).
    owned_by: str = "simulator"


REQUEST_PERSONALITIES: dict[str, Personality] = {
    # llama.cpp's server: GBNF in "grammar" (tools/server/README.md).
    "llamacpp": Personality(honours=("grammar",), owned_by="llamacpp"),
    "openai-reasoning": Personality(_openai_reasoning, honours=("response_format",)),
    "mistral": Personality(_mistral, honours=("response_format",)),
    "anthropic": Personality(_anthropic),
    "azure": Personality(_azure_classic, honours=("response_format",)),
    "azure-v1": Personality(_azure_v1, honours=("response_format",)),
    # https://docs.vllm.ai/en/latest/features/structured_outputs/: structured_outputs and
    # response_format; "grammar" is not a vLLM field and changes nothing.
    "vllm": Personality(honours=("structured_outputs", "response_format"), owned_by="vllm"),
    # https://docs.ollama.com/api/openai-compatibility: response_format; no grammar.
    "ollama": Personality(honours=("response_format",)),
    # https://lmstudio.ai/docs/advanced/structured-output: response_format json_schema only.
    "lmstudio": Personality(honours=("response_format",)),
    "no-system-role": Personality(_no_system_role),
}


class Simulator:
    """Context manager running the server on a free port of 127.0.0.1 in a background thread.

    ``personality`` (a key of :data:`REQUEST_PERSONALITIES`) makes it treat requests as that provider does.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        latency: float = 0.0,
        model_name: str | None = None,
        cost_per_million: tuple[float, float] | None = None,
        personality: str | None = None,
    ) -> None:
        self.policy: Policy = policy or always(0)
        self.personality = REQUEST_PERSONALITIES[personality] if personality is not None else None
        # The request paths (with their query) as they arrived.
        self.paths: list[str] = []
        # (prompt, completion) USD per 1M tokens: replies then report usage.cost, as OpenRouter's do.
        self.cost_per_million = cost_per_million
        self.latency = latency
        self.model_name = model_name
        self.calls = 0
        # GET /v1/models requests answered (a client asking what the server is).
        self.model_lists = 0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # Exceptions raised while answering (a policy that ran out of script, say), for tests to check.
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.url("/v1")

    def url(self, path: str) -> str:
        """A base URL on this server with another path (``/openai/deployments/d`` for Azure)."""
        assert self._server is not None, "simulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._stopping.clear()
        self._server = _Server(self)
        # A short poll interval: stop() waits for the serving loop to notice (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="bandit-sim", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # a dripping handler stops writing
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(BaseHTTPRequestHandler):
    """One connection to the simulator: each chat completion answered by its policy."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without this, headers and body go out in two packets and delayed ACKs add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """GET /v1/models, as OpenAI-compatible servers answer it (not counted in ``calls``)."""
        sim = self.server.sim
        if not self.path.partition("?")[0].rstrip("/").endswith("/models"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        with sim._lock:
            sim.model_lists += 1
        owner = sim.personality.owned_by if sim.personality is not None else "simulator"
        entry = {"id": sim.model_name or "sim", "object": "model", "created": 0, "owned_by": owner}
        self._send(200, {"object": "list", "data": [entry]})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        sim = self.server.sim
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if not self.path.partition("?")[0].rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(raw)
        with sim._lock:
            call = sim.calls
            sim.calls += 1
            sim.requests.append(body)
            sim.headers.append(dict(self.headers.items()))
            sim.paths.append(self.path)
            sim.in_flight += 1
            sim.max_in_flight = max(sim.max_in_flight, sim.in_flight)
        try:
            if sim.latency:
                time.sleep(sim.latency)
            personality = sim.personality
            refusal = (
                personality.check(self.path, dict(self.headers.items()), body)
                if personality is not None and personality.check is not None
                else None
            )
            if refusal is not None:
                self._send(refusal.status, refusal.body)
                return
            reply = sim.policy(body, call)
            if personality is not None:
                reply = _forced(body, reply, personality.honours)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.echo_auth:
                auth = self.headers.get("Authorization", "(no Authorization header)")
                reply = replace(
                    reply,
                    content=f"{reply.content or ''} your key is {auth}",
                    headers={**reply.headers, "X-Debug": auth},
                )
            self._answer(body, reply, raw)
        finally:
            with sim._lock:
                sim.in_flight -= 1

    def _answer(self, body: dict[str, Any], reply: SimReply, raw: bytes) -> None:
        sim = self.server.sim
        if reply.fault == "reset":
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.close()
            self.close_connection = True
            return
        if reply.fault == "not-json":
            self._send_raw(200, b"<html>upstream error</html>", "text/html", reply.headers)
            return
        if reply.status != 200:
            error = reply.error_body
            if error is None:
                error = {"error": {"message": reply.content or "simulated fault", "code": reply.status}}
            self._send(reply.status, error, reply.headers)
            return
        if reply.body is not None:
            self._send(200, reply.body, reply.headers, drip=reply.drip)
            return
        if reply.raw is not None:
            headers = {k: v for k, v in reply.headers.items() if k.lower() != "content-type"}
            ctype = reply.headers.get("Content-Type", "application/json")
            self._send_raw(200, reply.raw, ctype, headers, reply.drip)
            return
        if reply.fault == "no-choices":
            self._send(200, {"id": "x", "object": "chat.completion", "choices": []}, reply.headers)
            return
        self._send(200, _completion(sim, body, reply, raw), reply.headers, drip=reply.drip)

    def _send(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, drip: float = 0.0
    ) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers or {}, drip)

    def _send_raw(
        self, status: int, data: bytes, ctype: str, headers: dict[str, str], drip: float = 0.0
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        sim = self.server.sim
        if not drip:
            self.wfile.write(data)
            return
        for i in range(len(data)):
            if sim._stopping.is_set():
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(drip)


class _Server(ThreadingHTTPServer):
    """The simulator's server on a free port of 127.0.0.1."""

    daemon_threads = True
    # stop() returns at once: a handler still sleeping through a scripted delay is not waited for.
    block_on_close = False

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        sim = self.sim
        err = sys.exc_info()[1]
        if isinstance(err, (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up on this request (its timeout): expected in fault tests
        if err is not None:
            with sim._lock:
                sim.errors.append(err)
        super().handle_error(request, client_address)


def _completion(sim: Simulator, body: dict[str, Any], reply: SimReply, raw: bytes) -> dict[str, Any]:
    """The chat completion answering ``body`` with ``reply``: its message, and usage counted in
    words (priced when the simulator has a price), unless the reply sets its own."""
    content: Any = reply.content if reply.parts is None else reply.parts
    message: dict[str, Any] = {"role": "assistant", "content": content, **reply.message_extra}
    if reply.tool_call:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "press", "arguments": json.dumps({"button": "blue"})},
                }
            ],
        }
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion_tokens = len((reply.content or "").split())
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if sim.cost_per_million is not None:
        per_prompt, per_completion = sim.cost_per_million
        usage["cost"] = (prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6
    if reply.usage is not None:
        usage = reply.usage
    return {
        # Deterministic fields: the same request always gets byte-identical answers.
        "id": "chatcmpl-sim-" + hashlib.sha256(raw).hexdigest()[:16],
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": sim.model_name or body.get("model", "sim"),
        "system_fingerprint": "bandit-bench-simulator",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason,
                **reply.choice_extra,
            }
        ],
        "usage": usage,
        **reply.body_extra,
    }
