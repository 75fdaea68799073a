"""Caps (issue 21): what a reply, a recording and a run may take, checked through the real
client, real sockets and real files; the memory-bound cases run in a subprocess under
``resource.setrlimit(RLIMIT_AS)``, so a regression fails fast instead of taking the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from helpers import case_config

from bandit_bench.core.specs import CaseConfig
from bandit_bench.recording import transport
from bandit_bench.recording.transport import MAX_REPLY_BYTES, cassette_path
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import SimReply, Simulator, always

# Far above what a run needs (~200 MB of address space), far below what inflating the bomb whole
# took (9 GB for 300 MB): a body read without the cap ends in MemoryError within seconds.
MEMORY_LIMIT = 1024 * 1024 * 1024


def _config(horizon: int = 2, episodes: int = 1) -> CaseConfig:
    return case_config("cap", horizon=horizon, episodes=episodes)


def _gzip_bomb(inflated: int) -> bytes:
    """A chat completion whose content is ``inflated`` bytes of 'a', gzip-compressed (~1000:1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"finish_reason":"stop",'
    parts = [comp.compress(head + b'"message":{"role":"assistant","content":"')]
    block = b"a" * (1 << 20)
    for _ in range(inflated >> 20):
        parts.append(comp.compress(block))
    parts.append(comp.compress(b'"}}]}'))
    parts.append(comp.flush())
    return b"".join(parts)


_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from pathlib import Path
from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.running.runner import RunOptions, run_case
config = CaseConfig(name="cap", design=DesignSpec.parse("BNRN0"),
    instance=InstanceSpec(k=5, delta=0.2, horizon=2), run=RunSpec(episodes=1, seed=0))
opts = RunOptions(base_url={url!r}, cassette_dir=Path({folder!r}), record_mode="once", max_retries=1,
    concurrency=1)
result = run_case("sim/bomb", config, opts)
print("ERRORS", result.errors)
"""


def test_a_gzip_bomb_is_refused_after_the_cap_under_a_memory_limit(tmp_path: Path) -> None:
    """Issue 21, point 6: 300 KB of gzip that inflates to 300 MB, twice (the first try and one
    retry), read by a process limited to 1 GB of address space: refused as an unusable reply
    after MAX_REPLY_BYTES, nothing recorded."""
    bomb = _gzip_bomb(300 << 20)
    assert len(bomb) < 400_000
    reply = SimReply(raw=bomb, headers={"Content-Encoding": "gzip"})
    with Simulator(lambda body, call: reply) as sim:
        child = _CHILD.format(limit=MEMORY_LIMIT, url=sim.base_url, folder=str(tmp_path))
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(child)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert sim.calls == 2  # the client retried it like any malformed reply
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("ERRORS")]
    assert f"the reply's body is more than {MAX_REPLY_BYTES} bytes (decompressed)" in line
    assert "after 1 retries" in line
    assert not cassette_path(tmp_path, "sim/bomb", "cap", 0).exists()


def test_a_reply_and_a_cassette_over_their_caps_are_neither_recorded_nor_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recording caps are the replay caps: a cassette that would grow past
    MAX_CASSETTE_BYTES is not written (it could never be replayed), and a reply over
    MAX_REPLY_BYTES in a cassette is refused on replay, naming the file."""
    config = _config(horizon=4)
    with Simulator(always(0)) as sim:
        opts = RunOptions(
            base_url=sim.base_url, cassette_dir=tmp_path / "a", record_mode="once", max_retries=0
        )
        # Each interaction adds ~2.5 KB: three fit in 8 KB, the fourth does not.
        monkeypatch.setattr(transport, "MAX_CASSETTE_BYTES", 8 * 1024)
        [error] = run_case("sim/cap", config, opts).errors
        assert "would grow past 8192 bytes, the most a replay reads, at request 4" in error
        assert not cassette_path(tmp_path / "a", "sim/cap", "cap", 0).exists()
        monkeypatch.undo()
        opts = RunOptions(
            base_url=sim.base_url, cassette_dir=tmp_path / "b", record_mode="once", max_retries=0
        )
        assert run_case("sim/cap", config, opts).errors == []
    path = cassette_path(tmp_path / "b", "sim/cap", "cap", 0)
    body = json.loads(path.read_text(encoding="utf-8"))["interactions"][0]["response"]["body"]["string"]
    monkeypatch.setattr(transport, "MAX_REPLY_BYTES", len(body) - 1)
    replay = RunOptions(base_url="http://127.0.0.1:9/v1", cassette_dir=tmp_path / "b")
    [error] = run_case("sim/cap", config, replay).errors
    assert f"cassette {path} is unreadable" in error
    assert (
        f"the response body holds {len(body)} bytes, more than the {len(body) - 1} a reply may hold" in error
    )
