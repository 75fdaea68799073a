"""The CI gate: a green run means cases ran and held their thresholds; adoption needs no test file."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import QUICK_AND_PICKY_PYPROJECT, record_quick

from bandit_bench.servers.simulator import always, cycle

PYPROJECT = QUICK_AND_PICKY_PYPROJECT
OTHER_TEST = "def test_other():\n    assert True\n"
OWN_BENCH_TEST = "def test_mine(bandit_case):\n    bandit_case.run_and_check()\n"


@pytest.fixture
def project(bench_project) -> pytest.Pytester:
    return bench_project(PYPROJECT)


_record = record_quick


# ---------------------------------------------------------------------------- 1. no case is no pass


def test_a_mistyped_cassette_dir_fails_and_says_where_it_looked(project):
    result = project.runpytest("--cassette-dir=nope")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(
        [
            "bandit-bench: no model x config case ran, so nothing was checked.",
            f"  No --model given, and no recorded model under {project.path / 'nope'} "
            "(the folder does not exist).",
            "  Record a model: OPENROUTER_API_KEY=... pytest --model MODEL --record-mode=once",
            "  Run the classic algorithms (no key, no cassette): pytest --model baseline/ucb",
        ]
    )
    assert "skipped" not in result.stdout.str()  # no "got empty parameter set" pass-for-nothing


def test_an_empty_cassette_folder_from_the_ini_fails(bench_project):
    project = bench_project(PYPROJECT + '\n[tool.pytest.ini_options]\nbandit_cassette_dir = "cassettes"\n')
    (project.path / "cassettes").mkdir()
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(
        ["*no recorded model under */cassettes (it holds no <model>/<config>/NNN.json)*"]
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_k_that_deselects_every_case_fails(project, workers):
    args = ["--model", "baseline/ucb", "--bandit-config", "quick", "-k", "nothing", *workers]
    result = project.runpytest_subprocess(*args) if workers else project.runpytest(*args)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(
        ["*The matrix has 1 cases (baseline/ucb-quick) but none was selected (-k 'nothing').*"]
    )


def test_own_bandit_case_test_with_an_empty_matrix_fails_not_skips(project):
    project.makepyfile(test_mine=OWN_BENCH_TEST)
    result = project.runpytest("test_mine.py", "--cassette-dir=cassettes")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*no model x config case ran, so nothing was checked.*"])


def test_from_a_subdirectory_the_benchmark_still_runs(project):
    sub = project.mkdir("docs")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--model",
            "baseline/ucb",
            "--bandit-config",
            "quick",
            "-p",
            "no:xdist",
        ],
        cwd=sub,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout
    assert (project.path / "reports" / "summary.json").is_file()  # the rootdir's reports/


def test_plain_runs_of_other_tests_gain_no_case_and_no_failure(bench_project):
    # Even with the ini keys set: naming test paths runs those tests, as before.
    project = bench_project(PYPROJECT + '\n[tool.pytest.ini_options]\nbandit_models = ["baseline/ucb"]\n')
    project.makepyfile(test_other=OTHER_TEST)
    result = project.runpytest("test_other.py")
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    assert "= bandit-bench =" not in result.stdout.str()


def test_ini_keys_add_the_benchmark_to_a_plain_run(bench_project):
    project = bench_project(
        PYPROJECT
        + '\n[tool.pytest.ini_options]\nbandit_models = ["baseline/ucb"]\nbandit_configs = ["quick"]\n'
    )
    project.makepyfile(test_other=OTHER_TEST)
    result = project.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            "test_other.py::test_other PASSED*",
            "bandit_bench/plugin/benchmark.py::test_bandit[[]baseline/ucb-quick[]] PASSED*",
        ]
    )


def test_model_option_alone_runs_the_benchmark_not_the_project_tests(project):
    project.makepyfile(test_other=OTHER_TEST)
    result = project.runpytest("--model", "baseline/ucb", "--bandit-config", "quick", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["bandit_bench/plugin/benchmark.py::test_bandit[[]baseline/ucb-quick[]] PASSED*"]
    )


def test_model_option_with_test_paths_runs_both(project):
    project.makepyfile(test_other=OTHER_TEST)
    result = project.runpytest("test_other.py", "--model", "baseline/ucb", "--bandit-config", "quick")
    result.assert_outcomes(passed=2)


def test_an_own_bandit_case_test_replaces_the_shipped_one(project):
    project.makepyfile(test_mine=OWN_BENCH_TEST)
    result = project.runpytest(
        "test_mine.py", "--model", "baseline/ucb,baseline/ts", "--bandit-config", "quick", "-v"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "test_mine.py::test_mine[[]baseline/ucb-quick[]] PASSED*",
            "test_mine.py::test_mine[[]baseline/ts-quick[]] PASSED*",
        ]
    )
    assert "benchmark.py" not in result.stdout.str()


@pytest.mark.parametrize(
    ("markexpr", "outcomes", "shown", "hidden"),
    [
        (
            "bandit_case",
            {"passed": 1, "deselected": 1},
            "*test_bandit[[]baseline/ucb-quick[]] PASSED*",
            "test_other",
        ),
        (
            "not bandit_case",
            {"passed": 1, "deselected": 1},
            "test_other.py::test_other PASSED*",
            "benchmark.py",
        ),
    ],
    ids=["selects-the-benchmark", "excludes-the-benchmark"],
)
def test_the_bandit_case_marker_selects_the_benchmark(bench_project, markexpr, outcomes, shown, hidden):
    # The marker is registered and applied to every case: -m picks the benchmark or leaves it out.
    project = bench_project(
        PYPROJECT
        + '\n[tool.pytest.ini_options]\nbandit_models = ["baseline/ucb"]\nbandit_configs = ["quick"]\n'
    )
    project.makepyfile(test_other=OTHER_TEST)
    result = project.runpytest("-v", "-m", markexpr)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines([shown])
    assert hidden not in result.stdout.str()


# ---------------------------------------------------------------------------- 2. a folder after a space


@pytest.mark.parametrize("flag", ["--report-dir", "--compare-to", "--cassette-dir"])
def test_a_folder_outside_the_project_after_a_space_is_refused(project, flag):
    elsewhere = project.path.parent / f"{project.path.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "test_stray.py").write_text("def test_stray():\n    assert False\n")
    result = project.runpytest("--model", "baseline/ucb", flag, str(elsewhere))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: bandit-bench: {flag} {elsewhere}: pytest reads an existing path after a space as a "
            f"test path*Write it with '=': {flag}={elsewhere}"
        ]
    )
    assert "test_stray" not in result.stdout.str()


def test_the_equals_form_and_a_folder_inside_the_project_work(project):
    elsewhere = project.path.parent / f"{project.path.name}-out"
    elsewhere.mkdir()
    project.mkdir("reports")
    project.runpytest(
        "--model", "baseline/ucb", "--bandit-config", "quick", f"--report-dir={elsewhere}"
    ).assert_outcomes(passed=1)
    assert (elsewhere / "summary.json").is_file()
    # A folder inside the project after a space moves no rootdir: nothing to refuse.
    result = project.runpytest(
        "--model", "baseline/ucb", "--bandit-config", "quick", "--report-dir", "reports"
    )
    result.assert_outcomes(passed=1)


# ---------------------------------------------------------------------------- 4. one line of fact


def test_a_threshold_failure_is_one_line_without_a_traceback(project, simulator):
    sim = simulator(always(0))
    result = project.runpytest(
        "--model", "sim/always", "--bandit-config", "picky", "--base-url", sim.base_url, "--record-mode=once",
        "-vv",  # the summary line whole, not cut at the terminal width
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "sim/always-picky: best-arm rate 0.* < 0.90 (95% CI [[]0.*, 0.*[]]) on 18 steps",
            "FAILED bandit_bench/plugin/benchmark.py::test_bandit[[]sim/always-picky[]] - ThresholdNotMet: "
            "sim/always-picky: best-arm rate 0.00 < 0.90 (95% CI [[]0.00, 0.18[]]) on 18 steps",
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out and "plugin.py" not in out and "def test_bandit" not in out


def test_an_xfail_names_the_metric_and_an_xpass_the_entry_to_remove(project, simulator):
    sim = simulator(always(0))
    project.makefile(
        ".toml", pyproject=PYPROJECT + '\n[tool.bandit_bench.xfail]\n"sim/always" = ["picky", "quick"]\n'
    )
    result = project.runpytest(
        "--model", "sim/always", "--bandit-config", "picky", "--bandit-config", "quick",
        "--base-url", sim.base_url, "--record-mode=once", "-rxX",
    )  # fmt: skip
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            "XFAIL *test_bandit[[]sim/always-picky[]] - declared expected failure: sim/always-picky: "
            "best-arm rate 0.* < 0.90 (95% CI *) on 18 steps",
            "*[[]XPASS(strict)[]] sim/always-quick held its thresholds although declared an expected "
            'failure: remove it from [[]tool.bandit_bench.xfail[]] "sim/always" (the entry "quick") '
            "in pyproject.toml",
        ]
    )


def test_an_xpass_of_a_config_level_declaration_names_xfail_models(bench_project, simulator):
    sim = simulator(always(0))
    project = bench_project(
        PYPROJECT.replace("min_best_arm_rate = 0.0", 'min_best_arm_rate = 0.0\nxfail_models = ["sim/always"]')
    )
    result = project.runpytest(
        "--model", "sim/always", "--bandit-config", "quick", "--base-url", sim.base_url, "--record-mode=once"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ['*remove it from [[]tool.bandit_bench.configs."quick"[]] xfail_models (the entry "sim/always")*']
    )


# ---------------------------------------------------------------------------- 5. --junitxml


def test_junitxml_holds_a_few_plain_properties_per_case(project):
    # Three cases at T = 25 (5 episodes each): the steps stay in steps.jsonl, out of the XML.
    result = project.runpytest(
        "--model", "baseline/ucb,baseline/ts,baseline/greedy", "--bandit-config", "BNRN0-hard-T25",
        "--junitxml=junit.xml",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    xml = project.path / "junit.xml"
    assert xml.stat().st_size < 8_000
    cases = ET.parse(xml).getroot().iter("testcase")
    props = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert [p["model"] for p in props] == ["baseline/ucb", "baseline/ts", "baseline/greedy"]
    assert set(props[0]) == {
        "model", "config", "verdict", "format_compliance", "best_arm_rate", "suffix_failure_freq",
        "k_min_frac", "episodes", "steps", "tokens", "cost_usd",
    }  # fmt: skip
    assert {p["verdict"] for p in props} == {"pass"}
    assert props[0]["episodes"] == "5" and props[0]["steps"] == "125" and props[0]["tokens"] == "0"
    assert float(props[0]["format_compliance"]) == 1.0
    assert 0 <= float(props[0]["best_arm_rate"]) <= 1


# ---------------------------------------------------------------------------- 6. --block-network


def test_block_network_replays_and_refuses_to_record(project, simulator):
    sim = simulator(cycle())
    refused = _record(project, sim.base_url, "--block-network")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["ERROR: bandit-bench: --block-network with --record-mode=once: *requests to "
         f"{sim.base_url} for sim/cycle could not be recorded. Record without --block-network, then "
         "replay with it: --record-mode=none --block-network"]
    )  # fmt: skip
    assert sim.calls == 0
    _record(project, sim.base_url).assert_outcomes(passed=1)
    replay = project.runpytest("--model", "sim/cycle", "--bandit-config", "quick", "--block-network")
    replay.assert_outcomes(passed=1)
    assert "Traceback" not in replay.stdout.str()


# ---------------------------------------------------------------------------- 7. shipped benchmark


def test_the_installed_package_runs_the_benchmark_in_an_empty_folder(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--model", "baseline/ucb", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "= bandit-bench =" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]  # nothing to write first
    assert (tmp_path / "reports" / "summary.json").is_file()
