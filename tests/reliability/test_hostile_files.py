"""Hostile files and numbers (issue 21, points 7-11): a manifest that is a FIFO, a link to
/dev/zero, nested too deep or naming an invalid model; a report folder nested too deep;
SOURCE_DATE_EPOCH out of range; usage numbers no float holds; a case too large to run.

Each case runs the real plugin (a subprocess where a regression would hang or eat memory:
under a timeout and ``resource.setrlimit``) and must end in a message naming the file or value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_PYPROJECT

from bandit_bench.servers.simulator import SimReply, Simulator, always

PYPROJECT = TINY_PYPROJECT
MEMORY_LIMIT = 1024 * 1024 * 1024


def _pytest_limited(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess limited to 1 GB of address space and 120 s."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
        "import pytest\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, "-p", "no:cacheprovider", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def _manifest_folder(root: Path) -> Path:
    folder = root / "cassettes" / "sim" / "m" / "tiny"
    folder.mkdir(parents=True)
    return folder / "manifest.json"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "deep", "invalid-model"])
def test_a_hostile_manifest_is_a_usage_error_naming_the_file(
    pytester: pytest.Pytester, bench_project: Any, kind: str
) -> None:
    """Issue 21, point 8: discovery reads every manifest under cassettes/; none may hang it,
    exhaust its memory or crash it, and the message names the file."""
    bench_project(PYPROJECT)
    manifest = _manifest_folder(pytester.path)
    if kind == "fifo":
        os.mkfifo(manifest)
    elif kind == "dev-zero":
        manifest.symlink_to("/dev/zero")
    elif kind == "deep":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
    else:
        manifest.write_text(json.dumps({"model": "bad model id", "config": "tiny", "episodes": {}}))
    done = _pytest_limited(pytester.path, "--bandit-config", "tiny")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-2000:] + done.stderr[-2000:]
    assert "INTERNALERROR" not in done.stdout + done.stderr
    expected = {
        "fifo": "it is a FIFO, not a regular file: it was not read",
        "dev-zero": "it is a character device (a symlink to /dev/zero), not a regular file",
        "deep": "is not a bandit-bench manifest",
        "invalid-model": "got 'bad model id'; expected a model id",
    }[kind]
    assert expected in done.stderr
    assert str(manifest) in done.stderr
    assert "--model" not in done.stderr  # never given: the manifest is to blame


def test_a_report_folder_nested_too_deep_is_exit_2_not_a_regression(
    pytester: pytest.Pytester, bench_project: Any, tmp_path: Path
) -> None:
    """Issue 21, point 9: compare, report and --compare-to each name the file; compare's exit
    1 means "regression", so an unreadable folder is 2 (a usage error for --compare-to)."""
    bench_project(PYPROJECT)
    good = pytester.runpytest("--model", "baseline/ucb", "--bandit-config", "tiny", "--report-dir=good")
    good.assert_outcomes(passed=1)
    deep = pytester.path / "deep"
    deep.mkdir()
    (deep / "summary.json").write_text('{"run": {}, "rows": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (deep / "steps.jsonl").write_text("")
    cli = [sys.executable, "-m", "bandit_bench.cli.commands"]
    for args in (["compare", "good", "deep"], ["compare", "deep", "good"], ["report", "deep"]):
        done = subprocess.run(cli + args, cwd=pytester.path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "deep/summary.json: JSON nested deeper than Python's parser goes" in done.stderr, args
        assert "Traceback" not in done.stderr
    result = pytester.runpytest("--model", "baseline/ucb", "--bandit-config", "tiny", "--compare-to=deep")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--compare-to: got 'deep'; expected a readable report folder*nested deeper*"]
    )


@pytest.mark.parametrize("value", ["253402300800", "1" * 20, "\u00b2", "-5", "1e9"])
def test_source_date_epoch_out_of_range_is_refused_before_the_run(
    pytester: pytest.Pytester, bench_project: Any, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Issue 21, point 10: refused at the start with a message (it crashed at the session's end,
    after the run, with no report); the library ignores it with a warning."""
    bench_project(PYPROJECT)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    result = pytester.runpytest("--model", "baseline/ucb", "--bandit-config", "tiny")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SOURCE_DATE_EPOCH=* is not a count of seconds in [[]0, 253402300799]*"])
    from bandit_bench.reporting.provenance import run_metadata

    with pytest.warns(UserWarning, match="SOURCE_DATE_EPOCH"):
        created = run_metadata([])["created"]
    assert created.endswith("Z")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "253402300799")
    assert run_metadata([])["created"] == "9999-12-31T23:59:59Z"


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 10**346, "completion_tokens": 1, "total_tokens": 1},
        {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "cost": 10**400},
        {"prompt_tokens": 1, "completion_tokens": 2**53 + 1, "total_tokens": 2},
    ],
    ids=["tokens-10^346", "cost-10^400", "tokens-2^53+1"],
)
def test_usage_numbers_no_float_holds_are_a_malformed_reply_and_the_report_is_written(
    pytester: pytest.Pytester, bench_project: Any, usage: dict[str, Any]
) -> None:
    """Issue 21, point 7: refused as a malformed completion (never recorded, so no replay
    repeats it); the session ends normally and writes its report."""
    bench_project(PYPROJECT)

    def policy(body: dict[str, Any], call: int) -> SimReply:
        content = always(0)(body, call).content
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        return SimReply(body={"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage})

    with Simulator(policy) as sim:
        result = pytester.runpytest(
            "--model", "sim/huge", "--bandit-config", "tiny", "--record-mode=once", "--max-retries=0",
            "--base-url", sim.base_url,
        )  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*is not a chat completion (usage.* is not a *number in [[]0, 9007199254740992]*"]
    )
    assert json.loads((pytester.path / "reports/summary.json").read_text())["rows"]
    assert not list((pytester.path / "cassettes").rglob("00*.json"))


def test_a_case_too_large_to_hold_is_refused_before_anything_is_sent(
    pytester: pytest.Pytester, bench_project: Any
) -> None:
    """Issue 21, point 11: N x T is checked up front as T x K is (10 episodes at the largest
    horizon took 5.6 GB, after a paid recording)."""
    bench_project(PYPROJECT)
    with Simulator(always(0)) as sim:
        result = pytester.runpytest(
            "--model", "sim/big", "--bandit-config", "tiny", "--record-mode=once", "--base-url", sim.base_url,
            "--episodes", "10", "--horizon", "200000",
        )  # fmt: skip
        assert sim.calls == 0
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*episodes x horizon: got '10 x 200000 = 2,000,000 steps'; "
            "expected at most 1,000,000 steps per case*"
        ]
    )
    from bandit_bench.core.specs import (
        MAX_CASE_STEPS,
        CaseConfig,
        DesignSpec,
        InstanceSpec,
        RunSpec,
        SpecError,
    )

    design = DesignSpec.parse("BNRN0")
    CaseConfig("ok", design, InstanceSpec(5, 0.2, MAX_CASE_STEPS // 10), RunSpec(episodes=10))
    with pytest.raises(SpecError, match="episodes x horizon"):
        CaseConfig("big", design, InstanceSpec(5, 0.2, MAX_CASE_STEPS // 10 + 1), RunSpec(episodes=10))


def test_the_plugin_reads_nothing_unless_bandit_bench_is_asked_for(
    pytester: pytest.Pytester, bench_project: Any
) -> None:
    """Issue 21, point 13: installed in a project, the plugin neither scans cassettes/ nor reads
    [tool.bandit_bench] when no option, ini key or bandit_case test asks for it (a FIFO manifest
    would hang that scan); once asked, a damaged file is a usage error naming it."""
    bench_project(PYPROJECT + "\n[tool.bandit_bench.xfail]\n'sim/m' = 'not a list'\n")
    os.mkfifo(_manifest_folder(pytester.path))
    pytester.makepyfile(test_unrelated="def test_one():\n    assert True\n")
    done = _pytest_limited(pytester.path, "test_unrelated.py", "-n", "2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    done = _pytest_limited(pytester.path, "test_unrelated.py")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
    # Asked for by an option: the first problem found is a usage error that names its file.
    done = _pytest_limited(pytester.path, "test_unrelated.py", "--model", "baseline/ucb")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "[tool.bandit_bench].xfail" in done.stderr and "INTERNALERROR" not in done.stdout + done.stderr
    (pytester.path / "pyproject.toml").write_text(PYPROJECT)
    done = _pytest_limited(pytester.path, "test_unrelated.py", "--model", "baseline/ucb")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "cassettes/sim/m/tiny/manifest.json cannot be read (it is a FIFO" in done.stderr
    # Asked for by a test of the project's own that uses bandit_case: the same message.
    pytester.makepyfile(test_bench_case="def test_bandit(bandit_case):\n    bandit_case.run_and_check()\n")
    done = _pytest_limited(pytester.path, "test_bench_case.py")
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "cassettes/sim/m/tiny/manifest.json cannot be read (it is a FIFO" in out, out[-3000:]


# ---------------------------------------------------------------------------- smaller points


@pytest.mark.parametrize(("mode", "then"), [
    ("once", "what it recorded is then replayed, not paid for again"),
    ("rewrite", "then this run records the case again, paying again (record mode 'rewrite')"),
    ("all", "then this run records the case again, paying again (record mode 'all')"),
])  # fmt: skip
def test_the_waiting_line_says_whether_the_second_recorder_pays_again(
    tmp_path: Path, mode: str, then: str
) -> None:
    import threading

    from bandit_bench.core.specs import BUILTIN_CONFIGS
    from bandit_bench.recording.casefolder import LOCK_FILE, CaseFolder

    config = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    folder = CaseFolder(tmp_path, "sim/m", config, "http://127.0.0.1:9/v1", mode)
    folder.path.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import filelock, sys; l = filelock.FileLock(sys.argv[1]); l.acquire(); "
         "print('held', flush=True); sys.stdin.read()", str(folder.path / LOCK_FILE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        said: list[str] = []
        waiter = threading.Thread(target=folder.acquire, args=(said.append,))
        waiter.start()
        assert holder.stdin is not None
        while not said and waiter.is_alive():
            waiter.join(0.05)
        holder.stdin.close()
        waiter.join(60)
        assert not waiter.is_alive()
    finally:
        holder.kill()
        holder.wait()
    folder.release()
    assert said == [
        f"sim/m x BNRN0-hard-T25: another process is recording into {folder.path}; waiting for it to "
        f"finish ({then})"
    ]


def test_model_ids_are_escaped_in_report_md(tmp_path: Path) -> None:
    """A model id is written into report.md's tables: one that is HTML must not run in a viewer
    that renders HTML in Markdown."""
    from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
    from bandit_bench.reporting.evaluation import case_record
    from bandit_bench.reporting.writer import write_reports
    from bandit_bench.running.runner import RunOptions, run_case

    model = "sim/<img/src=x/onerror=alert(1)>|*[x](y)"
    config = CaseConfig("tiny", DesignSpec.parse("BNRN0"), InstanceSpec(5, 0.2, 2), RunSpec(episodes=1))
    with Simulator(always(0)) as sim:
        opts = RunOptions(base_url=sim.base_url, cassette_dir=tmp_path / "c", record_mode="once")
        result = run_case(model, config, opts)
    assert result.errors == []
    write_reports([case_record(result)], tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "| sim/&lt;img/src=x/onerror=alert(1)&gt;\\|\\*\\[x\\](y) |" in md
    assert "<img" not in md
    assert "<img/src" not in (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
