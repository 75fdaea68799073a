"""A local OpenAI-compatible simulator: a real HTTP server on 127.0.0.1 with scripted replies.

It stands in for a hosted API in tests and benchmarks (none is reachable from CI) and is named
as what it is: cassettes it produces live under ``sim/...`` model ids, never a provider's name.
Requests travel through the real openai client and real sockets; the policy decides the reply.

Policies see the request's JSON body and the call number and return a :class:`SimReply`: a
reply text, or a fault (HTTP status, a reset connection, a body that is not JSON, a 200 without
``choices``, a delay longer than the client's timeout).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class SimReply:
    content: str | None = None
    status: int = 200
    # "reset" closes the socket without answering; "not-json" and "no-choices" send a broken 200.
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"
    tool_call: bool = False
    # A hostile server: quote the request's Authorization header back in the reply's text and in
    # an ``X-Debug`` response header (as some debugging proxies do).
    echo_auth: bool = False
    # Send this JSON value as the whole 200 body instead of a chat completion (malformed shapes).
    body: Any = None
    # Send the body one byte at a time, this many seconds apart (a server that never stalls long
    # enough for a per-read timeout, yet never finishes).
    drip: float = 0.0


Policy = Callable[[dict[str, Any], int], SimReply]

_NAMES_RE = re.compile(r"must be exactly one of ([^.]+?)\.|named ([^.]+?)\. When")


def arm_names_from_request(body: dict[str, Any]) -> list[str]:
    """The arm names a design's system prompt lists (buttons or advertisements)."""
    system = next((m.get("content", "") for m in body.get("messages", []) if m.get("role") == "system"), "")
    m = _NAMES_RE.search(system or "")
    if not m:
        return []
    return [n.strip() for n in (m.group(1) or m.group(2)).split(",")]


def always(index: int = 0) -> Policy:
    """Always answers the arm at ``index`` of the names listed in the prompt."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        names = arm_names_from_request(body)
        return SimReply(content=f"<Answer>{names[index % len(names)]}</Answer>" if names else "no names")

    return policy


def cycle() -> Policy:
    """Round-robin over the arms, by the number of rounds shown in the prompt."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        names = arm_names_from_request(body)
        user = body["messages"][-1]["content"]
        m = re.search(r"played (\d+) times|interacted with (\d+) users", user)
        played = int(next(g for g in m.groups() if g)) if m else call
        return SimReply(content=f"<Answer>{names[played % len(names)]}</Answer>")

    return policy


def scripted(replies: Sequence[SimReply | str]) -> Policy:
    """Replies in order; fails loudly when the script runs out (a test asked for more calls)."""

    def policy(body: dict[str, Any], call: int) -> SimReply:
        if call >= len(replies):
            raise RuntimeError(f"simulator script exhausted: call {call + 1} but only {len(replies)} replies")
        r = replies[call]
        return SimReply(content=r) if isinstance(r, str) else r

    return policy


NAMED_POLICIES: dict[str, Callable[[], Policy]] = {
    "always-first": lambda: always(0),
    "always-last": lambda: always(-1),
    "cycle": cycle,
}


class Simulator:
    """Context manager running the server on a free port of 127.0.0.1 in a background thread."""

    def __init__(
        self,
        policy: Policy | None = None,
        latency: float = 0.0,
        model_name: str | None = None,
        cost_per_million: tuple[float, float] | None = None,
    ) -> None:
        self.policy: Policy = policy or always(0)
        # (prompt, completion) USD per 1M tokens: replies then report usage.cost, as OpenRouter's do.
        self.cost_per_million = cost_per_million
        self.latency = latency
        self.model_name = model_name
        self.calls = 0
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # Exceptions raised while answering (a policy that ran out of script, say), for tests to check.
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "simulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        sim = self
        self._stopping.clear()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Without this, headers and body go out in two packets and delayed ACKs add ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(raw)
                with sim._lock:
                    call = sim.calls
                    sim.calls += 1
                    sim.requests.append(body)
                    sim.headers.append(dict(self.headers.items()))
                    sim.in_flight += 1
                    sim.max_in_flight = max(sim.max_in_flight, sim.in_flight)
                try:
                    if sim.latency:
                        time.sleep(sim.latency)
                    reply = sim.policy(body, call)
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.echo_auth:
                        auth = self.headers.get("Authorization", "(no Authorization header)")
                        reply = replace(
                            reply,
                            content=f"{reply.content or ''} your key is {auth}",
                            headers={**reply.headers, "X-Debug": auth},
                        )
                    self._answer(body, reply, raw)
                finally:
                    with sim._lock:
                        sim.in_flight -= 1

            def _answer(self, body: dict[str, Any], reply: SimReply, raw: bytes) -> None:
                if reply.fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if reply.fault == "not-json":
                    self._send_raw(200, b"<html>upstream error</html>", "text/html", reply.headers)
                    return
                if reply.status != 200:
                    self._send(
                        reply.status,
                        {"error": {"message": reply.content or "simulated fault", "code": reply.status}},
                        reply.headers,
                    )
                    return
                if reply.body is not None:
                    self._send(200, reply.body, reply.headers, drip=reply.drip)
                    return
                if reply.fault == "no-choices":
                    self._send(200, {"id": "x", "object": "chat.completion", "choices": []}, reply.headers)
                    return
                message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.tool_call:
                    message = {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_0",
                                "type": "function",
                                "function": {"name": "press", "arguments": json.dumps({"button": "blue"})},
                            }
                        ],
                    }
                prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                completion_tokens = len((reply.content or "").split())
                usage: dict[str, Any] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
                if sim.cost_per_million is not None:
                    per_prompt, per_completion = sim.cost_per_million
                    usage["cost"] = (prompt_tokens * per_prompt + completion_tokens * per_completion) / 1e6
                self._send(
                    200,
                    {
                        # Deterministic fields: the same request always gets byte-identical answers.
                        "id": "chatcmpl-sim-" + hashlib.sha256(raw).hexdigest()[:16],
                        "object": "chat.completion",
                        "created": 1_700_000_000,
                        "model": sim.model_name or body.get("model", "sim"),
                        "system_fingerprint": "bandit-bench-simulator",
                        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                        "usage": usage,
                    },
                    reply.headers,
                    drip=reply.drip,
                )

            def _send(
                self, status: int, payload: Any, headers: dict[str, str] | None = None, drip: float = 0.0
            ) -> None:
                self._send_raw(status, json.dumps(payload).encode(), "application/json", headers or {}, drip)

            def _send_raw(
                self, status: int, data: bytes, ctype: str, headers: dict[str, str], drip: float = 0.0
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if not drip:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    if sim._stopping.is_set():
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # stop() returns at once: a handler still sleeping through a scripted delay is not waited for.
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                err = sys.exc_info()[1]
                if isinstance(err, (BrokenPipeError, ConnectionResetError)):
                    return  # the client gave up on this request (its timeout): expected in fault tests
                if err is not None:
                    with sim._lock:
                        sim.errors.append(err)
                super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        # A short poll interval: stop() waits for the serving loop to notice (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="bandit-sim", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # a dripping handler stops writing
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
