"""Request profiles: what a chat-completion request carries, per model and per endpoint.

One place decides every field that is not the prompt itself: the token-limit field and its
size, whether ``temperature`` and ``seed`` are sent (or renamed), extra body fields, extra
headers, query parameters, how the system prompt is sent and how a constrained-answer config
asks the server to force its answer (or is refused before any request).

A profile is resolved in layers, later ones winning key by key:

1. the server's defaults (detected from the base URL's host, or ``server = "..."``);
2. the built-in model families (:data:`FAMILIES`), matched by pattern;
3. the project's ``[tool.bandit_bench.models."<id or pattern>"]`` tables, least specific first;
4. the command line's ``--request-profile 'key=value,...'``.

A pattern is an exact id or a shell pattern (``openai/o*``); one with no ``/`` also matches the
last part of a vendor-prefixed id (``o4-mini`` matches ``openai/o4-mini``). Built-in patterns are
matched case-insensitively.

With no family and no user table, every server but the ones named below sends exactly what
bandit-bench sent before profiles existed (``max_tokens``, ``temperature``, ``seed``, a system
message, llama.cpp's ``grammar`` for a constrained config): the shipped recordings replay byte
for byte.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bandit_bench.core.specs import SpecError

if TYPE_CHECKING:
    from bandit_bench.core.specs import DesignSpec

# ---------------------------------------------------------------------------- the format

TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
TEMPERATURE_MODES = ("send", "omit")
SEED_MODES = ("send", "omit", "random_seed")
SYSTEM_MODES = ("system", "user")
# How a constrained config asks for its answer: llama.cpp's GBNF ``grammar``; vLLM's
# ``structured_outputs.regex`` (v0.12 and later) or ``guided_regex`` (before); OpenAI's
# ``response_format`` JSON schema (the reply is then {"answer": NAME}); none: refused up front.
CONSTRAINED_MODES = ("grammar", "structured_outputs", "guided_regex", "json_schema", "none")
KEY_HEADERS = ("authorization", "api-key")
SERVERS = (
    "generic",
    "llamacpp",
    "vllm",
    "ollama",
    "lmstudio",
    "openai",
    "openrouter",
    "azure",
    "azure-v1",
    "deepseek",
    "gemini",
    "anthropic",
    "mistral",
    "groq",
    "together",
)
# Tokens added to the design's answer budget for a reasoning model: its hidden reasoning is
# counted in the same limit (OpenAI: max_completion_tokens "including visible output tokens and
# reasoning tokens"; DeepSeek: max_tokens "including the chain of thought").
DEFAULT_REASONING_ALLOWANCE = 4000

# Every key a profile table (or --request-profile) may hold, with what it accepts.
KEYS: dict[str, str] = {
    "server": f"one of {', '.join(SERVERS)}",
    "token_limit_field": " or ".join(TOKEN_FIELDS),
    "token_limit": "a whole number of tokens >= 1 (replaces the design's budget + reasoning allowance)",
    "reasoning_allowance": "a whole number of tokens >= 0 added to the design's answer budget",
    "temperature": " or ".join(TEMPERATURE_MODES),
    "temperature_default": "the temperature the server uses when none is sent (a number), or 'unknown'",
    "seed": " or ".join(SEED_MODES),
    "system": " or ".join(SYSTEM_MODES),
    "constrained": " or ".join(CONSTRAINED_MODES),
    "key_header": " or ".join(KEY_HEADERS),
    "extra_body": "a table of extra JSON body fields (on the command line: extra_body.reasoning_effort=low)",
    "headers": "a table of extra HTTP headers (header = value)",
    "query": "a table of URL query parameters (api-version = 2024-10-21)",
    "reasoning": "true or false: the model reasons before it answers (gives it the reasoning allowance)",
    "endpoint": "a host pattern the table applies to (api.openai.com, *.openai.azure.com, 127.0.0.1:8000)",
}


@dataclass(frozen=True)
class RequestProfile:
    """What a request carries besides the prompt; :func:`resolve_profile` builds it."""

    server: str = "generic"
    token_limit_field: str = "max_tokens"
    token_limit: int | None = None
    reasoning_allowance: int | None = None
    reasoning: bool = False
    temperature: str = "send"
    # What the server uses when no temperature is sent (None: not documented).
    temperature_default: float | None = None
    seed: str = "send"
    system: str = "system"
    constrained: str = "grammar"
    key_header: str = "authorization"
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    # OpenRouter may route the model to a provider that drops parameters it does not support.
    routing_may_drop: bool = False
    # Where each layer came from, for messages ("built-in openai-reasoning", "pyproject ...").
    sources: tuple[str, ...] = ()

    def limit(self, design: DesignSpec) -> int:
        """The token limit sent: the design's answer budget, plus the reasoning allowance."""
        if self.token_limit is not None:
            return self.token_limit
        allowance = self.reasoning_allowance
        if allowance is None:
            allowance = DEFAULT_REASONING_ALLOWANCE if self.reasoning else 0
        return design.max_tokens + allowance


# ---------------------------------------------------------------------------- servers


def _local(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0") or host.endswith(".local")


def detect_server(base_url: str) -> str:
    """The kind of server a base URL points to (hosts as each provider documents them).

    Local servers cannot be told apart by host; only the default ports that are their own are
    read (Ollama 11434, LM Studio 1234). Everything else is ``generic``: llama.cpp's behaviour,
    what bandit-bench always sent. ``server = "vllm"`` in a profile says what the URL cannot.
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    path = parts.path.rstrip("/")
    if host == "openrouter.ai" or host.endswith(".openrouter.ai"):
        return "openrouter"
    if host == "api.openai.com":
        return "openai"
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")):
        # https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle: the v1 API is
        # served under /openai/v1/; the classic one under /openai/deployments/<name>.
        return "azure-v1" if path.endswith("/openai/v1") else "azure"
    hosts = {
        "api.deepseek.com": "deepseek",
        "generativelanguage.googleapis.com": "gemini",
        "api.anthropic.com": "anthropic",
        "api.mistral.ai": "mistral",
        "api.groq.com": "groq",
        "api.together.xyz": "together",
        "api.together.ai": "together",
    }
    if host in hosts:
        return hosts[host]
    if _local(host) and parts.port == 11434:
        return "ollama"
    if _local(host) and parts.port == 1234:
        return "lmstudio"
    return "generic"


# A local server's URL does not say what it is, but some name themselves in each entry of
# GET /v1/models ("owned_by"): vLLM's ModelCard (vllm/entrypoints/openai/protocol.py,
# owned_by: str = "vllm") and llama.cpp's server (tools/server/server.cpp, "owned_by":
# "llamacpp"). Other servers answer their own organisation or "openai" there, so only these
# values are read as a server.
SERVER_OWNERS: dict[str, str] = {"vllm": "vllm", "llamacpp": "llamacpp"}


# What each server accepts, from its own documentation. Only what differs from the generic
# request is written down.
SERVER_DEFAULTS: dict[str, dict[str, Any]] = {
    "generic": {},
    # llama.cpp server: GBNF in the body's "grammar" field (tools/server/README.md).
    "llamacpp": {},
    # https://docs.vllm.ai/en/latest/features/structured_outputs/: "structured_outputs" with
    # "regex" (the guided_* fields were removed in v0.12.0); no "grammar" field, an unknown
    # field is ignored, so a grammar would leave the answer unconstrained.
    "vllm": {"constrained": "structured_outputs"},
    # https://docs.ollama.com/api/openai-compatibility: supported fields include response_format,
    # seed, temperature, max_tokens; no grammar.
    "ollama": {"constrained": "json_schema"},
    # https://lmstudio.ai/docs/advanced/structured-output: response_format json_schema only.
    "lmstudio": {"constrained": "json_schema"},
    # https://platform.openai.com/docs/guides/structured-outputs: response_format json_schema.
    "openai": {"constrained": "json_schema"},
    # https://openrouter.ai/docs/features/structured-outputs and provider routing:
    # response_format json_schema, routed only to providers that support it (see build_request).
    "openrouter": {"constrained": "json_schema"},
    # https://learn.microsoft.com/azure/ai-foundry/openai/reference: the classic data plane wants
    # the key in an "api-key" header and a dated ?api-version= on every call (2024-10-21 is GA).
    "azure": {"constrained": "json_schema", "key_header": "api-key", "query": {"api-version": "2024-10-21"}},
    # The v1 API needs no api-version and takes the key as a Bearer token through the OpenAI client.
    "azure-v1": {"constrained": "json_schema"},
    # https://api-docs.deepseek.com/guides/json_mode: JSON output is json_object only, no schema.
    "deepseek": {"constrained": "none"},
    # https://ai.google.dev/gemini-api/docs/openai: response_format json_schema is supported.
    "gemini": {"constrained": "json_schema"},
    # https://docs.anthropic.com/en/api/openai-sdk: response_format and seed are ignored.
    "anthropic": {"constrained": "none", "seed": "omit"},
    # https://docs.mistral.ai/api/#tag/chat: the seed is "random_seed"; an unknown field such as
    # "seed" is refused with 422 extra_forbidden. Custom structured outputs: response_format.
    "mistral": {"seed": "random_seed", "constrained": "json_schema"},
    # https://console.groq.com/docs/structured-outputs: response_format json_schema.
    "groq": {"constrained": "json_schema"},
    # https://docs.together.ai/docs/json-mode: response_format json_schema.
    "together": {"constrained": "json_schema"},
}


# ---------------------------------------------------------------------------- model families


@dataclass(frozen=True)
class Family:
    name: str
    patterns: tuple[str, ...]
    settings: Mapping[str, Any]
    # Servers it applies to (empty: all), and servers it does not.
    servers: tuple[str, ...] = ()
    not_servers: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    why: str = ""


_OPENAI_REASONING = ("o1*", "o3*", "o4*", "gpt-5*")

FAMILIES: tuple[Family, ...] = (
    # https://platform.openai.com/docs/api-reference/chat/create: max_tokens "is not compatible
    # with o-series models", max_completion_tokens counts reasoning tokens; temperature: 400
    # "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1)
    # value is supported."
    Family(
        "openai-reasoning",
        _OPENAI_REASONING,
        {
            "token_limit_field": "max_completion_tokens",
            "temperature": "omit",
            "temperature_default": 1.0,
            "reasoning": True,
        },
        not_servers=("openrouter",),
        exclude=("gpt-5*-chat*",),
        why="OpenAI reasoning models take max_completion_tokens and only the default temperature 1",
    ),
    # https://openrouter.ai/docs/api-reference/parameters: a parameter the model's provider does
    # not support is ignored; OpenRouter maps max_tokens for OpenAI reasoning models itself.
    Family(
        "openai-reasoning (OpenRouter)",
        _OPENAI_REASONING,
        {"temperature": "omit", "temperature_default": 1.0, "reasoning": True},
        servers=("openrouter",),
        exclude=("*gpt-5*-chat*",),
        why="OpenRouter drops temperature for OpenAI reasoning models",
    ),
    # o1-mini and o1-preview refuse a system message ("Unsupported value: 'messages[0].role' does
    # not support 'system' with this model").
    Family("o1-mini/o1-preview", ("o1-mini*", "o1-preview*"), {"system": "user"}),
    # https://api-docs.deepseek.com/guides/reasoning_model: max_tokens includes the chain of
    # thought; temperature, top_p, ... "will not trigger an error but will also have no effect".
    Family(
        "deepseek-reasoner",
        ("deepseek-reasoner", "deepseek-r1*", "*deepseek-r1*"),
        {"temperature": "omit", "reasoning": True},
        servers=("deepseek",),
        why="deepseek-reasoner ignores temperature",
    ),
    Family(
        "deepseek-r1",
        ("deepseek-reasoner", "deepseek-r1*", "*deepseek-r1*"),
        {"reasoning": True},
        not_servers=("deepseek",),
    ),
    # Qwen3 thinks by default (https://qwen.readthedocs.io: enable_thinking defaults to true).
    Family("qwen3", ("qwen3*", "*qwen3*"), {"reasoning": True}),
    # https://ai.google.dev/gemini-api/docs/openai: thinking tokens count in the output budget.
    Family("gemini-thinking", ("gemini-2.5*", "gemini-3*"), {"reasoning": True}),
    # https://openai.com/index/introducing-gpt-oss: a reasoning model (reasoning_effort low/medium/high).
    Family("gpt-oss", ("gpt-oss*",), {"reasoning": True}),
    # Mistral's reasoning models.
    Family("magistral", ("magistral*",), {"reasoning": True}),
    # Claude Opus 4.7 and later: Anthropic answers 400 "`temperature` is deprecated for this
    # model"; OpenRouter ignores it (https://openrouter.ai/docs/guides/evaluate-and-optimize/
    # model-migrations/claude-4-7: "temperature, top_p, and top_k are no longer supported").
    Family(
        "claude-opus-4.7+",
        (
            "claude-opus-4-7*",
            "claude-opus-4-8*",
            "claude-opus-4-9*",
            "claude-opus-4.7*",
            "claude-opus-4.8*",
            "claude-opus-4.9*",
            "claude-opus-5*",
            "claude-4.7-opus*",
        ),
        {"temperature": "omit"},
        why="Claude Opus 4.7+ no longer takes temperature",
    ),
)

# Reasoning families routed by OpenRouter: the provider it picks may drop temperature.
_ROUTED_REASONING = {"deepseek-r1", "qwen3", "gemini-thinking", "gpt-oss", "magistral"}


def pattern_matches(pattern: str, model: str, *, fold_case: bool = False) -> bool:
    """``pattern`` matches the id, or (without a ``/``) the id's last part."""
    if fold_case:
        pattern, model = pattern.lower(), model.lower()
    if fnmatch.fnmatchcase(model, pattern):
        return True
    return "/" not in pattern and fnmatch.fnmatchcase(model.rsplit("/", 1)[-1], pattern)


def _specificity(pattern: str) -> tuple[int, int]:
    """Exact ids last (they win), then longer patterns after shorter ones."""
    exact = not any(c in pattern for c in "*?[")
    return (1 if exact else 0, len(pattern.replace("*", "")))


def _endpoint_matches(pattern: str, base_url: str) -> bool:
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    netloc = f"{host}:{parts.port}" if parts.port else host
    return fnmatch.fnmatchcase(host, pattern.lower()) or fnmatch.fnmatchcase(netloc, pattern.lower())


# ---------------------------------------------------------------------------- validation


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_table(where: str, table: Any) -> dict[str, Any]:
    """A validated copy of one profile table; errors name the key, the value and what it takes."""
    if not isinstance(table, Mapping):
        raise SpecError(where, table, 'a table of profile settings, e.g. { temperature = "omit" }')
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise SpecError(
                f"{where} key",
                key,
                f"one of {', '.join(KEYS)}",
                hint=_did_you_mean(key),
            )
        name = f"{where}.{key}"
        choices = {
            "server": SERVERS,
            "token_limit_field": TOKEN_FIELDS,
            "temperature": TEMPERATURE_MODES,
            "seed": SEED_MODES,
            "system": SYSTEM_MODES,
            "constrained": CONSTRAINED_MODES,
            "key_header": KEY_HEADERS,
        }
        if key in choices and value not in choices[key]:
            raise SpecError(name, value, KEYS[key])
        if key == "token_limit" and not _is_int(value, 1):
            raise SpecError(name, value, KEYS[key])
        if key == "reasoning_allowance" and not _is_int(value, 0):
            raise SpecError(name, value, KEYS[key])
        if key == "reasoning" and not isinstance(value, bool):
            raise SpecError(name, value, KEYS[key])
        if key == "temperature_default":
            if value == "unknown":
                value = None
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
                raise SpecError(name, value, KEYS[key])
            else:
                value = float(value)
        if key == "endpoint" and (not isinstance(value, str) or not value):
            raise SpecError(name, value, KEYS[key])
        if key in ("extra_body", "headers", "query"):
            if not isinstance(value, Mapping):
                raise SpecError(name, value, KEYS[key])
            if key != "extra_body":
                for k, v in value.items():
                    if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                        raise SpecError(f"{name}.{k}", v, "text")
                value = {str(k): str(v) for k, v in value.items()}
                if key == "headers":
                    _check_headers(name, value)
            else:
                json.dumps(value)  # TOML tables are JSON-safe; a datetime would not be
                _check_extra_body(name, value)
            value = dict(value)
        out[key] = value
    return out


_OWN_FIELDS = ("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "seed")


def _check_extra_body(where: str, body: Mapping[str, Any]) -> None:
    for key in body:
        if key in _OWN_FIELDS:
            setting = {
                "max_tokens": "token_limit_field / token_limit",
                "max_completion_tokens": "token_limit_field / token_limit",
                "temperature": "temperature",
                "seed": "seed",
            }.get(key, "")
            raise SpecError(
                f"{where}.{key}",
                body[key],
                "a field bandit-bench does not set itself",
                hint=f"Use the profile setting {setting} instead" if setting else "It is the prompt itself",
            )


def _check_headers(where: str, headers: Mapping[str, str]) -> None:
    for name in headers:
        if name.lower() in ("authorization", "api-key", "content-type", "content-length"):
            raise SpecError(
                f"{where}.{name}",
                "[not shown]",
                "a header other than the key or the body's own",
                hint='The key is sent from --api-key-env / --api-key; key_header = "api-key" moves it '
                "into an api-key header (keys never belong in pyproject.toml)",
            )


def _did_you_mean(key: str) -> str:
    aliases = {
        "max_tokens": 'token_limit = N (the size) or token_limit_field = "max_tokens"',
        "max_completion_tokens": 'token_limit_field = "max_completion_tokens" (token_limit = N: its size)',
        "random_seed": 'seed = "random_seed"',
        "reasoning_effort": "extra_body.reasoning_effort = ...",
        "api_version": "query.api-version = ...",
        "api-version": "query.api-version = ...",
        "grammar": 'constrained = "grammar"',
        "response_format": 'constrained = "json_schema"',
    }
    return f"Did you mean {aliases[key]}?" if key in aliases else ""


def _scalar(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    if text[:1] in '[{"':
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def parse_cli(text: str) -> dict[str, Any]:
    """``--request-profile 'token_limit_field=max_completion_tokens,temperature=omit'``.

    Dotted keys fill tables: ``extra_body.reasoning_effort=low``, ``query.api-version=2024-10-21``,
    ``extra_body.provider.require_parameters=true``. Values are numbers, true/false, JSON, or text.
    """
    where = "--request-profile"
    table: dict[str, Any] = {}
    for item in _split_items(text):
        if "=" not in item:
            raise SpecError(where, item, "key=value pairs separated by commas, e.g. temperature=omit")
        key, _, raw = item.partition("=")
        path = [p.strip() for p in key.strip().split(".")]
        if not all(path):
            raise SpecError(where, item, "key=value pairs separated by commas, e.g. temperature=omit")
        node = table
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(where, item, "one value per key")
        node[path[-1]] = _scalar(raw)
    return check_table(where, table)


def _split_items(text: str) -> list[str]:
    """Commas separate items, except inside JSON brackets or quotes."""
    items: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "[{":
            depth += 1
        elif not quoted and ch in "]}":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return [i.strip() for i in items if i.strip()]


# ---------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class ProfileSettings:
    """The user's layers: ``[tool.bandit_bench.models]`` tables and the command-line twin."""

    tables: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    cli: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, tables: Any, cli: Mapping[str, Any] | None = None) -> ProfileSettings:
        where = "[tool.bandit_bench.models]"
        if not isinstance(tables, Mapping):
            raise SpecError(where, tables, 'a table of "<model id or pattern>" = { settings }')
        checked = tuple(
            (str(p), check_table(f"[tool.bandit_bench.models.{json.dumps(p)}]", t)) for p, t in tables.items()
        )
        return cls(checked, dict(cli or {}))

    def with_cli(self, cli: Mapping[str, Any] | None) -> ProfileSettings:
        """These settings with the command line's layer on top."""
        return replace(self, cli={**self.cli, **(cli or {})})


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if key == "endpoint":
            continue
        if key in ("extra_body", "headers", "query") and isinstance(value, Mapping):
            merged = dict(base.get(key, {}))
            for k, v in value.items():
                if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
                    merged[k] = {**merged[k], **v}
                else:
                    merged[k] = v
            base[key] = merged
        else:
            base[key] = value


def resolve_profile(
    model: str,
    base_url: str,
    settings: ProfileSettings | None = None,
    identified: tuple[str, str] | None = None,
) -> RequestProfile:
    """The profile of ``model`` on ``base_url``: server, built-in family, user tables, command line.

    ``identified`` is ``(server, how)`` when the endpoint said what it is (its model list, or the
    recording's manifest): it counts where the URL says only ``generic``, under the user's layers."""
    settings = settings or ProfileSettings()
    user_layers = [
        (p, t)
        for p, t in sorted(settings.tables, key=lambda pt: _specificity(pt[0]))
        if pattern_matches(p, model) and ("endpoint" not in t or _endpoint_matches(t["endpoint"], base_url))
    ]
    # The server can be set by a user layer (the URL of a local server does not say what it is).
    server = detect_server(base_url)
    sources = [f"server {server} (from the base URL)"]
    if server == "generic" and identified is not None and identified[0] in SERVER_DEFAULTS:
        server, sources = identified[0], [f"server {identified[0]} ({identified[1]})"]
    for p, t in user_layers:
        if "server" in t:
            server, sources = t["server"], [f'server {t["server"]} ([tool.bandit_bench.models."{p}"])']
    if "server" in settings.cli:
        server, sources = settings.cli["server"], [f"server {settings.cli['server']} (--request-profile)"]
    values: dict[str, Any] = {"server": server}
    _merge(values, SERVER_DEFAULTS[server])
    routed = False
    for fam in FAMILIES:
        if fam.servers and server not in fam.servers:
            continue
        if server in fam.not_servers:
            continue
        if not any(pattern_matches(p, model, fold_case=True) for p in fam.patterns):
            continue
        if any(pattern_matches(p, model, fold_case=True) for p in fam.exclude):
            continue
        _merge(values, fam.settings)
        sources.append(f"built-in {fam.name}")
        routed = routed or (server == "openrouter" and fam.name in _ROUTED_REASONING)
    for p, t in user_layers:
        _merge(values, t)
        sources.append(f'[tool.bandit_bench.models."{p}"]')
    if settings.cli:
        _merge(values, settings.cli)
        sources.append("--request-profile")
    values.pop("server", None)
    return RequestProfile(server=server, routing_may_drop=routed, sources=tuple(sources), **values)


# ---------------------------------------------------------------------------- the request


def answer_regex(names: Sequence[str]) -> str:
    """The only replies a constrained config accepts, as a regular expression (vLLM)."""
    return "<Answer>(" + "|".join(re.escape(n) for n in names) + ")</Answer>"


def answer_schema(names: Sequence[str]) -> dict[str, Any]:
    """OpenAI's response_format for one arm: the reply is then ``{"answer": NAME}``."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string", "enum": list(names)}},
                "required": ["answer"],
                "additionalProperties": False,
            },
        },
    }


def answer_from_json(content: str | None) -> str | None:
    """The ``<Answer>NAME</Answer>`` a JSON-schema reply stands for (None: not such a reply)."""
    if not content:
        return None
    try:
        data = json.loads(content)
    except ValueError:
        return None
    answer = data.get("answer") if isinstance(data, dict) else None
    return f"<Answer>{answer}</Answer>" if isinstance(answer, str) else None


def constrained_refusal(profile: RequestProfile, model: str) -> str | None:
    """Why a constrained config cannot run on this profile (None: it can), before any request."""
    if profile.constrained != "none":
        return None
    return (
        f"model {model} on a {profile.server} server: this config is constrained (the server must force "
        "the <Answer>NAME</Answer> reply), and the request profile knows no way to ask this server for "
        'that (constrained = "none"). Nothing was requested. Run an unconstrained config, or set the '
        "server's mechanism: --request-profile constrained=json_schema (response_format), "
        "constrained=structured_outputs (vLLM), or constrained=grammar (llama.cpp)"
    )


@dataclass(frozen=True)
class BuiltRequest:
    """The keyword arguments for ``chat.completions.create`` and the summary that is recorded."""

    params: dict[str, Any]
    effective: dict[str, Any]


def _fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The system text, prepended to the first user message (for templates with no system role)."""
    system = "\n\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if system:
        first = next((m for m in rest if m.get("role") == "user"), None)
        if first is None:
            rest.insert(0, {"role": "user", "content": system})
        else:
            first["content"] = f"{system}\n\n{first.get('content', '')}"
    return rest


def build_request(
    profile: RequestProfile,
    model: str,
    design: DesignSpec,
    messages: list[dict[str, Any]],
    seed: int,
    arm_names: Sequence[str],
    *,
    constrained: bool,
) -> BuiltRequest:
    """The request of one step, in the order the fields were always sent (model, messages,
    temperature, token limit, seed, then the extra body)."""
    params: dict[str, Any] = {
        "model": model,
        "messages": _fold_system(messages) if profile.system == "user" else messages,
    }
    if profile.temperature == "send":
        params["temperature"] = design.temperature
    params[profile.token_limit_field] = profile.limit(design)
    extra: dict[str, Any] = {}
    if profile.seed == "send":
        params["seed"] = seed
    elif profile.seed == "random_seed":
        extra["random_seed"] = seed
    extra.update(json.loads(json.dumps(profile.extra_body)))  # a deep copy
    if constrained:
        if profile.constrained == "grammar":
            from bandit_bench.core.prompts import answer_grammar

            # llama.cpp's server reads a GBNF grammar from the body; recorded like any other field.
            extra["grammar"] = answer_grammar(tuple(arm_names))
        elif profile.constrained == "structured_outputs":
            extra["structured_outputs"] = {"regex": answer_regex(arm_names)}
        elif profile.constrained == "guided_regex":
            extra["guided_regex"] = answer_regex(arm_names)
        elif profile.constrained == "json_schema":
            params["response_format"] = answer_schema(arm_names)
            if profile.server == "openrouter":
                # https://openrouter.ai/docs/features/provider-routing: require_parameters routes
                # only to providers that support every parameter sent (here: response_format).
                provider = dict(extra.get("provider") or {})
                provider["require_parameters"] = True
                extra["provider"] = provider
    if extra:
        params["extra_body"] = extra
    if profile.headers:
        params["extra_headers"] = dict(profile.headers)
    if profile.query:
        params["extra_query"] = dict(profile.query)
    return BuiltRequest(params, effective_request(profile, design, constrained=constrained))


def effective_request(profile: RequestProfile, design: DesignSpec, *, constrained: bool) -> dict[str, Any]:
    """What a case's requests carry besides the prompt: stored in the manifest, shown in the
    report, compared on replay. Header values are left out (they may be credentials)."""
    out: dict[str, Any] = {
        "server": profile.server,
        "token_limit": {profile.token_limit_field: profile.limit(design)},
        "temperature": design.temperature if profile.temperature == "send" else "not sent",
        "seed": {"send": "seed", "omit": "not sent", "random_seed": "random_seed"}[profile.seed],
        "system": "system message" if profile.system == "system" else "folded into the first user message",
    }
    if constrained:
        out["constrained"] = profile.constrained
    if profile.extra_body:
        out["extra_body"] = json.loads(json.dumps(profile.extra_body))
    if profile.headers:
        out["headers"] = sorted(profile.headers)
    if profile.query:
        out["query"] = dict(profile.query)
    if profile.key_header != "authorization":
        out["key_header"] = profile.key_header
    return out


# The request every recording made before profiles existed: what a manifest without a
# "request" entry was recorded with.
LEGACY_PROFILE = RequestProfile()


def legacy_request(design: DesignSpec, *, constrained: bool) -> dict[str, Any]:
    return effective_request(LEGACY_PROFILE, design, constrained=constrained)


def comparable(request: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an effective request that change what is sent (the server name does not)."""
    return {k: v for k, v in request.items() if k != "server"}


def honour_notes(profile: RequestProfile, design: DesignSpec) -> list[str]:
    """Where the design's defining parameters are not what the model runs with."""
    temp = design.temperature
    if profile.temperature == "omit":
        default = profile.temperature_default
        if default is not None and default == temp:
            return []
        used = f"the server's default ({default:g})" if default is not None else "the server's default"
        return [
            f"temperature {temp:g} of design {design.code} not sent ({profile.server} profile: the model "
            f"takes none); it ran at {used}: not comparable with the paper's temperature-{temp:g} rows"
        ]
    provider = profile.extra_body.get("provider") if isinstance(profile.extra_body, Mapping) else None
    required = isinstance(provider, Mapping) and provider.get("require_parameters") is True
    if profile.routing_may_drop and not required:
        return [
            f"temperature {temp:g} of design {design.code} sent, but OpenRouter may route this reasoning "
            "model to a provider that ignores it: not known to be comparable with the paper's rows. "
            "--request-profile extra_body.provider.require_parameters=true routes only to providers "
            "that honour it"
        ]
    return []


def describe(request: Mapping[str, Any]) -> str:
    """One line for reports and messages."""
    parts = []
    for key, value in request.items():
        if key == "token_limit" and isinstance(value, Mapping):
            parts += [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, (Mapping, list)):
            parts.append(f"{key}={json.dumps(value, sort_keys=True)}")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def request_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What changed between two effective requests, for a stale message."""
    keys = sorted(set(comparable(old)) | set(comparable(new)))
    changes = []
    for k in keys:
        if old.get(k) != new.get(k):
            changes.append(f"{k}: recorded {json.dumps(old.get(k))}, now {json.dumps(new.get(k))}")
    return "; ".join(changes)


# ---------------------------------------------------------------------------- 400 hints

# Which profile setting fixes a parameter a server refused (OpenAI's 400 names it in "param";
# Mistral's 422 in detail[].loc).
_FIXES = {
    "max_tokens": ("token_limit_field=max_completion_tokens", ""),
    "max_completion_tokens": ("token_limit_field=max_tokens", ""),
    "temperature": ("temperature=omit", ""),
    "seed": ("seed=omit", ""),
    "random_seed": ("seed=send", "or seed=omit"),
    "grammar": ("constrained=json_schema", "or constrained=structured_outputs for vLLM"),
    "response_format": ("constrained=grammar", "llama.cpp; or constrained=structured_outputs for vLLM"),
    "structured_outputs": ("constrained=guided_regex", "vLLM before 0.12"),
    "messages[0].role": ("system=user", "the system prompt folded into the first user message"),
}


def profile_fix(status: int, body: Any, message: str) -> str | None:
    """The profile setting that fixes a refused parameter, read from an error body or message."""
    params: list[str] = []
    validation = False  # a pydantic-style 422 (Mistral's): extra fields are refused by name
    error = body.get("error", body) if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        code = str(error.get("code") or "")
        param = error.get("param")
        refused = code in ("unsupported_parameter", "unsupported_value")
        if isinstance(param, str) and (refused or param in _FIXES):
            params.append(param)
        detail = error.get("detail")
        if detail is None and isinstance(error.get("message"), Mapping):
            detail = error["message"].get("detail")
        for item in detail if isinstance(detail, list) else []:
            loc = item.get("loc") if isinstance(item, Mapping) else None
            if isinstance(loc, list) and len(loc) >= 2 and loc[0] == "body" and isinstance(loc[1], str):
                params.append(loc[1])
                validation = True
    # The body's own field names the parameter; only without one is the message read (its
    # advice, "Use 'max_completion_tokens' instead", names the cure, not the fault).
    for name in [] if params else _FIXES:
        if re.search(rf"['`\"]{re.escape(name)}['`\"]", message):
            params.append(name)
    if re.search(r"system.{0,40}(not supported|role)|roles? must alternate", message, re.IGNORECASE):
        params.append("messages[0].role")
    fixes = {p: _FIXES[p] for p in params if p in _FIXES}
    if validation and "seed" in fixes:
        # Mistral's own name for the seed (https://docs.mistral.ai/api/#tag/chat).
        fixes["seed"] = ("seed=random_seed", "Mistral's name for it; or seed=omit")
    if not fixes:
        return None
    flags = ",".join(flag for flag, _ in fixes.values())
    notes = "; ".join(f"{flag}: {note}" for flag, note in fixes.values() if note)
    return (
        f"The request profile can change what is sent: --request-profile '{flags}' (or the same keys "
        f'in [tool.bandit_bench.models."MODEL"] in pyproject.toml{"; " + notes if notes else ""})'
    )


__all__ = [
    "FAMILIES",
    "KEYS",
    "SERVERS",
    "BuiltRequest",
    "ProfileSettings",
    "RequestProfile",
    "build_request",
    "check_table",
    "detect_server",
    "effective_request",
    "honour_notes",
    "parse_cli",
    "profile_fix",
    "resolve_profile",
]
