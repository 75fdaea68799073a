"""Run-to-run comparison of two report folders: the CI regression check.

For every model x config present in both folders, three per-episode metrics are compared:
format compliance (share of valid replies), best-arm rate (share of pulls on the best arm) and
SuffFailFreq(T/2) (1 when the episode never picks the best arm in its second half).

Episodes are paired: the same seed, config and episode index draw the same instance and reward
table, so episode ``i`` of OLD and episode ``i`` of NEW faced the very same bandit. The test is
a one-sided sign-flip permutation test on the per-episode differences (exact up to
:data:`EXACT_MAX_PAIRS` pairs, else :data:`PERMUTATIONS` seeded random flips): under "no
change" each difference is as likely to carry either sign. When the pairing does not hold (the
best arms of an episode differ, or k, delta, T or the seed changed) a two-sample permutation
test on the episodes is used instead and the row says "unpaired".

A metric *regressed* when it moved in its bad direction by more than ``tolerance`` (absolute)
and the one-sided p-value is below ``alpha`` (0.05). One-sided, because the question asked is
"did it get worse", and because with the 5 episodes of a quick config the smallest two-sided
sign-flip p-value (2/32) could never reach 0.05.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bandit_bench.core.metrics import (
    EpisodeBatch,
    episode_best_arm_rate,
    episode_format_compliance,
    episode_suffix_failure,
)
from bandit_bench.reporting.tables import CaseEpisodes, ReportData, case_episodes, load_report_dir

ALPHA = 0.05
DEFAULT_TOLERANCE = 0.05
EXACT_MAX_PAIRS = 16
PERMUTATIONS = 20_000
PERMUTATION_SEED = 0
_EPS = 1e-12


@dataclass(frozen=True)
class _Metric:
    name: str
    label: str
    higher_is_better: bool
    per_episode: Callable[[EpisodeBatch], np.ndarray]


METRICS: tuple[_Metric, ...] = (
    _Metric("format_compliance", "format compliance", True, episode_format_compliance),
    _Metric("best_arm_rate", "best-arm rate", True, episode_best_arm_rate),
    _Metric(
        "suffix_failure_freq", "SuffFailFreq(T/2)", False, lambda b: episode_suffix_failure(b).astype(float)
    ),
)


@dataclass(frozen=True)
class MetricChange:
    """One metric of one model x config: OLD and NEW means over the compared episodes."""

    model: str
    config: str
    metric: str
    label: str
    old: float
    new: float
    n_old: int
    n_new: int
    paired: bool
    # One-sided p-value for "NEW is worse than OLD".
    p_worse: float
    worse_by: float
    tolerance: float
    alpha: float

    @property
    def change(self) -> float:
        return self.new - self.old

    @property
    def regressed(self) -> bool:
        return self.worse_by > self.tolerance + _EPS and self.p_worse < self.alpha

    @property
    def verdict(self) -> str:
        if self.regressed:
            return "REGRESSED"
        if self.worse_by > _EPS:
            if self.p_worse >= self.alpha:
                return f"worse, not significant (p >= {self.alpha:g})"
            return f"worse, within tolerance {self.tolerance:g}"
        if self.worse_by < -_EPS:
            return "better"
        return "unchanged"


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_dirs`: ``text`` to print, ``regressed`` for the exit code."""

    old: Path
    new: Path
    changes: tuple[MetricChange, ...]
    notes: tuple[str, ...]
    tolerance: float
    alpha: float
    # Each folder's run metadata (summary.json's "run"), shown side by side.
    old_run: Mapping[str, Any] = field(default_factory=dict)
    new_run: Mapping[str, Any] = field(default_factory=dict)
    # What the comparison was meant to check and could not: a model row of OLD missing in NEW,
    # a NEW case that errored or has no complete episode, no model row in both. Reference
    # baselines never count as compared: they replay the same arms on the same seeds.
    gaps: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return any(c.regressed for c in self.changes)

    @property
    def incomplete(self) -> bool:
        return bool(self.gaps)

    @property
    def regressions(self) -> tuple[MetricChange, ...]:
        return tuple(c for c in self.changes if c.regressed)

    @property
    def text(self) -> str:
        return render_comparison(self)


# ---------------------------------------------------------------------------- tests


def sign_flip_p_value(diffs: np.ndarray, seed: int = PERMUTATION_SEED) -> float:
    """One-sided p-value of mean(diffs) > 0 under random sign flips of each paired difference.

    Exact (all 2^n sign patterns) for n <= :data:`EXACT_MAX_PAIRS`, else a Monte Carlo estimate
    with :data:`PERMUTATIONS` draws from ``default_rng(seed)``, counted as (1 + hits) / (1 + draws)
    so it is never 0.
    """
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        return 1.0
    observed = d.mean()
    if n <= EXACT_MAX_PAIRS:
        patterns = np.arange(2**n)[:, None] >> np.arange(n)
        signs = 1.0 - 2.0 * (patterns & 1)
        stats = (signs * d).mean(axis=1)
        return float(np.mean(stats >= observed - _EPS))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(PERMUTATIONS, n))
    hits = int(np.sum((signs * d).mean(axis=1) >= observed - _EPS))
    return (1 + hits) / (1 + PERMUTATIONS)


def two_sample_p_value(worse: np.ndarray, better: np.ndarray, seed: int = PERMUTATION_SEED) -> float:
    """One-sided p-value of mean(worse) > mean(better) by relabelling episodes at random."""
    a, b = np.asarray(worse, dtype=float), np.asarray(better, dtype=float)
    if a.size == 0 or b.size == 0:
        return 1.0
    pooled = np.concatenate([a, b])
    observed = a.mean() - b.mean()
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((PERMUTATIONS, pooled.size)), axis=1)
    shuffled = pooled[perms]
    stats = shuffled[:, : a.size].mean(axis=1) - shuffled[:, a.size :].mean(axis=1)
    hits = int(np.sum(stats >= observed - _EPS))
    return (1 + hits) / (1 + PERMUTATIONS)


# ---------------------------------------------------------------------------- comparing


def _pairing(
    old: CaseEpisodes, new: CaseEpisodes, old_row: Mapping[str, Any], new_row: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices into old and new of the paired episodes, or a reason why they do not pair."""
    for key in ("k", "delta", "horizon", "seed"):
        if old_row.get(key) is not None and new_row.get(key) is not None and old_row[key] != new_row[key]:
            return np.array([], int), np.array([], int), f"{key} changed ({old_row[key]} -> {new_row[key]})"
    common, i_old, i_new = np.intersect1d(old.episodes, new.episodes, return_indices=True)
    if common.size == 0:
        return i_old, i_new, "no episode index in common"
    mismatch = old.batch.best_arm[i_old] != new.batch.best_arm[i_new]
    if mismatch.any():
        eps = ", ".join(str(e) for e in common[mismatch][:3])
        return (
            np.array([], int),
            np.array([], int),
            f"episode {eps}: the best arm differs, so the instances are not the same",
        )
    return i_old, i_new, ""


def compare_case(
    old: CaseEpisodes,
    new: CaseEpisodes,
    old_row: Mapping[str, Any],
    new_row: Mapping[str, Any],
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = ALPHA,
) -> tuple[list[MetricChange], str]:
    """The metric changes of one model x config, and a note ("" when fully paired)."""
    i_old, i_new, why = _pairing(old, new, old_row, new_row)
    paired = not why
    note = ""
    if paired and (i_old.size < old.episodes.size or i_new.size < new.episodes.size):
        note = (
            f"{old.model} x {old.config}: paired on {i_old.size} episodes "
            f"(OLD has {old.episodes.size} complete, NEW {new.episodes.size})"
        )
    elif not paired:
        note = f"{old.model} x {old.config}: not paired ({why}); compared as independent samples"
    changes = []
    for m in METRICS:
        v_old, v_new = m.per_episode(old.batch), m.per_episode(new.batch)
        sign = -1.0 if m.higher_is_better else 1.0
        if paired:
            a, b = v_old[i_old], v_new[i_new]
            p = sign_flip_p_value(sign * (b - a))
        else:
            a, b = v_old, v_new
            p = two_sample_p_value(sign * b, sign * a)
        worse_by = sign * (float(b.mean()) - float(a.mean()))
        changes.append(
            MetricChange(
                model=old.model,
                config=old.config,
                metric=m.name,
                label=m.label,
                old=float(a.mean()),
                new=float(b.mean()),
                n_old=int(a.size),
                n_new=int(b.size),
                paired=paired,
                p_worse=p,
                worse_by=worse_by,
                tolerance=tolerance,
                alpha=alpha,
            )
        )
    return changes, note


def _unpaired_rows(
    old_rows: Mapping[tuple[str, str], Any],
    new_rows: Mapping[tuple[str, str], Any],
    is_model: Callable[[tuple[str, str]], bool],
) -> tuple[list[str], list[str]]:
    """(gaps, notes) for the rows one folder has and the other lacks: a model row missing in NEW
    is a gap; a reference row missing in NEW, or any row only in NEW, a note."""
    gaps: list[str] = []
    notes: list[str] = []
    only_old = [k for k in old_rows if k not in new_rows]
    only_new = [k for k in new_rows if k not in old_rows]
    if [k for k in only_old if is_model(k)]:
        gaps.append("missing in NEW: " + ", ".join(f"{m} x {c}" for m, c in only_old if is_model((m, c))))
    if [k for k in only_old if not is_model(k)]:
        notes.append(
            "only in OLD (not compared): "
            + ", ".join(f"{m} x {c}" for m, c in only_old if not is_model((m, c)))
        )
    if only_new:
        notes.append("only in NEW (not compared): " + ", ".join(f"{m} x {c}" for m, c in only_new))
    return gaps, notes


def compare_data(
    old: ReportData, new: ReportData, tolerance: float = DEFAULT_TOLERANCE, alpha: float = ALPHA
) -> Comparison:
    """Compare two loaded report folders (see :func:`compare_dirs`)."""
    if not tolerance >= 0:
        raise ValueError(f"tolerance: got {tolerance!r}; expected a number >= 0 (an absolute change)")
    # The paper's published rows are constants with no episodes, and the 1000-episode baseline
    # rows a function of the instance spec alone, with no steps: nothing to compare.
    from bandit_bench.reporting.scale import is_scale_reference

    def compared(r: dict[str, Any]) -> bool:
        return r.get("kind") != "published" and not is_scale_reference(r)

    old_rows = {(r["model"], r["config"]): r for r in old.summary if compared(r)}
    new_rows = {(r["model"], r["config"]): r for r in new.summary if compared(r)}
    old_cases = case_episodes(old.summary, old.steps)
    new_cases = case_episodes(new.summary, new.steps)
    changes: list[MetricChange] = []

    # Reference rows (baselines beside a model) never count as compared: on the same seeds they
    # replay the same arms. A run of baselines alone has nothing else, so there they count.
    any_model = any(not m.startswith("baseline/") for m, _ in [*old_rows, *new_rows])

    def is_model(key: tuple[str, str]) -> bool:
        return not key[0].startswith("baseline/") or not any_model

    gaps, notes = _unpaired_rows(old_rows, new_rows, is_model)
    compared_models = 0
    for key, old_row in old_rows.items():
        if key not in new_rows:
            continue
        errors = int(new_rows[key].get("errors") or 0)
        if errors and is_model(key):
            gaps.append(f"{key[0]} x {key[1]}: {errors} episodes errored in NEW")
        missing = [side for side, cases in (("OLD", old_cases), ("NEW", new_cases)) if key not in cases]
        if missing:
            line = f"{key[0]} x {key[1]}: no complete episode in {' and '.join(missing)}; not compared"
            (gaps if "NEW" in missing and is_model(key) else notes).append(line)
            continue
        case_changes, note = compare_case(
            old_cases[key], new_cases[key], old_row, new_rows[key], tolerance, alpha
        )
        changes.extend(case_changes)
        compared_models += is_model(key)
        if note:
            notes.append(note)
    if not compared_models:
        gaps.append("no model x config row (baselines aside) is compared in both folders")
    return Comparison(
        old.directory,
        new.directory,
        tuple(changes),
        tuple(notes),
        tolerance,
        alpha,
        old.run,
        new.run,
        tuple(gaps),
    )


def compare_dirs(
    old: Path, new: Path, tolerance: float = DEFAULT_TOLERANCE, alpha: float = ALPHA
) -> Comparison:
    """Compare report folder NEW against OLD.

    Raises :class:`~bandit_bench.reporting.tables.ReportDirError` when a folder cannot be read.
    """
    return compare_data(load_report_dir(Path(old)), load_report_dir(Path(new)), tolerance, alpha)


# ---------------------------------------------------------------------------- text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    from bandit_bench.reporting.columns import aligned_table

    return aligned_table([header, *rows], right)


def run_side_by_side(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Where each run's numbers came from, one line per field; "*" marks a field that differs."""
    from bandit_bench.reporting.provenance import metadata_lines

    rows = [
        [label, a, b, "*" if a != b else ""]
        for (label, a), (_, b) in zip(metadata_lines(old), metadata_lines(new), strict=True)
    ]
    return _table(["run", "OLD", "NEW", ""], rows, right=set())


def _compared_count(by_case: Mapping[tuple[str, str], object]) -> str:
    """Model rows compared; reference baselines are counted apart (they never count as compared,
    except in a run of baselines alone)."""
    models = sum(1 for m, _ in by_case if not m.startswith("baseline/"))
    baselines = len(by_case) - models
    if not models:
        return f"{baselines} model x config compared"
    beside = f"; {baselines} reference baseline rows beside them" if baselines else ""
    return f"{models} model x config compared{beside}"


def _change_rows(
    by_case: Mapping[tuple[str, str], list[MetricChange]],
) -> tuple[list[list[str]], set[tuple[str, str]]]:
    """The table's rows, and the reference baselines left out because none of their metrics moved."""
    rows = []
    hidden = set()
    for (model, config), chs in by_case.items():
        if model.startswith("baseline/") and all(ch.verdict == "unchanged" for ch in chs):
            hidden.add((model, config))
            continue
        for ch in chs:
            rows.append(
                [
                    model,
                    config,
                    ch.label,
                    f"{ch.old:.3f}",
                    f"{ch.new:.3f}",
                    f"{ch.change:+.3f}",
                    f"{ch.p_worse:.3f}",
                    f"{ch.n_old}" if ch.paired else f"{ch.n_old}/{ch.n_new} unpaired",
                    ch.verdict,
                ]
            )
    return rows, hidden


def _verdict_lines(c: Comparison, compared: str) -> list[str]:
    """The regressions, else why the comparison is incomplete, else "no regression"."""
    lines: list[str] = []
    regressions = c.regressions
    if regressions:
        for r in regressions:
            lines.append(
                f"REGRESSION: {r.model} x {r.config}: {r.label} {r.old:.3f} -> {r.new:.3f} "
                f"({r.change:+.3f}, worse by more than the tolerance {c.tolerance:g}; "
                f"one-sided p = {r.p_worse:.3f} < {c.alpha:g})"
            )
    elif c.gaps:
        lines.append(
            "comparison incomplete: what OLD checked is not all checked in NEW (see NOT COMPARED); "
            "rerun the missing cases, or compare with a report of the same models and configs"
        )
    else:
        lines.append(
            f"no regression: no metric got worse by more than {c.tolerance:g} with one-sided p < {c.alpha:g} "
            f"({compared})"
        )
    return lines


def render_comparison(c: Comparison) -> str:
    """A plain-text table (one line per model x config x metric), notes and a verdict line.

    Reference baselines whose three metrics did not move are left out of the table (their
    count is in the notes): on the same seeds they replay the same arms.
    """
    lines = [f"OLD {c.old}", f"NEW {c.new}", "", *run_side_by_side(c.old_run, c.new_run), ""]
    by_case: dict[tuple[str, str], list[MetricChange]] = {}
    for ch in c.changes:
        by_case.setdefault((ch.model, ch.config), []).append(ch)
    rows, hidden = _change_rows(by_case)
    header = ["model", "config", "metric", "old", "new", "change", "p(worse)", "episodes", "verdict"]
    if rows:
        lines += _table(header, rows, right={3, 4, 5, 6, 7})
    else:
        lines.append("(no model x config compared)")
    notes = list(c.notes)
    if hidden:
        notes.append(f"{len(hidden)} reference baseline rows unchanged (not shown)")
    if notes:
        lines.append("")
        lines += [f"note: {n}" for n in notes]
    lines.append("")
    lines += [f"NOT COMPARED: {g}" for g in c.gaps]
    lines += _verdict_lines(c, _compared_count(by_case))
    return "\n".join(lines)
