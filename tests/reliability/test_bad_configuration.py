"""Bad configuration stops the run at collection: ``pytest.UsageError`` (exit code 4) whose one
line names the field, the value received and the allowed values. Never a traceback, never a run
that quietly collects nothing. Outside pytest the library raises the same ``SpecError``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bandit_bench.core.specs import BUILTIN_CONFIGS, SUITES, SpecError
from bandit_bench.plugin.settings import load_settings
from bandit_bench.running.runner import RunOptions, run_case, validate_model

CODE = (
    "a five-part code: scenario B|A, framing N|S, history R|S, chain of thought N|C|C~ (ASCII: Ct), "
    "output 0|1|D; e.g. BNRN0 or BSSC~0"
)
CONFIG_KEYS = (
    "['constrained', 'delta', 'design', 'episodes', 'horizon', 'instance', 'k', 'min_best_arm_rate', "
    "'min_format_compliance', 'seed', 'xfail_models']"
)
BASELINES = "baseline/ucb, baseline/ts, baseline/greedy, baseline/eps_greedy, baseline/uniform"
NO_SPACES = "a model id such as openai/gpt-4o-mini or baseline/ucb (no spaces)"
NO_EMPTY_ENTRY = "comma-separated model ids with no empty entry"
BAD = "[tool.bandit_bench.configs.'bad']"

# id -> (lines of a [tool.bandit_bench.configs.bad] table, the message after "bandit-bench: ")
BAD_CONFIG_TABLES: dict[str, tuple[str, str]] = {
    "unknown-design-letter": ('design = "XNRN0"', f"{BAD}.design: got 'XNRN0'; expected {CODE}"),
    "unknown-output": ('design = "BNRN2"', f"{BAD}.design: got 'BNRN2'; expected {CODE}"),
    "design-not-a-string": ("design = 5", f"{BAD}.design: got 5; expected {CODE}"),
    "missing-design": (
        "horizon = 5",
        f"{BAD}.design: got nothing; expected a design code such as BNRN0 or BSSC~0",
    ),
    "k-1": ('design = "BNRN0"\nk = 1', f"{BAD}.k: got 1; expected an integer >= 2"),
    "k-0": ('design = "BNRN0"\nk = 0', f"{BAD}.k: got 0; expected an integer >= 2"),
    "k-float": ('design = "BNRN0"\nk = 4.5', f"{BAD}.k: got 4.5; expected an integer >= 2"),
    "delta-0": ('design = "BNRN0"\ndelta = 0', f"{BAD}.delta: got 0; expected a number in (0, 1), exclusive"),
    "delta-1": (
        'design = "BNRN0"\ndelta = 1.0',
        f"{BAD}.delta: got 1.0; expected a number in (0, 1), exclusive",
    ),
    "delta-negative": (
        'design = "BNRN0"\ndelta = -0.2',
        f"{BAD}.delta: got -0.2; expected a number in (0, 1), exclusive",
    ),
    "delta-nan": ('design = "BNRN0"\ndelta = nan', f"{BAD}.delta: got nan; expected a number in (0, 1)"),
    "delta-string": (
        'design = "BNRN0"\ndelta = "0.2"',
        f"{BAD}.delta: got '0.2'; expected a number in (0, 1)",
    ),
    "format-threshold-above-1": (
        'design = "BNRN0"\nmin_format_compliance = 1.5',
        f"{BAD}.min_format_compliance: got 1.5; expected a number in [0, 1]",
    ),
    "format-threshold-negative": (
        'design = "BNRN0"\nmin_format_compliance = -0.1',
        f"{BAD}.min_format_compliance: got -0.1; expected a number in [0, 1]",
    ),
    "format-threshold-nan": (
        'design = "BNRN0"\nmin_format_compliance = nan',
        f"{BAD}.min_format_compliance: got nan; expected a number in [0, 1]",
    ),
    "best-arm-threshold-above-1": (
        'design = "BNRN0"\nmin_best_arm_rate = 2',
        f"{BAD}.min_best_arm_rate: got 2; expected a number in [0, 1]",
    ),
    "best-arm-threshold-bool": (
        'design = "BNRN0"\nmin_best_arm_rate = true',
        f"{BAD}.min_best_arm_rate: got True; expected a number in [0, 1]",
    ),
    "unknown-instance": (
        'design = "BNRN0"\ninstance = "medium"',
        f"{BAD}.instance: got 'medium'; expected one of ['easy', 'hard']",
    ),
    "instance-and-k": (
        'design = "BNRN0"\ninstance = "hard"\nk = 3',
        f"{BAD}.k/delta: got 3; expected either 'instance' or 'k' and 'delta', not both",
    ),
    "horizon-0": ('design = "BNRN0"\nhorizon = 0', f"{BAD}.horizon: got 0; expected an integer >= 1"),
    "episodes-0": ('design = "BNRN0"\nepisodes = 0', f"{BAD}.episodes: got 0; expected an integer >= 1"),
    "unknown-key": (
        'design = "BNRN0"\ntemperature = 0',
        f"{BAD} key: got 'temperature'; expected one of {CONFIG_KEYS}",
    ),
    "constrained-not-bool": (
        'design = "BNRN0"\nconstrained = "yes"',
        f"{BAD}.constrained: got 'yes'; expected true or false",
    ),
    "constrained-distribution": (
        'design = "BNRND"\nconstrained = true',
        f"{BAD}.constrained: got True; expected false for distribution (D) designs",
    ),
    # accepted before, then failed at run time
    "k-above-the-button-colours": (
        'design = "BNRN0"\nk = 21\ndelta = 0.2',
        f"{BAD}.k: got 21; expected an integer <= 20: scenario B has 20 button colours",
    ),
    "k-above-the-advertisement-letters": (
        'design = "ANRN0"\nk = 27\ndelta = 0.2',
        f"{BAD}.k: got 27; expected an integer <= 26: scenario A has 26 advertisement letters",
    ),
    "horizon-too-large-to-draw": (
        'design = "BNRN0"\ninstance = "hard"\nhorizon = 2000001',
        f"{BAD}.horizon: got 2000001; expected an integer <= 2000000 with k = 5. An episode's reward "
        "table (horizon x k draws) is drawn whole before its first step; at most 10,000,000 draws, "
        "about 90 MB",
    ),
}

# id -> (whole pyproject.toml, the message after "bandit-bench: ")
BAD_TABLES: dict[str, tuple[str, str]] = {
    "table-is-a-number": ("[tool]\nbandit_bench = 3\n", "[tool.bandit_bench]: got 3; expected a table"),
    "table-is-a-string": ('[tool]\nbandit_bench = "x"\n', "[tool.bandit_bench]: got 'x'; expected a table"),
    "misspelt-subtable": (
        "[tool.bandit_bench.config.x]\ndesign = 'BNRN0'\n",
        "[tool.bandit_bench] key: got 'config'; expected one of ['configs', 'models', 'prices', 'xfail']",
    ),
    "configs-is-a-list": (
        "[tool.bandit_bench]\nconfigs = [1, 2]\n",
        "[tool.bandit_bench].configs: got [1, 2]; expected a table of named configs",
    ),
    "config-is-a-number": (
        "[tool.bandit_bench.configs]\nbad = 3\n",
        f"{BAD}: got 3; expected a table of config fields",
    ),
    "xfail-unknown-config": (
        '[tool.bandit_bench.xfail]\n"sim/x" = ["nope"]\n',
        "[tool.bandit_bench].xfail.'sim/x': got 'nope'; expected one of the configs "
        f"{sorted(BUILTIN_CONFIGS)}",
    ),
    "negative-price": (
        '[tool.bandit_bench.prices]\n"sim/x" = { prompt = -1, completion = 1 }\n',
        "[tool.bandit_bench].prices.'sim/x'.prompt: got -1; "
        "expected USD per 1M prompt tokens (a number >= 0)",
    ),
    "ini-concurrency-not-a-number": (
        '[tool.pytest.ini_options]\nbandit_concurrency = "eight"\n',
        "[tool.pytest.ini_options] bandit_concurrency: got 'eight'; expected an integer",
    ),
}

# id -> (command line, the message after "bandit-bench: ")
BAD_OPTIONS: dict[str, tuple[list[str], str]] = {
    "format-threshold-above-1": (
        ["--min-format-compliance", "1.5"],
        "--min-format-compliance: got 1.5; expected a number in [0.0, 1.0]",
    ),
    "format-threshold-negative": (
        ["--min-format-compliance=-0.01"],
        "--min-format-compliance: got -0.01; expected a number in [0.0, 1.0]",
    ),
    "format-threshold-nan": (
        ["--min-format-compliance", "nan"],
        "--min-format-compliance: got nan; expected a number in [0.0, 1.0]",
    ),
    "best-arm-threshold-above-1": (
        ["--min-best-arm-rate", "1.01"],
        "--min-best-arm-rate: got 1.01; expected a number in [0.0, 1.0]",
    ),
    "unknown-baseline": (
        ["--model", "baseline/foo"],
        f"--model: got 'baseline/foo'; expected one of {BASELINES} for a baseline",
    ),
    "baseline-in-a-list": (
        ["--model", "sim/x,baseline/thompson"],
        f"--model: got 'baseline/thompson'; expected one of {BASELINES} for a baseline",
    ),
    "empty-model": (["--model", ""], f"--model: got ''; expected {NO_EMPTY_ENTRY}"),
    "blank-model": (["--model", "  "], f"--model: got '  '; expected {NO_EMPTY_ENTRY}"),
    "empty-list-entry": (["--model", "a,,b"], f"--model: got 'a,,b'; expected {NO_EMPTY_ENTRY}"),
    "trailing-comma": (
        ["--model", "openai/gpt-4o-mini,"],
        f"--model: got 'openai/gpt-4o-mini,'; expected {NO_EMPTY_ENTRY}",
    ),
    "leading-space": (["--model", " x"], f"--model: got ' x'; expected {NO_SPACES}"),
    "space-after-comma": (["--model", "a/b, c/d"], f"--model: got ' c/d'; expected {NO_SPACES}"),
    "inner-space": (["--model", "openai/gpt 4o"], f"--model: got 'openai/gpt 4o'; expected {NO_SPACES}"),
    "tab": (["--model", "openai/gpt\t4o"], f"--model: got 'openai/gpt\\t4o'; expected {NO_SPACES}"),
    "empty-provider": (
        ["--model", "/gpt-4o-mini"],
        "--model: got '/gpt-4o-mini'; expected provider/name, e.g. openai/gpt-4o-mini (no empty parts)",
    ),
    "empty-name": (
        ["--model", "openai/"],
        "--model: got 'openai/'; expected provider/name, e.g. openai/gpt-4o-mini (no empty parts)",
    ),
    "double-slash": (
        ["--model", "openai//gpt"],
        "--model: got 'openai//gpt'; expected provider/name, e.g. openai/gpt-4o-mini (no empty parts)",
    ),
    "unknown-config-with-model": (
        ["--model", "sim/x", "--bandit-config", "BNRN0-hardest-T25"],
        f"--bandit-config: got 'BNRN0-hardest-T25'; expected one of the {len(BUILTIN_CONFIGS)} configs that "
        "`bandit-bench configs` lists (or add [tool.bandit_bench.configs.NAME]). Did you mean BNRN0-hard-T25 "
        f"or BNRN0-hard-T500 or BNRN0-easy-T25? Or a suite ({', '.join(SUITES)}) or a shell pattern "
        "such as 'BS*-hard-T100', or a config with another horizon such as BNRN0-hard-T30",
    ),
    "ambiguous-override-config": (
        # -T26 can come from -T25 or from -T100 (with --horizon 26): they differ in N and thresholds.
        ["--model", "sim/x", "--bandit-config", "BNRN0-hard-T26"],
        "--bandit-config: got 'BNRN0-hard-T26'; expected a config name that says which config it was "
        "made from. BNRN0-hard-T26 can be made from several configs: ask for it as --bandit-config "
        "'BNRN0-hard-T100' --horizon 26 or --bandit-config 'BNRN0-hard-T500' --horizon 26 or "
        "--bandit-config 'BNRN0-hard-T25' --horizon 26",
    ),
    "pattern-matching-nothing": (
        ["--model", "sim/x", "--bandit-config", "BX*-hard-T100"],
        f"--bandit-config: got 'BX*-hard-T100'; expected a pattern matching at least one of the "
        f"{len(BUILTIN_CONFIGS)} configs that `bandit-bench configs` lists. Patterns are case-sensitive "
        "shell patterns (* ? [...]); "
        "quote them in the shell",
    ),
    "unknown-config-without-model": (
        ["--bandit-config", "nope"],
        f"--bandit-config: got 'nope'; expected one of the {len(BUILTIN_CONFIGS)} configs that "
        "`bandit-bench configs` lists (or add [tool.bandit_bench.configs.NAME]). Or a suite "
        f"({', '.join(SUITES)}) or a shell pattern "
        "such as 'BS*-hard-T100', or a config with another horizon such as BNRN0-hard-T30",
    ),
    "episodes-0": (["--model", "sim/x", "--episodes", "0"], "--episodes: got 0; expected a number >= 1"),
    "horizon-0": (["--model", "sim/x", "--horizon", "0"], "--horizon: got 0; expected a number >= 1"),
    "concurrency-0": (["--concurrency", "0"], "--concurrency: got 0; expected a number >= 1"),
    "max-retries-negative": (["--max-retries", "-1"], "--max-retries: got -1; expected a number >= 0"),
    "request-timeout-0": (
        ["--request-timeout", "0"],
        "--request-timeout: got 0.0; expected a number in [0.001, 86400.0]",
    ),
    "request-timeout-nan": (
        ["--request-timeout", "nan"],
        "--request-timeout: got nan; expected a number in [0.001, 86400.0]",
    ),
    # these overflowed a socket timeout (OverflowError) at the first request
    "request-timeout-inf": (
        ["--request-timeout", "inf"],
        "--request-timeout: got inf; expected a number in [0.001, 86400.0]",
    ),
    "request-timeout-1e300": (
        ["--request-timeout", "1e300"],
        "--request-timeout: got 1e+300; expected a number in [0.001, 86400.0]",
    ),
    "max-rps-0": (["--max-rps", "0"], "--max-rps: got 0.0; expected a number >= 0.001"),
}


def _assert_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"ERROR: bandit-bench: {message}" in result.stderr.lines, err
    output = result.stdout.str() + err
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "collected" not in output  # stopped before collection


@pytest.fixture
def project(bench_project) -> pytest.Pytester:
    return bench_project()


@pytest.mark.parametrize("case", list(BAD_CONFIG_TABLES))
def test_a_bad_config_table_is_a_usage_error(project: pytest.Pytester, case: str) -> None:
    lines, message = BAD_CONFIG_TABLES[case]
    project.makefile(".toml", pyproject=f"[tool.bandit_bench.configs.bad]\n{lines}\n")
    # The config need not even be selected: a broken table stops every run of the project.
    _assert_usage_error(project.runpytest("--model", "sim/x", "--collect-only"), message)


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_an_unreadable_project_table_is_a_usage_error(project: pytest.Pytester, case: str) -> None:
    text, message = BAD_TABLES[case]
    project.makefile(".toml", pyproject=text)
    _assert_usage_error(project.runpytest("--model", "sim/x", "--collect-only"), message)


def test_broken_toml_is_a_usage_error_naming_the_file(project: pytest.Pytester) -> None:
    path = project.makefile(".toml", pyproject="[tool.bandit_bench.configs.x]\ndesign = BNRN0\n")
    result = project.runpytest("--model", "sim/x", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # pytest reads pyproject.toml first, and says which file and where.
    result.stderr.fnmatch_lines([f"ERROR: {path}: Invalid value (at line 2, column 10)"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_broken_toml_outside_pytest_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.bandit_bench.configs.x]\ndesign = BNRN0\n")
    with pytest.raises(SpecError) as info:
        load_settings(path)
    assert str(info.value) == (
        f"{path}: got 'TOMLDecodeError'; expected a readable TOML file (Invalid value (at line 2, column 10))"
    )


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_a_bad_option_is_a_usage_error(project: pytest.Pytester, case: str) -> None:
    args, message = BAD_OPTIONS[case]
    project.makefile(".toml", pyproject="")
    _assert_usage_error(project.runpytest(*args, "--collect-only"), message)


def test_an_unknown_record_mode_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest("--model", "sim/x", "--record-mode", "sometimes", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*argument --record-mode: invalid choice: 'sometimes' "
            "(choose from 'once', 'new_episodes', 'none', 'all', 'rewrite')"
        ]
    )


@pytest.mark.parametrize(
    "model",
    [
        "someprovider/some-model",
        "meta-llama/llama-3.1-8b-instruct:free",
        "local-model",
        "org/team/model-v2.5",
        "baseline/ucb",
    ],
)
def test_any_provider_name_is_a_model(project: pytest.Pytester, model: str) -> None:
    project.makefile(".toml", pyproject="")
    result = project.runpytest("--model", model, "--bandit-config", "BNRN0-hard-T25", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(
        [f"bandit_bench/plugin/benchmark.py::test_bandit[[]{model}-BNRN0-hard-T25[]]"]
    )


def test_outside_pytest_the_library_raises_the_same_errors() -> None:
    with pytest.raises(SpecError, match=r"^--model: got 'baseline/foo'; expected one of baseline/ucb"):
        run_case("baseline/foo", BUILTIN_CONFIGS["BNRN0-hard-T25"], RunOptions())
    for bad in ("", " x", "a b", "a//b", "/a", "a/"):
        with pytest.raises(SpecError) as info:
            validate_model(bad)
        assert info.value.field == "--model" and info.value.value == bad
    assert validate_model("someprovider/some-model") == "someprovider/some-model"


def test_outside_pytest_values_that_would_fail_at_run_time_are_refused_up_front() -> None:
    """k beyond a scenario's names, a horizon whose reward table cannot be drawn, a timeout
    that overflows a socket: each refused where it is given, not in the middle of a run."""
    from bandit_bench.core.prompts import BUTTON_COLOURS, arm_names
    from bandit_bench.core.specs import ARM_NAME_COUNTS, CaseConfig, DesignSpec, InstanceSpec

    assert ARM_NAME_COUNTS == {"B": len(BUTTON_COLOURS), "A": len(arm_names("A", 26))}
    assert CaseConfig("ok", DesignSpec.parse("BNRN0"), InstanceSpec(k=20, delta=0.2, horizon=5))
    with pytest.raises(SpecError, match=r"^k: got 21; expected an integer <= 20"):
        CaseConfig("bad", DesignSpec.parse("BNRN0"), InstanceSpec(k=21, delta=0.2, horizon=5))
    with pytest.raises(SpecError, match=r"^horizon: got 10000000; expected an integer <= 5000000 with k = 2"):
        InstanceSpec(k=2, delta=0.2, horizon=10_000_000)
    for timeout in (float("inf"), 1e300, 0, float("nan"), -1):
        with pytest.raises(SpecError, match=r"^request_timeout: got .*; expected a number of seconds in"):
            RunOptions(request_timeout=timeout)
