"""Record and replay HTTP traffic in vcrpy's cassette format, without patching anything.

vcrpy patches HTTP libraries process-wide, so two cassettes open at once in one process mix
their traffic, and its matchers scan the whole cassette for every request. Here each episode
gets its own :class:`CassetteTransport`, handed to the openai client as ``http_client=``:

* requests are looked up in a dict keyed by (method, canonical JSON body) - constant time
  whatever the cassette size - and must also match the endpoint path relative to the base
  URL, so a replay does not depend on which base URL recorded it;
* files are read and written with vcrpy's own serializer (``vcr.serialize``), so vcrpy can
  read what we write and the other way round;
* the API key never reaches the file: only a whitelist of request headers is kept, the URL's
  query is dropped but for public parameters (``api-version``), and a response is stored with
  its body (redacted, decoded JSON included) and one header, ``Content-Type: application/json``;
* a reply's body is read at most :data:`MAX_REPLY_BYTES` after decompression, a cassette is
  written at most :data:`MAX_CASSETTE_BYTES` long: the limits replay reads with;
* only complete, successful responses are recorded, and a cassette is written whole through a
  temporary file and ``os.replace`` or not at all.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bandit_bench.core.replies import (
    cap_advice,
    completion_error,
    content_problem,
    daily_cap_reset,
    read_usage,
    should_not_retry,
)
from bandit_bench.recording.modes import record_mode, requests_to_send
from bandit_bench.recording.redaction import (
    PUBLIC_QUERY_PARAMS,
    redact,
    redact_bytes,
    redact_obj,
    shown_url,
    strip_userinfo,
)

if TYPE_CHECKING:
    import httpx2
    from pydantic import ValidationError


_KEPT_REQUEST_HEADERS = ("content-type", "accept", "accept-encoding")
# Response headers that would be wrong once the body is stored decoded, or that carry state.
_DROPPED_RESPONSE_HEADERS = (
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "set-cookie",
    "connection",
)
# What a recorded response keeps of its headers: replay needs the body's type and nothing else,
# and a header a server sets is one more place a key could be echoed (split over two of them).
_RECORDED_RESPONSE_HEADERS = {"Content-Type": ["application/json"]}

# The most a reply's body may hold once decompressed. A chat completion of 800 tokens is ~5 KB,
# a reasoning model's 32k-token answer ~150 KB; a gzip bomb (300 KB inflating to 300 MB) is
# refused after reading this much, like any other reply that is not a usable chat completion.
MAX_REPLY_BYTES = 4 * 1024 * 1024


class CassetteError(Exception):
    """A cassette cannot serve this run; the message says which file and what to do."""


class CassetteMissingError(CassetteError):
    pass


class StaleCassetteError(CassetteError):
    pass


class CorruptCassetteError(CassetteError):
    pass


_SAFE_COMPONENT = re.compile(r"[^A-Za-z0-9._-]")
# File systems allow 255 bytes per name; a longer id keeps a readable head and a hash of the
# whole (the manifest holds the exact id), so a 300-character model id still gets a folder.
_MAX_COMPONENT = 120


def safe_component(name: str) -> str:
    """A file-safe path component: ``~`` becomes ``t`` (BSSC~0 -> BSSCt0), others ``_``."""
    out = _SAFE_COMPONENT.sub("_", name.replace("~", "t"))
    if len(out) > _MAX_COMPONENT:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
        out = f"{out[: _MAX_COMPONENT - 13]}-{digest}"
    return "_" if out in ("", ".", "..") else out


def case_dir(cassette_dir: Path | str, model: str, config_name: str) -> Path:
    """``<dir>/<model>/<config>``: one case's recording; a model id's ``/`` keeps its meaning as folders."""
    model_parts = [safe_component(p) for p in model.split("/") if p]
    return Path(cassette_dir, *model_parts, safe_component(config_name))


def episode_file(episode: int) -> str:
    return f"{episode:03d}.json"


def cassette_path(cassette_dir: Path | str, model: str, config_name: str, episode: int) -> Path:
    """``<dir>/<model>/<config>/<episode>.json``."""
    return case_dir(cassette_dir, model, config_name) / episode_file(episode)


def recorded_interactions(path: Path) -> int:
    """How many interactions a cassette holds (0 when it is missing or unreadable); no vcrpy import."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return len(data.get("interactions", [])) if isinstance(data, dict) else 0
    except (OSError, ValueError):
        return 0


def pending_requests(
    cassette_dir: Path | str, model: str, config_name: str, episodes: int, horizon: int, mode: str
) -> dict[int, int]:
    """Episode -> requests a run in record ``mode`` would send to the API (episodes with none left out).

    ``once`` records the episodes whose cassette is missing; ``new_episodes`` also the steps an
    existing cassette lacks; ``all`` and ``rewrite`` every step; ``none`` nothing. An existing
    cassette is assumed to match today's prompts (a stale one fails in replay instead).
    """
    policy = record_mode(mode)
    out: dict[int, int] = {}
    for episode in range(episodes):
        path = cassette_path(cassette_dir, model, config_name, episode)
        recorded = recorded_interactions(path) if path.exists() else None
        missing = requests_to_send(policy, recorded, horizon)
        if missing:
            out[episode] = missing
    return out


def canonical_body(body: bytes | str | None) -> str:
    """Key of a request body: JSON with sorted keys and no spaces, or the raw text."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return text


def _scrub_uri(uri: str) -> str:
    """The uri as stored: no ``user:password@``, no query parameter but the public ones."""
    parts = urlsplit(strip_userinfo(uri))
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in PUBLIC_QUERY_PARAMS
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def read_capped_body(response: httpx2.Response, request: httpx2.Request) -> bytes:
    """A network response's body, decompressed, refused once it passes :data:`MAX_REPLY_BYTES`.

    httpx inflates a gzip body without bound (a 300 KB reply took 9 GB). Here the raw stream is
    inflated with ``max_length``, so no step holds more than the cap; a body over it is refused
    as an unusable reply (the client retries it like any malformed answer, it is never stored).
    """
    import zlib

    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    decoder: Any = None
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    elif encoding not in ("", "identity"):
        raise _unusable_response(
            f"HTTP {response.status_code} from {shown_url(str(request.url))}: content-encoding "
            f"{encoding!r}, but only gzip was asked for (Accept-Encoding: gzip)",
            request,
        )
    chunks: list[bytes] = []
    size = 0

    def too_big() -> Exception:
        return _unusable_response(
            f"HTTP {response.status_code} from {shown_url(str(request.url))}: the reply's body is "
            f"more than {MAX_REPLY_BYTES} bytes (decompressed); it was not read further",
            request,
        )

    try:
        for raw in response.iter_raw():
            pending = raw
            while pending:
                if decoder is None:
                    out, pending = pending, b""
                else:
                    out = decoder.decompress(pending, MAX_REPLY_BYTES + 1 - size)
                    pending = decoder.unconsumed_tail
                size += len(out)
                if size > MAX_REPLY_BYTES:
                    raise too_big()
                chunks.append(out)
        if decoder is not None:
            out = decoder.flush()
            size += len(out)
            if size > MAX_REPLY_BYTES:
                raise too_big()
            chunks.append(out)
    except zlib.error as err:
        raise _unusable_response(
            f"HTTP {response.status_code} from {shown_url(str(request.url))}: the {encoding} body "
            f"does not decompress ({err})",
            request,
        ) from None
    finally:
        response.close()
    return b"".join(chunks)


def _is_recordable(status: int, content: bytes) -> bool:
    """Only successful chat completions are worth replaying; errors are retried, never stored."""
    return 200 <= status < 300 and _unusable_reason(content) is None


def _unusable_reason(content: bytes) -> str | None:
    """Why a 2xx body is not a chat completion (None when it is one)."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return "the body is not JSON"
    return completion_problem(data)


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"a whole number of {len(str(abs(value)))} digits"  # repr of a huge int is slow
    text = repr(value)
    return redact(text if len(text) <= 60 else text[:60] + "...")


def completion_problem(data: Any) -> str | None:
    """What makes a decoded 200 body unusable as a chat completion, or None when it is usable.

    Checked before anything reads the body, so that no reply shape is a crash: what the agent
    reads (the first choice's message, content, tool calls, finish reason) and what the report
    sums (token counts, cost: finite and not negative, which budgets rely on).
    """
    if not isinstance(data, dict):
        return f"the body is not a JSON object (got {_show(data)})"
    error = completion_error(data)
    if error is not None:
        # OpenRouter: an error while the model was answering comes as a 200 (see core.replies).
        return f"{ERROR_INSIDE_200}: {_short_text(error)}"
    if not data.get("choices"):
        return "no 'choices' in the body"
    shape = _completion_shape(data)
    if shape is not None:
        return shape
    message = data["choices"][0].get("message") or {}
    content = content_problem(message.get("content"))
    if content is not None:
        return redact(content)
    usage = data.get("usage")
    try:
        read_usage(usage)
    except ValueError as err:
        return _short_text(str(err))
    return None


@functools.cache
def _completion_validator() -> tuple[Callable[[Any], Any], type[ValidationError]]:
    import pydantic

    from bandit_bench.core.formats import Completion

    # About a microsecond per reply (TypedDicts: no objects built; docs/performance.md).
    return pydantic.TypeAdapter(Completion).validate_python, pydantic.ValidationError


def _completion_shape(data: dict[str, Any]) -> str | None:
    """What ``core.formats.Completion`` finds wrong with ``data``, in this module's words."""
    validate, invalid = _completion_validator()
    try:
        validate(data)
    except invalid as err:
        return _completion_shape_problem(data, err)
    return None


def _completion_shape_problem(data: Any, err: Any) -> str:
    """``core.formats.Completion``'s first problem, as this module always said it:
    ``choices[0].finish_reason is not text (got 3)``."""
    from bandit_bench.core.formats import Completion, first_problem

    p = first_problem(Completion, err)
    if ".tool_calls[" in p.where:
        i = int(p.where.split(".tool_calls[", 1)[1].split("]", 1)[0])
        call = data["choices"][0]["message"]["tool_calls"][i]
        return f"choices[0].message.tool_calls[{i}] has no function with a name (got {_show(call)})"
    where = p.where if "." in p.where or "[" in p.where else f"{p.where!r}"
    return f"{where} is not {p.expected} (got {_show(p.got)})"


# How a 200 that carries a provider's error is described (retried, never recorded).
ERROR_INSIDE_200 = "the provider reported an error inside the answer"


def _short_text(text: str, limit: int = 300) -> str:
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + "..."


def paid_tokens(content: bytes) -> int:
    """Output tokens (or any cost) a 2xx body says it was billed for; 0 when it says nothing."""
    try:
        usage = read_usage(json.loads(content).get("usage"))
    except (ValueError, AttributeError, RecursionError):
        return 0
    if usage.provider_cost:
        return max(1, usage.completion_tokens)
    return usage.completion_tokens


class EndpointStopped(CassetteError):
    """The endpoint said this model's daily request cap is used up: the request is not sent."""


# (host, model) -> (reset time, message): a daily cap used up, for this process, until it resets.
_STOPPED: dict[tuple[str, str], tuple[float, str]] = {}
_STOPPED_LOCK = threading.Lock()


def _stop_key(request: httpx2.Request, body: bytes) -> tuple[str, str]:
    try:
        model = str(json.loads(body).get("model"))
    except (ValueError, AttributeError, RecursionError):
        model = ""
    return (f"{request.url.scheme}://{request.url.host}:{request.url.port}", model)


def stop_endpoint(
    request: httpx2.Request, status: int, content: bytes, headers: dict[str, str], now: float
) -> None:
    """Remember a daily cap used up, so that no further request of the run is sent before its reset."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        body = None
    reset = daily_cap_reset(status, body, headers, now)
    if reset is None:
        return
    key = _stop_key(request, request.content)
    message = (
        f"request not sent: {key[0]} answered an earlier request for {key[1]} with HTTP {status}, "
        f"{cap_advice(reset)}"
    )
    with _STOPPED_LOCK:
        _STOPPED[key] = (reset, message)


def endpoint_stopped(request: httpx2.Request, body: bytes, now: float) -> str | None:
    """Why this request must not be sent (a daily cap used up), or None."""
    key = _stop_key(request, body)
    with _STOPPED_LOCK:
        stop = _STOPPED.get(key)
        if stop is not None and now >= stop[0]:
            del _STOPPED[key]
            stop = None
    return stop[1] if stop else None


def clear_endpoint_stops() -> None:
    """Forget every daily cap seen (tests; a long-lived process after topping up)."""
    with _STOPPED_LOCK:
        _STOPPED.clear()


class MalformedPaidReply(CassetteError):
    """A paid 200 in a shape no documented provider sends: asking again would pay again for the
    same answer, so it is not retried (the budget has charged it)."""


class UnusableResponse(Exception):
    """Marker of a 2xx answer that is not a chat completion (a proxy's HTML page, no choices).

    Raised while recording as an ``httpx2`` transport error (see :func:`_unusable_response`), so
    the openai client retries it with its own backoff like a reset connection; never recorded.
    """


@functools.cache
def _unusable_response_class() -> type[httpx2.RemoteProtocolError]:
    import httpx2

    return type("UnusableResponseError", (UnusableResponse, httpx2.RemoteProtocolError), {})


def _unusable_response(message: str, request: httpx2.Request) -> Exception:
    return _unusable_response_class()(message, request=request)


def load_cassette(path: Path) -> tuple[list[Any], list[dict[str, Any]]]:
    """Read a cassette with vcrpy's serializer; a damaged file gives an error naming it."""
    from vcr.serialize import deserialize

    try:
        check_file(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        problem = _cassette_shape(data)  # what vcrpy's reader needs, before it runs
        if problem is not None:
            raise _NotACassette(problem)
        # vcrpy builds its requests and responses from the JSON parsed once, here.
        loaded = deserialize(data, _Parsed)
        requests, responses = list(loaded[0]), list(loaded[1])
        for i, (req, resp) in enumerate(zip(requests, responses, strict=True)):
            _check_interaction(i, req, resp)
    except _NotACassette as err:
        raise corrupt(path, str(err)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
        raise corrupt(path, f"{type(err).__name__}: {err}") from None
    return requests, responses


class _Parsed:
    """vcrpy's serializer interface (``deserialize``) over JSON already parsed and checked."""

    @staticmethod
    def deserialize(data: Any) -> Any:
        return data


@functools.cache
def _cassette_validator() -> tuple[Callable[[Any], Any], type[ValidationError]]:
    import pydantic

    from bandit_bench.core.formats import CassetteFile

    return pydantic.TypeAdapter(CassetteFile).validate_python, pydantic.ValidationError


def _cassette_shape(data: Any) -> str | None:
    """What ``core.formats.CassetteFile`` finds wrong with ``data``, as the cassette messages
    say it (``interaction 3: request.uri is 5, not text``), or None."""
    from bandit_bench.core.formats import CassetteFile, first_problem

    validate, invalid = _cassette_validator()
    try:
        validate(data)
    except invalid as err:
        return _shape_problem(first_problem(CassetteFile, err))
    return None


def _shape_problem(p: Any) -> str:
    """A cassette's shape problem (a ``core.formats.Problem``) in the cassette messages' words."""
    where = p.where or "the file"
    m = re.match(r"interactions\[(\d+)\]\.?(.*)", where)
    if m:
        where = f"interaction {int(m[1]) + 1}: {m[2]}" if m[2] else f"interaction {int(m[1]) + 1}"
    if p.kind == "missing":
        return f"{where} is missing; expected {p.expected}"
    if p.kind == "extra":
        return f"{where} {_show(p.got)} is not one vcrpy reads; expected {p.expected}"
    return f"{where} is {_show(p.got)}, not {p.expected}"


# A cassette of 1000 steps with long chain-of-thought replies is a few MB; anything this large
# is not one of ours, and reading it whole could exhaust memory. Recording stops an episode
# whose cassette would grow past it (see CassetteTransport._append).
MAX_CASSETTE_BYTES = 256 * 1024 * 1024
# The file's share of one interaction besides the two bodies: uri, headers, indentation.
_INTERACTION_OVERHEAD = 1024


class _NotACassette(ValueError):
    """A problem found by our own checks: its message is shown without an exception name."""


def corrupt(path: Path, what: str) -> CorruptCassetteError:
    """The one message of a damaged cassette: which file, what is wrong, what to do."""
    return CorruptCassetteError(
        f"cassette {path} is unreadable or not a vcrpy JSON cassette ({redact(what)}). "
        "Delete it, or re-record it with --record-mode=rewrite."
    )


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_file(path: Path, limit: int = MAX_CASSETTE_BYTES, what: str = "a cassette") -> None:
    """Refuse, without opening it, what is not a regular file of at most ``limit`` bytes.

    Opening a FIFO blocks until a writer comes; /dev/zero never ends. ``stat`` follows
    symlinks, so a link to either is refused too. Raises ``FileNotFoundError`` for a missing
    file and ``ValueError`` (its message says what the file is) for the rest.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "not a regular file")
        target = f" (a symlink to {os.path.realpath(path)})" if path.is_symlink() else ""
        raise _NotACassette(f"it is {kind}{target}, not a regular file: it was not read")
    if st.st_size > limit:
        raise _NotACassette(f"{st.st_size} bytes, more than the {limit} {what} may hold: it was not read")


def _check_interaction(i: int, req: Any, resp: Any) -> None:
    """What the file's shape (``core.formats.CassetteFile``) does not say: a 2xx status, header
    values of text, a body of sane size that is a chat completion."""
    code = resp["status"]["code"]
    if isinstance(code, bool) or not 100 <= code <= 599:
        raise _NotACassette(f"interaction {i + 1}: status {code!r} is not an HTTP status")
    if not 200 <= code < 300:
        raise _NotACassette(
            f"interaction {i + 1}: status {code}, but a cassette holds only successful (2xx) answers"
        )
    for name, value in resp.get("headers", {}).items():
        values = value if isinstance(value, list) else [value]
        if not isinstance(name, str) or not all(isinstance(v, str) for v in values):
            raise _NotACassette(
                f"interaction {i + 1}: response header {name!r} holds {_show(value)}, not text"
            )
    body = resp["body"]["string"]
    if len(body) > MAX_REPLY_BYTES:
        raise _NotACassette(
            f"interaction {i + 1}: the response body holds {len(body)} bytes, more than the "
            f"{MAX_REPLY_BYTES} a reply may hold"
        )
    # A hand-edited answer that is no chat completion would reach the client: refuse it here.
    problem = _unusable_reason(body.encode("utf-8") if isinstance(body, str) else body)
    if problem is not None:
        raise _NotACassette(f"interaction {i + 1}: the response is not a chat completion: {problem}")


def serialize_cassette(requests: list[Any], responses: list[dict[str, Any]]) -> str:
    """The cassette file's text, in vcrpy's JSON format."""
    from vcr.serialize import serialize
    from vcr.serializers import jsonserializer

    # The last line of defence: whatever slipped past the header filters (a key the server
    # echoed somewhere unexpected) is replaced in what reaches the disk, string by string (a
    # short secret replaced in the JSON text could break its structure), in vcrpy's layout.
    text = serialize({"requests": requests, "responses": responses}, jsonserializer)
    return json.dumps(redact_obj(json.loads(text)), indent=4) + "\n"


def save_cassette(path: Path, requests: list[Any], responses: list[dict[str, Any]]) -> None:
    """Write the whole cassette through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, serialize_cassette(requests, responses))


def write_text_atomic(path: Path, text: str) -> None:
    """The whole file or none of it: a temporary sibling, fsync, then ``os.replace``.

    The one atomic writer of the package: cassettes, manifests and report files all go through it.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cassettes and reports are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _not_a_completion(request: httpx2.Request, status: int, content: bytes) -> Exception:
    """The error for a 2xx reply that is not a chat completion: not retried when it was billed."""
    why = _unusable_reason(content) or ""
    excerpt = content[:200].decode("utf-8", "replace")
    paid = paid_tokens(content)
    if paid and not why.startswith(ERROR_INSIDE_200):
        return MalformedPaidReply(
            f"HTTP {status} from {shown_url(str(request.url))} is not a chat "
            f"completion ({why}), "
            f"yet it was billed ({paid} output tokens): not retried, since asking again would "
            f"pay again for the same answer (--max-cost charges it): {excerpt!r}"
        )
    return _unusable_response(
        f"HTTP {status} from {shown_url(str(request.url))} is not a chat completion ({why}): {excerpt!r}",
        request,
    )


def _reply_headers(response: httpx2.Response) -> list[tuple[str, str]]:
    """The headers the client gets with a recorded reply."""
    if 200 <= response.status_code < 300:
        # What replay will give: the recorded headers (the body may have been re-encoded).
        return [(k, v) for k, vs in _RECORDED_RESPONSE_HEADERS.items() for v in vs]
    # An error keeps its headers (Retry-After paces the client's retries).
    return [(k, redact(v)) for k, v in response.headers.items() if k.lower() not in _DROPPED_RESPONSE_HEADERS]


@functools.cache
def _transport_class() -> type:
    import httpx2

    return type("HttpxCassetteTransport", (CassetteTransport, httpx2.BaseTransport), {})


class CassetteTransport:
    """An httpx2 transport that replays from, and records to, one cassette file.

    Built through :func:`make_transport` (which gives it httpx2's base class lazily).
    ``inner`` is the real network transport, used only when a request is to be recorded.
    """

    def __init__(
        self,
        path: Path,
        mode: str,
        base_url: str,
        inner: httpx2.BaseTransport | None = None,
        record_hint: str = "",
        stale_hint: str = "",
    ) -> None:
        self.policy = record_mode(mode)
        self.path = Path(path)
        self.mode = mode
        self.base_path = urlsplit(base_url).path.rstrip("/")
        self.inner = inner
        self.record_hint = record_hint
        self.stale_hint = stale_hint or record_hint
        self.exists = self.path.exists()
        self._index: dict[tuple[str, str], deque[tuple[str, int, dict[str, Any]]]] = defaultdict(deque)
        self._requests: list[Any] = []
        self._responses: list[dict[str, Any]] = []
        self.recorded = 0
        self.replayed = 0
        self._bytes = 0  # what the interactions recorded so far add to the cassette file
        # Asked before each request that goes to the API, told after (spend.SpendGuard: --max-cost).
        self.guard: Any = None
        # --max-rpm / --max-tpm: a ratelimit.LimitGuard asked before each request to the API.
        self.limiter: Any = None
        if not self.exists and not self.policy.records_missing_episodes:
            raise CassetteMissingError(
                f"cassette {self.path} does not exist (record mode {mode!r}). {record_hint}"
            )
        # The recorded body's bytes -> its key: the client sends the very bytes it recorded, so
        # a replayed request is looked up without parsing and re-serializing its JSON.
        self._keys: dict[tuple[str, bytes], str] = {}
        if self.exists and self.policy.replays:
            self._requests, self._responses = load_cassette(self.path)
            for i, (req, resp) in enumerate(zip(self._requests, self._responses, strict=True)):
                method, key = req.method.upper(), canonical_body(req.body)
                self._index[(method, key)].append((urlsplit(req.uri).path, i, resp))
                raw = req.body.encode("utf-8") if isinstance(req.body, str) else req.body
                if isinstance(raw, bytes):
                    self._keys[(method, raw)] = key

    @property
    def replay_only(self) -> bool:
        """No request may reach the network: retries would only repeat a lookup."""
        p = self.policy
        return not p.records_missing_episodes or (self.exists and not p.records_missing_steps)

    @property
    def records(self) -> bool:
        return not self.replay_only

    def _relative(self, path: str) -> str:
        if self.base_path and path.startswith(self.base_path):
            return path[len(self.base_path) :] or "/"
        return path

    def _lookup(self, method: str, rel_path: str, body: str) -> dict[str, Any] | None:
        candidates = self._index.get((method, body))
        if not candidates:
            return None
        for i, (stored_path, _, resp) in enumerate(candidates):
            if stored_path.endswith(rel_path):
                if len(candidates) > 1:
                    # Identical requests recorded several times replay in recorded order.
                    del candidates[i]
                return resp
        return None

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        import httpx2

        body_bytes = request.read()
        replayed = self._replay(request, body_bytes)
        if replayed is not None:
            return replayed
        if self.inner is None:
            raise CassetteError(f"cassette {self.path}: recording needs a network transport")
        stopped = endpoint_stopped(request, body_bytes, time.time())
        if stopped is not None:
            raise EndpointStopped(stopped)
        if self.limiter is not None:
            self.limiter.before(body_bytes)
        response, content = self._forward(request, body_bytes)
        # A server may echo the key (or the URL's password) in the body or a header: the client,
        # the trajectory and the cassette all get the redacted answer, so replay sees the same.
        content = redact_bytes(content)
        if _is_recordable(response.status_code, content):
            self._append(request, body_bytes, response, content)
        elif 200 <= response.status_code < 300:
            raise _not_a_completion(request, response.status_code, content)
        headers = _reply_headers(response)
        now = time.time()
        final = should_not_retry(response.status_code, content, dict(response.headers.items()), now)
        if self.limiter is not None and not final:
            # A 429 that retrying cannot cure (no credit, a daily cap) does not slow the session.
            self.limiter.after(response.status_code, response.headers)
        if final:
            # Out of credits, or a daily cap hours from its reset: the openai client obeys this
            # header, so no retry pays a backoff for an answer that cannot change.
            headers.append(("x-should-retry", "false"))
            stop_endpoint(request, response.status_code, content, dict(response.headers.items()), now)
        return httpx2.Response(response.status_code, headers=headers, content=content, request=request)

    def _replay(self, request: httpx2.Request, body_bytes: bytes) -> httpx2.Response | None:
        """The recorded answer to this request; None when it is to be recorded; StaleCassetteError
        when the mode may not record it."""
        if not self.policy.replays:
            return None
        method = request.method.upper()
        rel_path = self._relative(request.url.path)
        key = self._keys.get((method, body_bytes))
        stored = self._lookup(method, rel_path, canonical_body(body_bytes) if key is None else key)
        if stored is not None:
            self.replayed += 1
            return self._to_response(stored, request)
        if self.replay_only:
            raise StaleCassetteError(
                f"cassette {self.path} has no recorded answer for this {method} {rel_path} request "
                f"(request {self.replayed + 1}; the prompt, model or parameters changed since it was "
                f"recorded). {self.stale_hint}"
            )
        return None

    def _forward(self, request: httpx2.Request, body_bytes: bytes) -> tuple[httpx2.Response, bytes]:
        """The API's response and its body (at most MAX_REPLY_BYTES), charged to --max-cost's guard."""
        assert self.inner is not None
        bound = self.guard.before(body_bytes) if self.guard is not None else None
        try:
            response = self.inner.handle_request(request)
            content = response.read()
        except BaseException:
            if bound is not None:
                self.guard.after(bound, None)  # outcome unknown: charged at its bound
            raise
        if len(content) > MAX_REPLY_BYTES:
            if bound is not None:
                self.guard.after(bound, None)
            raise _unusable_response(
                f"HTTP {response.status_code} from {shown_url(str(request.url))}: the reply's body is "
                f"{len(content)} bytes, more than the {MAX_REPLY_BYTES} a reply may hold",
                request,
            )
        if bound is not None:
            self.guard.after(bound, response.status_code, content)
        return response, content

    def _append(
        self, request: httpx2.Request, body: bytes, response: httpx2.Response, content: bytes
    ) -> None:
        from vcr.request import Request

        headers = {k: v for k, v in request.headers.items() if k.lower() in _KEPT_REQUEST_HEADERS}
        # What this interaction adds to the file (JSON-escaped, indented): a cassette must stay
        # under the size replay reads, or it would be written and never replayed.
        added = len(json.dumps(content.decode("utf-8", "replace"))) + len(
            json.dumps(body.decode("utf-8", "replace"))
        )
        if self._bytes + added + _INTERACTION_OVERHEAD > MAX_CASSETTE_BYTES:
            raise CassetteError(
                f"cassette {self.path} would grow past {MAX_CASSETTE_BYTES} bytes, the most a replay "
                f"reads, at request {len(self._requests) + 1}: the episode is stopped and not saved "
                "(this reply was paid for). Lower the config's horizon or the design's max_tokens."
            )
        self._bytes += added + _INTERACTION_OVERHEAD
        self._requests.append(Request(request.method, _scrub_uri(str(request.url)), body, headers))
        self._responses.append(
            {
                "status": {"code": response.status_code, "message": response.reason_phrase},
                "headers": {k: list(v) for k, v in _RECORDED_RESPONSE_HEADERS.items()},
                "body": {"string": content},
            }
        )
        self.recorded += 1

    @staticmethod
    def _to_response(stored: dict[str, Any], request: httpx2.Request) -> httpx2.Response:
        import httpx2

        body = stored["body"]["string"]
        content = body.encode("utf-8") if isinstance(body, str) else body
        headers = [
            (k, v)
            for k, vs in stored.get("headers", {}).items()
            if k.lower() not in _DROPPED_RESPONSE_HEADERS
            for v in (vs if isinstance(vs, list) else [vs])
        ]
        return httpx2.Response(stored["status"]["code"], headers=headers, content=content, request=request)

    def save(self) -> bool:
        """Write the cassette if this episode recorded anything; True when a file was written."""
        if not self.recorded:
            return False
        save_cassette(self.path, self._requests, self._responses)
        return True

    def serialized(self) -> str | None:
        """The cassette's new text when this episode recorded anything (None: nothing to write)."""
        return serialize_cassette(self._requests, self._responses) if self.recorded else None

    @property
    def interactions(self) -> int:
        return len(self._requests)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def make_transport(
    path: Path,
    mode: str,
    base_url: str,
    inner: httpx2.BaseTransport | None = None,
    record_hint: str = "",
    stale_hint: str = "",
) -> CassetteTransport:
    """A :class:`CassetteTransport` that is also an ``httpx2.BaseTransport`` (imported lazily)."""
    transport: CassetteTransport = _transport_class()(path, mode, base_url, inner, record_hint, stale_hint)
    return transport
