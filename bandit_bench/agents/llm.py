"""The LLM agent: render the design's prompt, ask any OpenAI-compatible endpoint, parse the reply.

The only module that imports ``openai``. Retries with backoff and timeouts are the openai
client's own (``max_retries``, ``timeout``); what still fails after them ends the episode as
errored (:class:`AgentError`) with the HTTP status and the model in the message, and is never
counted as a format failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..parsing import parse_reply
from ..prompts import answer_grammar, render_messages
from ..recording import CassetteError, UnusableResponse
from ..redaction import Secret, redact
from ..specs import DesignSpec
from .base import AgentError, Decision, EpisodeContext

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
    ) -> None:
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
        choice = completion.choices[0]
        content = choice.message.content if choice.message is not None else None
        if isinstance(content, str):
            content = _valid_unicode(content)
        parsed = parse_reply(
            content,
            ctx.arm_names,
            distribution=self.design.distribution,
            finish_reason=choice.finish_reason,
        )
        usage = completion.usage
        cost = getattr(usage, "cost", None) if usage is not None else None
        return Decision(
            valid=parsed.valid,
            arm=parsed.arm,
            distribution=parsed.distribution,
            raw=content if content is not None else _describe_missing(choice),
            reason=parsed.reason,
            prompt_tokens=(usage.prompt_tokens or 0) if usage is not None else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage is not None else 0,
            latency=latency,
            cost=float(cost) if isinstance(cost, (int, float)) else None,
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
                + (f" after {self.client.max_retries} retries" if retried else " (not retried)")
                + f": {clean(err.message)}"
                + _ADVICE.get(err.status_code, "")
            ) from None
        except openai.APIConnectionError as err:
            cause = err.__cause__
            if isinstance(cause, CassetteError):
                raise AgentError(str(cause)) from None
            if isinstance(cause, UnusableResponse):
                raise AgentError(
                    f"model {self.model}: {clean(str(cause))} after {self.client.max_retries} retries"
                ) from None
            kind = "timed out" if isinstance(err, openai.APITimeoutError) else "connection failed"
            raise AgentError(
                f"model {self.model}: request to {err.request.url} {kind} after "
                f"{self.client.max_retries} retries ({type(cause).__name__ if cause else 'no detail'}). "
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
