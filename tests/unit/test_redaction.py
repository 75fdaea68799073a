"""The redaction every writer calls: registered secrets, auth tokens, URL credentials - and
nothing else, since model replies pass through it on their way to cassettes and reports."""

from __future__ import annotations

import logging
import secrets
from base64 import b64encode, urlsafe_b64encode
from urllib.parse import quote

import pytest

from bandit_bench.recording import redaction
from bandit_bench.recording.redaction import (
    Secret,
    public_url,
    redact,
    redact_bytes,
    redact_obj,
    register,
    register_url,
    secret_query_values,
    shown_url,
    strip_userinfo,
)


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers into an empty registry, restored afterwards: a fixed secret is then
    registered by the code under test every time (a registry that already holds it, from an
    earlier test in the process, would make the registering a no-op and hide a broken one)."""
    monkeypatch.setattr(redaction, "_secrets", set())
    monkeypatch.setattr(redaction, "_pattern", None)


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


def test_credentials_are_found_on_any_line_of_a_long_text() -> None:
    # The URL search runs line by line (only lines with "://"); the token's whitespace may be
    # a line break; lines without either come back untouched.
    figure = "data:image/png;base64," + "QUJD" * 5000
    text = "\n".join(
        [
            figure,
            "endpoint http://bob:pw-0123456789@proxy.local/v1",
            figure,
            "<td>Bearer",
            "abcDEF0123456789xyz</td> and ftp://eve:s3cret@files.example/x",
            "",
        ]
    )
    assert redact(text) == "\n".join(
        [
            figure,
            "endpoint http://[redacted]@proxy.local/v1",
            figure,
            "<td>Bearer",
            "[redacted]</td> and ftp://[redacted]@files.example/x",
            "",
        ]
    )
    assert redact(figure + "\nBasic YWxpY2U6c2VjcmV0MTIzNDU2") == figure + "\nBasic [redacted]"


def test_a_secret_never_shows_its_value_and_compares_by_it() -> None:
    value = f"sk-cmp-{secrets.token_hex(8)}"
    secret = Secret(value)
    assert repr(secret) == str(secret) == "Secret(source='the API key', value='[redacted]')"
    assert secret == Secret(value, "OTHER") and secret != Secret(value + "x") and secret != value
    assert hash(secret) == hash(Secret(value)) and len({secret, Secret(value)}) == 1
    assert bool(secret) and not bool(Secret(""))


def test_a_secret_of_the_minimum_length_is_redacted_and_a_longer_one_whole() -> None:
    eight = secrets.token_hex(4)  # MIN_SECRET_LENGTH characters
    register(eight)
    assert redact(f"x {eight} y") == "x [redacted] y"
    # A key that starts with another registered key is replaced whole, not leaving its tail.
    short = f"sk-{secrets.token_hex(6)}"
    register(short)
    register(short + "-tail-of-the-longer-key")
    assert redact(f"{short}-tail-of-the-longer-key and {short}") == "[redacted] and [redacted]"


def test_url_credentials_every_way_httpx_sends_them() -> None:
    user, password = f"u{secrets.token_hex(6)}", f"p@{secrets.token_hex(6)}"
    quoted = password.replace("@", "%40")
    register_url(f"http://{user}:{quoted}@proxy.local/v1")
    for shown in (password, quoted, b64encode(f"{user}:{password}".encode()).decode()):
        assert redact(f"<{shown}>") == "<[redacted]>", shown
    # Only a user (a token as the user name), or only a password: httpx sends Basic user: or :password.
    token = f"tok{secrets.token_hex(8)}"
    register_url(f"http://{token}@proxy.local/v1")
    assert redact(b64encode(f"{token}:".encode()).decode()) == "[redacted]"
    lone = f"pw{secrets.token_hex(8)}"
    register_url(f"http://:{lone}@proxy.local/v1")
    assert redact(f"{lone} {b64encode(f':{lone}'.encode()).decode()}") == "[redacted] [redacted]"


def test_stored_urls_lose_the_userinfo_even_with_an_at_sign_in_it() -> None:
    assert strip_userinfo("http://us@er:pw@host.local/v1") == "http://host.local/v1"
    assert (
        strip_userinfo("http://[::1/v1?token=abcdefghijklmnop1") == "http://[::1/v1?token=abcdefghijklmnop1"
    )
    assert strip_userinfo("http://x:y@[::1/v1") == "http://[redacted]@[::1/v1"  # unparseable: redacted


def test_public_url_keeps_no_credential_and_no_made_up_host() -> None:
    assert public_url("file:///srv/model") == "file:///srv/model"
    assert public_url("http://a:b@[::1]:8/v1?api-key=1#f") == "http://[::1]:8/v1"
    assert public_url("http://[::1/v1") == "(unparseable URL, not shown)"
    assert public_url(None) is None


def test_log_records_are_redacted_whichever_handler_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # The record factory is installed once per process, usually long before this test: install
    # it afresh over logging's own factory, so that this test sees what the installing does.
    previous = logging.getLogRecordFactory()
    monkeypatch.setattr(redaction, "_logging_installed", False)
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        key = f"sk-log-{secrets.token_hex(8)}"
        Secret(key)  # a new secret installs the factory
        seen: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record)

        log = logging.getLogger(f"bandit_bench.test.{secrets.token_hex(4)}")
        log.addHandler(Keep())
        log.propagate = False
        log.warning("sent %s to %s", key, "the server")
        log.warning("a record whose arguments do not format: %d", "x")
    finally:
        logging.setLogRecordFactory(previous)
    assert seen[0].getMessage() == "sent [redacted] to the server"
    assert seen[0].name == log.name and seen[0].levelno == logging.WARNING  # the record is the record
    assert seen[1].msg == "a record whose arguments do not format: %d"  # left to logging to report


def test_a_short_secret_is_replaced_as_a_whole_token_only() -> None:
    short = "q" + secrets.token_hex(2)[:3]  # 4 characters
    Secret(short, "UNIT_SHORT")
    assert (
        redact(f"key={short}&x; {short}. x{short} {short}9")
        == f"key=[redacted]&x; [redacted]. x{short} {short}9"
    )


def test_echoed_spellings_of_a_key_are_replaced_escaped_decoded_and_base64() -> None:
    import base64
    import json

    key = f"sk/{secrets.token_hex(16)}"
    Secret(key, "UNIT_SLASH")
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    body = json.dumps({"a": "K1", "b": f"b64 {base64.b64encode(f'Bearer {key}'.encode()).decode()}"})
    body = body.replace("K1", escaped)
    out = redact_bytes(body.encode("utf-16"))
    assert json.loads(out)["a"] == "[redacted]"
    assert "[redacted]" in json.loads(out)["b"]
    assert redact(key.replace("/", "\\/")) == "[redacted]"
    assert key.encode() not in out


# ---------------------------------------------------------------- mutation testing (issue 24)


def test_a_key_of_exactly_the_minimum_length_is_redacted_inside_a_longer_word() -> None:
    eight = "q7w8e9r0"  # MIN_SECRET_LENGTH characters: searched for anywhere, not as a token only
    register(eight)
    assert redact(f"x{eight}y and {eight}9") == "x[redacted]y and [redacted]9"
    # Its base64 spellings are registered too (a server echoing the Basic or Bearer credential).
    assert redact(b64encode(eight.encode()).decode()) == "[redacted]A="
    assert redact(b64encode(f"Bearer {eight}".encode()).decode()) == "QmVhcmVyIH[redacted]"


def test_a_base64_echo_keeps_only_the_characters_that_mix_the_key_with_its_neighbours() -> None:
    """Base64 of a text holding the key, at each of the three byte alignments the key can sit
    at: every character made only of the key's bits is replaced; the one or two characters at
    each end that also hold a neighbour's bits stay (they cannot spell the key)."""
    key = "sk-b64-align-0123456789x"  # 24 bytes
    register(key)
    for prefix, (start, end) in ((b"ab:", (4, 36)), (b"abc:", (6, 37)), (b"abcd:", (7, 38))):
        text = b64encode(prefix + key.encode() + b":end").decode()
        assert redact(text) == text[:start] + "[redacted]" + text[end:], prefix
    # The URL-safe alphabet (- and _ for + and /), as in a JWT or a signed URL.
    plus_slash = "sk-~~~???~~~???-0123456"
    register(plus_slash)
    encoded = urlsafe_b64encode(b"token:" + plus_slash.encode()).decode()
    assert "-" in encoded and "_" in encoded
    assert redact(encoded) == "dG9rZW46[redacted]Y="  # Y: the last 2 bits of the key, then padding


def test_a_json_escaped_echo_of_a_non_ascii_key_is_redacted_in_both_escapings() -> None:
    """A server quoting the key inside a JSON text that is itself in a message: escaped with
    ``\\u00e4`` (Python, ensure_ascii) or with only the quote escaped (JavaScript's JSON)."""
    value = 'sk-p\u00e4sswort"-0123456789'
    register(value)
    for escaped in ('sk-p\\u00e4sswort\\"-0123456789', 'sk-p\u00e4sswort\\"-0123456789'):
        assert redact(f'HTTP 401: {{"detail": "bad key {escaped}"}}') == (
            'HTTP 401: {"detail": "bad key [redacted]"}'
        ), escaped


def test_a_json_body_that_is_not_utf8_comes_back_as_utf8_json() -> None:
    body = '{"a": "plain \u00e4 text"}'
    assert redact_bytes(body.encode("utf-16")) == b'{"a": "plain \\u00e4 text"}'
    assert redact_bytes(body.encode("utf-8")) == body.encode("utf-8")  # untouched: the same bytes


def test_shown_url_hides_every_query_value_but_the_api_version() -> None:
    url = "https://u:pw-0123456789@res.openai.azure.com/openai?API-Version=2024-06-01&api-key=abc&blank=#x"
    assert shown_url(url) == (
        "https://res.openai.azure.com/openai?API-Version=2024-06-01&api-key=[redacted]&blank=[redacted]"
    )
    assert shown_url("http://[::1/v1?api-key=abc") == "(unparseable URL, not shown)"


def test_secret_query_values_are_every_value_but_the_api_version_even_unparseable() -> None:
    url = "https://h.example/v1?api-key=K1&API-VERSION=2024-06-01&code=C%2F2&blank=#sig=frag"
    assert secret_query_values(url) == ["K1", "C/2", ""]
    # urlsplit refuses the bracket: the query is still found, up to the fragment.
    assert secret_query_values("http://[::1/v1?code=abc?def&sig=xyz#frag") == ["abc?def", "xyz"]
    assert secret_query_values("http://[::1/v1?code=abc") == ["abc"]
    assert secret_query_values("http://[::1/v1") == []


def test_a_query_credential_is_redacted_as_sent_and_as_decoded() -> None:
    value = "sig/with+specials=0123"
    url = f"https://h.example/v1?code={quote(value, safe='')}&api-version=2024-06-01"
    register_url(url)
    assert redact(url) == "https://h.example/v1?code=[redacted]&api-version=2024-06-01"
    assert redact(f"<{value}>") == "<[redacted]>"


def test_an_unparseable_url_registers_a_password_holding_at_signs_and_colons() -> None:
    """The password of a URL that cannot be sent is registered before the error refusing the
    URL is made; it is split from the user as urlsplit does (first ':', last '@')."""
    password = "p@ss:word-0123456789"
    register_url(f"http://alice:{password}@[::1/v1")
    assert redact(f"<{password}>") == "<[redacted]>"
    assert redact(b64encode(f"alice:{password}".encode()).decode()) == "[redacted]"
    register_url("http://[::1/v1?nothing")  # no userinfo: nothing to register, no error


def _record(name: str, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, logging.DEBUG, __file__, 1, msg, None, None)


def test_the_response_headers_httpcore_logs_are_not_shown_and_nothing_else_is_cut() -> None:
    """A server can split a key over two headers no search finds; httpcore's DEBUG trace of
    the response headers is cut at its return value, however the headers spell it."""
    headers = (
        "(b'HTTP/1.1', 200, b'OK', [(b'X-Key-Head', b'sk-half'), (b'X-Echo', b' return_value=sk-tail')])"
    )
    record = _record("httpcore2.http11", f"receive_response_headers.complete return_value={headers}")
    assert redaction._FILTER.filter(record) is True
    assert record.getMessage() == (
        "receive_response_headers.complete return_value=(headers not shown by bandit-bench)"
    )
    for name, message in (
        ("bandit_bench.x", f"receive_response_headers.complete return_value={headers}"),
        ("httpcore2.http11", "receive_response_headers.started request=<Request [b'POST']>"),
    ):
        record = _record(name, message)
        redaction._FILTER.filter(record)
        assert record.getMessage() == message
