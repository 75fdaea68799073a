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
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
# Shorter values are not replaced in free text: a 3-letter password would mangle every word
# that contains it. URL credentials are removed by their position whatever their length.
MIN_SECRET_LENGTH = 8

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


def register(value: str | None) -> None:
    """Redact ``value`` from everything this process writes from now on."""
    global _pattern
    if not value:
        return
    # Surrounding whitespace (a key pasted with its newline) is redacted as the bare key too.
    values = {v for v in (value, value.strip()) if len(v) >= MIN_SECRET_LENGTH}
    if not values - _secrets:
        return
    with _lock:
        _secrets.update(values)
        # Longest first, so that a key containing another registered key is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))
    _install_logging()


def redact(text: str) -> str:
    """``text`` with registered secrets, auth tokens and URL credentials replaced."""
    if not isinstance(text, str):
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    return _AUTH_TOKEN.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


def redact_bytes(data: bytes) -> bytes:
    """The bytes form of :func:`redact`, for bodies that may not be UTF-8 (left alone if so)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    out = redact(text)
    return data if out == text else out.encode("utf-8")


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


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: what may be stored or shown of an endpoint."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def register_url(url: str) -> None:
    """Redact the password of ``url`` and the Basic credential httpx makes of its user:password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password is None and parts.username is None:
        return
    from base64 import b64encode
    from urllib.parse import unquote

    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    register(password)
    register(parts.password)
    register(b64encode(f"{user}:{password}".encode()).decode("ascii"))


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format is logging's problem, not ours
            return True
        clean = redact(message)
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
    "strip_userinfo",
]
