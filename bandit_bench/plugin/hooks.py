"""The pytest plugin: options, the case matrix as parametrization, and the ``bandit_case`` fixture.

Thin on purpose: the work lives in the library (runner, evaluation, report). Results travel
from workers to the controller in ``report.user_properties``; the controller-side
:class:`~bandit_bench.collector.Collector` writes the report once, at session end.
"""

from __future__ import annotations

import os
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
CASSETTES_KEY = "bandit_bench_cassettes"


class ThresholdNotMet(pytest.fail.Exception):  # type: ignore[name-defined]
    """A case measured below a threshold: the one failure a declared expected failure covers.

    A subclass of pytest's own ``Failed``: the failure is one line of fact, with no traceback
    into the plugin (``pytrace=False``).
    """

    # Like pytest's Failed: the summary line reads "ThresholdNotMet: <case>: <fact>", not the
    # dotted path of this module.
    __module__ = "builtins"

    def __init__(self, msg: str) -> None:
        super().__init__(msg, pytrace=False)


_BENCH: pytest.StashKey[Bench] = pytest.StashKey()
# Options whose presence asks for the benchmark (issue: "options in use"), and their ini twins.
_CASE_OPTIONS = ("model", "bandit_config", "cassette_dir")
_CASE_INIS = ("bandit_models", "bandit_configs", "bandit_cassette_dir")
# Every bandit-bench option that takes a value: a value written after a space can be taken by
# pytest for a test path before the plugin's options are known (see _space_form_error).
_VALUE_FLAGS: set[str] = set()
SHIPPED_BENCHMARK = Path(__file__).with_name("benchmark.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bandit-bench", "bandit-bench: does the model explore in context?")

    def add(flag: str, ini: str | None, help: str, **kw: Any) -> None:
        group.addoption(flag, dest=flag.lstrip("-").replace("-", "_"), help=help, **kw)
        if kw.get("action") not in ("store_true", "store_false", "count"):
            _VALUE_FLAGS.add(flag)
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
        "named config (repeatable); `bandit-bench configs` lists them. Default: the configs the "
        f"model has cassettes for, else {', '.join(DEFAULT_CONFIGS)}",
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
    # What this run asked for, to tell a run that checked nothing from a run that was not a
    # benchmark run at all (see Scope).
    scope: Scope
    cassette_dir: Path
    models_given: bool


@dataclass(frozen=True)
class Scope:
    """Which items a run holds.

    ``requested``: the run is a benchmark run, so zero selected cases fail it. That is a case
    option on the command line (``--model``, ``--bandit-config``, ``--cassette-dir``), or an ini
    twin when no test path was given. ``only_benchmark``: a case option and no test path, so
    nothing is collected from disk: ``pytest --model m`` in a repository with its own tests runs
    the benchmark alone. With test paths, those are collected as usual, and the shipped benchmark
    is added when a case option asked for it and none of them uses ``bandit_case``.
    """

    requested: bool
    only_benchmark: bool

    @classmethod
    def of(cls, config: pytest.Config) -> Scope:
        on_command_line = any(config.getoption(name) not in (None, [], "") for name in _CASE_OPTIONS)
        in_ini = any(config.getini(name) not in (None, [], "") for name in _CASE_INIS)
        paths_given = config.args_source == pytest.Config.ArgsSource.ARGS
        return cls(
            requested=on_command_line or (in_ini and not paths_given),
            only_benchmark=on_command_line and not paths_given,
        )


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
    for flag in ("cassette_dir", "report_dir"):
        if config.getoption(flag) == "":
            # An unset shell variable (--report-dir=$DIR) would otherwise mean the project root.
            raise SpecError(
                f"--{flag.replace('_', '-')}", "", "a folder path (it was empty; was a variable unset?)"
            )
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
    models_given = bool(models)
    config_names = list(config.getoption("bandit_config") or config.getini("bandit_configs"))
    # A misspelt name stops the run even with no case to run.
    resolve_configs(config_names, settings, cassette_dir=cassette_dir)
    # Without --bandit-config a model runs the configs it has cassettes for (its recorded
    # benchmark), or the default quick configs when it has none yet.
    if not models:
        models = discover_models(cassette_dir)
    cases = []
    for model in models:
        recorded = recorded_configs(cassette_dir, model, settings.configs)
        names = config_names or recorded or list(DEFAULT_CONFIGS)
        configs = resolve_configs(
            names, settings, episodes=episodes, horizon=horizon, cassette_dir=cassette_dir
        )
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
        # The controller writes every cassette; a worker (maybe on another machine) sends them.
        write_cassettes=not hasattr(config, "workerinput"),
        notify=lambda message: _write_stderr(config, f"[bandit-bench] {message}\n"),
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
    return Bench(
        cases,
        settings,
        opts,
        report_dir,
        Path(compare_to) if compare_to else None,
        thresholds,
        Scope.of(config),
        cassette_dir,
        models_given,
    )


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


def _write_stderr(config: pytest.Config, line: str) -> None:
    capman = config.pluginmanager.get_plugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            sys.stderr.write(line)
    else:
        sys.stderr.write(line)


def _progress_printer(config: pytest.Config) -> Any:
    """Progress of what is being paid for: silent while a case only replays."""
    last: dict[str, float] = {}

    def show(p: Any) -> None:  # runner.StepProgress
        if not p.recorded:
            return
        key = f"{p.model} x {p.config}"
        now = time.monotonic()
        if p.done != p.total and now - last.get(key, 0.0) < 2.0:
            return
        last[key] = now
        counts = f"{p.recorded} recorded, {p.replayed} replayed"
        _write_stderr(config, f"[bandit-bench] {key}: {p.done}/{p.total} steps ({counts})\n")

    return show


_CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


def _space_form_error(config: pytest.Config) -> str | None:
    """A value option written ``--flag VALUE`` whose VALUE is an existing path that moved the rootdir.

    pytest looks for its rootdir and ini file before any plugin option is known, so it reads
    such a VALUE as a test path: ``--report-dir /tmp/out`` makes it search for the ini file from
    /tmp/out, lose the project's testpaths and collect whatever the folder holds. The path is
    harmless only when it lies inside the folder pytest would have started from and no pytest
    config file sits between the two.
    """
    inv = config.invocation_params.dir
    if config.args_source == pytest.Config.ArgsSource.ARGS and config.args:
        starts = [(inv / a.split("::")[0]).resolve() for a in config.args]
        base = Path(os.path.commonpath([p if p.is_dir() else p.parent for p in starts]))
    else:
        base = inv.resolve()
    args = [str(a) for a in config.invocation_params.args]
    for flag, value in zip(args, args[1:], strict=False):
        path = inv / value
        if flag not in _VALUE_FLAGS or not value or not path.exists():
            continue
        path = path.resolve()
        folder = path if path.is_dir() else path.parent
        between = [folder, *folder.parents]
        harmless = path.is_relative_to(base) and not any(
            (d / name).is_file() for d in between[: between.index(base)] for name in _CONFIG_FILES
        )
        if not harmless:
            return (
                f"{flag} {value}: pytest reads an existing path after a space as a test path before "
                f"it knows plugin options, and took its rootdir and ini file from there "
                f"(rootdir: {config.rootpath}); this run would collect the wrong tests. Write it with "
                f"'=': {flag}={value}"
            )
    return None


def _block_network_error(config: pytest.Config, bench: Bench) -> str | None:
    if not config.getoption("block_network", default=False) or bench.opts.record_mode == "none":
        return None
    live = sorted({c.model for c in bench.cases if not c.model.startswith("baseline/")})
    if not live:
        return None
    return (
        f"--block-network with --record-mode={bench.opts.record_mode}: pytest-recording blocks every "
        f"connection but vcrpy's own recordings, so the requests to {bench.opts.base_url} for "
        f"{', '.join(live)} could not be recorded. Record without --block-network, then replay "
        "with it: --record-mode=none --block-network"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bandit_case: a model x config case of bandit-bench")
    misread = _space_form_error(config)
    if misread:
        raise pytest.UsageError(f"bandit-bench: {misread}")
    try:
        bench = _build(config)
    except SpecError as err:
        raise pytest.UsageError(f"bandit-bench: {err}") from None
    clash = _block_network_error(config, bench)
    if clash:
        raise pytest.UsageError(f"bandit-bench: {clash}")
    config.stash[_BENCH] = bench
    if not hasattr(config, "workerinput"):
        from .collector import Collector

        collector = Collector(config, bench)
        config.pluginmanager.register(collector, "bandit_bench_collector")
        if not config.getoption("collectonly"):
            collector.prepare_folders()


# ---------------------------------------------------------------------------- collection

_SELECTED: pytest.StashKey[int] = pytest.StashKey()
SELECTED_KEY = "bandit_bench_selected"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    bench = config.stash.get(_BENCH, None)
    # `pytest --model m` with no test path: the benchmark alone, nothing from the folder.
    return True if bench is not None and bench.scope.only_benchmark else None


class _ShippedBenchmark(pytest.Module):
    """``bandit_bench/benchmark.py``, imported as the package module it is (no sys.path change)."""

    def _getobj(self) -> Any:
        import importlib

        return importlib.import_module("bandit_bench.benchmark")


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("bandit_case") if callspec is not None else None
    return case if isinstance(case, Case) else None


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: they select among these items too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    bench = config.stash.get(_BENCH, None)
    if bench is None or not bench.scope.requested or not bench.cases:
        return
    if any("bandit_case" in getattr(item, "fixturenames", ()) for item in items):
        return  # the project's own bandit_case test runs the cases
    module = _ShippedBenchmark.from_parent(
        session, path=SHIPPED_BENCHMARK, nodeid="bandit_bench/benchmark.py"
    )
    items.extend(session.genitems(module))


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    selected = sum(1 for item in session.items if _case_of(item) is not None)
    config.stash[_SELECTED] = selected
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[SELECTED_KEY] = selected  # read by the controller's Collector


def nothing_selected_message(config: pytest.Config, bench: Bench) -> str:
    """Why a benchmark run selected no case, where it looked, and the commands that fix it."""
    lines = ["bandit-bench: no model x config case ran, so nothing was checked."]
    if not bench.cases:
        where = bench.cassette_dir
        found = "the folder does not exist" if not where.is_dir() else "it holds no <model>/<config>/NNN.json"
        lines.append(f"  No --model given, and no recorded model under {where} ({found}).")
    else:
        ids = [c.id for c in bench.cases]
        shown = ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
        why = []
        if config.option.keyword:
            why.append(f"-k {config.option.keyword!r}")
        if config.option.markexpr:
            why.append(f"-m {config.option.markexpr!r}")
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            why.append(f"test paths {' '.join(config.args)}")
        lines.append(
            f"  The matrix has {len(ids)} cases ({shown}) but none was selected"
            + (f" ({'; '.join(why)})." if why else ".")
        )
        lines.append("  Select by case id: -k 'BNRN0' or -k 'openai/gpt-4o-mini-BNRN0-hard-T25'.")
    lines += [
        "  Record a model: OPENROUTER_API_KEY=... pytest --model MODEL --record-mode=once",
        "  Run the classic algorithms (no key, no cassette): pytest --model baseline/ucb",
        "  Configs --bandit-config accepts: bandit-bench configs",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the cases


def _xfail_mark(case: Case, settings: ProjectSettings) -> pytest.MarkDecorator:
    entry = settings.expected_failure_entry(case.model, case.config)
    # Only a measured shortfall is expected; a strict xfail turns an unexpected pass into a
    # failure whose message (the reason, after "[XPASS(strict)]") says which entry to remove.
    return pytest.mark.xfail(
        strict=True,
        raises=ThresholdNotMet,
        reason=f"{case.id} held its thresholds although declared an expected failure: "
        f"remove it from {entry} in pyproject.toml",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bandit_case" not in metafunc.fixturenames:
        return
    bench = metafunc.config.stash[_BENCH]
    params = [
        pytest.param(
            case, id=case.id, marks=[_xfail_mark(case, bench.settings)] if case.expected_failure else []
        )
        for case in bench.cases
    ]
    metafunc.parametrize("bandit_case", params, indirect=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    # An xfail names the metric it fell short on (pytest would only give the mark's reason).
    if (
        getattr(report, "wasxfail", None) is not None
        and call.excinfo is not None
        and isinstance(call.excinfo.value, ThresholdNotMet)
    ):
        report.wasxfail = f"declared expected failure: {call.excinfo.value.msg}"
    return report


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
        if result.cassettes:
            # Recorded on an xdist worker: the cassettes travel with the result to the controller,
            # which writes them (the worker may not share its disk).
            episodes = {str(e): list(v) for e, v in sorted(result.cassettes.items())}
            sent = {"model": self.case.model, "config": self.case.config.name, "episodes": episodes}
            self.node.user_properties.append((CASSETTES_KEY, sent))
        return record

    def check(self, record: dict[str, Any]) -> None:
        __tracebackhide__ = True
        if record["errors"] or record.get("budget_stopped"):
            # Errors (API faults, missing or stale cassettes) and an exhausted budget are never an
            # expected failure.
            pytest.fail(f"{self.case.id}: " + "\n".join(record["failures"]), pytrace=False)
        if record["failures"]:
            raise ThresholdNotMet(f"{self.case.id}: " + "; ".join(record["failures"]))

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
