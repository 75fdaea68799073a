"""The LLM agent: render the design's prompt, ask any OpenAI-compatible endpoint, parse the reply.

The only module that imports ``openai``. Retries with backoff and timeouts are the openai
client's own (``max_retries``, ``timeout``); what still fails after them ends the episode as
errored (:class:`AgentError`) with the HTTP status and the model in the message, and is never
counted as a format failure.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from bandit_bench.core.agents.base import AgentError, Decision, EpisodeContext
from bandit_bench.core.parsing import parse_completion_reply
from bandit_bench.core.prompts import render_messages
from bandit_bench.core.replies import (
    cap_advice,
    completion_error,
    daily_cap_reset,
    describe_error_body,
    out_of_credits,
    read_reply,
)
from bandit_bench.core.specs import DesignSpec
from bandit_bench.recording.redaction import Secret, redact, shown_url
from bandit_bench.recording.transport import CassetteError, MalformedPaidReply, UnusableResponse
from bandit_bench.running.profiles import LEGACY_PROFILE, RequestProfile, answer_from_json, build_request

if TYPE_CHECKING:
    import httpx2
    from openai import OpenAI


# The client insists on a key; with none configured it gets this one, and the request leaves
# without any Authorization header (see make_client).
NO_KEY_PLACEHOLDER = "no-key-configured"


def _drop_placeholder_auth(request: httpx2.Request) -> None:
    if request.headers.get("authorization") == f"Bearer {NO_KEY_PLACEHOLDER}":
        del request.headers["authorization"]


def _key_to_api_key_header(request: httpx2.Request) -> None:
    """Azure's classic data plane reads the key from an ``api-key`` header, not a Bearer token
    (https://learn.microsoft.com/azure/ai-foundry/openai/reference#authentication)."""
    auth = request.headers.get("authorization", "")
    if auth.startswith("Bearer "):
        del request.headers["authorization"]
        key = auth[len("Bearer ") :]
        if key != NO_KEY_PLACEHOLDER:
            request.headers["api-key"] = key


def make_client(
    base_url: str,
    api_key: Secret | str | None,
    transport: httpx2.BaseTransport | None = None,
    *,
    max_retries: int = 2,
    timeout: float = 60.0,
    key_header: str = "authorization",
) -> OpenAI:
    import httpx2
    from openai import OpenAI

    if isinstance(api_key, str):
        api_key = Secret(api_key, "the api_key argument")
    # A query in the base URL (Azure's ?api-version=, a gateway's ?api-key=) goes on every request
    # as the client's default_query: left in base_url, the client appends the endpoint's path
    # after it ("?api-version=1chat/completions").
    base_url, _, query = base_url.partition("?")
    default_query = dict(parse_qsl(query.partition("#")[0], keep_blank_values=True)) or None
    # gzip only: every recorded body can then be stored decoded, whatever the server supports.
    http_client = httpx2.Client(
        transport=transport,
        headers={"Accept-Encoding": "gzip"},
        timeout=timeout,
        event_hooks={
            "request": [_key_to_api_key_header]
            if key_header == "api-key"
            else ([] if api_key else [_drop_placeholder_auth])
        },
        # Never follow a redirect: the Authorization header (or a key in the query) would go with
        # it to whichever host it names. A 3xx is an error of the endpoint (httpx's default; the
        # openai client's own default client would follow).
        follow_redirects=False,
    )
    return OpenAI(
        base_url=base_url,
        # Never None: given None the client would read OPENAI_API_KEY itself and send it to any
        # endpoint. A callable keeps the key out of the client's constructor arguments.
        api_key=api_key.reveal if api_key else NO_KEY_PLACEHOLDER,
        http_client=http_client,
        default_query=default_query,
        max_retries=max_retries,
        timeout=timeout,
    )


@functools.lru_cache(maxsize=32)
def identify_server(base_url: str, api_key: Secret | None, key_header: str = "authorization") -> str | None:
    """The server behind ``base_url`` as its model list names it (``profiles.SERVER_OWNERS``),
    or None: not one of those, no model list, or no answer within 5 s. Asked once per process
    and endpoint, through the openai client (``models.list``), never following a redirect."""
    from bandit_bench.running.profiles import SERVER_OWNERS

    try:
        with make_client(base_url, api_key, max_retries=0, timeout=5.0, key_header=key_header) as client:
            owners = {getattr(entry, "owned_by", None) for entry in client.models.list().data}
    except Exception:  # any failure only means "not identified": the URL's guess stands
        return None
    return next((server for owner, server in SERVER_OWNERS.items() if owner in owners), None)


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
        profile: RequestProfile | None = None,
    ) -> None:
        """``key_advice`` replaces the generic advice on a 401: where this run's key came from.
        ``profile`` decides what each request carries besides the prompt (see running.profiles);
        None sends what bandit-bench always sent."""
        self.key_advice = key_advice
        self.profile = profile or LEGACY_PROFILE
        self.name = model
        self.model = model
        self.design = design
        self.client = client
        self.constrained = constrained
        self.before_request = before_request

    def request_params(self, history: Sequence[tuple[int, int]], ctx: EpisodeContext) -> dict[str, Any]:
        messages = render_messages(self.design, ctx.arm_names, ctx.instance.horizon, history)
        built = build_request(
            self.profile,
            self.model,
            self.design,
            messages,
            ctx.instance.seed,
            ctx.arm_names,
            constrained=self.constrained,
        )
        return built.params

    def choose(self, history: Sequence[tuple[int, int]], ctx: EpisodeContext) -> Decision:
        params = self.request_params(history, ctx)
        if self.before_request is not None:
            self.before_request()
        start = time.perf_counter()
        try:
            data = self._create(params)
        except AgentError as err:
            # Error bodies are quoted in the message, and some servers echo the key they were sent.
            raise AgentError(redact(str(err))) from None
        latency = time.perf_counter() - start
        try:
            reply = read_reply(data)
        except (AttributeError, TypeError, IndexError, KeyError, ValueError) as err:
            # The cassette transport validates every answer first; another client may not.
            raise AgentError(
                redact(f"model {self.model}: malformed chat completion ({type(err).__name__}: {err})")
            ) from None
        if self.constrained and self.profile.constrained == "json_schema":
            # A JSON-schema reply is {"answer": NAME}; the raw reply keeps the JSON as it came.
            answer = answer_from_json(reply.text)
            if answer is not None:
                reply = dataclasses.replace(reply, text=answer)
        parsed = parse_completion_reply(reply, ctx.arm_names, distribution=self.design.distribution)
        usage = reply.usage
        return Decision(
            valid=parsed.valid,
            arm=parsed.arm,
            distribution=parsed.distribution,
            raw=reply.raw,
            reason=parsed.reason,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency=latency,
            cost=usage.provider_cost,
            reasoning=reply.reasoning,
            reasoning_tokens=usage.reasoning_tokens,
            finish_reason=reply.finish_reason,
        )

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        """The decoded body of a completion with at least one choice, or :class:`AgentError`."""
        import openai

        def clean(text: str, limit: int = 300) -> str:
            # Redacted before it is cut short, so that no prefix of the key survives either.
            return _short(redact(text), limit)

        try:
            # The raw body: reasoning fields, lists of parts and provider extras are read as sent,
            # not as the client's typed model reshapes them.
            response = self.client.chat.completions.with_raw_response.create(**params)
            body = response.http_response.content
        except MalformedPaidReply as err:
            raise AgentError(f"model {self.model}: {clean(str(err), 600)}") from None
        except CassetteError as err:
            # The transport's own errors reach us unwrapped: they are not network faults.
            raise AgentError(str(err)) from None
        except openai.APIStatusError as err:
            raise AgentError(self._status_message(err, clean)) from None
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
                f"model {self.model}: request to {shown_url(str(err.request.url))} {kind} after "
                f"{_retries_made(err)} retries ({_describe_cause(cause)}). "
                "Check --base-url and the network, or raise --max-retries / --request-timeout."
            ) from None
        except openai.OpenAIError as err:
            raise AgentError(f"model {self.model}: {type(err).__name__}: {clean(str(err))}") from None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            # An HTML error page with status 200 (when no cassette transport checked it first).
            text = body.decode("utf-8", "replace")
            raise AgentError(
                f"model {self.model}: HTTP 200 whose body is not JSON: {clean(text, 200)!r}"
            ) from None
        if not isinstance(data, dict) or not data.get("choices"):
            error = completion_error(data)
            if error is not None:
                raise AgentError(f"model {self.model}: HTTP 200 carrying an error: {clean(error)}")
            raise AgentError(
                f"model {self.model}: HTTP 200 without 'choices' (the provider returned no answer)"
            )
        error = completion_error(data)
        if error is not None:
            raise AgentError(f"model {self.model}: HTTP 200 carrying an error: {clean(error)}")
        return data

    def _status_message(self, err: Any, clean: Callable[..., str]) -> str:
        """An HTTP error in the provider's own words, with what to do about it."""
        status = err.status_code
        try:
            body: Any = json.loads(err.response.text)
        except (ValueError, RecursionError, AttributeError, TypeError):
            body = None
        detail = describe_error_body(body) if body is not None else ""
        # The client's own text quotes only a string message; an object (Mistral's 422) or
        # OpenRouter's metadata (moderation reasons, the provider's raw error) would be lost.
        words = clean(f"Error code: {status} - {detail}" if detail else err.message)
        head = f"model {self.model}: HTTP {status} from {shown_url(str(err.request.url))}"
        headers = dict(err.response.headers.items()) if getattr(err, "response", None) is not None else {}
        reset = daily_cap_reset(status, body, headers, time.time())
        if reset is not None:
            return f"{head} (not retried): {words}. {cap_advice(reset)}"
        if out_of_credits(status, body):
            return f"{head} (not retried): out of credits: {words}. {_OUT_OF_CREDITS}"
        retried = client_retries(status, headers)
        head += f" after {_retries_made(err)} retries" if retried else " (not retried)"
        if status == 401 and self.key_advice:
            advice = f". {self.key_advice}"
        elif status == 403 and "flagged for" in detail:
            advice = _MODERATION_ADVICE
        else:
            advice = _profile_advice(status, body, words) or _ADVICE.get(status, "")
        return f"{head}: {words}{advice}"


_OUT_OF_CREDITS = (
    "No retry can succeed: add credits to the account behind the key (or raise the key's credit "
    "limit), then run again with --record-mode=once: complete episodes are kept and only the "
    "missing ones are recorded"
)
_MODERATION_ADVICE = (
    ". The provider's moderation refused this prompt: the bandit prompt cannot be changed to pass "
    "it, so choose another provider or model"
)


def _profile_advice(status: int, body: Any, words: str) -> str:
    """For a refused parameter (400 unsupported_parameter / unsupported_value, 422
    extra_forbidden): the request-profile setting that fixes it."""
    from bandit_bench.running.profiles import profile_fix

    if status not in (400, 422):
        return ""
    fix = profile_fix(status, body, words)
    return f". {fix}" if fix else ""


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


def client_retries(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the openai client retries an error answer: the server's ``x-should-retry``
    header when it says true or false (OpenAI's servers send it), else the status."""
    flag = next((v for k, v in headers.items() if k.lower() == "x-should-retry"), None)
    if flag in ("true", "false"):
        return flag == "true"
    return status in _RETRIED_STATUSES or status >= 500


_ADVICE = {
    400: ". The endpoint refused the request: check that it accepts the config's parameters "
    "(a constrained config sends llama.cpp's 'grammar' field)",
    401: ". Check the API key (--api-key, OPENROUTER_API_KEY or OPENAI_API_KEY)",
    403: ". The key may not use this model: check the key and the model id",
    404: ". Check the model id and --base-url",
    429: ". Rate limited even after retries: lower --concurrency or set --max-rps",
}


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
