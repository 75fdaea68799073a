"""The pytest plugin: options, the case matrix as parametrization, and the ``bandit_case`` fixture.

Thin on purpose: the work lives in the library (runner, evaluation, report). Results travel
from workers to the controller in ``report.user_properties``; the controller-side
:class:`~bandit_bench.plugin.collector.Collector` writes the report once, at session end.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.core.specs import DEFAULT_CONFIGS, SpecError
from bandit_bench.plugin.cases import (
    Case,
    build_cases,
    discover_models,
    recorded_configs,
    resolve_configs,
)
from bandit_bench.plugin.options import VALUE_FLAGS, Options, add_options, read_options
from bandit_bench.plugin.session import (
    BENCH,
    CASSETTES_KEY,
    RESULT_KEY,
    SELECTED,
    SELECTED_KEY,
    Bench,
    Scope,
)
from bandit_bench.plugin.settings import ProjectSettings, load_settings


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


SHIPPED_BENCHMARK = Path(__file__).with_name("benchmark.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _cases(o: Options, settings: ProjectSettings) -> list[Case]:
    """The session's cases: each model with --bandit-config's configs (or the ones it has
    cassettes for, or the default quick ones), as recorded when replaying."""
    from bandit_bench.running.runner import is_baseline

    # A misspelt name stops the run even with no case to run.
    resolve_configs(o.config_names, settings, cassette_dir=o.cassette_dir)
    # Without --bandit-config a model runs the configs it has cassettes for (its recorded
    # benchmark), or the default quick configs when it has none yet.
    models = o.models or discover_models(o.cassette_dir)
    cases = []
    for model in models:
        recorded = recorded_configs(o.cassette_dir, model, settings.configs)
        names = o.config_names or recorded or list(DEFAULT_CONFIGS)
        configs = resolve_configs(
            names, settings, episodes=o.episodes, horizon=o.horizon, cassette_dir=o.cassette_dir
        )
        cases += build_cases([model], configs, settings)
    if o.record_mode == "none":
        cases = [_as_recorded(c, o) for c in cases]

    single = next((c for c in cases if c.config.run.episodes < 2 and not is_baseline(c.model)), None)
    if o.early_stop and single is not None:
        raise SpecError(
            "--early-stop",
            f"{single.id} with 1 episode",
            "cases of at least 2 episodes: with one there is nothing to stop early",
            hint="Drop --early-stop (or bandit_early_stop) for this run, or raise --episodes",
        )
    return cases


def _rate_limit(config: pytest.Config, o: Options) -> Any:
    """--max-rpm / --max-tpm: one ledger for the session, made by the controller; xdist workers
    get its path."""
    if o.max_rpm is None and o.max_tpm is None:
        return None
    from bandit_bench.running.ratelimit import SessionRateLimit

    workerinput = getattr(config, "workerinput", None)
    ledger = workerinput[_RATE_KEY] if workerinput is not None else SessionRateLimit.create_ledger()
    return SessionRateLimit(ledger, o.max_rpm, o.max_tpm)


def _worker_relay(workerinput: dict[str, Any] | None, o: Options) -> tuple[Any, threading.Event | None, bool]:
    """On an xdist worker, how complete episodes travel (see plugin/relay.py): the relay to the
    controller (if it gave one), the flag a lost controller sets, and whether this worker shares
    the controller's cassette folder. None, None, False on the controller."""
    if workerinput is None:
        return None, None, False
    from bandit_bench.plugin.relay import FOLDER_KEY, RELAY_KEY, WorkerRelay, same_folder

    stop = threading.Event()
    relay = WorkerRelay(workerinput[RELAY_KEY], stop) if workerinput.get(RELAY_KEY) is not None else None
    shares_folder = o.record_mode != "none" and same_folder(workerinput.get(FOLDER_KEY), o.cassette_dir)
    return relay, stop, shares_folder


def _build(config: pytest.Config) -> Bench:
    from bandit_bench.running.runner import RunOptions

    o = read_options(config)
    root = config.rootpath
    pyproject = (
        config.inipath
        if config.inipath and config.inipath.name == "pyproject.toml"
        else root / "pyproject.toml"
    )
    settings = load_settings(pyproject)
    cases = _cases(o, settings)
    # A replay sends nothing and spends nothing: it has no budget to keep (and needs no price).
    budget = _budget(config, o.max_cost, cases, settings, o.record_mode) if o.max_cost is not None else None
    rate_limit = _rate_limit(config, o)
    progress = _progress_printer(config) if o.record_mode != "none" else None
    workerinput = getattr(config, "workerinput", None)
    relay, stop, shares_folder = _worker_relay(workerinput, o)
    if relay is not None:
        progress = _relayed(progress, relay)
    opts = RunOptions(
        base_url=o.base_url,
        api_key=o.api_key,
        api_key_env=o.api_key_env,
        cassette_dir=o.cassette_dir,
        record_mode=o.record_mode,
        concurrency=o.concurrency,
        max_retries=o.max_retries,
        request_timeout=o.request_timeout,
        max_rps=o.max_rps,
        progress=progress,
        early_stop=o.early_stop,
        budget=budget,
        profiles=settings.profiles.with_cli(o.request_profile),
        base_url_given=o.base_url_given,
        rate_limit=rate_limit,
        # A worker sharing the controller's cassette folder writes each complete episode itself,
        # under the lock its controller holds for the session; any other worker sends them.
        write_cassettes=workerinput is None or shares_folder,
        lock_folders=workerinput is None,
        relay=relay,
        stop=stop,
        notify=lambda message: _write_stderr(config, f"[bandit-bench] {message}\n"),
    )
    return Bench(
        cases,
        settings,
        opts,
        o.report_dir,
        o.compare_to,
        o.thresholds,
        Scope.of(config),
        o.cassette_dir,
        bool(o.models),
    )


_LEDGER_KEY = "bandit_budget_ledger"
_RATE_KEY = "bandit_rate_ledger"


def _as_recorded(case: Case, o: Any) -> Case:
    """A replayed case runs as its manifest says it was recorded (casefolder.as_recorded)."""
    from dataclasses import replace

    from bandit_bench.recording.casefolder import as_recorded
    from bandit_bench.running.runner import is_baseline

    if is_baseline(case.model):
        return case
    rec = as_recorded(
        o.cassette_dir,
        case.model,
        case.config,
        episodes_given=o.episodes is not None,
        early_stop=o.early_stop,
    )
    return replace(case, config=rec.config, early_stop=rec.early_stop)


def _relayed(progress: Any, relay: Any) -> Any:
    """Progress that also tells the controller how many steps this worker has paid for."""
    sent: dict[tuple[str, str], int] = {}

    def show(p: Any) -> None:
        if p.recorded and sent.get((p.model, p.config)) != p.recorded:
            sent[(p.model, p.config)] = p.recorded
            relay.recorded(p.model, p.config, p.recorded)
        if progress is not None:
            progress(p)

    return show


def _budget(
    config: pytest.Config, max_cost: float, cases: list[Case], settings: ProjectSettings, record_mode: str
) -> Any:
    """The session's budget: the controller makes its ledger file, xdist workers get its path."""
    from bandit_bench.plugin.spend import Budget
    from bandit_bench.running.runner import is_baseline

    unpriced = sorted({c.model for c in cases if not is_baseline(c.model) and c.model not in settings.prices})
    # A replay sends nothing and spends nothing: it needs no price to keep within a budget.
    if unpriced and record_mode != "none":
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
    bench = node.config.stash.get(BENCH, None)
    if bench is None:
        return
    opts = bench.opts
    if opts.budget is not None:
        node.workerinput[_LEDGER_KEY] = str(opts.budget.ledger)
    if opts.rate_limit is not None:
        node.workerinput[_RATE_KEY] = str(opts.rate_limit.ledger)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    bench = session.config.stash.get(BENCH, None)
    relay = bench.opts.relay if bench is not None else None
    if relay is not None:
        relay.finished = True  # the channel closing from now on is the normal end


def pytest_unconfigure(config: pytest.Config) -> None:
    from bandit_bench.running.ledger import remove_ledger

    bench = config.stash.get(BENCH, None)
    if bench is not None and not hasattr(config, "workerinput"):
        for shared in (bench.opts.budget, bench.opts.rate_limit):
            if shared is not None:
                remove_ledger(shared.ledger)


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
        if flag not in VALUE_FLAGS or not value or not path.exists():
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
    from bandit_bench.recording.redaction import shown_url

    live = sorted({c.model for c in bench.cases if not c.model.startswith("baseline/")})
    if not live:
        return None
    return (
        f"--block-network with --record-mode={bench.opts.record_mode}: pytest-recording blocks every "
        f"connection but vcrpy's own recordings, so the requests to {shown_url(bench.opts.base_url)} for "
        f"{', '.join(live)} could not be recorded. Record without --block-network, then replay "
        "with it: --record-mode=none --block-network"
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from bandit_bench.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def ensure_bench(config: pytest.Config) -> Bench:
    """The session's :class:`Bench`, built on first need; any problem is a usage error naming
    the option or the file (a manifest, pyproject.toml). On the controller its Collector is
    registered with it."""
    bench = config.stash.get(BENCH, None)
    if bench is not None:
        return bench
    from bandit_bench.recording.transport import CassetteError

    try:
        bench = _build(config)
    except (SpecError, CassetteError) as err:
        # A damaged manifest found while discovering the recorded cases names its file.
        raise pytest.UsageError(f"bandit-bench: {err}") from None
    clash = _block_network_error(config, bench)
    if clash:
        raise pytest.UsageError(f"bandit-bench: {clash}")
    config.stash[BENCH] = bench
    if bench.opts.relay is not None:
        bench.opts.relay.watch(popen=bool(config.workerinput.get("bandit_bench_popen")))  # type: ignore[attr-defined]
    if not hasattr(config, "workerinput"):
        from bandit_bench.plugin.collector import Collector, LastLine

        collector = Collector(config, bench)
        config.pluginmanager.register(collector, "bandit_bench_collector")
        config.pluginmanager.register(LastLine(collector), "bandit_bench_last_line")
        if not config.getoption("collectonly"):
            collector.prepare_folders()
            collector.handle_sigterm()
    return bench


class _LateController:
    """Controller of an xdist run whose benchmark came into play only through a project test
    using ``bandit_case`` (no option, no ini key): the workers built the cases while collecting;
    the controller builds its Bench at the first case result, and hands that result on."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        config = self.config
        if BENCH in config.stash or not any(
            name in (RESULT_KEY, CASSETTES_KEY) for name, _ in report.user_properties
        ):
            return
        ensure_bench(config)
        # Registered during this hook call, the collector is not among its callers: hand it on.
        collector = config.pluginmanager.get_plugin("bandit_bench_collector")
        if collector is not None:
            collector.pytest_runtest_logreport(report)

    def __init__(self, config: pytest.Config) -> None:
        self.config = config


def pytest_configure(config: pytest.Config) -> None:
    from bandit_bench.plugin.options import options_in_use

    config.addinivalue_line("markers", "bandit_case: a model x config case of bandit-bench")
    if config.option.help:
        from bandit_bench.plugin.options import explain_record_mode

        explain_record_mode(config)
    misread = _space_form_error(config)
    if misread:
        raise pytest.UsageError(f"bandit-bench: {misread}")
    if options_in_use(config):
        ensure_bench(config)
    elif not hasattr(config, "workerinput"):
        # Nothing asked for bandit-bench: no file is read, no folder scanned, until a test uses
        # bandit_case (pytest_generate_tests, or its first result on an xdist controller).
        config.pluginmanager.register(_LateController(config), "bandit_bench_late_controller")


# ---------------------------------------------------------------------------- collection


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    bench = config.stash.get(BENCH, None)
    # `pytest --model m` with no test path: the benchmark alone, nothing from the folder.
    return True if bench is not None and bench.scope.only_benchmark else None


class _ShippedBenchmark(pytest.Module):
    """``bandit_bench/plugin/benchmark.py``, imported as the package module it is (no sys.path change)."""

    def _getobj(self) -> Any:
        import importlib

        return importlib.import_module("bandit_bench.plugin.benchmark")


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("bandit_case") if callspec is not None else None
    return case if isinstance(case, Case) else None


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: they select among these items too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    bench = config.stash.get(BENCH, None)
    if bench is None or not bench.scope.requested or not bench.cases:
        return
    if any("bandit_case" in getattr(item, "fixturenames", ()) for item in items):
        return  # the project's own bandit_case test runs the cases
    module = _ShippedBenchmark.from_parent(
        session, path=SHIPPED_BENCHMARK, nodeid="bandit_bench/plugin/benchmark.py"
    )
    items.extend(session.genitems(module))


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    selected = sum(1 for item in session.items if _case_of(item) is not None)
    config.stash[SELECTED] = selected
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[SELECTED_KEY] = selected  # read by the controller's Collector


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
    bench = ensure_bench(metafunc.config)
    # Every case carries the registered ``bandit_case`` marker, so ``-m bandit_case`` selects the
    # benchmark and ``-m "not bandit_case"`` runs a project's other tests without it.
    params = [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.bandit_case]
            + ([_xfail_mark(case, bench.settings)] if case.expected_failure else []),
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
        from bandit_bench.recording.redaction import redact_obj
        from bandit_bench.reporting.evaluation import case_record
        from bandit_bench.running.runner import run_case

        opts = self.bench.opts
        if self.case.early_stop is not None and self.case.early_stop != opts.early_stop:
            from dataclasses import replace

            opts = replace(opts, early_stop=self.case.early_stop)
        hook = self.node.config.hook.pytest_bandit_bench_agent
        make_agent = hook(model=self.case.model, config=self.case.config)
        if make_agent is not None:  # a project's own agent (docs/extending.md)
            from bandit_bench.running.custom import run_agent_case

            result = run_agent_case(self.case.model, self.case.config, make_agent)
        else:
            result = run_case(self.case.model, self.case.config, opts, **self.bench.thresholds)
        # Everything below reaches the terminal, junit properties and the report files.
        record = redact_obj(case_record(result, **self.bench.thresholds))
        record["expected_failure"] = self.case.expected_failure
        self.node.user_properties.append((RESULT_KEY, record))
        if result.cassettes:
            # Recorded on an xdist worker: the cassettes travel with the result to the controller,
            # which writes them (the worker may not share its disk).
            episodes = {str(e): list(v) for e, v in sorted(result.cassettes.items())}
            sent = {
                "model": self.case.model,
                "config": self.case.config.name,
                "episodes": episodes,
                "request": result.request,
            }
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
    return BenchCase(request.param, request.config.stash[BENCH], request.node)
