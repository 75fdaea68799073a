"""A model's reply -> its choice: valid or not, an arm or a distribution. Never raises.

The rules, in the order they are applied:

1. ``None``, a non-string, or text that is empty or only whitespace: ``"empty"``. Bytes are
   decoded as UTF-8 with replacement characters first.
2. Tags. An opening tag is exactly ``<answer>`` and a closing tag exactly ``</answer>``, letters
   in any case, no spaces and no attributes inside the brackets (``<Answer x=1>`` is not a tag).
   A closing tag pairs with the nearest unpaired opening tag before it, so nested tags
   ``<Answer><Answer>red</Answer></Answer>`` yield their innermost pair. The answer is the LAST
   such pair: a model that revises itself is read at its final word.
3. No pair at all: ``"truncated"`` if ``finish_reason == "length"`` and the reply holds an
   opening tag, or ends part way through writing one (``<Ans``); otherwise ``"no-tag"``. A pair
   followed by an unclosed opening tag under ``finish_reason == "length"`` is also
   ``"truncated"``: the model was writing a later answer that was cut off.
4. The content of the pair, stripped of whitespace (newlines too) at both ends; nothing left:
   ``"empty-tag"``.
5. One arm (``distribution=False``): the content must equal one of ``names`` ignoring the case
   of ASCII letters only, so ``Blue`` is ``blue`` but a Cyrillic look-alike, ``blue button``,
   ``**blue**`` or the placeholder ``COLOR`` are not: ``"unknown-arm"``.
6. A distribution (``distribution=True``): ``name:weight`` items separated by commas, with
   spaces allowed around every token; weights are plain decimal numbers (``0.2``, ``.5``, ``3``,
   ``1e-2``). Checked in this order:
   an item that is not ``name:weight`` or a weight that is not such a number (``nan``, ``inf``,
   ``50%``, empty items from a trailing comma): ``"malformed-distribution"``; a name that is
   not an arm: ``"unknown-arm"``; an arm listed twice: ``"malformed-distribution"``; a weight
   that overflows to infinity: ``"malformed-distribution"``; a negative weight:
   ``"negative-weight"``; an arm left out (every arm must be listed exactly once):
   ``"malformed-distribution"``; all weights zero: ``"zero-distribution"``. Otherwise the
   weights are normalised to sum to 1, in ``names`` order.

Replies of reasoning models are read first by :func:`parse_completion_reply`: the answer is
parsed from the final answer text only (outside ``<think>``, besides ``reasoning`` fields and
thinking parts; see :mod:`bandit_bench.core.replies`). A reply with no answer text that ended
inside an unfinished thought, or that ran into the token limit (``finish_reason == "length"``)
while its reasoning (text, reasoning tokens in its usage, or billed output tokens with nothing
written at all: Anthropic's hidden thinking) was all it had written, is
``"reasoning-cut-off"``: it could not answer in the
budget, which says nothing of its format. A refusal with no text (``message.refusal``) is
``"refusal"``.

A valid reply has ``reason == ""``; an invalid one has neither ``arm`` nor ``distribution``.
``"parse-error"`` is reserved for a bug in this module: any exception is caught and reported
with it, so one odd reply can never end a benchmark run (seed defect 3).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bandit_bench.core.replies import Reply

__all__ = ["CUT_OFF_REASONS", "REASONS", "ParsedReply", "parse_completion_reply", "parse_reply"]

REASONS: tuple[str, ...] = (
    "empty",
    "no-tag",
    "empty-tag",
    "unknown-arm",
    "malformed-distribution",
    "negative-weight",
    "zero-distribution",
    "truncated",
    "reasoning-cut-off",
    "refusal",
    "parse-error",
)
# Reasons of a reply the token limit cut off before it could answer, not a format fault.
CUT_OFF_REASONS: tuple[str, ...] = ("reasoning-cut-off",)

_TAG_RE = re.compile(r"<(/?)answer>", re.IGNORECASE)
_OPEN_TAG = "<answer>"
# Decimal numbers only: Python's float() would also take "nan", "inf", "1_000" and "0x1p3".
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class ParsedReply:
    valid: bool
    arm: int | None = None
    distribution: tuple[float, ...] | None = None
    reason: str = ""


def _fold(text: str) -> str:
    # str.lower() would map look-alikes onto ASCII (the Kelvin sign to "k"); only A-Z are folded.
    return text.translate(_ASCII_LOWER)


def _invalid(reason: str) -> ParsedReply:
    return ParsedReply(valid=False, arm=None, distribution=None, reason=reason)


def _last_pair(text: str) -> tuple[str | None, int]:
    """The content of the last paired tag (or None) and the position just after that pair."""
    content: str | None = None
    end = 0
    open_at: int | None = None
    for m in _TAG_RE.finditer(text):
        if m.group(1):
            if open_at is not None:
                content = text[open_at : m.start()]
                end = m.end()
                open_at = None
        else:
            open_at = m.end()
    return content, end


def _opens_after(text: str, start: int) -> bool:
    """Whether an opening tag, whole or cut part way (``<Ans``), follows position ``start``."""
    if any(not m.group(1) for m in _TAG_RE.finditer(text, start)):
        return True
    tail = _fold(text[start:].rstrip())
    return any(tail.endswith(_OPEN_TAG[:n]) for n in range(1, len(_OPEN_TAG)))


def _match_arm(token: str, folded_names: list[str]) -> int | None:
    key = _fold(token.strip())
    for i, name in enumerate(folded_names):
        if key == name:
            return i
    return None


def _parse_distribution(content: str, names: tuple[str, ...]) -> ParsedReply:
    folded_names = [_fold(n) for n in names]
    items: list[tuple[str, str]] = []
    for item in content.split(","):
        parts = item.split(":")
        if len(parts) != 2 or not _NUMBER_RE.fullmatch(parts[1].strip()):
            return _invalid("malformed-distribution")
        items.append((parts[0], parts[1].strip()))
    weights: list[float | None] = [None] * len(names)
    for name, number in items:
        arm = _match_arm(name, folded_names)
        if arm is None:
            return _invalid("unknown-arm")
        if weights[arm] is not None:
            return _invalid("malformed-distribution")
        weights[arm] = float(number)
    listed = [w for w in weights if w is not None]
    if any(not math.isfinite(w) for w in listed):
        return _invalid("malformed-distribution")
    if any(w < 0 for w in listed):
        return _invalid("negative-weight")
    if len(listed) != len(names):
        return _invalid("malformed-distribution")
    top = max(listed)
    if top == 0:
        return _invalid("zero-distribution")
    # Scaled by the largest weight first, so weights near the float maximum cannot sum to inf.
    scaled = [w / top for w in listed]
    total = math.fsum(scaled)
    return ParsedReply(valid=True, arm=None, distribution=tuple(w / total for w in scaled), reason="")


def _parse(
    text: object, names: tuple[str, ...], distribution: bool, finish_reason: str | None
) -> ParsedReply:
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str) or not text.strip():
        return _invalid("empty")
    truncated = finish_reason == "length"
    content, end = _last_pair(text)
    if content is None:
        return _invalid("truncated" if truncated and _opens_after(text, 0) else "no-tag")
    if truncated and _opens_after(text, end):
        return _invalid("truncated")
    content = content.strip()
    if not content:
        return _invalid("empty-tag")
    if distribution:
        return _parse_distribution(content, names)
    arm = _match_arm(content, [_fold(n) for n in names])
    if arm is None:
        return _invalid("unknown-arm")
    return ParsedReply(valid=True, arm=arm, distribution=None, reason="")


def parse_reply(
    text: str | None,
    names: tuple[str, ...],
    *,
    distribution: bool = False,
    finish_reason: str | None = None,
) -> ParsedReply:
    """Read the answer out of a reply, by the rules in this module's docstring. Never raises."""
    try:
        return _parse(text, names, distribution, finish_reason)
    except Exception:
        return _invalid("parse-error")


def parse_completion_reply(
    reply: Reply, names: tuple[str, ...], *, distribution: bool = False
) -> ParsedReply:
    """Judge a read reply: cut off while reasoning, refused, or its answer text by the rules above."""
    try:
        if not (reply.text or "").strip():
            # Hidden reasoning counts too: Gemini returns no thoughts, only their tokens.
            # And thoughts neither returned nor itemised: Anthropic's OpenAI SDK compatibility
            # "won't return Claude's detailed thought process" and leaves
            # usage.completion_tokens_details "Always empty"
            # (https://platform.claude.com/docs/en/api/openai-sdk), yet bills the thinking as
            # output tokens (https://platform.claude.com/docs/en/build-with-claude/extended-thinking):
            # a reply that wrote nothing at all but was billed output tokens spent them thinking.
            hidden = not reply.raw and reply.usage.completion_tokens > 0
            thought = bool(reply.reasoning) or reply.usage.reasoning_tokens > 0 or hidden
            still_thinking = reply.unfinished_thought or (reply.finish_reason == "length" and thought)
            if still_thinking:
                return _invalid("reasoning-cut-off")
            if reply.refusal:
                return _invalid("refusal")
    except Exception:
        return _invalid("parse-error")
    return parse_reply(reply.text, names, distribution=distribution, finish_reason=reply.finish_reason)
