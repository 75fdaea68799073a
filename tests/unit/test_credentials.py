"""Which key goes to which endpoint, and what is said about it (bandit_bench.running.credentials)."""

from __future__ import annotations

import pytest

from bandit_bench.recording import redaction
from bandit_bench.recording.redaction import Secret
from bandit_bench.running.credentials import (
    key_env_for,
    key_help,
    key_problem,
    provider_key_env,
    select_api_key,
)


def test_only_https_to_the_providers_own_hosts_reads_their_variables():
    assert provider_key_env("https://openrouter.ai/api/v1") == "OPENROUTER_API_KEY"
    assert provider_key_env("HTTPS://api.openai.com/v1") == "OPENAI_API_KEY"
    assert provider_key_env("https://api.openai.com:443/v1") == "OPENAI_API_KEY"
    assert provider_key_env("http://api.openai.com/v1") is None
    assert provider_key_env("https://[::1/v1") is None  # unparseable: no key, no crash
    assert key_env_for("https://openrouter.ai/api/v1", "MINE") == "MINE"
    assert key_env_for("http://127.0.0.1:8/v1") is None


def test_key_help_names_the_variable_or_says_none_is_sent():
    assert key_help("https://openrouter.ai/api/v1") == "export OPENROUTER_API_KEY=... (or pass --api-key)"
    assert key_help("http://127.0.0.1:8/v1", "MINE") == "export MINE=... (or pass --api-key)"
    assert key_help("http://127.0.0.1:8/v1") == (
        "no key is sent to this endpoint unless one is given: --api-key-env NAME or --api-key"
    )


@pytest.mark.parametrize(
    ("value", "source", "problem"),
    [
        ("sk-fine-0123456789", "SIM_KEY", None),
        ("sk-newline-0123456789\n", "SIM_KEY", "the API key has leading or trailing whitespace (a newline?) "
         "(check the variable SIM_KEY)"),
        ("sk-caf\u00e9-0123456789", "--api-key",
         "the API key contains a non-ASCII character (check --api-key)"),
        ("sk-tab\there-0123456789", "SIM_KEY", "the API key contains a space or a control character "
         "(check the variable SIM_KEY)"),
        ("sk-bell\x07-0123456789", "SIM_KEY", "the API key contains a space or a control character "
         "(check the variable SIM_KEY)"),
    ],
)  # fmt: skip
def test_a_key_that_cannot_be_a_header_is_named_by_its_source(value, source, problem):
    assert key_problem(Secret(value, source)) == problem


def test_no_key_has_no_problem():
    assert key_problem(None) is None


def test_an_empty_variable_sends_no_key():
    """``export OPENROUTER_API_KEY=`` is no key: nothing is sent and the hint asks for one."""
    assert select_api_key("https://openrouter.ai/api/v1", environ={"OPENROUTER_API_KEY": ""}) is None
    assert select_api_key("http://127.0.0.1:8/v1", api_key_env="MINE", environ={"MINE": ""}) is None


def test_a_key_with_a_byte_that_is_not_utf8_is_refused_by_name_not_by_a_crash(monkeypatch):
    """Python reads such a byte from the environment as a lone surrogate (surrogateescape)."""
    monkeypatch.setattr(redaction, "_secrets", set())  # registered afresh, not found registered
    monkeypatch.setattr(redaction, "_pattern", None)
    value = b"sk-latin1-\xe9-0123456789".decode("utf-8", "surrogateescape")
    key = select_api_key("https://openrouter.ai/api/v1", environ={"OPENROUTER_API_KEY": value})
    assert key is not None and key.reveal() == value
    assert (
        key_problem(key)
        == "the API key contains a non-ASCII character (check the variable OPENROUTER_API_KEY)"
    )
