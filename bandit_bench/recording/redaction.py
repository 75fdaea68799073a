"""Secrets (API keys, passwords in ``--base-url``) never reach a file, a log line or a message.

Header filtering by name keeps credentials out of cassettes in the normal case; this module is
the last line of defence for everything else: a server that echoes the key in a 200 body or a
response header, an error message that quotes the request, a URL with ``user:password@``.

* :class:`Secret` holds a key; its ``repr`` and ``str`` never show it (``pytest -l`` prints
  locals), and creating one registers the value for redaction in this process.
* :func:`redact` (text), :func:`redact_bytes` and :func:`redact_obj` (nested records) replace
  every registered secret, every ``Bearer``/``Basic`` credential and every URL's
  ``user:password@``. Whatever writes a file or prints calls one of them.
* :func:`strip_userinfo` removes ``user:password@`` from a URL that is stored (a cassette's uri).
* :func:`shown_url` is a URL as messages may print it: no password, no query value (a key can
  travel as ``?api-key=``, ``?code=``, ``?sig=``); :func:`register_url` registers both.

A secret is found in the forms a server may echo it in: as is, JSON-escaped (``\\/``,
``\\u00XX``: :func:`redact_bytes` also redacts the decoded JSON of a body), base64-encoded
(registered at its three alignments), and in a UTF-16 body (decoded before it is searched).
A secret shorter than :data:`MIN_SECRET_LENGTH` is replaced only as a whole token, so that a
one-letter password does not erase every letter it is made of.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
# Shorter values are replaced only as whole tokens (not inside a longer run of letters and
# digits): a 3-letter password must not mangle every word that contains it.
MIN_SECRET_LENGTH = 8
# Query parameters of a base URL that carry no credential (Azure OpenAI's api-version); every
# other parameter's value is a secret (?api-key=, Azure Functions' ?code=, SAS ?sig=).
PUBLIC_QUERY_PARAMS = frozenset({"api-version"})

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()
_logging_installed = False

# A credential that was never registered (a server quoting some other key): the scheme as HTTP
# writes it, then a token of 16+ characters with a digit in it, so that prose a model writes
# ("Basic exploration strategies...") is never touched.
_AUTH_TOKEN = re.compile(r"\b(Bearer|Basic)(\s+)(?=[A-Za-z._~+/=:-]*\d)[A-Za-z0-9._~+/=:-]{16,}")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#\"'<>]+@")


class Secret:
    """A credential whose repr and str are redacted; :meth:`reveal` gives the value to send.

    ``source`` names where it came from (``OPENROUTER_API_KEY``, ``--api-key``) for messages.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "the API key") -> None:
        self._value = value
        self.source = source
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r}, value={REDACTED!r})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value, self.source))


def _echo_forms(value: str) -> set[str]:
    """The spellings of ``value`` a server may echo: JSON-escaped, and base64 at each alignment.

    Base64 of a text that holds the key (``Bearer sk-...``) spells the key differently at each
    of the three byte offsets it can start at; the characters made only of the key's own bits
    are the same wherever it sits, and those are registered."""
    import json
    from base64 import b64encode

    forms = {value, value.strip(), value.replace("/", "\\/"), json.dumps(value)[1:-1]}
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) >= MIN_SECRET_LENGTH:
        for shift in range(3):
            total_bits = (shift + len(raw)) * 8
            core = b64encode(b"\0" * shift + raw).decode("ascii")[(shift * 8 + 5) // 6 : total_bits // 6]
            if len(core) >= MIN_SECRET_LENGTH:
                forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if f}


def _alternative(secret: str) -> str:
    if len(secret) >= MIN_SECRET_LENGTH:
        return re.escape(secret)
    return rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"


def register(value: str | None) -> None:
    """Redact ``value`` (and its echoed spellings) from everything this process writes from now on."""
    global _pattern
    if not value:
        return
    # Surrounding whitespace (a key pasted with its newline) is redacted as the bare key too.
    values = _echo_forms(value)
    if not values - _secrets:
        return
    with _lock:
        _secrets.update(values)
        # Longest first, so that a key containing another registered key is replaced whole.
        ordered = sorted(_secrets, key=lambda s: (-len(s), s))
        _pattern = re.compile("|".join(_alternative(s) for s in ordered))
    _install_logging()


def redact(text: str) -> str:
    """``text`` with registered secrets, auth tokens and URL credentials replaced."""
    if not isinstance(text, str):
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "://" in text:
        # A match holds no whitespace, so only the lines with a "://" can hold one: searched
        # alone they give the same result, and a report page's megabytes of embedded figures
        # (lines without one) are not scanned by the slow case-insensitive search.
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if "://" in line:
                lines[i] = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", line)
        text = "\n".join(lines)
    if "Bearer" not in text and "Basic" not in text:  # the pattern's only starts (a fast check)
        return text
    return _AUTH_TOKEN.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


def redact_bytes(data: bytes) -> bytes:
    """The bytes form of :func:`redact`, for HTTP bodies.

    A JSON body (UTF-8, -16 or -32, as JSON allows) is also redacted after decoding, so that an
    escaped echo (``sk\\/...``, ``\\u0073k-...``) is found; when that changes anything, or
    the body is not UTF-8, the redacted JSON comes back as UTF-8. Other bytes that are not UTF-8
    are left alone (they are never recorded: not a chat completion)."""
    import json

    try:
        decoded = json.loads(data)
    except (ValueError, RecursionError):
        decoded = _NOT_JSON
    if decoded is not _NOT_JSON:
        clean = redact_obj(decoded)
        if clean != decoded:
            return json.dumps(clean).encode("utf-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if decoded is not _NOT_JSON:
            return json.dumps(decoded).encode("utf-8")
        return data
    out = redact(text)
    return data if out == text else out.encode("utf-8")


_NOT_JSON = object()


def redact_obj(obj: Any) -> Any:
    """Every string inside nested dicts, lists and tuples redacted (keys too); the rest as is."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_obj(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_obj(v) for v in obj)
    return obj


def public_url(url: str | None) -> str | None:
    """``url`` without credentials: no ``user:password@``, no query, no fragment (a key can hide
    in ``?api-key=``)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparseable URL, not shown)"
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def shown_url(url: str) -> str:
    """``url`` as a message may print it: no ``user:password@``, each query value that is not
    in :data:`PUBLIC_QUERY_PARAMS` replaced, no fragment; an unparseable URL is not shown."""
    from urllib.parse import parse_qsl, urlencode

    try:
        parts = urlsplit(strip_userinfo(url))
        query = [
            (k, v if k.lower() in PUBLIC_QUERY_PARAMS else REDACTED)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
    except ValueError:
        return "(unparseable URL, not shown)"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="[]"), ""))


def secret_query_values(url: str) -> list[str]:
    """The values of ``url``'s query parameters that are not public (each one a credential)."""
    from urllib.parse import parse_qsl

    try:
        query = urlsplit(url).query
    except ValueError:
        query = url.partition("?")[2].partition("#")[0]
    return [v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in PUBLIC_QUERY_PARAMS]


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: what may be stored or shown of an endpoint."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


_USERINFO_PARTS = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)@")


def register_url(url: str) -> None:
    """Redact the credentials of ``url``: its password, the Basic credential httpx makes of its
    user:password, and every query value that is not public. An unparseable URL's are found by
    their position, so that the error refusing it cannot show them."""
    from base64 import b64encode
    from urllib.parse import quote, unquote

    for value in secret_query_values(url):
        register(value)
        register(quote(value, safe=""))
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        m = _USERINFO_PARTS.match(url)
        if m is None:
            return
        # The group is the whole userinfo (up to the last '@', as urlsplit reads it): a password
        # may hold an unencoded '@' or ':' of its own.
        username, _, password = m.group(1).partition(":")
        password = password or None
    if password is None and username is None:
        return
    user, clear = unquote(username or ""), unquote(password or "")
    register(clear)
    register(password)
    register(b64encode(f"{user}:{clear}".encode()).decode("ascii"))


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format is logging's problem, not ours
            return True
        clean = redact(message)
        if record.name.startswith("httpcore") and "response_headers.complete" in clean:
            # httpcore's DEBUG trace prints the raw response headers, where a server can split a
            # key over two headers that no search for the key finds: their values are not logged.
            clean = clean.split(" return_value=", 1)[0] + " return_value=(headers not shown by bandit-bench)"
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()


def _install_logging() -> None:
    """Every log record is redacted when it is made, whichever handler writes it later.

    A filter on the root logger would miss records of child loggers (filters do not propagate),
    so the record factory is wrapped instead; it is chained, not replaced.
    """
    global _logging_installed
    with _lock:
        if _logging_installed:
            return
        _logging_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _FILTER.filter(record)
        return record

    logging.setLogRecordFactory(factory)


__all__ = [
    "REDACTED",
    "Secret",
    "redact",
    "redact_bytes",
    "redact_obj",
    "register",
    "register_url",
    "secret_query_values",
    "shown_url",
    "strip_userinfo",
]
