"""Request profiles: server detection, pattern matching, layers, validation, the built request."""

from __future__ import annotations

import pytest

from bandit_bench.core.specs import DesignSpec, SpecError
from bandit_bench.running.profiles import (
    ProfileSettings,
    build_request,
    check_table,
    detect_server,
    effective_request,
    honour_notes,
    legacy_request,
    parse_cli,
    pattern_matches,
    profile_fix,
    resolve_profile,
)

BNRN0 = DesignSpec.parse("BNRN0")
BSSC0 = DesignSpec.parse("BSSC~0")
NAMES = ("blue", "green", "red", "yellow", "purple")
OPENROUTER = "https://openrouter.ai/api/v1"


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.openai.com/v1", "openai"),
        ("https://res.openai.azure.com/openai/deployments/gpt-4o", "azure"),
        ("https://res.openai.azure.com/openai/v1/", "azure-v1"),
        ("https://api.deepseek.com", "deepseek"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "gemini"),
        ("https://api.anthropic.com/v1/", "anthropic"),
        ("https://api.mistral.ai/v1", "mistral"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.together.xyz/v1", "together"),
        ("http://127.0.0.1:11434/v1", "ollama"),
        ("http://localhost:1234/v1", "lmstudio"),
        ("http://127.0.0.1:8000/v1", "generic"),
        ("https://proxy.example.com/v1", "generic"),
        # Hosts are compared exactly: a look-alike is not OpenAI.
        ("https://api.openai.com.evil.example/v1", "generic"),
    ],
)
def test_server_from_the_base_url(url: str, server: str) -> None:
    assert detect_server(url) == server


@pytest.mark.parametrize(
    ("pattern", "model", "matches"),
    [
        ("o4-mini", "o4-mini", True),
        ("o4-mini", "openai/o4-mini", True),  # no vendor prefix in the pattern: the last part
        ("openai/o4-mini", "o4-mini", False),
        ("openai/o*", "openai/o4-mini", True),
        ("openai/o*", "azure/o4-mini", False),
        ("o4*", "openai/o4-mini-2025-04-16", True),
        ("qwen3*", "qwen/qwen3-32b", True),
    ],
)
def test_patterns_with_or_without_vendor_prefix(pattern: str, model: str, matches: bool) -> None:
    assert pattern_matches(pattern, model) is matches


# The "work with no config" list: what each sends on BNRN0 (answer budget 20).
NO_CONFIG = [
    ("openai/o4-mini", OPENROUTER, {"max_tokens": 4020}, "not sent"),
    ("o4-mini", "https://api.openai.com/v1", {"max_completion_tokens": 4020}, "not sent"),
    ("gpt-5-mini", "https://api.openai.com/v1", {"max_completion_tokens": 4020}, "not sent"),
    ("deepseek/deepseek-r1", OPENROUTER, {"max_tokens": 4020}, 0.0),
    ("deepseek-reasoner", "https://api.deepseek.com", {"max_tokens": 4020}, "not sent"),
    ("qwen/qwen3-32b", OPENROUTER, {"max_tokens": 4020}, 0.0),
    (
        "gemini-2.5-flash",
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        {"max_tokens": 4020},
        0.0,
    ),
    ("claude-opus-4-7", "https://api.anthropic.com/v1/", {"max_tokens": 20}, "not sent"),
    ("openai/gpt-oss-120b", OPENROUTER, {"max_tokens": 4020}, 0.0),
    ("local/smollm2-135m-instruct", "http://127.0.0.1:38647/v1", {"max_tokens": 20}, 0.0),
    ("openai/gpt-4o-mini", OPENROUTER, {"max_tokens": 20}, 0.0),
]


@pytest.mark.parametrize(("model", "url", "limit", "temperature"), NO_CONFIG)
def test_builtin_families_with_no_configuration(
    model: str, url: str, limit: dict, temperature: object
) -> None:
    request = effective_request(resolve_profile(model, url), BNRN0, constrained=False)
    assert request["token_limit"] == limit
    assert request["temperature"] == temperature


def test_a_plain_llama_cpp_model_keeps_todays_request() -> None:
    profile = resolve_profile("local/smollm2-135m-instruct", "http://127.0.0.1:38647/v1")
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    built = build_request(profile, "local/smollm2-135m-instruct", BNRN0, messages, 7, NAMES, constrained=True)
    assert built.params == {
        "model": "local/smollm2-135m-instruct",
        "messages": messages,
        "temperature": 0.0,
        "max_tokens": 20,
        "seed": 7,
        "extra_body": {
            "grammar": 'root ::= "<Answer>" ("blue" | "green" | "red" | "yellow" | "purple") "</Answer>"'
        },
    }
    assert built.effective == legacy_request(BNRN0, constrained=True)


def test_layers_user_tables_then_the_command_line() -> None:
    settings = ProfileSettings.from_tables(
        {
            "o*": {"reasoning_allowance": 1000},
            "o4-mini": {"reasoning_allowance": 2000, "extra_body": {"reasoning_effort": "low"}},
            "gpt-4o": {"token_limit": 5},
        },
        cli={"extra_body": {"service_tier": "flex"}},
    )
    profile = resolve_profile("o4-mini", "https://api.openai.com/v1", settings)
    # The exact id wins over the pattern; the command line adds to the tables.
    assert profile.limit(BNRN0) == 2020 and profile.limit(BSSC0) == 2800
    assert dict(profile.extra_body) == {"reasoning_effort": "low", "service_tier": "flex"}
    assert profile.sources == (
        "server openai (from the base URL)",
        "built-in openai-reasoning",
        '[tool.bandit_bench.models."o*"]',
        '[tool.bandit_bench.models."o4-mini"]',
        "--request-profile",
    )


def test_a_table_for_one_endpoint_only() -> None:
    settings = ProfileSettings.from_tables({"*": {"server": "vllm", "endpoint": "127.0.0.1:8000"}})
    assert resolve_profile("m", "http://127.0.0.1:8000/v1", settings).constrained == "structured_outputs"
    assert resolve_profile("m", "http://127.0.0.1:8001/v1", settings).constrained == "grammar"


def test_the_command_line_twin() -> None:
    assert parse_cli(
        "token_limit_field=max_completion_tokens,temperature=omit,token_limit=2000,"
        "extra_body.provider.require_parameters=true,query.api-version=2024-10-21,"
        'extra_body.chat_template_kwargs={"enable_thinking": false}'
    ) == {
        "token_limit_field": "max_completion_tokens",
        "temperature": "omit",
        "token_limit": 2000,
        "extra_body": {
            "provider": {"require_parameters": True},
            "chat_template_kwargs": {"enable_thinking": False},
        },
        "query": {"api-version": "2024-10-21"},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "max_tokens=100",
            "--request-profile key: got 'max_tokens'; expected one of server, token_limit_field, "
            "token_limit, reasoning_allowance, temperature, temperature_default, seed, system, "
            "constrained, key_header, extra_body, headers, query, reasoning, endpoint. "
            'Did you mean token_limit = N (the size) or token_limit_field = "max_tokens"?',
        ),
        ("temperature=0", "--request-profile.temperature: got 0; expected send or omit"),
        ("seed=random", "--request-profile.seed: got 'random'; expected send or omit or random_seed"),
        ("token_limit=0", "--request-profile.token_limit: got 0; expected a whole number of tokens >= 1 "
         "(replaces the design's budget + reasoning allowance)"),
        ("server=vllm2", "--request-profile.server: got 'vllm2'; expected one of generic, llamacpp, vllm, "
         "ollama, lmstudio, openai, openrouter, azure, azure-v1, deepseek, gemini, anthropic, mistral, groq, "
         "together"),
        ("temperature", "--request-profile: got 'temperature'; expected key=value pairs separated by commas, "
         "e.g. temperature=omit"),
        ("extra_body.temperature=0", "--request-profile.extra_body.temperature: got 0; expected a field "
         "bandit-bench does not set itself. Use the profile setting temperature instead"),
    ],
)  # fmt: skip
def test_bad_profile_values_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_cli(text)
    assert str(info.value) == message


def test_a_key_never_belongs_in_a_profile() -> None:
    with pytest.raises(SpecError) as info:
        check_table("t", {"headers": {"api-key": "secret"}})
    assert "secret" not in str(info.value) and 'key_header = "api-key"' in str(info.value)


def test_system_folded_into_the_first_user_message() -> None:
    profile = resolve_profile("m", "http://x/v1", ProfileSettings(cli={"system": "user"}))
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    params = build_request(profile, "m", BNRN0, messages, 1, NAMES, constrained=False).params
    assert params["messages"] == [{"role": "user", "content": "S\n\nU"}]
    assert messages[1]["content"] == "U"  # the caller's list is left alone


def test_openrouter_structured_outputs_require_the_parameter() -> None:
    profile = resolve_profile("openai/gpt-4o-mini", OPENROUTER)
    params = build_request(profile, "openai/gpt-4o-mini", BNRN0, [], 1, NAMES, constrained=True).params
    assert params["response_format"]["type"] == "json_schema"
    assert params["extra_body"] == {"provider": {"require_parameters": True}}


def test_honour_notes() -> None:
    assert honour_notes(resolve_profile("gpt-4o", "https://api.openai.com/v1"), BNRN0) == []
    assert (
        honour_notes(resolve_profile("o4-mini", "https://api.openai.com/v1"), DesignSpec.parse("BNRN1")) == []
    )
    (note,) = honour_notes(resolve_profile("deepseek/deepseek-r1", OPENROUTER), BNRN0)
    assert "OpenRouter may route" in note
    required = ProfileSettings(cli={"extra_body": {"provider": {"require_parameters": True}}})
    assert honour_notes(resolve_profile("deepseek/deepseek-r1", OPENROUTER, required), BNRN0) == []


@pytest.mark.parametrize(
    ("status", "body", "fix"),
    [
        (
            400,
            {"error": {"param": "max_tokens", "code": "unsupported_parameter"}},
            "token_limit_field=max_completion_tokens",
        ),
        (400, {"error": {"param": "temperature", "code": "unsupported_value"}}, "temperature=omit"),
        (422, {"object": "error", "message": {"detail": [{"loc": ["body", "seed"]}]}}, "seed=random_seed"),
        (400, {"error": {"param": "seed", "code": "unsupported_parameter"}}, "seed=omit"),
        (400, {"error": {"message": "`temperature` is deprecated for this model."}}, "temperature=omit"),
    ],
)  # fmt: skip
def test_a_refused_parameter_names_its_profile_setting(status: int, body: dict, fix: str) -> None:
    message = str(body)
    hint = profile_fix(status, body, message)
    assert hint is not None and f"--request-profile '{fix}'" in hint


def test_an_unrelated_400_gets_no_profile_hint() -> None:
    assert (
        profile_fix(400, {"error": {"message": "context length exceeded"}}, "context length exceeded") is None
    )
