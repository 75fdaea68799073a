"""The pytest plugin: options, the case matrix as parametrization, and the ``bandit_case`` fixture.

Thin on purpose: the work lives in the library (runner, evaluation, report). Results travel
from workers to the controller in ``report.user_properties``; the controller-side
:class:`~bandit_bench.collector.Collector` writes the report once, at session end.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cases import Case, build_cases, discover_models, recorded_configs, resolve_configs, split_models
from .settings import ProjectSettings, load_settings
from .specs import DEFAULT_CONFIGS, SpecError

RESULT_KEY = "bandit_bench"
MAX_REQUEST_TIMEOUT = 86400.0


class ThresholdNotMet(AssertionError):
    """A case measured below a threshold: the one failure a declared expected failure covers."""


_BENCH: pytest.StashKey[Bench] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bandit-bench", "bandit-bench: does the model explore in context?")

    def add(flag: str, ini: str | None, help: str, **kw: Any) -> None:
        group.addoption(flag, dest=flag.lstrip("-").replace("-", "_"), help=help, **kw)
        if ini and kw.get("action") == "append":
            parser.addini(ini, help=f"default for {flag}", type="linelist")
        elif ini:
            parser.addini(ini, help=f"default for {flag}", type="string")

    add(
        "--model",
        "bandit_models",
        "model id (repeatable or comma-separated); baseline/ucb|ts|greedy|"
        "eps_greedy|uniform run classic algorithms. Default: the models with cassettes.",
        action="append",
        default=[],
    )
    add(
        "--bandit-config",
        "bandit_configs",
        f"named config (repeatable); default {', '.join(DEFAULT_CONFIGS)}",
        action="append",
        default=[],
    )
    add("--episodes", None, "override the configs' number of episodes", type=int)
    add("--horizon", None, "override the configs' horizon T", type=int)
    add(
        "--api-key",
        None,
        "API key, sent to any --base-url. Default by endpoint: $OPENROUTER_API_KEY for "
        "https://openrouter.ai, $OPENAI_API_KEY for https://api.openai.com, none for others. "
        "Prefer the environment: an option shows in process lists and shell history",
    )
    add(
        "--api-key-env",
        "bandit_api_key_env",
        "name of the environment variable holding the key for --base-url (for a server that is "
        "neither OpenRouter nor OpenAI; no key is sent to it otherwise)",
    )
    add("--base-url", "bandit_base_url", "OpenAI-compatible endpoint (default https://openrouter.ai/api/v1)")
    add("--cassette-dir", "bandit_cassette_dir", "cassette folder (default cassettes/)")
    add("--report-dir", "bandit_report_dir", "report folder (default reports/)")
    add("--min-format-compliance", None, "override the configs' format-compliance threshold", type=float)
    add("--min-best-arm-rate", None, "override the configs' best-arm-rate threshold", type=float)
    add("--concurrency", "bandit_concurrency", "episodes in flight per case (default 8)", type=int)
    add("--max-retries", "bandit_max_retries", "retries of a failed request (default 2)", type=int)
    add(
        "--request-timeout",
        "bandit_request_timeout",
        "seconds for each whole request, the reply's body included (default 60, at most 86400). "
        "Worst case per step: timeout x (retries + 1) + backoff, the backoff being the client's "
        "0.5, 1, 2, 4, 8, 8, ... s between tries, or a server's Retry-After up to 120 s each",
        type=float,
    )
    add(
        "--max-rps",
        "bandit_max_rps",
        "requests per second per case while recording (default: no limit)",
        type=float,
    )
    add("--compare-to", None, "report folder of an earlier run: fail the session on a significant regression")
    add(
        "--max-cost",
        "bandit_max_cost",
        "USD: stop starting requests once the cost so far plus the next request's upper bound would "
        "exceed it (needs a price in [tool.bandit_bench.prices] for each model)",
        type=float,
    )
    group.addoption(
        "--early-stop",
        dest="early_stop",
        action="store_true",
        default=None,
        help="run each case's episodes in waves and stop once the remaining ones cannot change the verdict",
    )
    parser.addini("bandit_early_stop", help="default for --early-stop", type="bool")


@dataclass(frozen=True)
class Bench:
    cases: list[Case]
    settings: ProjectSettings
    opts: Any  # runner.RunOptions, built lazily to keep start-up light
    report_dir: Path
    compare_to: Path | None
    thresholds: dict[str, float | None]


def _opt(config: pytest.Config, name: str, ini: str | None, default: Any, cast: Any = str) -> Any:
    value = config.getoption(name)
    if value is None and ini:
        raw = config.getini(ini)
        try:
            value = cast(raw) if raw not in ("", None, []) else None
        except ValueError:
            allowed = "an integer" if cast is int else "a number"
            raise SpecError(f"[tool.pytest.ini_options] {ini}", raw, allowed) from None
    return default if value is None else value


def _check_range(name: str, value: float | int | None, low: float, high: float | None = None) -> None:
    if value is None:
        return
    if not value >= low or (high is not None and value > high):  # NaN fails the first test
        allowed = f"a number in [{low}, {high}]" if high is not None else f"a number >= {low}"
        raise SpecError(name, value, allowed)


def _build(config: pytest.Config) -> Bench:
    from .credentials import key_problem, select_api_key
    from .redaction import register_url
    from .runner import DEFAULT_BASE_URL, RunOptions, is_baseline

    root = config.rootpath
    pyproject = (
        config.inipath
        if config.inipath and config.inipath.name == "pyproject.toml"
        else root / "pyproject.toml"
    )
    settings = load_settings(pyproject)
    cassette_dir = Path(_opt(config, "cassette_dir", "bandit_cassette_dir", "cassettes"))
    if not cassette_dir.is_absolute():
        cassette_dir = root / cassette_dir
    report_dir = Path(_opt(config, "report_dir", "bandit_report_dir", "reports"))
    if not report_dir.is_absolute():
        report_dir = root / report_dir
    episodes, horizon = config.getoption("episodes"), config.getoption("horizon")
    _check_range("--episodes", episodes, 1)
    _check_range("--horizon", horizon, 1)
    thresholds = {
        "min_format_compliance": config.getoption("min_format_compliance"),
        "min_best_arm_rate": config.getoption("min_best_arm_rate"),
    }
    for key, value in thresholds.items():
        _check_range("--" + key.replace("_", "-"), value, 0.0, 1.0)
    concurrency = _opt(config, "concurrency", "bandit_concurrency", 8, int)
    max_retries = _opt(config, "max_retries", "bandit_max_retries", 2, int)
    timeout = _opt(config, "request_timeout", "bandit_request_timeout", 60.0, float)
    max_rps = _opt(config, "max_rps", "bandit_max_rps", None, float)
    _check_range("--concurrency", concurrency, 1)
    _check_range("--max-retries", max_retries, 0)
    # Beyond a day a socket timeout overflows (inf, 1e300): refused here, not mid-run.
    _check_range("--request-timeout", timeout, 0.001, MAX_REQUEST_TIMEOUT)
    _check_range("--max-rps", max_rps, 0.001)

    models = split_models(config.getoption("model") or config.getini("bandit_models"))
    config_names = list(config.getoption("bandit_config") or config.getini("bandit_configs"))
    resolve_configs(config_names, settings)  # a misspelt name stops the run even with no case to run
    # Without --bandit-config a model runs the configs it has cassettes for (its recorded
    # benchmark), or the default quick configs when it has none yet.
    if not models:
        models = discover_models(cassette_dir)
    cases = []
    for model in models:
        recorded = recorded_configs(cassette_dir, model, settings.configs)
        names = config_names or recorded or list(DEFAULT_CONFIGS)
        configs = resolve_configs(names, settings, episodes=episodes, horizon=horizon)
        cases += build_cases([model], configs, settings)

    early_stop = config.getoption("early_stop")
    if early_stop is None:
        early_stop = bool(config.getini("bandit_early_stop"))
    single = next((c for c in cases if c.config.run.episodes < 2 and not is_baseline(c.model)), None)
    if early_stop and single is not None:
        raise SpecError(
            "--early-stop",
            f"{single.id} with 1 episode",
            "cases of at least 2 episodes: with one there is nothing to stop early",
            hint="Drop --early-stop (or bandit_early_stop) for this run, or raise --episodes",
        )

    max_cost = _opt(config, "max_cost", "bandit_max_cost", None, float)
    budget = _budget(config, max_cost, cases, settings) if max_cost is not None else None

    record_mode = config.getoption("record_mode", default=None) or "none"
    base_url = _opt(config, "base_url", "bandit_base_url", DEFAULT_BASE_URL)
    register_url(base_url)
    api_key_env = _opt(config, "api_key_env", "bandit_api_key_env", None)
    if api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise SpecError("--api-key-env", api_key_env, "the name of an environment variable, e.g. MY_API_KEY")
    api_key = select_api_key(base_url, api_key=config.getoption("api_key"), api_key_env=api_key_env)
    problem = key_problem(api_key)
    if problem and api_key is not None and record_mode != "none":
        raise SpecError(
            f"the API key ({api_key.source})",
            "[redacted]",
            "printable ASCII with no spaces",
            hint=problem[0].upper() + problem[1:],
        )
    opts = RunOptions(
        base_url=base_url,
        api_key=api_key,
        api_key_env=api_key_env,
        cassette_dir=cassette_dir,
        record_mode=record_mode,
        concurrency=concurrency,
        max_retries=max_retries,
        request_timeout=timeout,
        max_rps=max_rps,
        progress=_progress_printer(config) if record_mode != "none" else None,
        early_stop=early_stop,
        budget=budget,
    )
    compare_to = config.getoption("compare_to")
    if compare_to and not (Path(compare_to) / "summary.json").is_file():
        raise SpecError("--compare-to", compare_to, "the report folder of an earlier run (with summary.json)")
    if compare_to and Path(compare_to).resolve() == report_dir.resolve():
        # This run's report replaces that folder before the comparison: it would compare with itself.
        raise SpecError(
            "--compare-to",
            compare_to,
            "a folder other than --report-dir",
            hint=f"Keep the earlier run elsewhere (cp -r {compare_to} previous-reports) and compare to that",
        )
    return Bench(cases, settings, opts, report_dir, Path(compare_to) if compare_to else None, thresholds)


_LEDGER_KEY = "bandit_budget_ledger"


def _budget(config: pytest.Config, max_cost: float, cases: list[Case], settings: ProjectSettings) -> Any:
    """The session's budget: the controller makes its ledger file, xdist workers get its path."""
    from .runner import is_baseline
    from .spend import Budget

    if not max_cost > 0 or max_cost == float("inf"):  # NaN fails the first test
        raise SpecError("--max-cost", max_cost, "a positive, finite amount of USD, e.g. --max-cost=5")
    unpriced = sorted({c.model for c in cases if not is_baseline(c.model) and c.model not in settings.prices})
    if unpriced:
        raise SpecError(
            "--max-cost",
            max_cost,
            f"a price for every model it limits; {unpriced[0]} has none",
            hint=f"Add {unpriced[0]!r} = {{ prompt = USD per 1M tokens, completion = USD per 1M tokens }} to "
            "[tool.bandit_bench.prices] in pyproject.toml: the budget prices the next request before "
            "it is sent",
        )
    workerinput = getattr(config, "workerinput", None)
    ledger = workerinput[_LEDGER_KEY] if workerinput is not None else Budget.create_ledger()
    return Budget(max_cost, ledger, settings.prices)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker charges the controller's budget ledger."""
    budget = node.config.stash[_BENCH].opts.budget
    if budget is not None:
        node.workerinput[_LEDGER_KEY] = str(budget.ledger)


def pytest_unconfigure(config: pytest.Config) -> None:
    bench = config.stash.get(_BENCH, None)
    if bench is not None and bench.opts.budget is not None and not hasattr(config, "workerinput"):
        bench.opts.budget.ledger.unlink(missing_ok=True)


def _progress_printer(config: pytest.Config) -> Any:
    last: dict[str, float] = {}

    def show(model: str, config_name: str, done: int, total: int) -> None:
        key = f"{model} x {config_name}"
        now = time.monotonic()
        if done != total and now - last.get(key, 0.0) < 2.0:
            return
        last[key] = now
        capman = config.pluginmanager.get_plugin("capturemanager")
        line = f"[bandit-bench] {key}: {done}/{total} steps\n"
        if capman is not None:
            with capman.global_and_fixture_disabled():
                sys.stderr.write(line)
        else:
            sys.stderr.write(line)

    return show


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bandit_case: a model x config case of bandit-bench")
    try:
        bench = _build(config)
    except SpecError as err:
        raise pytest.UsageError(f"bandit-bench: {err}") from None
    config.stash[_BENCH] = bench
    if not hasattr(config, "workerinput"):
        from .collector import Collector

        config.pluginmanager.register(Collector(config, bench), "bandit_bench_collector")


# Only a measured shortfall is expected; a strict xfail turns an unexpected pass into a failure.
_XFAIL = pytest.mark.xfail(strict=True, raises=ThresholdNotMet, reason="declared expected failure")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bandit_case" not in metafunc.fixturenames:
        return
    bench = metafunc.config.stash[_BENCH]
    params = [
        pytest.param(case, id=case.id, marks=[_XFAIL] if case.expected_failure else [])
        for case in bench.cases
    ]
    metafunc.parametrize("bandit_case", params, indirect=True)


class BenchCase:
    """What a benchmark test receives: run the case, record its result, assert its thresholds."""

    def __init__(self, case: Case, bench: Bench, node: pytest.Item) -> None:
        self.case = case
        self.bench = bench
        self.node = node

    def run(self) -> dict[str, Any]:
        from .evaluation import case_record
        from .redaction import redact_obj
        from .runner import run_case

        result = run_case(self.case.model, self.case.config, self.bench.opts, **self.bench.thresholds)
        # Everything below reaches the terminal, junit properties and the report files.
        record = redact_obj(case_record(result, **self.bench.thresholds))
        record["expected_failure"] = self.case.expected_failure
        self.node.user_properties.append((RESULT_KEY, record))
        return record

    def check(self, record: dict[str, Any]) -> None:
        __tracebackhide__ = True
        if record["errors"] or record.get("budget_stopped"):
            # Errors (API faults, missing or stale cassettes) and an exhausted budget are never an
            # expected failure.
            pytest.fail(f"{self.case.id}: " + "\n".join(record["failures"]), pytrace=False)
        if record["failures"]:
            raise ThresholdNotMet(f"{self.case.id}: " + "\n".join(record["failures"]))

    def run_and_check(self) -> dict[str, Any]:
        record = self.run()
        self.check(record)
        return record


@pytest.fixture
def bandit_case(request: pytest.FixtureRequest) -> BenchCase:
    """One model x config case of the benchmark (parametrized from --model and --bandit-config)."""
    if not hasattr(request, "param"):
        pytest.skip("bandit_case is parametrized by the bandit-bench plugin: no case selected")
    return BenchCase(request.param, request.config.stash[_BENCH], request.node)
