"""docs/providers.md's examples, each run against the simulator playing that provider.

Every fenced example is preceded by ``<!-- example: personality=P server=S -->``. The test runs
its ``pytest`` command through pytester with the base URL replaced by the simulator's (keeping
the real URL's path: Azure's deployments route), ``server=S`` added to ``--request-profile``
(what the real host is detected as; the simulator is on 127.0.0.1), each named key variable
set, and one short episode per case. The personality refuses what the provider refuses, and a
constrained config only answers in format when the request used the mechanism the server
honours: the example passes only if its profile sends what that provider accepts.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bandit_bench.servers.simulator import SimReply, arm_names_from_request

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
EXAMPLE = re.compile(r"<!-- example: personality=(\S*) server=(\S*) -->\n```bash\n(.+?)\n```", re.DOTALL)
CONSTRAINT_FIELDS = ("grammar", "structured_outputs", "guided_regex", "response_format")


def _examples() -> list[Any]:
    found = EXAMPLE.findall(DOC.read_text(encoding="utf-8"))
    assert len(found) >= 14, "docs/providers.md lost its examples"
    return [
        pytest.param(p, s, cmd, id=f"{i:02d}-{p or 'plain'}-{s or 'own'}")
        for i, (p, s, cmd) in enumerate(found)
    ]


def _policy(body: dict[str, Any], call: int) -> SimReply:
    """A model that answers in format unless asked for a constrained answer: then it rambles,
    and only a server that applies the constraint makes the reply an answer."""
    names = arm_names_from_request(body)
    if any(f in body for f in CONSTRAINT_FIELDS):
        return SimReply("I would press the green one.")
    return SimReply(f"<Answer>{names[1]}</Answer>")


def _args(command: str, base_url: str, server: str) -> tuple[list[str], list[str]]:
    """The pytest arguments to run, and the environment variables the command sets."""
    words = shlex.split(command)
    env = []
    while "=" in words[0] and not words[0].startswith("-"):
        env.append(words.pop(0).split("=", 1)[0])
    assert words.pop(0) == "pytest"
    args: list[str] = []
    url_path = "/api/v1"  # OpenRouter's, the default endpoint
    profile: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--base-url":
            url_path = urlsplit(words[i + 1]).path
            i += 2
            continue
        if word == "--request-profile":
            profile = words[i + 1]
            i += 2
            continue
        args.append(word)
        i += 1
    if server:
        profile = f"{profile},server={server}" if profile else f"server={server}"
    args += ["--base-url", base_url.rsplit("/v1", 1)[0] + url_path]
    if profile:
        args += ["--request-profile", profile]
    return args + ["--episodes", "1", "--horizon", "3"], [n for n in env if n not in ("OPENAI_API_KEY",)]


@pytest.mark.parametrize(("personality", "server", "command"), _examples())
def test_the_example_runs_against_its_provider(
    bench_project, simulator, monkeypatch: pytest.MonkeyPatch, personality: str, server: str, command: str
) -> None:  # noqa: ANN001
    sim = simulator(_policy, personality=personality or None)
    args, env = _args(command, sim.base_url, server)
    for name in env:
        monkeypatch.setenv(name, "test-key-not-secret")
    project = bench_project("")
    result = project.runpytest(*args)
    out = result.stdout.str()
    assert result.ret == 0, out
    assert sim.calls > 0 and not sim.errors
