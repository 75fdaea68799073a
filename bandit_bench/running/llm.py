"""The LLM agent: render the design's prompt, ask any OpenAI-compatible endpoint, parse the reply.

The only module that imports ``openai``. Retries with backoff and timeouts are the openai
client's own (``max_retries``, ``timeout``); what still fails after them ends the episode as
errored (:class:`AgentError`) with the HTTP status and the model in the message, and is never
counted as a format failure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bandit_bench.core.agents.base import AgentError, Decision, EpisodeContext
from bandit_bench.core.parsing import parse_reply
from bandit_bench.core.prompts import answer_grammar, render_messages
from bandit_bench.core.specs import DesignSpec
from bandit_bench.recording.redaction import Secret, redact
from bandit_bench.recording.transport import CassetteError, UnusableResponse

if TYPE_CHECKING:
    import httpx2
    from openai import OpenAI


# The client insists on a key; with none configured it gets this one, and the request leaves
# without any Authorization header (see make_client).
NO_KEY_PLACEHOLDER = "no-key-configured"


def _drop_placeholder_auth(request: httpx2.Request) -> None:
    if request.headers.get("authorization") == f"Bearer {NO_KEY_PLACEHOLDER}":
        del request.headers["authorization"]


def make_client(
    base_url: str,
    api_key: Secret | str | None,
    transport: httpx2.BaseTransport | None = None,
    *,
    max_retries: int = 2,
    timeout: float = 60.0,
) -> OpenAI:
    import httpx2
    from openai import OpenAI

    if isinstance(api_key, str):
        api_key = Secret(api_key, "the api_key argument")
    # gzip only: every recorded body can then be stored decoded, whatever the server supports.
    http_client = httpx2.Client(
        transport=transport,
        headers={"Accept-Encoding": "gzip"},
        timeout=timeout,
        event_hooks={"request": [] if api_key else [_drop_placeholder_auth]},
    )
    return OpenAI(
        base_url=base_url,
        # Never None: given None the client would read OPENAI_API_KEY itself and send it to any
        # endpoint. A callable keeps the key out of the client's constructor arguments.
        api_key=api_key.reveal if api_key else NO_KEY_PLACEHOLDER,
        http_client=http_client,
        max_retries=max_retries,
        timeout=timeout,
    )


class LLMAgent:
    """Asks ``model`` for each step's decision through ``client.chat.completions.create``."""

    def __init__(
        self,
        model: str,
        design: DesignSpec,
        client: OpenAI,
        *,
        constrained: bool = False,
        before_request: Callable[[], None] | None = None,
        key_advice: str | None = None,
    ) -> None:
        """``key_advice`` replaces the generic advice on a 401: where this run's key came from."""
        self.key_advice = key_advice
        self.name = model
        self.model = model
        self.design = design
        self.client = client
        self.constrained = constrained
        self.before_request = before_request

    def request_params(self, history: Sequence[tuple[int, int]], ctx: EpisodeContext) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": render_messages(self.design, ctx.arm_names, ctx.instance.horizon, history),
            "temperature": self.design.temperature,
            "max_tokens": self.design.max_tokens,
            "seed": ctx.instance.seed,
        }
        if self.constrained:
            # llama.cpp's server reads a GBNF grammar from the body; recorded like any other field.
            params["extra_body"] = {"grammar": answer_grammar(ctx.arm_names)}
        return params

    def choose(self, history: Sequence[tuple[int, int]], ctx: EpisodeContext) -> Decision:
        params = self.request_params(history, ctx)
        if self.before_request is not None:
            self.before_request()
        start = time.perf_counter()
        try:
            completion = self._create(params)
        except AgentError as err:
            # Error bodies are quoted in the message, and some servers echo the key they were sent.
            raise AgentError(redact(str(err))) from None
        latency = time.perf_counter() - start
        try:
            choice, content, raw, prompt_tokens, completion_tokens, cost = _read_completion(completion)
        except (AttributeError, TypeError, IndexError, KeyError, ValueError) as err:
            # The cassette transport validates every answer first; another client may not.
            raise AgentError(
                redact(f"model {self.model}: malformed chat completion ({type(err).__name__}: {err})")
            ) from None
        parsed = parse_reply(
            content,
            ctx.arm_names,
            distribution=self.design.distribution,
            finish_reason=choice.finish_reason if isinstance(choice.finish_reason, str) else None,
        )
        return Decision(
            valid=parsed.valid,
            arm=parsed.arm,
            distribution=parsed.distribution,
            raw=raw,
            reason=parsed.reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency=latency,
            cost=cost,
        )

    def _create(self, params: dict[str, Any]) -> Any:
        """A completion with at least one choice, or :class:`AgentError` naming status and model."""
        import openai

        def clean(text: str, limit: int = 300) -> str:
            # Redacted before it is cut short, so that no prefix of the key survives either.
            return _short(redact(text), limit)

        try:
            completion = self.client.chat.completions.create(**params)
        except CassetteError as err:
            # The transport's own errors reach us unwrapped: they are not network faults.
            raise AgentError(str(err)) from None
        except openai.APIStatusError as err:
            retried = err.status_code in _RETRIED_STATUSES or err.status_code >= 500
            raise AgentError(
                f"model {self.model}: HTTP {err.status_code} from {err.request.url}"
                + (f" after {_retries_made(err)} retries" if retried else " (not retried)")
                + f": {clean(err.message)}"
                + (
                    f". {self.key_advice}"
                    if err.status_code == 401 and self.key_advice
                    else _ADVICE.get(err.status_code, "")
                )
            ) from None
        except openai.APIConnectionError as err:
            cause = err.__cause__
            if isinstance(cause, CassetteError):
                raise AgentError(str(cause)) from None
            if isinstance(cause, UnusableResponse):
                raise AgentError(
                    f"model {self.model}: {clean(str(cause))} after {_retries_made(err)} retries"
                ) from None
            kind = "timed out" if isinstance(err, openai.APITimeoutError) else "connection failed"
            raise AgentError(
                f"model {self.model}: request to {err.request.url} {kind} after "
                f"{_retries_made(err)} retries ({_describe_cause(cause)}). "
                "Check --base-url and the network, or raise --max-retries / --request-timeout."
            ) from None
        except openai.OpenAIError as err:
            raise AgentError(f"model {self.model}: {type(err).__name__}: {clean(str(err))}") from None
        except ValueError as err:
            # The client failed to decode a 200 whose body is not JSON.
            raise AgentError(f"model {self.model}: the response was not JSON: {clean(str(err))}") from None
        if isinstance(completion, str):
            # The client hands back the text of a 200 that is not JSON (an HTML error page).
            raise AgentError(
                f"model {self.model}: HTTP 200 whose body is not JSON: {clean(completion, 200)!r}"
            )
        if not getattr(completion, "choices", None):
            raise AgentError(
                f"model {self.model}: HTTP 200 without 'choices' (the provider returned no answer)"
            )
        return completion


def _read_completion(completion: Any) -> tuple[Any, str | None, str | None, int, int, float | None]:
    """(choice, content, raw, prompt tokens, completion tokens, cost); raises on a wrong shape."""
    choice = completion.choices[0]
    content = choice.message.content if choice.message is not None else None
    if content is not None and not isinstance(content, str):
        raise TypeError(f"message content is {type(content).__name__}, not text")
    if isinstance(content, str):
        content = _valid_unicode(content)
    raw = content if content is not None else _describe_missing(choice)
    usage = completion.usage
    counts = [getattr(usage, n, None) or 0 for n in ("prompt_tokens", "completion_tokens")]
    for n in counts:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"token count {n!r} is not a whole number >= 0")
    cost = getattr(usage, "cost", None) if usage is not None else None
    if cost is not None and (
        isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0
    ):
        raise ValueError(f"usage.cost {cost!r} is not a finite number >= 0")
    return choice, content, raw, counts[0], counts[1], None if cost is None else float(cost)


def _describe_cause(cause: BaseException | None) -> str:
    if cause is None:
        return "no detail"
    detail = str(cause)
    # The deadline's own words say which limit ran out; a socket error's are noise.
    return (
        f"{type(cause).__name__}: {detail}"
        if detail.startswith("the whole request")
        else type(cause).__name__
    )


def _retries_made(err: Any) -> int:
    """How many retries the client made before giving up: it numbers each attempt's request."""
    try:
        return int(err.request.headers.get("x-stainless-retry-count", 0))
    except (AttributeError, TypeError, ValueError):
        return 0


# Statuses the openai client retries, besides every 5xx.
_RETRIED_STATUSES = (408, 409, 429)


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


_ADVICE = {
    400: ". The endpoint refused the request: check that it accepts the config's parameters "
    "(a constrained config sends llama.cpp's 'grammar' field)",
    401: ". Check the API key (--api-key, OPENROUTER_API_KEY or OPENAI_API_KEY)",
    402: ". The account has no credit left",
    403: ". The key may not use this model: check the key and the model id",
    404: ". Check the model id and --base-url",
    429: ". Rate limited even after retries: lower --concurrency or set --max-rps",
}


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _describe_missing(choice: Any) -> str | None:
    """Keep a trace of what came instead of text (a tool call), so the raw reply is not lost."""
    calls = getattr(choice.message, "tool_calls", None) if choice.message is not None else None
    if calls:
        return "[tool call] " + "; ".join(f"{c.function.name}({c.function.arguments})" for c in calls)
    return None
