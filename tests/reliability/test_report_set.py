"""The report folder is written as a set: a writer killed at any point leaves the old set or the new.

A child process (``python -c``) writes the folder with the writer's no-op ``_checkpoint`` replaced
by one that announces the point in a flag file and sleeps; the test then SIGKILLs it, so where the
kill lands is fixed, not a matter of timing. Runs are baselines with ``SOURCE_DATE_EPOCH`` set, so
each run's five files are the same bytes every time and the two runs differ in every file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bandit_bench.cli.commands import main
from bandit_bench.core.specs import BUILTIN_CONFIGS
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.reporting.writer import rerender_reports, write_reports
from bandit_bench.running.runner import run_case

WAIT = 60.0  # generous upper bound for the child to reach its point; never a timing assertion
SET = ("summary.csv", "summary.json", "steps.jsonl", "report.md", "report.html")
CONFIG = BUILTIN_CONFIGS["BNRN0-hard-T25"].with_overrides(episodes=2, horizon=10)
OLD, NEW = "baseline/ucb", "baseline/uniform"

CHILD = """
import pathlib, sys, time
from bandit_bench.core.specs import BUILTIN_CONFIGS
from bandit_bench.reporting import writer
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import run_case

action, folder, model, point, flag, fallback = sys.argv[1:]
seen = {}
def pause(name):
    seen[name] = seen.get(name, 0) + 1
    if f"{name}#{seen[name]}" == point:
        pathlib.Path(flag).write_text(point)
        time.sleep(3600)
writer._checkpoint = pause
if fallback == "1":
    writer._exchange = lambda a, b: False  # as on a system without renameat2
if action == "write":
    config = BUILTIN_CONFIGS["BNRN0-hard-T25"].with_overrides(episodes=2, horizon=10)
    writer.write_reports([case_record(run_case(model, config))], pathlib.Path(folder))
else:
    writer.rerender_reports(pathlib.Path(folder))
print("FINISHED")
"""


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """What each run writes on its own."""
    base = tmp_path_factory.mktemp("alone")
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        out = {}
        for model in (OLD, NEW):
            paths = write_reports([case_record(run_case(model, CONFIG))], base / model.replace("/", "-"))
            out[model] = {name: paths[name].read_bytes() for name in SET}
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    assert all(out[OLD][name] != out[NEW][name] for name in SET)
    return out


def _user_files(folder: Path) -> None:
    (folder / "README.md").write_text("# my notes on these reports\n")
    (folder / "plots").mkdir()
    (folder / "plots" / "extra.txt").write_text("kept\n")


def _assert_user_files(folder: Path) -> None:
    assert (folder / "README.md").read_text() == "# my notes on these reports\n"
    assert (folder / "plots" / "extra.txt").read_text() == "kept\n"


def _contents(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in SET}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def _old_folder(tmp_path: Path, sets: dict[str, dict[str, bytes]]) -> Path:
    folder = tmp_path / "reports"
    folder.mkdir()
    _user_files(folder)
    write_reports([case_record(run_case(OLD, CONFIG))], folder)
    assert _contents(folder) == sets[OLD]
    return folder


def _kill_at(tmp_path: Path, action: str, folder: Path, point: str, fallback: bool = False) -> None:
    flag = tmp_path / "paused"
    flag.unlink(missing_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, action, str(folder), NEW, point, str(flag), "1" if fallback else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not flag.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert flag.exists(), f"the writer never reached {point}: {child.communicate()}"
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point", ["writing#1", "writing#3", "writing#5"])
def test_killed_while_writing_leaves_the_old_set(
    tmp_path: Path, sets: dict[str, dict[str, bytes]], point: str
) -> None:
    folder = _old_folder(tmp_path, sets)
    _kill_at(tmp_path, "write", folder, point)
    assert _contents(folder) == sets[OLD]
    _assert_user_files(folder)
    assert [n.split("-")[0] for n in _siblings(folder)] == [".reports.new"]  # the unfinished new set

    # The next run clears what the killed one left and writes its set whole.
    write_reports([case_record(run_case(NEW, CONFIG))], folder)
    assert _contents(folder) == sets[NEW]
    _assert_user_files(folder)
    assert _siblings(folder) == []


def test_killed_after_the_swap_leaves_the_new_set(tmp_path: Path, sets: dict[str, dict[str, bytes]]) -> None:
    folder = _old_folder(tmp_path, sets)
    _kill_at(tmp_path, "write", folder, "swapped#1")
    assert _contents(folder) == sets[NEW]
    _assert_user_files(folder)
    (left,) = _siblings(folder)  # the old set, swapped out and not yet deleted
    assert _contents(folder.parent / left) == sets[OLD]
    write_reports([case_record(run_case(OLD, CONFIG))], folder)
    assert _contents(folder) == sets[OLD]
    assert _siblings(folder) == []


def test_without_an_atomic_exchange_a_kill_between_the_renames_is_finished_next_time(
    tmp_path: Path, sets: dict[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _old_folder(tmp_path, sets)
    _kill_at(tmp_path, "write", folder, "aside#1", fallback=True)
    # Killed between its two renames: the old set is aside and the new one complete beside it.
    assert not folder.exists()
    assert [n.split("-")[0] for n in _siblings(folder)] == [".reports.new", ".reports.old"]
    # `bandit-bench report` (or the next run) rolls forward to the complete new set first.
    assert main(["report", str(folder)]) == 0
    capsys.readouterr()
    assert _contents(folder) == sets[NEW]
    _assert_user_files(folder)
    assert _siblings(folder) == []


def test_without_an_atomic_exchange_a_run_still_replaces_the_set(
    tmp_path: Path, sets: dict[str, dict[str, bytes]]
) -> None:
    folder = _old_folder(tmp_path, sets)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, "write", str(folder), NEW, "none", str(tmp_path / "flag"), "1"],
        capture_output=True,
        text=True,
        timeout=WAIT * 5,
    )
    assert child.stdout.strip() == "FINISHED", child.stderr
    assert _contents(folder) == sets[NEW]
    _assert_user_files(folder)
    assert _siblings(folder) == []


def test_a_normal_run_replaces_every_file_and_keeps_the_users(
    tmp_path: Path, sets: dict[str, dict[str, bytes]]
) -> None:
    folder = _old_folder(tmp_path, sets)
    os.chmod(folder, 0o750)
    before = {name: (folder / name).stat().st_ino for name in SET}
    write_reports([case_record(run_case(NEW, CONFIG))], folder)
    assert _contents(folder) == sets[NEW]
    assert all((folder / name).stat().st_ino != before[name] for name in SET)
    _assert_user_files(folder)
    assert oct(folder.stat().st_mode & 0o777) == oct(0o750)  # the folder's permissions carry over
    assert sorted(p.name for p in folder.iterdir()) == sorted([*SET, "README.md", "plots"])
    assert _siblings(folder) == []


def test_a_symlinked_report_folder_stays_a_link(tmp_path: Path, sets: dict[str, dict[str, bytes]]) -> None:
    real = _old_folder(tmp_path, sets)
    link = tmp_path / "link"
    link.symlink_to(real)
    write_reports([case_record(run_case(NEW, CONFIG))], link)
    assert link.is_symlink() and _contents(link) == sets[NEW]
    _assert_user_files(real)


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    clash = tmp_path / "reports"
    clash.write_text("not a folder\n")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        write_reports([case_record(run_case(NEW, CONFIG))], clash)
    assert clash.read_text() == "not a folder\n"
    assert _siblings(clash) == []


def test_rerender_killed_midway_leaves_both_old_reports(
    tmp_path: Path, sets: dict[str, dict[str, bytes]]
) -> None:
    folder = _old_folder(tmp_path, sets)
    for name in ("report.md", "report.html"):
        (folder / name).write_text(f"stale {name}\n")
    _kill_at(tmp_path, "rerender", folder, "writing#1")  # report.md new in the hidden folder only
    assert (folder / "report.md").read_text() == "stale report.md\n"
    assert (folder / "report.html").read_text() == "stale report.html\n"
    rerender_reports(folder)
    assert _contents(folder) == sets[OLD]
    _assert_user_files(folder)
    assert _siblings(folder) == []
