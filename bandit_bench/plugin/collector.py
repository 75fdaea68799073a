"""Controller-side plugin: gathers case records from every worker and writes the report once."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bandit_bench.plugin.session import Bench

# Reference rows added to every config of a run, on the same instances as the models.
REFERENCE_BASELINES = ("baseline/ucb", "baseline/ts", "baseline/greedy")

# The note a crashed case's row carries (reporting.tables.verdict reads it back as CRASHED).
CRASHED = "crashed (its xdist worker died)"

# What --junitxml (and any reader of report.user_properties) gets per case: plain values.
JUNIT_METRICS = ("format_compliance", "best_arm_rate", "suffix_failure_freq", "k_min_frac")


def case_properties(record: dict[str, Any], prices: Any) -> list[tuple[str, object]]:
    """A case record as a handful of flat properties; the steps are in steps.jsonl."""
    from bandit_bench.reporting.tables import summary_row

    row = summary_row(record, prices)
    if record["errors"]:
        verdict = "error"
    elif record.get("expected_failure"):
        verdict = "xpass" if record["passed"] else "xfail"
    else:
        verdict = "pass" if record["passed"] else "fail"
    props: list[tuple[str, object]] = [
        ("model", record["model"]),
        ("config", record["config"]),
        ("verdict", verdict),
    ]
    props += [(m, "" if row[m] is None else round(float(row[m]), 4)) for m in JUNIT_METRICS]
    props += [
        ("episodes", record["episodes"]),
        ("steps", record["steps"]),
        ("tokens", record["prompt_tokens"] + record["completion_tokens"]),
        ("cost_usd", "" if row["cost_usd"] is None else round(float(row["cost_usd"]), 6)),
    ]
    return props


def _one_line(urls: list[str]) -> str:
    """Several recording endpoints in a few words: a local server restarted on other ports is one
    endpoint (``http://127.0.0.1/v1 (4 ports)``)."""
    from urllib.parse import urlsplit

    shapes = set()
    for url in urls:
        parts = urlsplit(url)
        shapes.add((parts.scheme, parts.hostname, parts.path))
    if len(urls) > 1 and len(shapes) == 1:
        scheme, host, path = shapes.pop()
        return f"{scheme}://{host}{path} ({len(urls)} ports)"
    return ", ".join(sorted(urls))


class LastLine:
    """A session that failed for a reason of its own (not an item) ends saying so, after pytest's
    "2 passed" line, which alone would read as a success. A plugin of its own: its wrapper must
    be outside the terminal reporter's, which prints that line."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Any:
        result = yield
        reasons = self.collector.failed_because
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reasons and session.exitstatus == pytest.ExitCode.TESTS_FAILED and reporter is not None:
            reporter.write_line(
                f"bandit-bench: the session failed (exit 1): {'; '.join(reasons)}", red=True, bold=True
            )
        return result


class Collector:
    def __init__(self, config: pytest.Config, bench: Bench) -> None:
        self.config = config
        self.bench = bench
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.table: str | None = None
        self.written: list[str] = []
        self.comparison: str | None = None
        self.notes: list[str] = []
        self.budget_line: str | None = None
        self.nothing_checked: str | None = None
        self.selected_on_workers: int | None = None
        self.folders: dict[tuple[str, str], Any] = {}  # (model, config) -> casefolder.CaseFolder
        self.locked: list[Any] = []
        self.write_errors: list[str] = []
        # What workers reported as it happened (plugin/relay.py): episodes saved per case, and
        # steps recorded (paid for) per case, which a crashed worker's case still counts.
        self.saved: dict[tuple[str, str], dict[int, int]] = {}
        self.live_recorded: dict[tuple[str, str], int] = {}
        self._relay_lock = threading.Lock()
        self.relay: Any = None
        # Why the session failed beyond its items' verdicts: said in its very last line.
        self.failed_because: list[str] = []
        self._sigterm: Any = None

    def prepare_folders(self) -> None:
        """Before any request of a recording run: every case folder is writable and its own
        (its manifest names this model and config); then each folder's lock is taken, in one
        order, and held until the session ends, so a second process recording the same cases
        waits and then replays what this one recorded. Raises pytest.UsageError."""
        from bandit_bench.recording.casefolder import CaseFolder
        from bandit_bench.recording.transport import CassetteError
        from bandit_bench.running.runner import is_baseline

        opts = self.bench.opts
        if opts.record_mode == "none":
            return
        for case in self.bench.cases:
            if not is_baseline(case.model):
                folder = CaseFolder(
                    opts.cassette_dir,
                    case.model,
                    case.config,
                    opts.base_url,
                    opts.record_mode,
                    opts.early_stop,
                )
                self.folders[(case.model, case.config.name)] = folder
        problems = []
        for folder in self.folders.values():
            try:
                folder.check_writable()
                folder.check_identity()
            except CassetteError as err:
                problems.append(str(err))
        if problems:
            self.release_folders()
            raise pytest.UsageError("bandit-bench: " + "\n".join(problems))
        for folder in sorted(self.folders.values(), key=lambda f: str(f.path)):
            folder.acquire(opts.notify)
            self.locked.append(folder)

    def release_folders(self) -> None:
        while self.locked:
            self.locked.pop().release()
        for folder in self.folders.values():
            folder._tidy()

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.relay is not None:
            self.relay.close()
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
        self.release_folders()

    def handle_sigterm(self) -> None:
        """SIGTERM stops the session as Ctrl-C does (workers told, complete episodes kept),
        instead of killing the controller and leaving its workers to run on."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # someone else's handler: theirs to run

        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt("SIGTERM")

        self._sigterm = signal.signal(signal.SIGTERM, interrupt)

    # ------------------------------------------------------------ episodes from workers

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: a channel per worker, on which each complete episode travels as it completes."""
        from bandit_bench.plugin.relay import FOLDER_KEY, RELAY_KEY, ControllerRelay, folder_token

        if self.relay is None:
            self.relay = ControllerRelay(self._episode_from_worker, self._recorded_on_worker)
        node.workerinput[RELAY_KEY] = self.relay.open(node.gateway)
        node.workerinput["bandit_bench_popen"] = bool(node.gateway.spec.popen)
        if self.bench.opts.record_mode != "none":
            node.workerinput[FOLDER_KEY] = folder_token(self.bench.opts.cassette_dir)

    def _episode_from_worker(self, data: dict[str, Any]) -> None:
        key = (str(data["model"]), str(data["config"]))
        if isinstance(data.get("text"), str):
            sent = {
                "model": key[0],
                "config": key[1],
                "episodes": {str(data["episode"]): (data["text"], data["requests"])},
            }
            self._write_sent_cassettes(sent)
        with self._relay_lock:
            self.saved.setdefault(key, {})[int(data["episode"])] = int(data["requests"])

    def _recorded_on_worker(self, data: dict[str, Any]) -> None:
        key = (str(data["model"]), str(data["config"]))
        with self._relay_lock:
            self.live_recorded[key] = max(self.live_recorded.get(key, 0), int(data["steps"]))

    @pytest.hookimpl
    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        # Ctrl-C (or SIGTERM) of the controller: every worker stops sending requests now, rather
        # than when xdist's teardown gets to it.
        if self.relay is not None:
            self.relay.close()

    def _crashed_record(self, report: pytest.TestReport) -> dict[str, Any] | None:
        """The record of a case whose worker died mid-case: it stays in the table, as crashed."""
        from bandit_bench.core.episode import Trajectory
        from bandit_bench.reporting.evaluation import case_record
        from bandit_bench.running.runner import CaseResult

        param = report.nodeid.rpartition("[")[2].rstrip("]") if report.nodeid.endswith("]") else None
        case = next((c for c in self.bench.cases if c.id == param), None)
        if case is None:
            return None
        key = (case.model, case.config.name)
        with self._relay_lock:
            saved = dict(self.saved.get(key, {}))
            recorded = self.live_recorded.get(key, 0)
        kept = f"episodes {', '.join(str(e) for e in sorted(saved))} saved" if saved else "no episode saved"
        error = (
            f"the xdist worker running this case crashed ({str(report.longrepr).strip()}); {kept}, "
            f"{recorded} requests recorded. Run the same command with --record-mode=once: it replays "
            "the saved episodes and records only the missing ones."
        )
        inst = case.config.instance
        # A stand-in errored episode gives the record its error path; no episode data is kept.
        stand_in = Trajectory(0, inst.k, inst.horizon, inst.delta, 0)
        stand_in.error = error
        record = case_record(CaseResult(case.model, case.config, [stand_in]), **self.bench.thresholds)
        n = case.config.run.episodes
        stopped = {
            "reason": "crashed",
            "episodes_run": len(saved),
            "episodes": n,
            "note": f"{CRASHED}: {kept}",
        }
        record.update(
            errors=[error], trajectories=[], episodes_run=len(saved), stopped=stopped, recorded=recorded,
            expected_failure=case.expected_failure,
        )  # fmt: skip
        record["failures"] = [f"{case.id}: {error}"]
        return record

    def _write_sent_cassettes(self, sent: dict[str, Any]) -> list[str]:
        """Write what a worker recorded, as the one writer of the controller's cassette folder."""
        from bandit_bench.recording.transport import CassetteError

        folder = self.folders.get((sent["model"], sent["config"]))
        if folder is None:
            return [
                f"cassettes of {sent['model']} x {sent['config']} came from a worker for no case of this run"
            ]
        written = []
        if sent.get("request"):
            folder.request = sent["request"]
        try:
            for episode, (text, requests) in sent["episodes"].items():
                written.append(str(folder.write_episode(int(episode), text, int(requests))))
        except (OSError, CassetteError) as err:
            self.write_errors.append(f"NOT WRITTEN to {folder.path}: {err}")
        return written

    def _print_bill(self, cases: list[Any]) -> None:
        """The bill before it starts: with --collect-only always, else when a run will record."""
        from bandit_bench.plugin.spend import estimate_cases, format_bill

        collect_only = self.config.getoption("collectonly")
        opts = self.bench.opts
        if not collect_only and opts.record_mode == "none":
            return
        settings = self.bench.settings
        from bandit_bench.running.profiles import resolve_profile

        def token_limit(model: str, config: Any) -> int:
            # The limit the request profile sends (a reasoning model's allowance included).
            return resolve_profile(model, opts.base_url, opts.profiles).limit(config.design)

        estimates = estimate_cases(
            cases, opts.cassette_dir, opts.record_mode, settings.prices, settings.configs, token_limit
        )
        if not estimates or (not collect_only and not any(e.requests for e in estimates)):
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        reporter.section("bandit-bench: the bill")
        reporter.write_line(format_bill(estimates, opts.record_mode))

    def _xdist_controller(self) -> bool:
        return self.config.pluginmanager.get_plugin("dsession") is not None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Under xdist the controller collects nothing: the bill covers the whole case matrix.
        if self._xdist_controller():
            self._print_bill(self.bench.cases)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self._xdist_controller():
            return
        params = [getattr(getattr(item, "callspec", None), "params", {}) for item in session.items]
        cases = [p["bandit_case"] for p in params if "bandit_case" in p]
        self._print_bill(cases)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from bandit_bench.plugin.session import CASSETTES_KEY, RESULT_KEY

        kept: list[tuple[str, object]] = []
        for name, value in report.user_properties:
            if name == CASSETTES_KEY and isinstance(value, dict):
                # Written once, from the call report; later readers get file names, not content.
                if report.when == "call":
                    kept.append((name, self._write_sent_cassettes(value)))
                else:
                    kept.append((name, sorted(value.get("episodes", {}))))
            elif name == RESULT_KEY and isinstance(value, dict):
                if report.when == "call":
                    self.records[(value["model"], value["config"])] = value
                # Later readers (--junitxml writes every property, at teardown) get a few plain
                # values, not every step's raw reply: that is in steps.jsonl.
                kept += case_properties(value, self.bench.settings.prices)
            else:
                kept.append((name, value))
        report.user_properties = kept
        if report.when == "???" and report.failed:  # xdist: the worker died while running the item
            record = self._crashed_record(report)
            if record is not None:
                self.records.setdefault((record["model"], record["config"]), record)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        from bandit_bench.plugin.session import SELECTED_KEY

        selected = getattr(node, "workeroutput", {}).get(SELECTED_KEY)
        if selected is not None:
            self.selected_on_workers = max(self.selected_on_workers or 0, int(selected))

    def _selected(self) -> int | None:
        from bandit_bench.plugin.session import SELECTED

        if self.selected_on_workers is not None:
            return self.selected_on_workers
        return self.config.stash.get(SELECTED, None)

    def _with_references(self) -> list[dict[str, Any]]:
        """The run's records plus, per config, the classic algorithms (measured on the same
        instances, and over 1000 episodes of the instance spec) and the paper's published rows
        for it (``paper/*``)."""
        from bandit_bench.reporting.evaluation import case_record
        from bandit_bench.reporting.published import published_records
        from bandit_bench.reporting.scale import scale_records
        from bandit_bench.running.runner import run_case

        records = dict(self.records)
        configs = {c.config.name: c.config for c in self.bench.cases}
        # pytest's cache (absent under -p no:cacheprovider): the 1000-episode rows of a spec are
        # computed once, not at every replay (reporting.scale says why that is safe).
        store = getattr(self.config, "cache", None)
        for name in sorted({cfg for _, cfg in self.records}):
            for model in REFERENCE_BASELINES:
                if (model, name) not in records and name in configs:
                    records[(model, name)] = case_record(run_case(model, configs[name]))
            # The paper's own numbers for this design, instance and horizon, where it has them.
            for record in published_records(configs[name]) if name in configs else []:
                records.setdefault((record["model"], name), record)
            # UCB, TS and Greedy at the paper's 1000 replicates beside the paired rows at N.
            for record in scale_records(configs[name], store) if name in configs else []:
                records.setdefault((record["model"], name), record)
        return list(records.values())

    def _base_url(self) -> str:
        """Where the numbers came from: the run's endpoint, or on a replay the endpoint(s) the
        replayed folders were recorded from (their manifests), never the default one."""
        from bandit_bench.recording.casefolder import read_manifest
        from bandit_bench.recording.transport import CassetteError, case_dir
        from bandit_bench.running.runner import is_baseline

        opts = self.bench.opts
        if opts.record_mode != "none":
            return str(opts.base_url)
        urls: list[str] = []
        for model, config in self.records:
            if is_baseline(model):
                continue
            try:
                manifest = read_manifest(case_dir(opts.cassette_dir, model, config))
            except CassetteError:
                manifest = None
            url = manifest.get("base_url") if manifest is not None else None
            if isinstance(url, str) and url and url not in urls:
                urls.append(url)
        if not urls:
            return str(opts.base_url)
        return _one_line(urls)

    def _budget_summary(self, session: pytest.Session) -> None:
        budget = self.bench.opts.budget
        if budget is None:
            return
        state = budget.state()
        line = f"budget --max-cost ${budget.limit:g}: ${state['spent']:.4f} spent"
        if state.get("over_bound"):
            line += (
                f"; reached: {state['over_bound']}, {state.get('refused', 0)} request(s) not sent after it"
            )
        elif state.get("refused"):
            line += f"; reached, {state['refused']} request(s) not sent"
        if state.get("refused") or state.get("over_bound"):
            line += (
                ". The budget stopped this run: complete "
                "episodes are saved. To resume, run the same command with a larger (or no) --max-cost "
                "and --record-mode=once: it replays what is saved and records only what is missing."
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.failed_because.append(f"the budget --max-cost ${budget.limit:g} stopped the run")
        self.budget_line = line

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._budget_summary(session)
        if self.write_errors:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.failed_because.append(f"{len(self.write_errors)} cassette write(s) failed")
        if (
            self.bench.scope.fails_when_empty(self.config.option.markexpr)
            and self._selected() == 0
            and not self.records
        ):
            # A benchmark run that ran no case must not pass: say what was looked for.
            from bandit_bench.plugin.session import nothing_selected_message

            self.nothing_checked = nothing_selected_message(self.config, self.bench)
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
            return
        if not self.records:
            return
        from bandit_bench.reporting.provenance import run_metadata
        from bandit_bench.reporting.tables import stopped_notes, summary_rows, text_table
        from bandit_bench.reporting.writer import write_reports

        records = self._with_references()
        summary = summary_rows(records, self.bench.settings.prices)
        self.table = text_table(summary)
        self.notes = stopped_notes(summary)
        opts = self.bench.opts
        run = run_metadata(
            records, base_url=self._base_url(), record_mode=opts.record_mode, repo_dir=self.config.rootpath
        )
        try:
            paths = write_reports(records, self.bench.report_dir, self.bench.settings.prices, run)
        except OSError as err:
            # The run's verdicts stand; say where the report could not go and fail the session.
            self.written = [f"NOT WRITTEN to {self.bench.report_dir}: {err}. Check --report-dir."]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.failed_because.append(f"the report could not be written to {self.bench.report_dir}")
            return
        self.written = [str(p) for p in paths.values()]
        if self.bench.compare_to is not None:
            from bandit_bench.reporting.compare import compare_dirs
            from bandit_bench.reporting.tables import ReportDirError

            try:
                outcome = compare_dirs(self.bench.compare_to, self.bench.report_dir)
            except ReportDirError as err:
                self.comparison = f"comparison impossible: {err}"
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                self.failed_because.append(f"--compare-to {self.bench.compare_to}: comparison impossible")
                return
            self.comparison = outcome.text
            # A regression, or a comparison that left out what it was meant to check.
            if outcome.regressed or outcome.incomplete:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                what = "a significant regression" if outcome.regressed else "an incomplete comparison"
                self.failed_because.append(f"--compare-to {self.bench.compare_to}: {what}")

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.budget_line is not None:
            terminalreporter.section("bandit-bench: budget")
            terminalreporter.write_line(self.budget_line)
        if self.nothing_checked is not None:
            terminalreporter.section("bandit-bench", red=True)
            for line in self.nothing_checked.splitlines():
                terminalreporter.write_line(line, red=line.startswith("bandit-bench"))
            return
        if self.table is None:
            return
        terminalreporter.section("bandit-bench")
        terminalreporter.write_line(self.table)
        for note in self.notes:
            terminalreporter.write_line(note)
        recorded = sum(r.get("recorded", 0) for r in self.records.values())
        replayed = sum(r.get("replayed", 0) for r in self.records.values())
        terminalreporter.write_line(
            f"requests: {recorded} recorded, {replayed} replayed (record mode {self.bench.opts.record_mode})"
        )
        for error in self.write_errors:
            terminalreporter.write_line(error)
        terminalreporter.write_line(f"reports: {', '.join(self.written)}")
        if self.comparison:
            terminalreporter.section("bandit-bench: comparison")
            terminalreporter.write_line(self.comparison)
