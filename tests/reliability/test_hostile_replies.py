"""Hostile replies end to end: simulator -> real openai client -> cassette -> parser -> trajectory.

tests/unit/test_parsing.py pins the parser on strings; here the same kinds of replies travel as
real HTTP answers (JSON escapes, NUL bytes, 100 KB bodies, ``null`` content, a tool call) through
``run_case`` while recording, then again from the cassette with no server at all. Each step must
get exactly the classification of the parsing rules, nothing may raise, every invalid step
counts against format compliance and keeps its raw reply, and the arm the harness pulls for an
invalid step is the episode's own seeded draw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import case_config

from bandit_bench.core.bandit import draw_instance
from bandit_bench.core.episode import Trajectory
from bandit_bench.core.seeding import api_seed
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.recording.transport import cassette_path
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.reporting.writer import write_reports
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import SimReply, Simulator, always, scripted

RAMBLE = "Let me weigh exploration against exploitation once more. " * 1800
assert len(RAMBLE) > 100_000
DIST_OK = "blue:0.2,green:0.2,red:0.2,yellow:0.2,purple:0.2"
TOOL_CALL_RAW = '[tool call] press({"button": "blue"})'
UNREACHABLE = "http://127.0.0.1:9/v1"  # the discard port: a replay that tried the network would fail


@dataclass(frozen=True)
class Hostile:
    id: str
    reply: SimReply
    valid: bool
    reason: str
    arm: int | None = None  # the arm asked for (one-arm designs)
    distribution: tuple[float, ...] | None = None  # the normalised weights (D designs)
    raw: str | None = "same"  # what the trajectory keeps; "same" = the reply's content


def _h(
    id: str,
    content: str | None,
    reason: str = "",
    arm: int | None = None,
    *,
    finish: str = "stop",
    distribution: tuple[float, ...] | None = None,
) -> Hostile:
    valid = reason == ""
    return Hostile(id, SimReply(content, finish_reason=finish), valid, reason, arm, distribution)


# The paper's hard instance: K=5, arms blue, green, red, yellow, purple (indices 0-4).
SINGLE: list[Hostile] = [
    # answers a lenient reader must take
    _h("plain", "<Answer>blue</Answer>", arm=0),
    _h("tag-lower-arm-upper", "<answer>GREEN</answer>", arm=1),
    _h("tag-mixed-case-pair", "<ANSWER>Red</Answer>", arm=2),
    _h("newlines-in-tag", "<Answer>\n  yellow \n\t</Answer>", arm=3),
    _h("markdown-bold-around", "**<Answer>purple</Answer>**", arm=4),
    _h("markdown-code-fence", "```xml\n<Answer>\nred\n</Answer>\n```", arm=2),
    _h("two-tags-last-wins", "<Answer>blue</Answer> no wait <Answer>red</Answer>", arm=2),
    _h("think-block-then-answer", "<think><Answer>blue</Answer></think>\n<Answer>green</Answer>", arm=1),
    _h("nested-tags", "<Answer><Answer>yellow</Answer></Answer>", arm=3),
    _h("ramble-100kb-then-tag", RAMBLE + "<Answer>green</Answer>", arm=1),
    _h("nul-bytes-after", "<Answer>red</Answer>\x00\x00", arm=2),
    _h("length-but-complete", "<Answer>purple</Answer>", arm=4, finish="length"),
    _h("content-filter-finish", "<Answer>blue</Answer>", arm=0, finish="content_filter"),
    # no usable tag
    _h("no-tag", "I choose red.", "no-tag"),
    _h("empty-string", "", "empty"),
    _h("null-content", None, "empty"),
    _h("whitespace-only", "  \n\t ", "empty"),
    _h("ramble-100kb-no-tag", RAMBLE, "no-tag"),
    _h("refusal", "I'm sorry, but I can't help with choosing buttons.", "no-tag"),
    _h("smollm2-observed", "I'm ready to help. What's the next question?", "no-tag"),
    _h("json-answer", '{"answer": "red"}', "no-tag"),
    _h("tag-with-attributes", '<Answer type="arm">red</Answer>', "no-tag"),
    _h("spaces-in-brackets", "< Answer >red</ Answer >", "no-tag"),
    _h("html-escaped-tag", "&lt;Answer&gt;red&lt;/Answer&gt;", "no-tag"),
    _h("reversed-tags", "</Answer>red<Answer>", "no-tag"),
    _h("unclosed-stop", "<Answer>red", "no-tag"),
    _h("cut-before-any-tag", "Let me think step by step", "no-tag", finish="length"),
    # cut off by max_tokens part way through an answer
    _h("length-mid-content", "<Answer>gre", "truncated", finish="length"),
    _h("length-mid-closing-tag", "<Answer>red</Ans", "truncated", finish="length"),
    _h("length-mid-opening-tag", "Thinking it over... <Ans", "truncated", finish="length"),
    _h(
        "length-mid-revision", "<Answer>red</Answer> Actually, wait: <Answer>gr", "truncated", finish="length"
    ),
    _h("ramble-100kb-length", RAMBLE + "<Answer>", "truncated", finish="length"),
    # a tag holding something that is not one of this instance's arms
    _h("empty-tag", "<Answer></Answer>", "empty-tag"),
    _h("blank-tag", "<Answer> \n </Answer>", "empty-tag"),
    _h("placeholder-COLOR", "<Answer>COLOR</Answer>", "unknown-arm"),
    _h("placeholder-explained", "<Answer>COLOR</Answer> where COLOR is red", "unknown-arm"),
    _h("last-tag-invalid", "<Answer>red</Answer> then <Answer>COLOR</Answer>", "unknown-arm"),
    _h("arm-of-k10-instance", "<Answer>orange</Answer>", "unknown-arm"),
    _h("advertisement-name", "<Answer>A</Answer>", "unknown-arm"),
    _h("arm-with-unit", "<Answer>blue button</Answer>", "unknown-arm"),
    _h("markdown-inside-tag", "<Answer>**red**</Answer>", "unknown-arm"),
    _h("quoted-inside-tag", '<Answer>"red"</Answer>', "unknown-arm"),
    _h("trailing-period", "<Answer>red.</Answer>", "unknown-arm"),
    _h("two-arms-in-tag", "<Answer>red, blue</Answer>", "unknown-arm"),
    _h("index-not-name", "<Answer>2</Answer>", "unknown-arm"),
    _h("cyrillic-e-look-alike", "<Answer>blu\u0435</Answer>", "unknown-arm"),
    _h("greek-omicron-look-alike", "<Answer>y\u0435ll\u03bfw</Answer>", "unknown-arm"),
    _h("fullwidth-letters", "<Answer>\uff52\uff45\uff44</Answer>", "unknown-arm"),
    _h("zero-width-space", "<Answer>re\u200bd</Answer>", "unknown-arm"),
    _h("emoji", "<Answer>\U0001f534</Answer>", "unknown-arm"),
    _h("distribution-in-one-arm-design", f"<Answer>{DIST_OK}</Answer>", "unknown-arm"),
    # what a model sends instead of text
    Hostile("tool-call-instead-of-content", SimReply(tool_call=True), False, "empty", raw=TOOL_CALL_RAW),
    # a UTF-16 server cutting an emoji in half: the JSON escape \ud83d is a lone surrogate; it is kept
    # as U+FFFD so that every file of the run can still be written as UTF-8
    Hostile(
        "lone-surrogate",
        SimReply("<Answer>red\ud83d</Answer>"),
        False,
        "unknown-arm",
        raw="<Answer>red\ufffd</Answer>",
    ),
]

UNIFORM = (0.2, 0.2, 0.2, 0.2, 0.2)
DIST: list[Hostile] = [
    _h("dist-ok", f"<Answer>{DIST_OK}</Answer>", distribution=UNIFORM),
    _h(
        "dist-one-hot",
        "<Answer>blue:0,green:0,red:1,yellow:0,purple:0</Answer>",
        distribution=(0, 0, 1, 0, 0),
    ),
    _h(
        "dist-spaces-case-order",
        "<Answer> PURPLE : 3 , Green:1, red :0 ,yellow: 0,blue:0 </Answer>",
        distribution=(0.0, 0.25, 0.0, 0.0, 0.75),
    ),
    _h(
        "dist-negative-weight",
        "<Answer>blue:-0.2,green:0.4,red:0.4,yellow:0.2,purple:0.2</Answer>",
        "negative-weight",
    ),
    _h(
        "dist-missing-arm",
        "<Answer>blue:0.25,green:0.25,red:0.25,yellow:0.25</Answer>",
        "malformed-distribution",
    ),
    _h(
        "dist-missing-weight",
        "<Answer>blue:,green:0.25,red:0.25,yellow:0.25,purple:0.25</Answer>",
        "malformed-distribution",
    ),
    _h("dist-all-zero", "<Answer>blue:0,green:0,red:0,yellow:0,purple:0.0</Answer>", "zero-distribution"),
    _h(
        "dist-nan",
        "<Answer>blue:nan,green:0.2,red:0.2,yellow:0.2,purple:0.2</Answer>",
        "malformed-distribution",
    ),
    _h(
        "dist-percent",
        "<Answer>blue:20%,green:20%,red:20%,yellow:20%,purple:20%</Answer>",
        "malformed-distribution",
    ),
    _h("dist-placeholder", "<Answer>DIST</Answer>", "malformed-distribution"),
    _h("dist-single-arm", "<Answer>red</Answer>", "malformed-distribution"),
    _h(
        "dist-duplicate-arm",
        "<Answer>blue:0.5,BLUE:0.1,green:0.1,red:0.1,yellow:0.1,purple:0.1</Answer>",
        "malformed-distribution",
    ),
    _h(
        "dist-unknown-arm",
        "<Answer>orange:0.2,green:0.2,red:0.2,yellow:0.2,purple:0.2</Answer>",
        "unknown-arm",
    ),
    _h("dist-no-tag", DIST_OK, "no-tag"),
    _h("dist-length-mid-weights", "<Answer>blue:0.2,green:0.", "truncated", finish="length"),
    _h("dist-empty-tag", "<Answer> </Answer>", "empty-tag"),
]

CORPORA = {"one-arm-BNRN0": ("BNRN0", SINGLE), "distribution-BNRND": ("BNRND", DIST)}


def test_the_corpus_is_large_and_covers_every_failure_reason() -> None:
    everything = SINGLE + DIST
    assert len(SINGLE) >= 40
    assert len({h.id for h in everything}) == len(everything)
    reasons = {h.reason for h in everything if not h.valid}
    assert reasons == {
        "empty",
        "no-tag",
        "empty-tag",
        "unknown-arm",
        "malformed-distribution",
        "negative-weight",
        "zero-distribution",
        "truncated",
    }


def _config(design: str, horizon: int) -> CaseConfig:
    # Thresholds left at the default 0.9: the corpus is meant to fall below it.
    return case_config("hostile", design, horizon=horizon)


def _expected_arms(config: CaseConfig, corpus: list[Hostile]) -> list[int]:
    """The arms the harness must pull: asked-for arms, else draws of the episode's own generator."""
    _, harness, _ = draw_instance(config.instance, config.run.seed, 0)
    arms = []
    for h in corpus:
        if h.valid and h.distribution is not None:
            arms.append(int(harness.choice(config.instance.k, p=np.asarray(h.distribution))))
        elif h.valid:
            assert h.arm is not None
            arms.append(h.arm)
        else:
            arms.append(int(harness.integers(config.instance.k)))
    return arms


def _expected_raw(h: Hostile) -> str | None:
    return h.reply.content if h.raw == "same" else h.raw


def _check_steps(traj: Trajectory, config: CaseConfig, corpus: list[Hostile]) -> None:
    assert traj.error is None
    assert len(traj.steps) == len(corpus)
    instance, _, _ = draw_instance(config.instance, config.run.seed, 0)
    arms = _expected_arms(config, corpus)
    for step, h, arm in zip(traj.steps, corpus, arms, strict=True):
        assert (step.valid, step.reason) == (h.valid, h.reason), h.id
        assert step.raw == _expected_raw(h), h.id
        assert step.arm == arm, h.id
        assert step.reward == instance.pull(step.t, arm), h.id


@pytest.mark.parametrize("corpus_id", list(CORPORA))
def test_hostile_replies_through_the_real_client_record_and_replay(tmp_path: Path, corpus_id: str) -> None:
    design, corpus = CORPORA[corpus_id]
    config = _config(design, len(corpus))
    cassettes = tmp_path / "cassettes"
    with Simulator(scripted([h.reply for h in corpus])) as sim:
        recorded = run_case(
            "sim/hostile",
            config,
            RunOptions(base_url=sim.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode="once"),
        )
        assert sim.calls == len(corpus)  # one request per step: no reply was retried or dropped
        assert sim.errors == []
    [traj] = recorded.trajectories
    _check_steps(traj, config, corpus)
    assert (recorded.recorded, recorded.replayed) == (len(corpus), 0)

    # Invalid steps count against compliance, and are not errors: the case fails on its threshold.
    record = case_record(recorded)
    n_valid = sum(h.valid for h in corpus)
    assert record["errors"] == []
    assert record["metrics"]["format_compliance"]["value"] == n_valid / len(corpus)
    assert record["passed"] is False
    [failure] = [f for f in record["failures"] if f.startswith("format compliance")]
    assert failure.startswith(f"format compliance {n_valid / len(corpus):.2f} < 0.90 (95% CI [")
    # The replies the token limit cut off before a valid answer are named apart from the format.
    cut = sum(1 for h in corpus if not h.valid and h.reply.finish_reason == "length")
    assert cut > 0
    assert failure.split("; ")[0].endswith(f"]) on {len(corpus)} steps")
    assert f"; {cut} of {len(corpus)} replies ran out of tokens before a valid answer" in failure

    # The cassette alone gives back every reply, byte for byte, and the same decisions.
    replayed = run_case("sim/hostile", config, RunOptions(base_url=UNREACHABLE, cassette_dir=cassettes))
    assert (replayed.recorded, replayed.replayed) == (0, len(corpus))
    _check_steps(replayed.trajectories[0], config, corpus)

    # The report keeps each step's raw reply, verdict and reason (steps.jsonl is UTF-8 JSON lines).
    paths = write_reports([record], tmp_path / "reports")
    lines = paths["steps.jsonl"].read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["t"], r["valid"], r["reason"], r["raw"]) for r in rows] == [
        (t, h.valid, h.reason, _expected_raw(h)) for t, h in enumerate(corpus)
    ]


def _completion(choice: object = None, usage: object = None, **message: object) -> dict[str, object]:
    """A chat completion body with one part replaced (the rest is well formed)."""
    msg = {"role": "assistant", "content": "<Answer>blue</Answer>", **message}
    body: dict[str, object] = {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }
    if choice is not None:
        body["choices"] = choice
    if usage is not None:
        body["usage"] = usage
    return body


def _usage(**fields: object) -> dict[str, object]:
    return {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, **fields}


# A 200 body -> the reason given; none may crash, none may be recorded.
MALFORMED: dict[str, tuple[object, str]] = {
    "choices-a-string": (_completion(choice="oops"), "'choices' is not a list (got 'oops')"),
    "choices-null-item": (_completion(choice=[None]), "choices[0] is not an object (got None)"),
    "choices-numbers": (_completion(choice=[1, 2]), "choices[0] is not an object (got 1)"),
    "choices-an-object": (_completion(choice={"0": {"message": {}}}), "'choices' is not a list (got {'0': "),
    "message-a-string": (_completion(choice=[{"message": "hi"}]), "choices[0].message is not an object"),
    "content-a-number": (
        _completion(content=42),
        "choices[0].message.content is not text (got 42), nor a list",
    ),
    "finish-reason-a-number": (
        _completion(choice=[{"message": {"content": "x"}, "finish_reason": 3}]),
        "choices[0].finish_reason is not text (got 3)",
    ),
    "tool-call-without-function": (
        _completion(content=None, tool_calls=[{"id": "c", "type": "function"}]),
        "choices[0].message.tool_calls[0] has no function with a name",
    ),
    "usage-a-string": (_completion(usage="lots"), "'usage' is not an object (got 'lots')"),
    "tokens-a-string": (
        _completion(usage=_usage(prompt_tokens="many")),
        "usage.prompt_tokens is not a whole number in [0, 9007199254740992] (got 'many')",
    ),
    "tokens-negative": (
        _completion(usage=_usage(completion_tokens=-5)),
        "usage.completion_tokens is not a whole number in [0, 9007199254740992] (got -5)",
    ),
    "tokens-infinite": (
        _completion(usage=_usage(total_tokens=float("inf"))),
        "usage.total_tokens is not a whole number in [0, 9007199254740992] (got inf)",
    ),
    "tokens-nan": (
        _completion(usage=_usage(prompt_tokens=float("nan"))),
        "usage.prompt_tokens is not a whole number in [0, 9007199254740992] (got nan)",
    ),
    "cost-negative": (
        _completion(usage=_usage(cost=-0.5)),
        "usage.cost is not a finite number in [0, 9007199254740992] (got -0.5)",
    ),
    "cost-infinite": (
        _completion(usage=_usage(cost=float("inf"))),
        "usage.cost is not a finite number in [0, 9007199254740992] (got inf)",
    ),
    "cost-a-string": (
        _completion(usage=_usage(cost="free")),
        "usage.cost is not a finite number in [0, 9007199254740992] (got 'free')",
    ),
    "body-a-list": ([1, 2, 3], "the body is not a JSON object (got [1, 2, 3])"),
}
TWO = CaseConfig(
    name="malformed",
    design=DesignSpec.parse("BNRN0"),
    instance=InstanceSpec(k=5, delta=0.2, horizon=2),
    run=RunSpec(episodes=2, seed=0),
)


@pytest.mark.parametrize("shape", list(MALFORMED))
def test_a_malformed_completion_errors_its_episode_only_and_is_never_recorded(
    tmp_path: Path, shape: str
) -> None:
    """Episode 0's server answers with a malformed 200 (retried once, then the episode errors
    with the reason; not retried when its usage says it was billed, since asking again would pay
    again); episode 1, running beside it, completes and is saved. A cassette that holds the same
    shape (edited by hand) is refused naming the file, the interaction and the fix."""
    body, reason = MALFORMED[shape]
    bad_seed = api_seed(0, TWO.instance.key, 0)
    good = always(0)

    def policy(request: dict[str, object], call: int) -> SimReply:
        # retry-after-ms: the one retry comes at once (the backoff is not what is tested here)
        return (
            SimReply(body=body, headers={"retry-after-ms": "1"})
            if request["seed"] == bad_seed
            else good(request, call)
        )

    cassettes = tmp_path / "cassettes"
    with Simulator(policy) as sim:
        opts = RunOptions(
            base_url=sim.base_url, api_key="sk-test", cassette_dir=cassettes, record_mode="once",
            concurrency=2, max_retries=1,
        )  # fmt: skip
        result = run_case("sim/malformed", TWO, opts)
        assert sim.errors == []
        url = f"{sim.base_url}/chat/completions"
        bad_calls = sum(1 for r in sim.requests if r["seed"] == bad_seed)
    bad, ok = result.trajectories
    assert bad.error is not None and bad.error.startswith(
        f"step 1 of 2: model sim/malformed: HTTP 200 from {url} is not a chat completion ({reason}"
    )
    # The body's own usage (3 completion tokens) says it was paid, unless the usage is the fault.
    paid = (
        isinstance(body, dict)
        and isinstance(body.get("usage"), dict)
        and not shape.startswith(("usage-", "tokens-", "cost-"))
    )
    if paid:
        assert "yet it was billed (3 output tokens): not retried" in bad.error and bad_calls == 1
    else:
        assert bad.error.endswith(" after 1 retries") and bad_calls == 2
    assert "Traceback" not in bad.error
    assert ok.error is None and [s.raw for s in ok.steps] == ["<Answer>blue</Answer>"] * 2
    assert [p.name for p in cassettes.rglob("[0-9]*.json")] == ["001.json"]
    record = case_record(result)
    assert record["errors"] == [f"episode 0: {bad.error}"]
    assert [t["episode"] for t in record["trajectories"]] == [0, 1]

    # The same shape written into a cassette by hand: named, with the fix, and nothing replayed.
    path = cassette_path(cassettes, "sim/malformed", TWO.name, 1)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["interactions"][1]["response"]["body"]["string"] = json.dumps(body)
    path.write_text(json.dumps(data), encoding="utf-8")
    replay = run_case("sim/malformed", TWO, RunOptions(base_url=UNREACHABLE, cassette_dir=cassettes))
    episode1 = replay.trajectories[1].error
    assert episode1 is not None and episode1.startswith(
        f"cassette {path} is unreadable or not a vcrpy JSON cassette (interaction 2: the response is not "
        f"a chat completion: {reason}"
    )
    assert "). Delete it, or re-record it with --record-mode=rewrite. To record it again: pytest" in episode1
