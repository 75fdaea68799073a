from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bandit_bench.core.parsing import REASONS, ParsedReply, parse_reply

COLOURS5 = ("blue", "green", "red", "yellow", "purple")
COLOURS10 = COLOURS5 + ("orange", "pink", "brown", "gray", "black")
ADS5 = ("A", "B", "C", "D", "E")

RAMBLE = "Let me weigh exploration against exploitation once more. " * 1800  # about 100 KB
assert len(RAMBLE) > 100_000

DIST_OK = "blue:0.2,green:0.2,red:0.2,yellow:0.2,purple:0.2"

# (id, text, keyword arguments, (valid, arm, reason)); names default to the paper's five colours.
CASES: list[tuple[str, Any, dict[str, Any], tuple[bool, int | None, str]]] = [
    # --- well-formed single answers
    ("plain", "<Answer>blue</Answer>", {}, (True, 0, "")),
    ("last-arm", "<Answer>purple</Answer>", {}, (True, 4, "")),
    ("sentence-around", "The answer is <Answer>red</Answer>.", {}, (True, 2, "")),
    ("capitalised", "<Answer>Blue</Answer>", {}, (True, 0, "")),
    ("upper", "<Answer>BLUE</Answer>", {}, (True, 0, "")),
    ("tag-lower", "<answer>green</answer>", {}, (True, 1, "")),
    ("tag-upper", "<ANSWER>yellow</ANSWER>", {}, (True, 3, "")),
    ("tag-mixed-pair", "<Answer>red</ANSWER>", {}, (True, 2, "")),
    ("spaces-inside", "<Answer>  red  </Answer>", {}, (True, 2, "")),
    ("newlines-inside", "<Answer>\n\tred\n</Answer>", {}, (True, 2, "")),
    ("bold-around", "**<Answer>red</Answer>**", {}, (True, 2, "")),
    ("code-fence", "```\n<Answer>red</Answer>\n```", {}, (True, 2, "")),
    ("code-fence-xml", "```xml\n<Answer>\nred\n</Answer>\n```", {}, (True, 2, "")),
    ("nul-after", "<Answer>red</Answer>\x00\x00", {}, (True, 2, "")),
    ("ad-letter", "<Answer>c</Answer>", {"names": ADS5}, (True, 2, "")),
    ("length-but-complete", "<Answer>red</Answer>", {"finish_reason": "length"}, (True, 2, "")),
    ("long-then-tag", RAMBLE + "<Answer>green</Answer>", {}, (True, 1, "")),
    # --- several tags: the last pair wins
    ("two-tags", "<Answer>blue</Answer> no wait <Answer>red</Answer>", {}, (True, 2, "")),
    ("last-is-invalid", "<Answer>red</Answer> then <Answer>COLOR</Answer>", {}, (False, None, "unknown-arm")),
    ("think-block", "<think><Answer>blue</Answer></think>\n<Answer>red</Answer>", {}, (True, 2, "")),
    ("nested", "<Answer><Answer>red</Answer></Answer>", {}, (True, 2, "")),
    ("unclosed-then-pair", "<Answer>blue <Answer>red</Answer>", {}, (True, 2, "")),
    # --- no usable tag
    ("empty-string", "", {}, (False, None, "empty")),
    ("none", None, {}, (False, None, "empty")),
    ("whitespace-only", "  \n\t ", {}, (False, None, "empty")),
    ("no-tag", "I choose red.", {}, (False, None, "no-tag")),
    ("refusal", "I'm sorry, I can't help with that.", {}, (False, None, "no-tag")),
    ("long-no-tag", RAMBLE, {}, (False, None, "no-tag")),
    (
        "json-tool-call",
        '{"tool_calls": [{"type": "function", "function": '
        '{"name": "press", "arguments": "{\\"button\\": \\"red\\"}"}}]}',
        {},
        (False, None, "no-tag"),
    ),
    ("json-answer", '{"answer": "red"}', {}, (False, None, "no-tag")),
    ("attributes", "<Answer x=1>red</Answer>", {}, (False, None, "no-tag")),
    ("spaces-in-brackets", "< Answer >red</ Answer >", {}, (False, None, "no-tag")),
    ("html-escaped", "&lt;Answer&gt;red&lt;/Answer&gt;", {}, (False, None, "no-tag")),
    ("reversed", "</Answer>red<Answer>", {}, (False, None, "no-tag")),
    ("other-tag-name", "<Ans>red</Ans>", {}, (False, None, "no-tag")),
    ("closing-only", "red</Answer>", {}, (False, None, "no-tag")),
    ("unclosed-stop", "<Answer>red", {"finish_reason": "stop"}, (False, None, "no-tag")),
    ("unclosed-no-reason", "<Answer>red", {}, (False, None, "no-tag")),
    # --- cut off by max_tokens
    ("truncated-content", "<Answer>gre", {"finish_reason": "length"}, (False, None, "truncated")),
    ("truncated-closing", "<Answer>red</Ans", {"finish_reason": "length"}, (False, None, "truncated")),
    (
        "truncated-opening",
        "Thinking it over... <Ans",
        {"finish_reason": "length"},
        (False, None, "truncated"),
    ),
    (
        "truncated-no-tag-at-all",
        "Let me think step by step",
        {"finish_reason": "length"},
        (False, None, "no-tag"),
    ),
    (
        "truncated-revision",
        "<Answer>red</Answer> Actually, wait: <Answer>gr",
        {"finish_reason": "length"},
        (False, None, "truncated"),
    ),
    ("long-truncated", RAMBLE + "<Answer>", {"finish_reason": "length"}, (False, None, "truncated")),
    # --- a tag whose content is not an arm
    ("empty-tag", "<Answer></Answer>", {}, (False, None, "empty-tag")),
    ("blank-tag", "<Answer>  \n </Answer>", {}, (False, None, "empty-tag")),
    ("placeholder", "<Answer>COLOR</Answer>", {}, (False, None, "unknown-arm")),
    ("placeholder-explained", "<Answer>COLOR</Answer> where COLOR is red", {}, (False, None, "unknown-arm")),
    ("arm-of-bigger-instance", "<Answer>orange</Answer>", {}, (False, None, "unknown-arm")),
    ("ad-name-for-buttons", "<Answer>A</Answer>", {}, (False, None, "unknown-arm")),
    ("colour-for-ads", "<Answer>red</Answer>", {"names": ADS5}, (False, None, "unknown-arm")),
    ("with-unit", "<Answer>blue button</Answer>", {}, (False, None, "unknown-arm")),
    ("bold-inside", "<Answer>**red**</Answer>", {}, (False, None, "unknown-arm")),
    ("backticks-inside", "<Answer>`red`</Answer>", {}, (False, None, "unknown-arm")),
    ("quoted-inside", '<Answer>"red"</Answer>', {}, (False, None, "unknown-arm")),
    ("trailing-period", "<Answer>red.</Answer>", {}, (False, None, "unknown-arm")),
    ("two-arms", "<Answer>red, blue</Answer>", {}, (False, None, "unknown-arm")),
    ("index-not-name", "<Answer>2</Answer>", {}, (False, None, "unknown-arm")),
    ("cyrillic-e", "<Answer>blu\u0435</Answer>", {}, (False, None, "unknown-arm")),
    ("fullwidth", "<Answer>\uff52\uff45\uff44</Answer>", {}, (False, None, "unknown-arm")),
    ("kelvin-sign", "<Answer>blac\u212a</Answer>", {"names": COLOURS10}, (False, None, "unknown-arm")),
    ("zero-width-space", "<Answer>re\u200bd</Answer>", {}, (False, None, "unknown-arm")),
    ("distribution-in-single-mode", f"<Answer>{DIST_OK}</Answer>", {}, (False, None, "unknown-arm")),
    # --- distributions
    ("dist-ok", f"<Answer>{DIST_OK}</Answer>", {"distribution": True}, (True, None, "")),
    (
        "dist-spaces-case",
        "<Answer> BLUE : 1 , Green:1, red :2 ,yellow: 0,purple:0 </Answer>",
        {"distribution": True},
        (True, None, ""),
    ),
    (
        "dist-percent-numbers",
        "<Answer>blue:20,green:20,red:20,yellow:20,purple:20</Answer>",
        {"distribution": True},
        (True, None, ""),
    ),
    (
        "dist-scientific",
        "<Answer>blue:1e-2,green:.5,red:3,yellow:0.,purple:0</Answer>",
        {"distribution": True},
        (True, None, ""),
    ),
    (
        "dist-ads",
        "<Answer>A:1,B:0,C:0,D:0,E:1</Answer>",
        {"distribution": True, "names": ADS5},
        (True, None, ""),
    ),
    (
        "dist-negative",
        "<Answer>blue:-0.2,green:0.4,red:0.4,yellow:0.2,purple:0.2</Answer>",
        {"distribution": True},
        (False, None, "negative-weight"),
    ),
    (
        "dist-missing-arm",
        "<Answer>blue:0.25,green:0.25,red:0.25,yellow:0.25</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-missing-weight",
        "<Answer>blue:,green:0.25,red:0.25,yellow:0.25,purple:0.25</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-duplicate",
        "<Answer>blue:0.2,blue:0.2,green:0.2,red:0.2,yellow:0.1,purple:0.1</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-duplicate-case",
        "<Answer>blue:0.2,BLUE:0.2,green:0.2,red:0.2,yellow:0.1,purple:0.1</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-wrong-name",
        "<Answer>orange:0.2,green:0.2,red:0.2,yellow:0.2,purple:0.2</Answer>",
        {"distribution": True},
        (False, None, "unknown-arm"),
    ),
    (
        "dist-all-zero",
        "<Answer>blue:0,green:0,red:0,yellow:0,purple:0.0</Answer>",
        {"distribution": True},
        (False, None, "zero-distribution"),
    ),
    (
        "dist-nan",
        "<Answer>blue:nan,green:0.2,red:0.2,yellow:0.2,purple:0.2</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-inf",
        "<Answer>blue:inf,green:0.2,red:0.2,yellow:0.2,purple:0.2</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-overflow",
        "<Answer>blue:1e999,green:0.2,red:0.2,yellow:0.2,purple:0.2</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-percent-sign",
        "<Answer>blue:20%,green:20%,red:20%,yellow:20%,purple:20%</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-trailing-comma",
        f"<Answer>{DIST_OK},</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-braces",
        "<Answer>{" + DIST_OK + "}</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-semicolons",
        "<Answer>" + DIST_OK.replace(",", ";") + "</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-equals",
        "<Answer>" + DIST_OK.replace(":", "=") + "</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-single-arm",
        "<Answer>red</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-placeholder",
        "<Answer>DIST</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    (
        "dist-letters",
        "<Answer>blue:a,green:b,red:c,yellow:d,purple:e</Answer>",
        {"distribution": True},
        (False, None, "malformed-distribution"),
    ),
    ("dist-empty-tag", "<Answer> </Answer>", {"distribution": True}, (False, None, "empty-tag")),
    ("dist-no-tag", DIST_OK, {"distribution": True}, (False, None, "no-tag")),
    (
        "dist-truncated",
        "<Answer>blue:0.2,green:0.",
        {"distribution": True, "finish_reason": "length"},
        (False, None, "truncated"),
    ),
]


@pytest.mark.parametrize(("text", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_replies(text: Any, kwargs: dict[str, Any], expected: tuple[bool, int | None, str]) -> None:
    kwargs = dict(kwargs)
    names = kwargs.pop("names", COLOURS5)
    got = parse_reply(text, names, **kwargs)
    assert (got.valid, got.arm, got.reason) == expected
    if got.valid and kwargs.get("distribution"):
        assert got.distribution is not None and math.isclose(sum(got.distribution), 1.0)
    else:
        assert got.distribution is None


def test_case_table_is_big_enough() -> None:
    assert len(CASES) >= 45
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (DIST_OK, (0.2, 0.2, 0.2, 0.2, 0.2)),
        ("purple:1,yellow:1,red:0,green:0,blue:2", (0.5, 0.0, 0.0, 0.25, 0.25)),
        ("blue:3,green:1,red:0,yellow:0,purple:0", (0.75, 0.25, 0.0, 0.0, 0.0)),
        ("blue:1e308,green:1e308,red:0,yellow:0,purple:0", (0.5, 0.5, 0.0, 0.0, 0.0)),
    ],
)
def test_distribution_is_normalised_in_names_order(content: str, expected: tuple[float, ...]) -> None:
    got = parse_reply(f"<Answer>{content}</Answer>", COLOURS5, distribution=True)
    assert got.valid and got.arm is None and got.distribution is not None
    assert got.distribution == pytest.approx(expected)
    assert math.fsum(got.distribution) == pytest.approx(1.0)


def test_defect3_no_valid_tag_does_not_raise() -> None:
    """The notebook crashed on ARM_NAME_TO_IDX[None] and on a failed request's None reply."""
    for text in (
        None,
        "",
        "You will choose the blue button.",
        "I'm ready to help. What's the next question?",
    ):
        got = parse_reply(text, COLOURS5)
        assert got == ParsedReply(valid=False, arm=None, distribution=None, reason=got.reason)
        assert got.reason in ("empty", "no-tag")


def test_a_broken_call_is_reported_not_raised() -> None:
    bad_names: Any = None
    assert parse_reply("<Answer>red</Answer>", bad_names) == ParsedReply(False, None, None, "parse-error")
    weird: Any = 12345
    assert parse_reply(weird, COLOURS5).reason == "empty"
    raw: Any = b"\xff\xfe<Answer>red</Answer>"
    assert parse_reply(raw, COLOURS5).arm == 2


def test_parsed_reply_is_frozen() -> None:
    got = parse_reply("<Answer>red</Answer>", COLOURS5)
    with pytest.raises(AttributeError):
        got.arm = 1  # type: ignore[misc]


_FRAGMENTS = [
    "<Answer>",
    "</Answer>",
    "<answer>",
    "</ANSWER>",
    "<Ans",
    "blue",
    "Red",
    "purple",
    ":",
    ",",
    "0.5",
    "-1",
    "1e999",
    "nan",
    " ",
    "\n",
    "\u0435",
    "\x00",
    "{",
    '"',
    "COLOR",
]


def _random_text(rng: np.random.Generator) -> Any:
    kind = int(rng.integers(4))
    if kind == 0:
        return bytes(rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype=np.uint8))
    if kind == 1:
        raw = bytes(rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype=np.uint8))
        return raw.decode("utf-8", errors="surrogateescape")
    if kind == 2:
        return "".join(chr(int(c)) for c in rng.integers(0, 0x3000, size=int(rng.integers(0, 100))))
    picks = rng.integers(0, len(_FRAGMENTS), size=int(rng.integers(0, 30)))
    return "".join(_FRAGMENTS[int(i)] for i in picks)


def test_fuzz_never_raises() -> None:
    rng = np.random.default_rng(20250402)
    seen: set[str] = set()
    for _ in range(500):
        text = _random_text(rng)
        distribution = bool(rng.integers(2))
        finish_reason = [None, "stop", "length"][int(rng.integers(3))]
        got = parse_reply(text, COLOURS5, distribution=distribution, finish_reason=finish_reason)
        assert isinstance(got, ParsedReply)
        assert got.reason in ("", *REASONS) and got.reason != "parse-error", (text, got)
        assert got.valid == (got.reason == "")
        if got.valid:
            assert (got.arm is None) == distribution
            assert (got.distribution is not None) == distribution
        else:
            assert got.arm is None and got.distribution is None
        seen.add(got.reason)
    # The fragment mix reaches more than the trivial outcomes.
    assert {"", "no-tag", "unknown-arm"} <= seen
