"""The plugin driven from outside, as a user's project would: record, replay offline, fail well."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import QUICK_AND_PICKY_PYPROJECT, record_quick

from bandit_bench.servers.simulator import always, cycle

PYPROJECT = QUICK_AND_PICKY_PYPROJECT


@pytest.fixture
def project(bench_project) -> pytest.Pytester:
    return bench_project(PYPROJECT)


_record = record_quick


def test_record_then_replay_offline_gives_the_same_decisions(project, simulator):
    sim = simulator(cycle())
    _record(project, sim.base_url).assert_outcomes(passed=1)
    assert sim.calls == 3 * 6
    cassettes = sorted(p.relative_to(project.path).as_posix() for p in project.path.rglob("*.json"))
    assert [c for c in cassettes if c.startswith("cassettes/")] == [
        "cassettes/sim/cycle/quick/000.json",
        "cassettes/sim/cycle/quick/001.json",
        "cassettes/sim/cycle/quick/002.json",
        "cassettes/sim/cycle/quick/manifest.json",
    ]
    recorded = (project.path / "reports" / "steps.jsonl").read_text()
    sim.stop()
    # Replay: default record mode 'none', an unreachable base URL, no key.
    result = project.runpytest(
        "--model", "sim/cycle", "--bandit-config", "quick", "--base-url", "http://127.0.0.1:9/v1"
    )
    result.assert_outcomes(passed=1)
    assert (project.path / "reports" / "steps.jsonl").read_text() == recorded
    # cycle answers arm (rounds played mod K): the decisions are exactly 0..4, 0.
    arms = [json.loads(line)["arm"] for line in recorded.splitlines() if '"sim/cycle"' in line]
    assert arms[:6] == [0, 1, 2, 3, 4, 0]
    # Per config its models, then the reference rows of its instance, named by their configs.
    result.stdout.fnmatch_lines(
        [
            "*bandit-bench*",
            "-- quick (*",
            "sim/cycle *pass",
            "-- reference algorithms (*), the instances of quick",
            "baseline/ucb *reference",
        ]
    )


def test_item_ids_are_model_dash_config(project):
    result = project.runpytest(
        "--collect-only", "-q", "--model", "openai/gpt-4o-mini,baseline/ucb", "--bandit-config", "quick"
    )
    result.stdout.fnmatch_lines(
        [
            "bandit_bench/plugin/benchmark.py::test_bandit[openai/gpt-4o-mini-quick]",
            "bandit_bench/plugin/benchmark.py::test_bandit[baseline/ucb-quick]",
        ]
    )


def test_missing_cassette_fails_fast_with_the_record_command(project, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = project.runpytest("--model", "openai/gpt-4o-mini", "--bandit-config", "quick")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # The same fault in the 3 episodes: one message, with the episode numbers.
    assert "episodes 0, 1, 2: cassette " in out
    assert "cassettes/openai/gpt-4o-mini/quick/<episode>.json does not exist" in out
    assert "--record-mode=once" in out and "OPENROUTER_API_KEY" in out
    assert "Traceback" not in out


def test_stale_cassette_after_a_prompt_change_names_file_and_step(project, simulator):
    sim = simulator(always(0))
    _record(project, sim.base_url).assert_outcomes(passed=1)
    # The same config name now renders another prompt (summarized history): recorded answers are stale.
    project.makefile(".toml", pyproject=PYPROJECT.replace('design = "BNRN0"', 'design = "BNSN0"'))
    result = project.runpytest("--model", "sim/cycle", "--bandit-config", "quick")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "episodes 0, 1, 2: step 1 of 6: cassette " in out
    assert "quick/<episode>.json has no recorded answer" in out
    # 'once' would replay the same stale file: the advice is to rewrite it.
    assert "step 1 of 6" in out
    # From the endpoint the folder was recorded from (its manifest), not OpenRouter (issue 20).
    assert (
        "To record it again: pytest --model sim/cycle --bandit-config 'quick' --record-mode=rewrite " in out
    )
    assert f" --base-url={sim.base_url} (with the server running" in out
    assert "OPENROUTER_API_KEY" not in out


def test_horizon_override_is_its_own_case_with_its_own_cassettes(project, simulator):
    sim = simulator(cycle())
    _record(project, sim.base_url).assert_outcomes(passed=1)
    # A longer horizon is another instance: it must neither replay nor overwrite the T = 6 files.
    result = project.runpytest("--model", "sim/cycle", "--bandit-config", "quick", "--horizon", "4")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_bandit?sim/cycle-quick-T4?*",
            "*episodes 0, 1, 2: cassette *cassettes/sim/cycle/quick-T4/<episode>.json does not exist*"
            "--bandit-config 'quick' --horizon 4 "
            "--record-mode=once*",
        ]
    )
    project.runpytest(
        "--model",
        "sim/cycle",
        "--bandit-config",
        "quick",
        "--horizon",
        "4",
        "--base-url",
        sim.base_url,
        "--record-mode=once",
    ).assert_outcomes(passed=1)
    assert sorted(p.parent.name for p in (project.path / "cassettes").rglob("000.json")) == [
        "quick",
        "quick-T4",
    ]


def test_compare_to_the_report_folder_itself_is_refused(project, simulator):
    sim = simulator(cycle())
    _record(project, sim.base_url).assert_outcomes(passed=1)
    result = project.runpytest("--model", "sim/cycle", "--bandit-config", "quick", "--compare-to", "reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--compare-to: got 'reports'; expected a folder other than --report-dir*"])


def test_progress_lines_while_recording_only(project, simulator):
    sim = simulator(cycle())
    recorded = _record(project, sim.base_url)
    recorded.stderr.fnmatch_lines(
        ["[[]bandit-bench[]] sim/cycle x quick: 18/18 steps (18 recorded, 0 replayed)"]
    )
    recorded.stdout.fnmatch_lines(["requests: 18 recorded, 0 replayed (record mode once)"])
    replayed = project.runpytest("--model", "sim/cycle", "--bandit-config", "quick")
    assert "steps" not in replayed.stderr.str()
    replayed.stdout.fnmatch_lines(["requests: 0 recorded, 18 replayed (record mode none)"])
    # Under once a case that replays entirely prints no per-step progress: nothing is paid for.
    again = project.runpytest("--model", "sim/cycle", "--bandit-config", "quick", "--record-mode=once")
    assert "steps" not in again.stderr.str()
    again.stdout.fnmatch_lines(["requests: 0 recorded, 18 replayed (record mode once)"])


def test_threshold_failure_reports_value_interval_threshold_and_episodes(project, simulator):
    sim = simulator(always(0))
    result = project.runpytest(
        "--model", "sim/always", "--bandit-config", "picky", "--base-url", sim.base_url, "--record-mode=once"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*best-arm rate 0.* < 0.90 (95% CI [[]0.*, 0.*[]]) on 18 steps*"])


def test_declared_expected_failure_is_a_strict_xfail(project, simulator):
    sim = simulator(always(0))
    project.makefile(
        ".toml", pyproject=PYPROJECT + '\n[tool.bandit_bench.xfail]\n"sim/always" = ["picky", "quick"]\n'
    )
    result = project.runpytest(
        "--model",
        "sim/always",
        "--bandit-config",
        "picky",
        "--bandit-config",
        "quick",
        "--base-url",
        sim.base_url,
        "--record-mode=once",
    )
    # picky falls short as declared (xfail); quick passes although declared: strict XPASS fails.
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_bandit?sim/always-quick?*", "*XPASS(strict)*"])


def test_without_model_the_cases_are_what_the_cassettes_hold(project, simulator):
    sim = simulator(cycle())
    _record(project, sim.base_url).assert_outcomes(passed=1)
    result = project.runpytest("--collect-only", "-q", "--cassette-dir=cassettes")
    result.stdout.fnmatch_lines(["bandit_bench/plugin/benchmark.py::test_bandit[sim/cycle-quick]"])
    # A project's own bandit_case test, with no option at all, runs the recorded cases too.
    project.makepyfile(test_bench_case="def test_bandit(bandit_case):\n    bandit_case.run_and_check()\n")
    result = project.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert result.stdout.lines[0] == "test_bench_case.py::test_bandit[sim/cycle-quick]"


def test_xdist_and_serial_runs_write_identical_reports(project, simulator, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the run metadata's date
    sim = simulator(cycle())
    project.makefile(
        ".toml",
        pyproject=PYPROJECT + '\n[tool.bandit_bench.configs.quick2]\ndesign = "BSSC~0"\n'
        'instance = "easy"\nhorizon = 5\nepisodes = 2\n',
    )
    args = [
        "--model",
        "sim/cycle,baseline/ts",
        "--bandit-config",
        "quick",
        "--bandit-config",
        "quick2",
        "--base-url",
        sim.base_url,
        "--record-mode=once",
    ]
    project.runpytest_subprocess(*args, "-n", "2").assert_outcomes(passed=4)
    reports = project.path / "reports"
    first = {p.name: p.read_bytes() for p in reports.iterdir()}
    shutil.rmtree(reports)
    # Recorded again, so that the run metadata's request counts match too.
    shutil.rmtree(project.path / "cassettes")
    project.runpytest(*args, "-p", "no:xdist").assert_outcomes(passed=4)
    second = {p.name: p.read_bytes() for p in reports.iterdir()}
    assert first.keys() == second.keys() >= {"summary.csv", "summary.json", "steps.jsonl", "report.md"}
    assert first == second


def test_report_columns_other_tools_read(project, simulator):
    sim = simulator(cycle())
    _record(project, sim.base_url).assert_outcomes(passed=1)
    document = json.loads((project.path / "reports" / "summary.json").read_text())
    assert {"bandit_bench", "base_url", "record_mode", "seeds", "git_commit"} <= document["run"].keys()
    rows = document["rows"]
    required = {
        "model",
        "config",
        "episodes",
        "steps",
        "format_compliance",
        "best_arm_rate",
        "best_arm_rate_second_half",
        "suffix_failure_freq",
        "k_min_frac",
        "greedy_frac",
        "median_reward",
        "mean_regret",
        "prompt_tokens",
        "completion_tokens",
        "passed",
    }
    assert required <= rows[0].keys()
    assert [(r["model"], r["steps"]) for r in rows] == [
        ("sim/cycle", 18),
        ("baseline/greedy", 18),
        ("baseline/greedy (N=1000)", 6000),
        ("baseline/ts", 18),
        ("baseline/ts (N=1000)", 6000),
        ("baseline/ucb", 18),
        ("baseline/ucb (N=1000)", 6000),
    ]
    step = json.loads((project.path / "reports" / "steps.jsonl").read_text().splitlines()[0])
    assert {"model", "config", "episode", "t", "arm", "reward", "valid", "raw"} <= step.keys()


def test_options_have_ini_twins(project, simulator):
    sim = simulator(cycle())
    project.makefile(
        ".toml",
        pyproject=PYPROJECT
        + f"""
[tool.pytest.ini_options]
bandit_models = ["sim/cycle"]
bandit_configs = ["quick"]
bandit_base_url = "{sim.base_url}"
bandit_cassette_dir = "recorded"
bandit_report_dir = "out"
""",
    )
    project.runpytest("--record-mode=once").assert_outcomes(passed=1)
    assert (project.path / "recorded" / "sim" / "cycle" / "quick" / "000.json").is_file()
    assert (project.path / "out" / "summary.csv").is_file()


def test_plugin_leaves_other_tests_alone(pytester: pytest.Pytester):
    pytester.makepyfile(test_other="def test_ok():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "= bandit-bench =" not in result.stdout.str()
    assert not Path(pytester.path, "reports").exists()


def test_works_beside_pytest_recording_and_without_it(project, simulator):
    sim = simulator(cycle())
    _record(project, sim.base_url).assert_outcomes(passed=1)
    # pytest-recording owns --record-mode; with it disabled the plugin replays (mode 'none').
    result = project.runpytest("--model", "sim/cycle", "--bandit-config", "quick", "-p", "no:recording")
    result.assert_outcomes(passed=1)
    help_text = project.runpytest("--help").stdout.str()
    assert help_text.count("--record-mode") == 1 and "--bandit-config" in help_text


def test_paper_config_shows_the_papers_published_rows(project):
    # baseline/greedy needs no HTTP; BNRN0-hard-T100 is one of the paper's configs (Figure 11(a)).
    result = project.runpytest(
        "--model", "baseline/greedy", "--bandit-config", "BNRN0-hard-T100", "--episodes", "2"
    )
    result.assert_outcomes(failed=1)  # greedy misses the 0.4 best-arm threshold on these two episodes
    result.stdout.fnmatch_lines(
        [
            "*bandit-bench*",
            "-- BNRN0-hard-T100 (*",
            "paper/gpt-3.5 (N=20) *-*-*0.50*0.16*0.30*0.22*-*-*-*published",
            "paper/gpt-4 (N=10) *-*-*0.50*0.03*0.52*0.63*-*-*-*published",
            "paper/llama-2-13b (N=10) *-*-*0.90*0.00*1.00*-0.05*-*-*-*published",
            "-- reference algorithms (K=5 delta=0.2 T=100 N=2 seed 0), the instances of BNRN0-hard-T100",
            "baseline/greedy *reference",
        ]
    )
    rows = json.loads((project.path / "reports" / "summary.json").read_text())["rows"]
    published = [r for r in rows if r["kind"] == "published"]
    assert [(r["model"], r["source"]) for r in published] == [
        ("paper/gpt-3.5", "Figure 12, row BNRN0"),
        ("paper/gpt-4", "Figure 11(a), row BNRN0"),
        ("paper/llama-2-13b", "Figure 16, row BNRN0"),
    ]
