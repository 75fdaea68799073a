"""A deadline for the whole request, and cancellation of requests in flight (Ctrl-C).

httpx's timeouts bound each socket operation: a server that sends one byte every half second
never trips a 2-second read timeout, and one request ran past 90 s with ``--request-timeout 2``.
openai-python passes the same per-operation timeout down. So the network transport used for
recording wraps httpcore's socket streams: every connect, read and write gets at most the time
left before the request's deadline (``--request-timeout`` from the request's start, the body
included), and a read waits in slices of :data:`POLL` seconds so that a cancelled run is seen
within one slice. A request past its deadline fails as a read timeout (the client retries it
like any timeout); a cancelled one raises :class:`Cancelled`, a ``BaseException`` that the
client neither retries nor wraps.

The deadline travels in a thread-local set by :class:`DeadlineTransport` for the duration of
one request: each episode runs in one thread, so the streams know whose deadline applies.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import httpx2

# How often a waiting read looks at the cancel flag: the bound on how long Ctrl-C waits for it.
POLL = 0.25

_current = threading.local()


class Cancelled(BaseException):
    """The run was interrupted: raised in a request in flight; not an error of the episode."""


def _time_left(timeout: float | None) -> float | None:
    """``timeout`` cut to what is left before the deadline; raises when none is left."""
    import httpcore2

    cancel: threading.Event | None = getattr(_current, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise Cancelled("the run was interrupted")
    deadline: float | None = getattr(_current, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore2.ReadTimeout(f"the whole request took longer than {_current.limit:g} s")
    return left if timeout is None else min(timeout, left)


@functools.cache
def _classes() -> tuple[type, type]:
    import httpcore2

    class Stream(httpcore2.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            started = time.monotonic()
            while True:
                left = _time_left(timeout)
                step = POLL if left is None else min(POLL, left)
                try:
                    data: bytes = self._inner.read(max_bytes, step)
                    return data
                except httpcore2.ReadTimeout:
                    # Only a slice ran out: the read's own timeout and the deadline are checked
                    # (and the cancel flag) before waiting again.
                    if timeout is not None and time.monotonic() - started >= timeout:
                        raise

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _time_left(timeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(
            self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
        ) -> Any:
            return Stream(self._inner.start_tls(ssl_context, server_hostname, _time_left(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend(httpcore2.NetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore2.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> Any:
            stream = self._inner.connect_tcp(host, port, _time_left(timeout), local_address, socket_options)
            return Stream(stream)

        def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Any = None
        ) -> Any:
            return Stream(self._inner.connect_unix_socket(path, _time_left(timeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return Stream, Backend


@functools.cache
def _transport_class() -> type:
    import httpx2

    class Transport(DeadlineTransport, httpx2.BaseTransport):
        pass

    return Transport


_SSL_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """httpx2's default context (certifi's CA bundle), built once per process.

    Building one reads the whole CA bundle, some 40 ms of CPU (a quarter of a second on a busy
    machine): every episode of a recording built two as it started, so a case of 8 episodes
    spent a third of a second under the GIL before its first request. An SSLContext may be
    shared by threads and connections. The lock makes the episodes that start together wait
    for the first one's context instead of each building its own (lru_cache alone does not)."""
    with _SSL_LOCK:
        return _build_ssl_context()


@functools.lru_cache(maxsize=1)
def _build_ssl_context() -> ssl.SSLContext:
    import httpx2

    return httpx2.create_ssl_context()


class DeadlineTransport:
    """httpx2's own HTTP transport, with each request bounded as a whole and cancellable.

    Built through :func:`network_transport` (which gives it httpx2's base class lazily).
    """

    def __init__(self, timeout: float, cancel: threading.Event | None = None) -> None:
        import httpcore2
        import httpx2

        self.timeout = timeout
        self.cancel = cancel
        context = _ssl_context()
        self.inner = httpx2.HTTPTransport(verify=context)
        _, backend = _classes()
        # httpx2 builds its pool with the default socket backend and offers no parameter for
        # another: the pool is rebuilt as httpx2 builds it, with the bounded backend.
        self.inner._pool = httpcore2.ConnectionPool(ssl_context=context, network_backend=backend())

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        import httpx2

        from bandit_bench.recording.transport import read_capped_body

        _current.deadline = time.monotonic() + self.timeout
        _current.limit = self.timeout
        _current.cancel = self.cancel
        try:
            _time_left(None)  # a cancelled run sends nothing more (a retry after a backoff sleep)
            response = self.inner.handle_request(request)
            # The body too is inside the deadline, and read decompressed up to a cap (a gzip
            # bomb is refused, not inflated): the reply goes on already decoded.
            content = read_capped_body(response, request)
            headers = [
                (k, v)
                for k, v in response.headers.items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ]
            return httpx2.Response(
                response.status_code,
                headers=headers,
                content=content,
                request=request,
                extensions=response.extensions,
            )
        finally:
            _current.deadline = None
            _current.cancel = None

    def close(self) -> None:
        self.inner.close()


def network_transport(timeout: float, cancel: threading.Event | None = None) -> httpx2.BaseTransport:
    """The transport recording sends through: ``timeout`` bounds each whole request."""
    transport: httpx2.BaseTransport = _transport_class()(timeout, cancel)
    return transport


__all__ = ["POLL", "Cancelled", "DeadlineTransport", "network_transport"]
