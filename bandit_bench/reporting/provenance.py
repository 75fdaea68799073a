"""Where a report's numbers came from: versions, endpoint, record mode, seeds, git commit.

:func:`run_metadata` builds the ``run`` object of ``summary.json``; report.md, report.html and
``bandit-bench compare`` show it. Package versions come from installed metadata (nothing heavy
is imported), the time from ``$SOURCE_DATE_EPOCH`` when set. No credential is ever stored: the
base URL loses its ``user:password@`` part, its query and its fragment.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from bandit_bench.recording.redaction import public_url

# (key in the run object, label shown to people), in display order.
FIELDS: tuple[tuple[str, str], ...] = (
    ("bandit_bench", "bandit-bench"),
    ("created", "written (UTC)"),
    ("base_url", "base URL"),
    ("record_mode", "record mode"),
    ("seeds", "seed"),
    ("requests_recorded", "requests recorded"),
    ("requests_replayed", "requests replayed"),
    ("git_commit", "git commit"),
    ("python", "Python"),
    ("openai", "openai"),
    ("vcrpy", "vcrpy"),
    ("numpy", "numpy"),
)
DISTRIBUTION = "pytest-bandit-bench"
_PACKAGES = {"bandit_bench": DISTRIBUTION, "openai": "openai", "vcrpy": "vcrpy", "numpy": "numpy"}


def _version(distribution: str) -> str | None:
    if distribution == DISTRIBUTION:
        from bandit_bench import __version__

        return __version__  # the package's own, whatever name an older install registered
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git_commit(directory: Path | None) -> str | None:
    """HEAD of the git checkout holding ``directory`` ("+ local changes" when the tracked files
    differ from it), or None outside a checkout or without git."""
    if directory is None:
        return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head} + local changes" if dirty else head


# The last second a report's "created" (YYYY-MM-DDTHH:MM:SSZ) can show: 9999-12-31T23:59:59Z.
MAX_SOURCE_DATE_EPOCH = 253402300799


def source_date_epoch(environ: Any = None) -> tuple[datetime.datetime | None, str | None]:
    """$SOURCE_DATE_EPOCH as a time (None when unset), or why it cannot be one.

    The reproducible-builds convention: a decimal count of seconds since 1970 (ASCII digits only:
    ``str.isdigit`` also takes '²'), here up to the last second of year 9999."""
    raw = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return None, None
    if not re.fullmatch(r"[0-9]{1,12}", raw) or int(raw) > MAX_SOURCE_DATE_EPOCH:
        shown = raw if len(raw) <= 30 else raw[:30] + "..."
        return None, (
            f"SOURCE_DATE_EPOCH={shown!r} is not a count of seconds in [0, {MAX_SOURCE_DATE_EPOCH}] "
            "(up to 9999-12-31T23:59:59Z); unset it, or set it to e.g. $(git log -1 --format=%ct)"
        )
    return datetime.datetime.fromtimestamp(int(raw), datetime.UTC), None


def _now() -> datetime.datetime:
    """The time a report is written, or $SOURCE_DATE_EPOCH (the reproducible-builds convention)
    when set: two runs then write byte-identical reports. A value that is no such time is
    ignored with a warning here (the pytest plugin refuses it before the run starts)."""
    when, problem = source_date_epoch()
    if problem is not None:
        import warnings

        warnings.warn(f"{problem}; the report uses the current time", stacklevel=2)
    return when or datetime.datetime.now(datetime.UTC)


def run_metadata(
    records: Iterable[Mapping[str, Any]],
    *,
    base_url: str | None = None,
    record_mode: str | None = None,
    repo_dir: Path | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The ``run`` object of summary.json for these case records.

    Request counts are summed over the model rows (baselines send none): recorded ones went to
    the API and into cassettes, replayed ones were answered from cassettes.
    """
    records = list(records)
    now = now or _now()
    models = [r for r in records if not str(r["model"]).startswith("baseline/")]
    out: dict[str, Any] = {
        "bandit_bench": _version(_PACKAGES["bandit_bench"]),
        "created": now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "base_url": public_url(base_url),
        "record_mode": record_mode,
        "seeds": sorted({int(r["seed"]) for r in records if r.get("seed") is not None}),
        "requests_recorded": sum(int(r.get("recorded") or 0) for r in models),
        "requests_replayed": sum(int(r.get("replayed") or 0) for r in models),
        "git_commit": git_commit(repo_dir),
        "python": platform.python_version(),
    }
    for key in ("openai", "vcrpy", "numpy"):
        out[key] = _version(_PACKAGES[key])
    return out


def display_value(key: str, value: Any) -> str:
    if value is None or value == []:
        return "unknown"
    if key == "seeds":
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return str(value)


def metadata_lines(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) per known field, in display order; unknown values say "unknown"."""
    return [(label, display_value(key, run.get(key))) for key, label in FIELDS]
