"""The report folder written as a set: data files first, then the two human reports rendered from them.

Its own module because it is the one place that needs both the tables and the HTML page
(:mod:`bandit_bench.reporting.html` reads the tables' data model; the tables never import it).

A reader never finds one run's ``report.html`` beside another run's ``summary.csv``: every file
goes into a fresh hidden sibling folder (``.reports.new-*``, same parent, so the renames stay on
one filesystem), which is fsynced and then swapped with the old folder in one
``renameat2(RENAME_EXCHANGE)`` on Linux. Where that call is missing the old folder is first
renamed aside (``.reports.old-*``); the next write under the same lock finishes or rolls back
what a killed writer left. Files the set does not own (``README.md``, a user's notes, folders)
are carried over into the new folder as hard links (copies where links fail), never dropped.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bandit_bench.reporting.tables import (
    ReportData,
    _summary_row,
    atomic_write,
    load_report_dir,
    render_markdown,
    step_rows,
    summary_frame,
)


def write_reports(
    records: Iterable[Mapping[str, Any]],
    report_dir: Path,
    prices: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the report folder.

    ``run`` is the run's metadata (:func:`~bandit_bench.reporting.provenance.run_metadata` of the
    records when not given)."""
    from bandit_bench.reporting.provenance import run_metadata

    records = list(records)
    summary = summary_frame(records, prices)
    run = dict(run) if run is not None else run_metadata(records)
    table = json.loads(summary.to_json(orient="records"))
    document = json.loads(json.dumps({"run": run, "rows": table}))
    steps = list(step_rows(records))
    texts = {
        "summary.csv": summary.to_csv(index=False),
        "summary.json": json.dumps(document, indent=2) + "\n",
        "steps.jsonl": "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in steps),
    }
    # Both human reports come from exactly what the two data files hold (the JSON round trip
    # included), so `bandit-bench report DIR` re-renders them identically.
    rows = [_summary_row(row) for row in table]
    texts.update(_rendered(ReportData(report_dir, rows, steps, document["run"])))
    return replace_set(report_dir, texts)


def _rendered(data: ReportData) -> dict[str, str]:
    from bandit_bench.reporting.grid import report_preface
    from bandit_bench.reporting.html import render_html

    return {
        "report.md": render_markdown(data.summary, data.run, report_preface(data.summary)),
        "report.html": render_html(data.summary, data.steps, data.run),
    }


def rerender_reports(report_dir: Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` again from the folder's data files; runs nothing.

    The folder is swapped whole like a run's, so an interruption leaves both old or both new."""
    recover_report_dir(report_dir)  # a folder a killed writer left renamed aside is back first
    data = load_report_dir(report_dir)
    return replace_set(data.directory, _rendered(data))


def replace_set(folder: Path, texts: Mapping[str, str]) -> dict[str, Path]:
    """Replace ``folder`` by one holding ``texts`` (name -> content) and every other entry it held.

    All or nothing: a process killed at any point leaves the complete old folder or the complete
    new one (after the fallback's two renames, the next call restores it)."""
    # A report folder that is a symlink stays one: the folder it points to is the one swapped.
    target = Path(os.path.realpath(folder))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent):
        _recover(target)
        old = target if target.exists() else None
        if old is not None and not old.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(old))
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        fresh = parent / f".{target.name}.new-{token}"
        os.mkdir(fresh)  # not mkdtemp: its 0700 would hide the reports from other users
        try:
            if old is not None:
                os.chmod(fresh, stat.S_IMODE(old.stat().st_mode))
            for name, text in texts.items():
                atomic_write(fresh / name, text)  # fsynced: on disk before the swap
                _checkpoint("writing")
            if old is not None:
                _carry_over(old, fresh, texts.keys())
            _fsync(fresh)
            _swap(fresh, target, parent / f".{target.name}.old-{token}")
        finally:
            # After the exchange `fresh` holds the old set; before it, an unfinished new one.
            shutil.rmtree(fresh, ignore_errors=True)
    return {name: folder / name for name in texts}


def recover_report_dir(folder: Path) -> None:
    """Finish or roll back what a writer killed mid-swap left beside ``folder``; writes nothing else."""
    target = Path(os.path.realpath(folder))
    if target.parent.is_dir():
        with _locked(target.parent):
            _recover(target)


def _checkpoint(point: str) -> None:
    """Does nothing; tests replace it in a subprocess to kill the writer at ``point``."""


@contextmanager
def _locked(parent: Path) -> Iterator[None]:
    # One writer per parent folder at a time, so what _recover finds was left by a dead one.
    import fcntl

    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap(fresh: Path, target: Path, aside: Path) -> None:
    parent = target.parent
    if not os.path.lexists(target):
        os.rename(fresh, target)
    elif _exchange(fresh, target):
        _checkpoint("swapped")
    else:
        os.rename(target, aside)
        _checkpoint("aside")
        try:
            os.rename(fresh, target)
        except BaseException:
            os.rename(aside, target)
            raise
        _fsync(parent)
        shutil.rmtree(aside, ignore_errors=True)
    _fsync(parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:  # not glibc >= 2.28 (macOS, musl before 1.2.?)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel, or a filesystem without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _recover(target: Path) -> None:
    """Finish what a killed writer left: its new folder, or its old one renamed aside."""
    pattern = glob.escape(f".{target.name}.")
    # The token is what follows the prefix: a folder named like "run.new-1" holds ".new-" itself.
    news = {p.name.removeprefix(f".{target.name}.new-"): p for p in target.parent.glob(pattern + "new-*")}
    olds = {p.name.removeprefix(f".{target.name}.old-"): p for p in target.parent.glob(pattern + "old-*")}
    if not os.path.lexists(target):
        for token, old in olds.items():
            # The old set is moved aside only once the new one is complete: roll forward.
            os.rename(news.pop(token, old), target)
            break
    for leftover in (*news.values(), *olds.values()):
        if leftover.exists():
            shutil.rmtree(leftover)


def _carry_over(old: Path, fresh: Path, owned: Iterable[str]) -> None:
    """Bring every entry the set does not own into the new folder (hard links: no data copied)."""
    owned = set(owned)
    for entry in os.scandir(old):
        if entry.name in owned or os.path.lexists(fresh / entry.name):
            continue
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            continue  # a half-written file of an older version's writer
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, fresh / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, fresh / entry.name)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
