"""How complete episodes travel from pytest-xdist workers, and how a worker notices a lost controller.

The controller opens one execnet channel per worker (``pytest_configure_node``) and sends it in
``workerinput``. Each complete episode crosses it as soon as the episode completes, never
with the case's final report, so a Ctrl-C, a killed worker or a killed controller loses only
the episodes still running:

- a worker whose cassette folder *is* the controller's (same machine, boot and folder: a
  ``popen`` worker) writes the episode itself, under the case folder's lock that the controller
  holds for the session on behalf of its workers, and sends a notice (episode, requests);
- any other worker (``--tx ssh=...``, ``socket=``, ``popen//chdir=<other checkout>``) sends the
  cassette text, which the controller writes at once, under the same lock.

The worker also sends the count of steps it has recorded (paid for) so far, so the controller
counts a crashed worker's requests. When the channel closes under a worker that is still
running (the controller was killed, or stopped by Ctrl-C or SIGTERM), or a ``popen`` worker's
parent changes, the worker sets the session's stop flag (every request in flight is dropped,
no new one starts) and exits a few seconds later.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

RELAY_KEY = "bandit_bench_relay"
FOLDER_KEY = "bandit_bench_folder"
# After the stop flag is set: time for episodes to see it and for a cassette being written to
# land (writes are atomic: a kill never leaves half a file), then the worker exits.
EXIT_GRACE = 3.0


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def folder_token(cassette_dir: Path) -> dict[str, Any] | None:
    """What identifies the controller's cassette folder to a worker: host, boot, path, inode."""
    try:
        st = cassette_dir.stat()
    except OSError:
        return None
    return {
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "path": str(cassette_dir.resolve()),
        "dev": st.st_dev,
        "ino": st.st_ino,
    }


def same_folder(token: dict[str, Any] | None, cassette_dir: Path) -> bool:
    """True when this process's ``cassette_dir`` is the very folder of the token."""
    if not token:
        return False
    mine = folder_token(cassette_dir)
    return mine is not None and all(mine[k] == token.get(k) for k in mine)


class WorkerRelay:
    """The worker's end: sends episodes and recorded counts; watches for a lost controller."""

    def __init__(self, channel: Any, stop: threading.Event) -> None:
        self.channel = channel
        self.stop = stop
        self.finished = False  # the worker's session ended normally: a closing channel is expected
        self._lock = threading.Lock()
        self._ppid = os.getppid()

    def _send(self, message: tuple[str, dict[str, Any]]) -> bool:
        try:
            with self._lock:
                self.channel.send(message)
            return True
        except Exception:  # the channel is closed: the controller is gone
            self._lost()
            return False

    def episode(self, model: str, config: str, episode: int, text: str | None, requests: int) -> bool:
        return self._send(
            (
                "episode",
                {"model": model, "config": config, "episode": episode, "text": text, "requests": requests},
            )
        )

    def recorded(self, model: str, config: str, steps: int) -> None:
        self._send(("recorded", {"model": model, "config": config, "steps": steps}))

    def watch(self, popen: bool) -> None:
        """Stop when the channel closes (controller killed or stopping) or the parent changes."""
        # The endmarker callback runs in execnet's receiver thread when the channel closes.
        self.channel.setcallback(lambda message: self._lost() if message is None else None, endmarker=None)
        if popen:
            threading.Thread(target=self._watch_parent, name="bandit-bench-parent", daemon=True).start()

    def _watch_parent(self) -> None:
        while not self.stop.wait(0.5):
            if os.getppid() != self._ppid:
                self._lost()
                return

    def _lost(self) -> None:
        if self.finished or self.stop.is_set():
            return
        self.stop.set()
        sys.stderr.write(
            "[bandit-bench] the xdist controller is gone: this worker stops sending requests "
            "(complete episodes are saved) and exits\n"
        )

        def leave() -> None:
            threading.Event().wait(EXIT_GRACE)
            if not self.finished:
                os._exit(3)

        threading.Thread(target=leave, name="bandit-bench-exit", daemon=True).start()


class ControllerRelay:
    """The controller's end of every worker's channel: writes or counts what arrives."""

    def __init__(
        self, on_episode: Callable[[dict[str, Any]], None], on_recorded: Callable[[dict[str, Any]], None]
    ):
        self.on_episode = on_episode
        self.on_recorded = on_recorded
        self.channels: list[Any] = []

    def open(self, gateway: Any) -> Any:
        channel = gateway.newchannel()
        channel.setcallback(self._receive, endmarker=None)
        self.channels.append(channel)
        return channel

    def _receive(self, message: Any) -> None:
        # Runs in execnet's receiver thread: never raise here.
        if not (isinstance(message, tuple) and len(message) == 2 and isinstance(message[1], dict)):
            return
        kind, data = message
        try:
            if kind == "episode":
                self.on_episode(data)
            elif kind == "recorded":
                self.on_recorded(data)
        except Exception as err:  # pragma: no cover - a bug; say it, keep the channel alive
            sys.stderr.write(f"[bandit-bench] could not take an episode from a worker: {err!r}\n")

    def close(self) -> None:
        """Tell every worker the session is stopping: each stops sending requests at once."""
        for channel in self.channels:
            try:
                channel.close()
            except Exception:
                pass
