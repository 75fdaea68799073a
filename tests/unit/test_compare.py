"""`bandit-bench compare OLD NEW` and `compare_dirs` on hand-made report folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bandit_bench.cli.commands import main
from bandit_bench.reporting.compare import compare_dirs, sign_flip_p_value, two_sample_p_value

K, DELTA, T, N = 3, 0.5, 10, 8
MODEL, CONFIG = "sim/test-model", "tiny"

# A policy maps (episode, t, best arm) to (arm, valid).
Policy = Callable[[int, int, int], tuple[int, bool]]


def best_arm_of(episode: int) -> int:
    return episode % K


def always_best(ep: int, t: int, best: int) -> tuple[int, bool]:
    return best, True


def write_report_dir(
    path: Path,
    policy: Policy,
    *,
    model: str = MODEL,
    episodes: int = N,
    best_arm: Callable[[int], int] = best_arm_of,
    extra: dict[str, Policy] | None = None,
) -> Path:
    """A report folder as a pytest run writes it: summary.json rows and steps.jsonl lines.

    Rewards are a fixed function of (episode, t, arm), standing in for the shared reward table.
    """
    path.mkdir(parents=True)
    policies = {model: policy, **(extra or {})}
    rows, lines = [], []
    for name, pol in policies.items():
        rows.append(
            {
                "model": name,
                "config": CONFIG,
                "kind": "baseline" if name.startswith("baseline/") else "model",
                "design": "BNRN0",
                "k": K,
                "delta": DELTA,
                "horizon": T,
                "constrained": False,
                "episodes": episodes,
                "seed": 0,
                "steps": episodes * T,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": None,
                "passed": True,
                "expected_failure": False,
                "errors": 0,
            }
        )
        for ep in range(episodes):
            best = best_arm(ep)
            for t in range(T):
                arm, valid = pol(ep, t, best)
                lines.append(
                    {
                        "model": name,
                        "config": CONFIG,
                        "episode": ep,
                        "t": t,
                        "arm": arm,
                        "reward": (ep + t + arm) % 2,
                        "valid": valid,
                        "raw": None,
                        "reason": "",
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "best_arm": best,
                    }
                )
    (path / "summary.json").write_text(json.dumps(rows, indent=2))
    (path / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in lines))
    return path


@pytest.fixture
def old_dir(tmp_path: Path) -> Path:
    return write_report_dir(tmp_path / "old", always_best, extra={"baseline/ucb": always_best})


# ---------------------------------------------------------------------------- regressions


def test_known_regression_exits_1_and_names_the_metrics(
    tmp_path: Path, old_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Locks onto a wrong arm after two rounds: best-arm rate 1.0 -> 0.2, SuffFail 0 -> 1.
    def stuck(ep: int, t: int, best: int) -> tuple[int, bool]:
        return (best if t < 2 else (best + 1) % K), True

    new = write_report_dir(tmp_path / "new", stuck, extra={"baseline/ucb": always_best})
    assert main(["compare", str(old_dir), str(new)]) == 1
    out = capsys.readouterr().out
    assert f"REGRESSION: {MODEL} x {CONFIG}: best-arm rate 1.000 -> 0.200" in out
    assert f"REGRESSION: {MODEL} x {CONFIG}: SuffFailFreq(T/2) 0.000 -> 1.000" in out
    assert "format compliance" in out and "REGRESSION: sim/test-model x tiny: format" not in out
    # All 8 pairs worse: the exact one-sided sign-flip p-value is 1/2^8.
    assert "p = 0.004" in out
    # The unchanged reference baseline is summarised, not listed.
    assert "1 reference baseline rows unchanged" in out


def test_format_compliance_regression(tmp_path: Path, old_dir: Path) -> None:
    def unparsable(ep: int, t: int, best: int) -> tuple[int, bool]:
        return best, t % 2 == 0  # the harness still pulled the best arm; half the replies invalid

    outcome = compare_dirs(old_dir, write_report_dir(tmp_path / "new", unparsable))
    assert outcome.regressed
    assert [(r.metric, round(r.change, 3)) for r in outcome.regressions] == [("format_compliance", -0.5)]
    assert "REGRESSION" in outcome.text and "format compliance" in outcome.text


# ---------------------------------------------------------------------------- non-regressions


def test_same_folder_is_no_regression(old_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(old_dir), str(old_dir)]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out
    assert out.count("unchanged") >= 3


def test_small_change_within_tolerance_exits_0(
    tmp_path: Path, old_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every episode misses the best arm once at t = 0: consistent (p = 1/256), but only -0.1
    # against a tolerance of 0.15.
    def one_miss(ep: int, t: int, best: int) -> tuple[int, bool]:
        return ((best + 1) % K if t == 0 else best), True

    new = write_report_dir(tmp_path / "new", one_miss)
    assert main(["compare", str(old_dir), str(new), "--tolerance", "0.15"]) == 0
    out = capsys.readouterr().out
    assert "worse, within tolerance 0.15" in out
    assert "no regression" in out
    # The same change with the default tolerance of 0.05 is a regression.
    assert main(["compare", str(old_dir), str(new)]) == 1


def test_large_but_not_significant_change_exits_0(tmp_path: Path, old_dir: Path) -> None:
    # One episode of eight goes bad: best-arm rate -0.1 > tolerance, but a single differing
    # pair gives a sign-flip p-value of 1/2.
    def one_bad_episode(ep: int, t: int, best: int) -> tuple[int, bool]:
        return ((best + 1) % K if ep == 3 and t >= 2 else best), True

    outcome = compare_dirs(old_dir, write_report_dir(tmp_path / "new", one_bad_episode))
    assert not outcome.regressed
    best = next(c for c in outcome.changes if c.metric == "best_arm_rate")
    assert best.paired and best.p_worse == pytest.approx(0.5)
    assert best.change == pytest.approx(-0.1)
    assert best.verdict.startswith("worse, not significant")


def test_improvement_is_not_a_regression(tmp_path: Path) -> None:
    def stuck(ep: int, t: int, best: int) -> tuple[int, bool]:
        return (best + 1) % K, True

    old = write_report_dir(tmp_path / "old", stuck)
    outcome = compare_dirs(old, write_report_dir(tmp_path / "new", always_best))
    assert not outcome.regressed
    assert {c.verdict for c in outcome.changes} == {"better", "unchanged"}


# ---------------------------------------------------------------------------- pairing


def test_pairs_only_common_episodes(tmp_path: Path, old_dir: Path) -> None:
    outcome = compare_dirs(old_dir, write_report_dir(tmp_path / "new", always_best, episodes=5))
    assert {c.n_old for c in outcome.changes if c.model == MODEL} == {5}
    assert any("paired on 5 episodes" in n for n in outcome.notes)


def test_different_instances_fall_back_to_an_unpaired_test(tmp_path: Path, old_dir: Path) -> None:
    def stuck(ep: int, t: int, best: int) -> tuple[int, bool]:
        return (best + 1) % K, True

    new = write_report_dir(tmp_path / "new", stuck, best_arm=lambda ep: (ep + 1) % K)
    outcome = compare_dirs(old_dir, new)
    assert not all(c.paired for c in outcome.changes)
    assert any("not paired" in n and "best arm differs" in n for n in outcome.notes)
    # 8 vs 8 episodes at 1.0 vs 0.0 is still a clear regression without the pairing.
    assert outcome.regressed
    assert "unpaired" in outcome.text


def test_cases_in_one_folder_only_are_noted(tmp_path: Path, old_dir: Path) -> None:
    new = write_report_dir(tmp_path / "new", always_best, model="sim/other")
    outcome = compare_dirs(old_dir, new)
    assert not outcome.regressed
    # What OLD checked is not checked in NEW: the comparison is incomplete, not a pass.
    assert outcome.incomplete
    assert f"missing in NEW: {MODEL} x " in outcome.gaps[0]
    assert any(n.startswith("only in NEW") and "sim/other" in n for n in outcome.notes)


# ---------------------------------------------------------------------------- the tests themselves


def test_sign_flip_p_value_exact() -> None:
    assert sign_flip_p_value(np.ones(5)) == pytest.approx(1 / 32)
    assert sign_flip_p_value(-np.ones(5)) == pytest.approx(1.0)
    assert sign_flip_p_value(np.zeros(4)) == pytest.approx(1.0)
    assert sign_flip_p_value(np.array([])) == 1.0


def test_monte_carlo_p_values_are_deterministic() -> None:
    d = np.linspace(-0.2, 0.8, 30)  # more pairs than the exact enumeration covers
    p = sign_flip_p_value(d)
    assert p == sign_flip_p_value(d)
    assert 0 < p < 0.05
    a, b = np.ones(6), np.zeros(6)
    assert two_sample_p_value(a, b) == two_sample_p_value(a, b) < 0.01


# ---------------------------------------------------------------------------- nothing compared

# `bandit-bench compare` exits 3 when what OLD checked is not all compared in NEW.
INCOMPLETE = 3


def _edit_summary(folder: Path, model: str, **changes: object) -> None:
    rows = json.loads((folder / "summary.json").read_text())
    edited = [{**r, **changes} if r["model"] == model else r for r in rows]
    (folder / "summary.json").write_text(json.dumps(edited))


def test_a_model_row_missing_in_new_exits_3(
    tmp_path: Path, old_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NEW holds only the reference baseline: the baseline compares, the model does not.
    new = write_report_dir(tmp_path / "new", always_best, model="baseline/ucb")
    assert main(["compare", str(old_dir), str(new)]) == INCOMPLETE
    out = capsys.readouterr().out
    assert f"NOT COMPARED: missing in NEW: {MODEL} x {CONFIG}" in out
    assert "NOT COMPARED: no model x config row (baselines aside) is compared in both folders" in out
    assert "comparison incomplete" in out and "no regression" not in out


def test_an_errored_new_case_exits_3_even_with_its_complete_episodes_compared(
    tmp_path: Path, old_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write_report_dir(tmp_path / "new", always_best, extra={"baseline/ucb": always_best})
    _edit_summary(new, MODEL, errors=2, passed=False)
    assert main(["compare", str(old_dir), str(new)]) == INCOMPLETE
    assert f"NOT COMPARED: {MODEL} x {CONFIG}: 2 episodes errored in NEW" in capsys.readouterr().out


def test_a_new_case_with_no_complete_episode_exits_3(tmp_path: Path, old_dir: Path) -> None:
    new = write_report_dir(tmp_path / "new", always_best, extra={"baseline/ucb": always_best})
    steps = [json.loads(x) for x in (new / "steps.jsonl").read_text().splitlines()]
    kept = [s for s in steps if s["model"] != MODEL or s["t"] < T - 1]  # every episode cut short
    (new / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in kept))
    outcome = compare_dirs(old_dir, new)
    assert outcome.incomplete and not outcome.regressed
    assert outcome.gaps[0] == f"{MODEL} x {CONFIG}: no complete episode in NEW; not compared"
    assert main(["compare", str(old_dir), str(new)]) == INCOMPLETE


def test_no_model_row_in_both_folders_exits_3(tmp_path: Path, old_dir: Path) -> None:
    # Another model beside the same reference baseline: only the baseline overlaps.
    new = write_report_dir(
        tmp_path / "new", always_best, model="sim/other", extra={"baseline/ucb": always_best}
    )
    outcome = compare_dirs(old_dir, new)
    assert [c.model for c in outcome.changes] == ["baseline/ucb"] * 3
    assert outcome.gaps == (
        f"missing in NEW: {MODEL} x {CONFIG}",
        "no model x config row (baselines aside) is compared in both folders",
    )
    assert main(["compare", str(old_dir), str(new)]) == INCOMPLETE


def test_a_regression_outranks_an_incomplete_comparison(tmp_path: Path) -> None:
    def stuck(ep: int, t: int, best: int) -> tuple[int, bool]:
        return (best + 1) % K, True

    old = write_report_dir(tmp_path / "old", always_best, extra={"sim/other": always_best})
    new = write_report_dir(tmp_path / "new", stuck)  # sim/other is missing, MODEL regressed
    assert main(["compare", str(old), str(new)]) == 1


def test_a_run_of_baselines_alone_compares_its_baseline_rows(tmp_path: Path) -> None:
    old = write_report_dir(tmp_path / "old", always_best, model="baseline/ucb")
    outcome = compare_dirs(old, write_report_dir(tmp_path / "new", always_best, model="baseline/ucb"))
    assert not outcome.incomplete and not outcome.regressed
    assert main(["compare", str(old), str(tmp_path / "new")]) == 0


# ---------------------------------------------------------------------------- errors


def test_missing_folder_exits_2_with_what_to_do(
    tmp_path: Path, old_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(old_dir), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope: no such folder" in err and "summary.json" in err and "--report-dir" in err


def test_corrupt_steps_exit_2_with_the_line(
    tmp_path: Path, old_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write_report_dir(tmp_path / "new", always_best)
    with (new / "steps.jsonl").open("a") as fh:
        fh.write('{"model": "x", "config"\n')
    assert main(["compare", str(old_dir), str(new)]) == 2
    err = capsys.readouterr().err
    assert f"line {N * T + 1}: not valid JSON" in err


def test_negative_tolerance_is_refused(old_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(old_dir), str(old_dir), "--tolerance", "-1"]) == 2
    assert "--tolerance: got -1.0; expected a number >= 0" in capsys.readouterr().err


# ---------------------------------------------------------------------------- pytest --compare-to

RUN = ["--model", "baseline/ts", "--bandit-config", "BNRN0-hard-T25", "--episodes", "6", "-p", "no:xdist"]


def test_compare_to_fails_the_session_on_a_regression(bench_project) -> None:
    pytester = bench_project()
    pytester.runpytest(*RUN, "--report-dir", "old").assert_outcomes(passed=1)
    # The same seeds replay the same arms: no regression against itself.
    same = pytester.runpytest(*RUN, "--report-dir", "new", "--compare-to", "old")
    same.assert_outcomes(passed=1)
    assert same.ret == 0
    same.stdout.fnmatch_lines(["*bandit-bench: comparison*", "no regression*"])
    # Make the earlier run look perfect: every pull on the best arm. This run is then worse.
    steps = pytester.path / "old" / "steps.jsonl"
    lines = [json.loads(x) for x in steps.read_text().splitlines()]
    steps.write_text("".join(json.dumps({**s, "arm": s["best_arm"]}) + "\n" for s in lines))
    worse = pytester.runpytest(*RUN, "--report-dir", "new", "--compare-to", "old")
    worse.assert_outcomes(passed=1)
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines(["REGRESSION: baseline/ts x BNRN0-hard-T25: best-arm rate 1.000 -> *"])


def test_both_runs_metadata_side_by_side(
    tmp_path: Path, old_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write_report_dir(tmp_path / "new", always_best, extra={"baseline/ucb": always_best})
    rows = json.loads((new / "summary.json").read_text())
    run = {
        "bandit_bench": "0.2.0",
        "base_url": "http://127.0.0.1:8080/v1",
        "record_mode": "once",
        "seeds": [0],
    }
    (new / "summary.json").write_text(json.dumps({"run": run, "rows": rows}))
    assert main(["compare", str(old_dir), str(new)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The OLD folder predates run metadata: its fields say "unknown"; fields that differ are starred.
    assert lines[3].split() == ["run", "OLD", "NEW"]
    table = {line.split("  ")[0]: line.split() for line in lines[5:17]}
    assert table["bandit-bench"][-3:] == ["unknown", "0.2.0", "*"]
    assert table["base URL"][-3:] == ["unknown", "http://127.0.0.1:8080/v1", "*"]
    assert table["seed"][-3:] == ["unknown", "0", "*"]
    assert table["Python"][-2:] == ["unknown", "unknown"]


def test_compare_to_fails_the_session_when_a_case_of_old_did_not_run(bench_project) -> None:
    pytester = bench_project()
    pytester.runpytest(*RUN, "--report-dir", "old").assert_outcomes(passed=1)
    other = [a if a != "BNRN0-hard-T25" else "BSSC~0-hard-T25" for a in RUN]
    result = pytester.runpytest(*other, "--report-dir", "new", "--compare-to", "old")
    result.assert_outcomes(passed=1)  # the case passed; the gate did not
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["NOT COMPARED: missing in NEW: baseline/greedy x BNRN0-hard-T25, baseline/ts x BNRN0-hard-T25, *"]
    )


# ---------------------------------------------------------------------------- mutation testing (issue 24)


def _stuck_after_two(ep: int, t: int, best: int) -> tuple[int, bool]:
    return (best if t < 2 else (best + 1) % K), True


def _half_valid(ep: int, t: int, best: int) -> tuple[int, bool]:
    return best, t % 2 == 0


def _slips_in_episode_3(ep: int, t: int, best: int) -> tuple[int, bool]:
    return (best if ep != 3 else (best + 1) % K), True


GOLDEN_TABLE = """\
model            config  metric               old    new  change  p(worse)      episodes  verdict
---------------  ------  -----------------  -----  -----  ------  --------  ------------  ----------------------------------
sim/test-model   tiny    format compliance  1.000  1.000  +0.000     1.000             8  unchanged
sim/test-model   tiny    best-arm rate      1.000  0.200  -0.800     0.004             8  REGRESSED
sim/test-model   tiny    SuffFailFreq(T/2)  0.000  1.000  +1.000     0.004             8  REGRESSED
sim/half         tiny    format compliance  1.000  0.500  -0.500     0.004             8  REGRESSED
sim/half         tiny    best-arm rate      1.000  1.000  +0.000     1.000             8  unchanged
sim/half         tiny    SuffFailFreq(T/2)  0.000  0.000  +0.000     1.000             8  unchanged
sim/reseeded     tiny    format compliance  1.000  1.000  +0.000     1.000  8/8 unpaired  unchanged
sim/reseeded     tiny    best-arm rate      1.000  0.875  -0.125     0.501  8/8 unpaired  worse, not significant (p >= 0.05)
sim/reseeded     tiny    SuffFailFreq(T/2)  0.000  0.125  +0.125     0.501  8/8 unpaired  worse, not significant (p >= 0.05)
baseline/greedy  tiny    format compliance  1.000  1.000  +0.000     1.000             8  unchanged
baseline/greedy  tiny    best-arm rate      1.000  0.875  -0.125     0.500             8  worse, not significant (p >= 0.05)
baseline/greedy  tiny    SuffFailFreq(T/2)  0.000  0.125  +0.125     0.500             8  worse, not significant (p >= 0.05)

note: only in OLD (not compared): baseline/old x tiny
note: only in NEW (not compared): sim/new x tiny
note: sim/fresh x tiny: no complete episode in OLD; not compared
note: sim/reseeded x tiny: not paired (seed changed (0 -> 1)); compared as independent samples
note: 2 reference baseline rows unchanged (not shown)

NOT COMPARED: missing in NEW: sim/gone x tiny
REGRESSION: sim/test-model x tiny: best-arm rate 1.000 -> 0.200 (-0.800, worse by more than the tolerance 0.05; one-sided p = 0.004 < 0.05)
REGRESSION: sim/test-model x tiny: SuffFailFreq(T/2) 0.000 -> 1.000 (+1.000, worse by more than the tolerance 0.05; one-sided p = 0.004 < 0.05)
REGRESSION: sim/half x tiny: format compliance 1.000 -> 0.500 (-0.500, worse by more than the tolerance 0.05; one-sided p = 0.004 < 0.05)"""  # noqa: E501


def test_the_comparison_text_of_a_run_with_every_kind_of_row(tmp_path: Path) -> None:
    """What `bandit-bench compare` prints, whole, for one pair of folders holding each case it
    tells apart: regressions (paired), an unpaired case (its seed changed), reference baselines
    unchanged (hidden, counted) and moved (shown), a model row without complete episodes in
    OLD, rows in one folder only, and the paper's published rows (never compared)."""
    both = {"sim/fresh": always_best, "baseline/ucb": always_best, "baseline/ts": always_best}
    old = write_report_dir(
        tmp_path / "old",
        always_best,
        extra={
            **both, "sim/half": always_best, "sim/reseeded": always_best, "baseline/greedy": always_best,
            "sim/gone": always_best, "baseline/old": always_best,
        },
    )  # fmt: skip
    new = write_report_dir(
        tmp_path / "new",
        _stuck_after_two,
        extra={
            **both, "sim/half": _half_valid, "sim/reseeded": _slips_in_episode_3,
            "baseline/greedy": _slips_in_episode_3, "sim/new": always_best,
        },
    )  # fmt: skip
    _edit_summary(new, "sim/reseeded", seed=1)
    steps = (old / "steps.jsonl").read_text().splitlines()
    (old / "steps.jsonl").write_text(
        "".join(s + "\n" for s in steps if json.loads(s)["model"] != "sim/fresh")
    )
    for folder in (old, new):  # a published row (the paper's constants) is in both and never compared
        rows = json.loads((folder / "summary.json").read_text())
        rows.append({**rows[0], "model": "paper/gpt-4o", "kind": "published"})
        (folder / "summary.json").write_text(json.dumps(rows))
    outcome = compare_dirs(old, new)
    lines = outcome.text.split("\n")
    assert lines[:3] == [f"OLD {old}", f"NEW {new}", ""]
    table = lines.index(GOLDEN_TABLE.split("\n")[0])
    assert lines[table - 1] == ""  # the run metadata table, then a blank line
    assert "\n".join(lines[table:]) == GOLDEN_TABLE
    assert outcome.regressed and outcome.incomplete


def test_the_verdict_line_without_a_regression(tmp_path: Path, old_dir: Path) -> None:
    same = compare_dirs(old_dir, old_dir).text.split("\n")
    assert same[-3:] == [
        "note: 1 reference baseline rows unchanged (not shown)",
        "",
        "no regression: no metric got worse by more than 0.05 with one-sided p < 0.05 "
        "(1 model x config compared; 1 reference baseline rows beside them)",
    ]
    alone = write_report_dir(tmp_path / "alone", always_best, model="baseline/ucb")
    assert compare_dirs(alone, alone).text.endswith(
        "\nno regression: no metric got worse by more than 0.05 with one-sided p < 0.05 "
        "(1 model x config compared)"
    )
    two = write_report_dir(tmp_path / "two", always_best, extra={"sim/other": always_best})
    one = write_report_dir(tmp_path / "one", always_best)
    text = compare_dirs(two, one).text.split("\n")
    assert text[-2:] == [
        "NOT COMPARED: missing in NEW: sim/other x tiny",
        "comparison incomplete: what OLD checked is not all checked in NEW (see NOT COMPARED); rerun the "
        "missing cases, or compare with a report of the same models and configs",
    ]
    nothing = write_report_dir(tmp_path / "nothing", always_best, model="sim/else")
    assert "\n(no model x config compared)\n" in compare_dirs(one, nothing).text


@pytest.mark.parametrize(
    ("key", "value", "shown"), [("k", 4, "3 -> 4"), ("delta", 0.4, "0.5 -> 0.4"), ("seed", 1, "0 -> 1")]
)
def test_a_changed_instance_or_seed_is_compared_unpaired_and_says_why(
    tmp_path: Path, old_dir: Path, key: str, value: object, shown: str
) -> None:
    new = write_report_dir(tmp_path / "new", always_best, extra={"baseline/ucb": always_best})
    _edit_summary(new, MODEL, **{key: value})
    outcome = compare_dirs(old_dir, new)
    assert (
        outcome.notes[0]
        == f"{MODEL} x {CONFIG}: not paired ({key} changed ({shown})); compared as independent samples"
    )
    assert {(c.model, c.paired, c.n_old, c.n_new) for c in outcome.changes} == {
        (MODEL, False, 8, 8),
        ("baseline/ucb", True, 8, 8),
    }


def _keep_episodes(folder: Path, keep: Callable[[int], bool]) -> None:
    steps = (folder / "steps.jsonl").read_text().splitlines()
    (folder / "steps.jsonl").write_text("".join(s + "\n" for s in steps if keep(json.loads(s)["episode"])))


def test_pairing_needs_an_episode_index_in_common_and_names_differing_instances(tmp_path: Path) -> None:
    old = write_report_dir(tmp_path / "old", always_best)
    _keep_episodes(old, lambda e: e < 4)
    new = write_report_dir(tmp_path / "new", always_best)
    _keep_episodes(new, lambda e: e >= 4)
    assert compare_dirs(old, new).notes == (
        f"{MODEL} x {CONFIG}: not paired (no episode index in common); compared as independent samples",
    )
    # One episode in common is a pairing, on that one episode.
    _keep_episodes(old, lambda e: e == 3)
    single = compare_dirs(old, write_report_dir(tmp_path / "new2", always_best))
    assert single.notes == (f"{MODEL} x {CONFIG}: paired on 1 episodes (OLD has 1 complete, NEW 8)",)
    # Every best arm moved: the first three such episodes are named.
    moved = write_report_dir(tmp_path / "moved", always_best, best_arm=lambda ep: (ep + 1) % K)
    assert compare_dirs(write_report_dir(tmp_path / "old3", always_best), moved).notes == (
        f"{MODEL} x {CONFIG}: not paired (episode 0, 1, 2: the best arm differs, so the instances are not "
        "the same); compared as independent samples",
    )


def test_the_tolerance_and_alpha_given_are_the_ones_applied(tmp_path: Path) -> None:
    """One episode of 8 newly fails: worse by 0.125 with p = 0.5."""
    old = write_report_dir(tmp_path / "old", always_best)
    new = write_report_dir(tmp_path / "new", _slips_in_episode_3)

    def verdicts(tolerance: float, alpha: float) -> list[str]:
        return [c.verdict for c in compare_dirs(old, new, tolerance=tolerance, alpha=alpha).changes]

    assert verdicts(0.2, 0.6) == ["unchanged", "worse, within tolerance 0.2", "worse, within tolerance 0.2"]
    assert verdicts(0.1, 0.6) == ["unchanged", "REGRESSED", "REGRESSED"]
    assert verdicts(0.1, 0.5) == ["unchanged", *["worse, not significant (p >= 0.5)"] * 2]
    assert verdicts(0.0, 0.6)[1] == "REGRESSED"  # a tolerance of 0 is allowed
    with pytest.raises(
        ValueError, match=r"^tolerance: got -0\.1; expected a number >= 0 \(an absolute change\)$"
    ):
        compare_dirs(old, new, tolerance=-0.1)


# The seeded Monte Carlo p-values, as (1 + hits) / (1 + PERMUTATIONS) with numpy's default_rng(0).
P_D17 = (1 + 9917) / (1 + 20_000)
P_LINSPACE = (1 + 0) / (1 + 20_000)
P_TWO_SAMPLE_6 = (1 + 19) / (1 + 20_000)
P_TWO_SAMPLE_1_2 = (1 + 6578) / (1 + 20_000)
P_TWO_SAMPLE_TIES = (1 + 14034) / (1 + 20_000)


def test_p_values_pinned_exact_and_seeded() -> None:
    # Exact up to 16 pairs: 2^16 sign patterns; ties with the observed mean count as at least as large.
    d16 = np.array([1.0] + [0.0] * 15)
    assert sign_flip_p_value(d16) == 0.5
    assert sign_flip_p_value(np.array([1.0, -1.0, 2.0])) == 0.375  # 3 of the 8 patterns
    # 17 pairs and more: 20,000 sign draws from default_rng(0), counted as (1 + hits) / (1 + 20,000).
    d17 = np.array([1.0] + [0.0] * 16)
    assert sign_flip_p_value(d17) == P_D17
    assert sign_flip_p_value(np.linspace(-0.2, 0.8, 30)) == P_LINSPACE
    # Two samples: 20,000 relabellings from default_rng(0), same counting.
    assert two_sample_p_value(np.ones(6), np.zeros(6)) == P_TWO_SAMPLE_6
    assert two_sample_p_value(np.array([1.0]), np.array([0.0, 0.0])) == P_TWO_SAMPLE_1_2
    assert two_sample_p_value(np.array([1.0, 0.0]), np.array([1.0, 0.0, 0.0])) == P_TWO_SAMPLE_TIES
    assert two_sample_p_value(np.array([]), np.array([1.0])) == 1.0
    assert two_sample_p_value(np.array([1.0]), np.array([])) == 1.0


def test_rows_in_one_folder_only_are_listed_each_in_its_line(tmp_path: Path) -> None:
    old = write_report_dir(
        tmp_path / "old",
        always_best,
        extra={"sim/gone1": always_best, "sim/gone2": always_best, "sim/empty": always_best},
    )
    new = write_report_dir(tmp_path / "new", always_best, extra={"sim/empty": always_best})
    for folder in (old, new):  # sim/empty has a row but no step in either folder
        _keep_model_steps(folder, lambda m: m != "sim/empty")
    outcome = compare_dirs(old, new)
    assert outcome.gaps == (
        "missing in NEW: sim/gone1 x tiny, sim/gone2 x tiny",
        "sim/empty x tiny: no complete episode in OLD and NEW; not compared",
    )
    assert outcome.notes == ()  # no reference row only in OLD, nothing only in NEW
    refs = write_report_dir(
        tmp_path / "refs", always_best, extra={"baseline/a": always_best, "baseline/b": always_best}
    )
    more = write_report_dir(
        tmp_path / "more", always_best, extra={"sim/x": always_best, "sim/y": always_best}
    )
    assert compare_dirs(refs, more).notes == (
        "only in OLD (not compared): baseline/a x tiny, baseline/b x tiny",
        "only in NEW (not compared): sim/x x tiny, sim/y x tiny",
    )


def _keep_model_steps(folder: Path, keep: Callable[[str], bool]) -> None:
    steps = (folder / "steps.jsonl").read_text().splitlines()
    (folder / "steps.jsonl").write_text("".join(s + "\n" for s in steps if keep(json.loads(s)["model"])))


def test_the_compared_count_tells_models_from_reference_rows(tmp_path: Path) -> None:
    two = write_report_dir(
        tmp_path / "two", always_best, extra={"sim/b": always_best, "baseline/ucb": always_best}
    )
    assert compare_dirs(two, two).text.endswith(
        "(2 model x config compared; 1 reference baseline rows beside them)"
    )
    one = write_report_dir(tmp_path / "one", always_best)
    assert compare_dirs(one, one).text.endswith("< 0.05 (1 model x config compared)")
