"""Controller-side plugin: gathers case records from every worker and writes the report once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .plugin import Bench

# Reference rows added to every config of a run, on the same instances as the models.
REFERENCE_BASELINES = ("baseline/ucb", "baseline/ts", "baseline/greedy")


class Collector:
    def __init__(self, config: pytest.Config, bench: Bench) -> None:
        self.config = config
        self.bench = bench
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.table: str | None = None
        self.written: list[str] = []
        self.comparison: str | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .plugin import RESULT_KEY

        if report.when != "call":
            return
        kept = []
        for name, value in report.user_properties:
            if name == RESULT_KEY and isinstance(value, dict):
                self.records[(value["model"], value["config"])] = value
                # Later readers (--junitxml writes every property) get the verdict, not every
                # step's raw reply: that is in steps.jsonl.
                value = {k: v for k, v in value.items() if k != "trajectories"}
            kept.append((name, value))
        report.user_properties = kept

    def _with_references(self) -> list[dict[str, Any]]:
        """The run's records plus, per config, the classic algorithms (measured on the same
        instances) and the paper's published rows for it (``paper/*``)."""
        from .evaluation import case_record
        from .published import published_records
        from .runner import run_case

        records = dict(self.records)
        configs = {c.config.name: c.config for c in self.bench.cases}
        for name in sorted({cfg for _, cfg in self.records}):
            for model in REFERENCE_BASELINES:
                if (model, name) not in records and name in configs:
                    records[(model, name)] = case_record(run_case(model, configs[name]))
            # The paper's own numbers for this design, instance and horizon, where it has them.
            for record in published_records(configs[name]) if name in configs else []:
                records.setdefault((record["model"], name), record)
        return list(records.values())

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.records:
            return
        from .report import summary_frame, text_table, write_reports

        records = self._with_references()
        self.table = text_table(summary_frame(records, self.bench.settings.prices))
        try:
            paths = write_reports(records, self.bench.report_dir, self.bench.settings.prices)
        except OSError as err:
            # The run's verdicts stand; say where the report could not go and fail the session.
            self.written = [f"NOT WRITTEN to {self.bench.report_dir}: {err}. Check --report-dir."]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.written = [str(p) for p in paths.values()]
        if self.bench.compare_to is not None:
            from .compare import compare_dirs
            from .report import ReportDirError

            try:
                outcome = compare_dirs(self.bench.compare_to, self.bench.report_dir)
            except ReportDirError as err:
                self.comparison = f"comparison impossible: {err}"
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                return
            self.comparison = outcome.text
            if outcome.regressed:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.table is None:
            return
        terminalreporter.section("bandit-bench")
        terminalreporter.write_line(self.table)
        terminalreporter.write_line(f"reports: {', '.join(self.written)}")
        if self.comparison:
            terminalreporter.section("bandit-bench: comparison")
            terminalreporter.write_line(self.comparison)
