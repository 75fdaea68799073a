"""What a live run costs: the bill before it starts (:func:`estimate_case`) and a budget while it runs.

Prompt tokens are estimated as ``ceil(characters / 4)`` of each rendered message (no tokenizer
dependency). Checked against the shipped SmolLM2-135M cassettes, whose replies carry the server's
own ``usage.prompt_tokens``: 3.76-4.10 characters per token request by request, so on the prompts
actually sent the estimate is within -3%..+1% per case; the bill, which renders stand-in histories
before any reply exists, came within -3%..+8% of the counted totals (tests/unit/test_spend.py).
Completion tokens
have a hard upper bound, the design's ``max_tokens``, and an expected value: the mean
``usage.completion_tokens`` of recordings of the same design (this model's when it has some,
else any model's), or the upper bound when there are none.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bandit_bench.core.replies import Price, cost_usd, read_usage
from bandit_bench.recording.transport import CassetteError, cassette_path, pending_requests, safe_component

if TYPE_CHECKING:
    from bandit_bench.core.specs import CaseConfig

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """The stated approximation: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def price_of(price: Price, prompt_tokens: float, completion_tokens: float) -> float:
    """USD for the tokens at a ``[tool.bandit_bench.prices]`` entry (USD per million tokens)."""
    cost = cost_usd(None, prompt_tokens, completion_tokens, price)
    assert cost is not None  # a price is given
    return cost


def prompt_tokens_by_step(config: CaseConfig) -> list[int]:
    """Estimated prompt tokens of the request at each step 0..T-1 of an episode.

    The history shown is a stand-in (round-robin arms, alternating rewards): a raw history's
    length depends on the names and the number of rounds, hardly on which arm won.
    """
    from bandit_bench.core.prompts import arm_names, render_messages

    k, horizon = config.instance.k, config.instance.horizon
    names = arm_names(config.design.scenario, k)
    history = [(t % k, (t // k) % 2) for t in range(horizon)]
    # A single-round episode sends one request: the decision after its history.
    steps = [config.history_length] if config.single_round else range(horizon)
    return [
        sum(approx_tokens(m["content"]) for m in render_messages(config.design, names, horizon, history[:t]))
        for t in steps
    ]


@dataclass(frozen=True)
class Observed:
    """Completion tokens seen in earlier recordings of one design."""

    mean: float
    replies: int
    source: str  # "this model" or "other models"


def _completion_tokens(path: Path) -> list[int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        out = []
        for it in data.get("interactions", []):
            body = it["response"]["body"]["string"]
            usage = json.loads(body).get("usage") or {}
            tokens = usage.get("completion_tokens")
            if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
                out.append(tokens)
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []  # an unreadable cassette is reported by replay, not by the estimate


class Recordings:
    """A cassette folder read once for a whole bill: its episode files listed on first use, each
    file's completion tokens read on first use. (Listing and reading the folder again for every
    case made a bill over a large folder cost seconds before the first request.)"""

    def __init__(self, cassette_dir: Path) -> None:
        self.cassette_dir = cassette_dir
        self._by_folder: dict[str, list[Path]] | None = None
        self._tokens: dict[Path, list[int]] = {}

    def episodes(self, folder: str) -> list[Path]:
        """The episode files (``NNN.json``) of config folders named ``folder``, in path order."""
        if self._by_folder is None:
            self._by_folder = {}
            if self.cassette_dir.is_dir():
                for path in sorted(self.cassette_dir.rglob("*.json")):
                    if path.stem.isdigit():
                        self._by_folder.setdefault(path.parent.name, []).append(path)
        return self._by_folder.get(folder, [])

    def completion_tokens(self, path: Path) -> list[int]:
        if path not in self._tokens:
            self._tokens[path] = _completion_tokens(path)
        return self._tokens[path]


def observed_completion(
    cassette_dir: Path,
    model: str,
    design_code: str,
    configs: Mapping[str, CaseConfig],
    recordings: Recordings | None = None,
) -> Observed | None:
    """Mean completion tokens of recorded replies to ``design_code``: this model's, else any model's.

    ``recordings``: the folder as read for earlier cases of the same bill."""
    folders = {safe_component(c.name) for c in configs.values() if c.design.code == design_code}
    if not folders or not cassette_dir.is_dir():
        return None
    if recordings is None or recordings.cassette_dir != cassette_dir:
        recordings = Recordings(cassette_dir)
    model_dir = cassette_path(cassette_dir, model, "x", 0).parent.parent
    mine: list[int] = []
    others: list[int] = []
    simulated = cassette_dir / "sim"
    for path in sorted(p for folder in folders for p in recordings.episodes(folder)):
        if path.parent.parent == model_dir:
            mine.extend(recordings.completion_tokens(path))
        elif not path.is_relative_to(simulated):
            # The simulator's scripted replies (sim/...) say nothing about a model's length.
            others.extend(recordings.completion_tokens(path))
    for tokens, source in ((mine, "this model"), (others, "other models")):
        if tokens:
            return Observed(sum(tokens) / len(tokens), len(tokens), source)
    return None


@dataclass(frozen=True)
class CaseEstimate:
    """The bill of one case: what a run in ``record_mode`` would send, and what it would cost."""

    model: str
    config: str
    record_mode: str
    episodes: int  # episodes with at least one request to record
    requests: int
    prompt_tokens: int
    completion_tokens_max: int
    completion_tokens_expected: float
    completion_source: str
    cost_expected: float | None  # None: no price for the model
    cost_max: float | None


def estimate_case(
    model: str,
    config: CaseConfig,
    cassette_dir: Path,
    record_mode: str,
    prices: Mapping[str, Price],
    configs: Mapping[str, CaseConfig] | None = None,
    token_limit: int | None = None,
    recordings: Recordings | None = None,
) -> CaseEstimate:
    """The requests a run would record for this case, their estimated tokens and cost.

    ``token_limit``: what each request's request profile allows (running.profiles), when it is
    not the design's answer budget (a reasoning model's allowance on top). ``recordings``: the
    cassette folder as read for the other cases of the bill."""
    per_episode = 1 if config.single_round else config.instance.horizon
    pending = pending_requests(
        cassette_dir, model, config.name, config.run.episodes, per_episode, record_mode
    )
    requests = sum(pending.values())
    prompt = 0
    if requests:
        by_step = prompt_tokens_by_step(config)
        # An episode records its last steps: new_episodes resumes where its cassette stops.
        prompt = sum(sum(by_step[len(by_step) - n :]) for n in pending.values())
    max_tokens = token_limit or config.design.max_tokens
    known = {**(configs or {}), config.name: config}
    observed = observed_completion(cassette_dir, model, config.design.code, known, recordings)
    per_reply = min(observed.mean, max_tokens) if observed else float(max_tokens)
    source = f"{observed.source} ({observed.replies} replies)" if observed else "max_tokens"
    price = prices.get(model)
    return CaseEstimate(
        model=model,
        config=config.name,
        record_mode=record_mode,
        episodes=len(pending),
        requests=requests,
        prompt_tokens=prompt,
        completion_tokens_max=requests * max_tokens,
        completion_tokens_expected=requests * per_reply,
        completion_source=source,
        cost_expected=price_of(price, prompt, requests * per_reply) if price else None,
        cost_max=price_of(price, prompt, requests * max_tokens) if price else None,
    )


def _usd(value: float | None) -> str:
    if value is None:
        return "no price"
    return f"${value:.2f}" if value >= 1 else f"${value:.4f}"


def _cost_cell(expected: float | None, most: float | None) -> str:
    return "no price" if most is None else f"~{_usd(expected)} (max {_usd(most)})"


def format_bill(estimates: Sequence[CaseEstimate], record_mode: str) -> str:
    """The table printed by ``--collect-only`` and at the start of a recording run."""
    header = ("case", "episodes", "requests", "prompt tok", "completion tok", "expected from", "cost")
    rows = [header]
    for e in estimates:
        rows.append(
            (
                f"{e.model} x {e.config}",
                str(e.episodes),
                str(e.requests),
                f"~{e.prompt_tokens:,}",
                f"~{round(e.completion_tokens_expected):,} (max {e.completion_tokens_max:,})",
                e.completion_source,
                _cost_cell(e.cost_expected, e.cost_max),
            )
        )
    priced = [e for e in estimates if e.cost_max is not None]
    rows.append(
        (
            "total",
            str(sum(e.episodes for e in estimates)),
            str(sum(e.requests for e in estimates)),
            f"~{sum(e.prompt_tokens for e in estimates):,}",
            f"~{round(sum(e.completion_tokens_expected for e in estimates)):,} "
            f"(max {sum(e.completion_tokens_max for e in estimates):,})",
            "",
            (
                f"~{_usd(sum(e.cost_expected or 0.0 for e in priced))} "
                f"(max {_usd(sum(e.cost_max or 0.0 for e in priced))})"
                + (f" + {len(estimates) - len(priced)} unpriced" if len(priced) < len(estimates) else "")
            )
            if priced
            else "no price",
        )
    )
    from bandit_bench.reporting.columns import aligned_table

    lines = [f"requests to record (--record-mode={record_mode}) and their estimated cost:"]
    # Numbers right-aligned; a rule above the total only.
    lines += aligned_table(rows, right=range(1, len(header)), rules={len(rows) - 1})
    lines.append(
        "prompt tokens ~ characters / 4 of the rendered prompts; completion tokens ~ the mean reply "
        "in earlier recordings of the design (this model's, else other models'), at most the "
        "request's token limit (the design's, plus a reasoning model's allowance: docs/providers.md); "
        "cost from [tool.bandit_bench.prices] (USD per 1M tokens)."
    )
    return "\n".join(lines)


def estimate_cases(
    cases: Iterable[Any],
    cassette_dir: Path,
    record_mode: str,
    prices: Mapping[str, Price],
    configs: Any,
    token_limit: Callable[[str, CaseConfig], int] | None = None,
) -> list[CaseEstimate]:
    """Estimates of the cases that call an API (baselines never do); ``token_limit(model, config)``
    gives each case's token limit from its request profile."""
    from bandit_bench.running.runner import is_baseline

    recordings = Recordings(cassette_dir)  # one read of the folder for the whole bill
    return [
        estimate_case(
            c.model,
            c.config,
            cassette_dir,
            record_mode,
            prices,
            configs,
            token_limit(c.model, c.config) if token_limit is not None else None,
            recordings,
        )
        for c in cases
        if not is_baseline(c.model)
    ]


# ---------------------------------------------------------------------------- the budget


class BudgetExhausted(CassetteError):
    """The next request could cost more than what is left of ``--max-cost``: it is not sent."""


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def completion_limit(body: bytes) -> int:
    """The most completion tokens a request lets come back, reasoning included: the token limit
    it actually sends (``max_tokens``, or ``max_completion_tokens``, OpenAI's name for the limit
    that counts reasoning tokens), plus OpenRouter's ``reasoning.max_tokens`` when the request
    gives reasoning its own budget. 0 when it sends none."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return 0
    if not isinstance(data, dict):
        return 0
    limit = max(_whole(data.get("max_tokens")), _whole(data.get("max_completion_tokens")))
    reasoning = data.get("reasoning")
    if isinstance(reasoning, dict):
        limit += _whole(reasoning.get("max_tokens"))
    return limit


def request_bound(body: bytes, price: Price) -> float:
    """An upper bound of a request's cost before it is sent, at the configured price.

    Prompt: one token per byte of the request body (a token is never shorter than a byte of the
    text it encodes, and the JSON around the messages outweighs a chat template's few tokens).
    Completion: :func:`completion_limit`, the limit the request sends (reasoning included). A
    reply that costs more (a provider that bills past the limit, a ``usage.cost`` above the price
    table) counts as the budget reached (:meth:`SpendGuard.after`).
    """
    return price_of(price, len(body), completion_limit(body))


def reply_cost(content: bytes, price: Price) -> float | None:
    """What a reply cost, by the report's own rule (:func:`~bandit_bench.core.replies.cost_usd`):
    the provider's ``usage.cost`` (BYOK upstream cost included) when it says, else its tokens,
    reasoning included, at ``price``; None when the body reports neither (the caller then charges
    the bound). Any 2xx body is read, so a paid reply that is then retried as malformed is charged.
    """
    try:
        raw = json.loads(content).get("usage")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    try:
        usage = read_usage(raw)
    except ValueError:
        try:  # a nonsensical cost: the tokens still say what was used
            usage = read_usage({k: v for k, v in raw.items() if k not in ("cost", "cost_details")})
        except ValueError:
            return None
    if usage.provider_cost is None and (
        raw.get("prompt_tokens") is None or raw.get("completion_tokens") is None
    ):
        return None
    return cost_usd(usage.provider_cost, usage.prompt_tokens, usage.completion_tokens, price)


class Budget:
    """``--max-cost`` shared by every thread and every xdist worker of a session, through one
    ledger file (spent, reserved, refused) updated under an exclusive ``flock``.

    A request reserves its upper bound before it is sent and is refused when spent + reserved +
    bound would exceed the limit; from the first refusal on every new request is refused, so the
    run stops starting requests instead of squeezing in cheaper ones.
    """

    def __init__(self, limit: float, ledger: Path | str, prices: Mapping[str, Price]) -> None:
        self.limit = limit
        self.ledger = Path(ledger)
        self.prices = dict(prices)
        self._lock = threading.Lock()

    @staticmethod
    def create_ledger(directory: Path | str | None = None) -> Path:
        fd, name = tempfile.mkstemp(prefix="bandit-bench-budget-", suffix=".json", dir=directory)
        with os.fdopen(fd, "w") as fh:
            json.dump({"spent": 0.0, "reserved": 0.0, "refused": 0}, fh)
        return Path(name)

    def _update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        from bandit_bench.running.ledger import update_ledger

        return update_ledger(self.ledger, self._lock, change)

    def state(self) -> dict[str, Any]:
        return dict(self._update(lambda s: dict(s)))

    def reserve(self, bound: float) -> bool:
        def change(s: dict[str, Any]) -> bool:
            if s.get("refused") or s.get("over_bound") or s["spent"] + s["reserved"] + bound > self.limit:
                s["refused"] = int(s.get("refused", 0)) + 1
                return False
            s["reserved"] += bound
            return True

        return bool(self._update(change))

    def settle(self, bound: float, actual: float, over: str | None = None) -> None:
        """Release the reservation, charge ``actual``; ``over`` (a reply that cost more than its
        bound) marks the budget reached: no request starts after it."""

        def change(s: dict[str, Any]) -> None:
            s["reserved"] = max(0.0, s["reserved"] - bound)
            s["spent"] += actual
            if over is not None:
                s.setdefault("over_bound", over)

        self._update(change)

    def guard(self, model: str) -> SpendGuard:
        return SpendGuard(self, self.prices[model], model)


class SpendGuard:
    """What a cassette transport asks before it sends a request to the API, and tells after."""

    def __init__(self, budget: Budget, price: Price, model: str) -> None:
        self.budget = budget
        self.price = price
        self.model = model
        self.refused = False

    def before(self, body: bytes) -> float:
        if completion_limit(body) == 0:
            # Nothing would bound the reply: no reservation could cover it.
            raise BudgetExhausted(
                f"--max-cost needs a token limit in each request, and this request of {self.model} "
                "sends none (max_tokens or max_completion_tokens): it was not sent"
            )
        bound = request_bound(body, self.price)
        if not self.budget.reserve(bound):
            self.refused = True
            raise BudgetExhausted(
                f"budget --max-cost ${self.budget.limit:g} reached: the next request of {self.model} "
                f"(at most ${bound:.4f}) was not sent"
            )
        return bound

    def after(self, bound: float, status: int | None, content: bytes = b"") -> None:
        """Charge the reply's cost; an error status costs nothing, an unknown outcome its bound."""
        if status is not None and not 200 <= status < 300:
            actual: float | None = 0.0
        else:
            actual = reply_cost(content, self.price) if status is not None else None
        charged = bound if actual is None else actual
        over = None
        if charged > bound * (1 + 1e-9):
            over = (
                f"a reply of {self.model} cost ${charged:.4f}, more than the ${bound:.4f} reserved for it "
                "(more tokens than the limit sent, or a provider cost above the price table)"
            )
        self.budget.settle(bound, charged, over)
