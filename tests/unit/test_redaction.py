"""The redaction every writer calls: registered secrets, auth tokens, URL credentials - and
nothing else, since model replies pass through it on their way to cassettes and reports."""

from __future__ import annotations

import secrets

from bandit_bench.recording.redaction import (
    Secret,
    redact,
    redact_bytes,
    redact_obj,
    register_url,
    strip_userinfo,
)


def test_registered_secrets_and_url_credentials_are_replaced_wherever_they_appear() -> None:
    key = f"sk-unit-{secrets.token_hex(12)}"
    Secret(key, "UNIT_KEY")
    password = f"pw{secrets.token_hex(8)}"
    register_url(f"http://alice:{password}@proxy.local/v1")
    text = f"key={key}; again {key}!; url http://alice:{password}@proxy.local/v1 and {password}"
    assert redact(text) == (
        "key=[redacted]; again [redacted]!; url http://[redacted]@proxy.local/v1 and [redacted]"
    )
    assert redact_bytes(f"X-Debug: Bearer {key}".encode()) == b"X-Debug: Bearer [redacted]"
    assert redact_obj({"a": [key, (1, key)], key: None}) == {
        "a": ["[redacted]", (1, "[redacted]")],
        "[redacted]": None,
    }
    assert strip_userinfo(f"http://alice:{password}@proxy.local:8/v1?x=1") == "http://proxy.local:8/v1?x=1"


def test_unregistered_tokens_are_replaced_but_prose_is_not() -> None:
    assert redact("Authorization: Bearer abcDEF0123456789xyz") == "Authorization: Bearer [redacted]"
    assert redact("Basic YWxpY2U6c2VjcmV0MTIzNDU2") == "Basic [redacted]"
    for prose in (
        "Basic exploration strategies keep every arm in play.",
        "The bearer of good news: <Answer>blue</Answer>",
        "Bearer bonds, basic needs, email me at someone@example.com",
        "blue:0.2,green:0.2,red:0.2,yellow:0.2,purple:0.2",
    ):
        assert redact(prose) == prose
    assert redact_bytes(b"\xff\xfe not utf-8") == b"\xff\xfe not utf-8"
