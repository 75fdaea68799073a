"""The controller-side plugin objects without a pytest subprocess: ``Scope`` and ``Collector``
driven with stand-in config, nodes and reports, as pytest-xdist tests its DSession with mock nodes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.plugin.cases import Case
from bandit_bench.plugin.collector import Collector
from bandit_bench.plugin.session import CASSETTES_KEY, RESULT_KEY, SELECTED, SELECTED_KEY, Bench, Scope
from bandit_bench.plugin.settings import ProjectSettings
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.running.runner import RunOptions, run_case

CONFIG = CaseConfig("quick", DesignSpec.parse("BNRN0"), InstanceSpec(5, 0.2, 4), RunSpec(episodes=2))


class FakeConfig:
    """What the Collector reads of a pytest.Config: stash, options, the plugin manager."""

    def __init__(self, markexpr: str = "", keyword: str = "", xdist: bool = False) -> None:
        self.stash = pytest.Stash()
        self.option = SimpleNamespace(markexpr=markexpr, keyword=keyword)
        self.args_source = pytest.Config.ArgsSource.INVOCATION_DIR
        self.args: list[str] = []
        self.rootpath = Path.cwd()
        self._plugins = {"dsession": object()} if xdist else {}
        self.pluginmanager = SimpleNamespace(get_plugin=self._plugins.get)

    def getoption(self, name: str) -> Any:
        return False


def _collector(scope: Scope, tmp_path: Path, **config: Any) -> tuple[Collector, FakeConfig]:
    fake = FakeConfig(**config)
    bench = Bench(
        cases=[Case("baseline/ucb", CONFIG)],
        settings=ProjectSettings(),
        opts=RunOptions(cassette_dir=tmp_path / "cassettes"),
        report_dir=tmp_path / "reports",
        compare_to=None,
        thresholds={"min_format_compliance": None, "min_best_arm_rate": None},
        scope=scope,
        cassette_dir=tmp_path / "cassettes",
        models_given=True,
    )
    return Collector(fake, bench), fake  # type: ignore[arg-type]


ON_COMMAND_LINE = Scope(requested=True, only_benchmark=True, on_command_line=True)
FROM_INI = Scope(requested=True, only_benchmark=False, on_command_line=False)
NOT_A_BENCHMARK = Scope(requested=False, only_benchmark=False)


@pytest.mark.parametrize(
    ("scope", "markexpr", "fails"),
    [
        (ON_COMMAND_LINE, "", True),
        (ON_COMMAND_LINE, "not bandit_case", True),  # asked for a case and left it out: say so
        (FROM_INI, "", True),
        (FROM_INI, "not bandit_case", False),  # the ini's benchmark, deselected on purpose
        (NOT_A_BENCHMARK, "", False),
    ],
)
def test_which_runs_fail_when_they_select_no_case(scope, markexpr, fails):
    assert scope.fails_when_empty(markexpr) is fails


def _node(selected: int | None) -> SimpleNamespace:
    # A worker node as xdist hands it to pytest_testnodedown; a crashed one sent no workeroutput.
    return SimpleNamespace(workeroutput={} if selected is None else {SELECTED_KEY: selected})


def test_the_selected_count_is_the_largest_any_worker_reports(tmp_path):
    collector, fake = _collector(ON_COMMAND_LINE, tmp_path, xdist=True)
    fake.stash[SELECTED] = 99  # the controller's own count is not used once workers report
    assert collector._selected() == 99
    for node in (_node(2), _node(None), _node(2), SimpleNamespace()):
        collector.pytest_testnodedown(node, None)
    assert collector._selected() == 2  # every worker collects the whole matrix: not summed


def test_a_benchmark_run_whose_workers_selected_nothing_fails_and_says_why(tmp_path):
    collector, _ = _collector(ON_COMMAND_LINE, tmp_path, keyword="nothing", xdist=True)
    collector.pytest_testnodedown(_node(0), None)
    session = SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    collector.pytest_sessionfinish(session, 0)  # type: ignore[arg-type]
    assert session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    assert collector.nothing_checked is not None
    assert "none was selected (-k 'nothing')" in collector.nothing_checked
    assert not (tmp_path / "reports").exists()


def test_an_ini_benchmark_deselected_by_marker_leaves_the_exit_status_alone(tmp_path):
    collector, fake = _collector(FROM_INI, tmp_path, markexpr="not bandit_case")
    fake.stash[SELECTED] = 0
    session = SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    collector.pytest_sessionfinish(session, 0)  # type: ignore[arg-type]
    assert (session.exitstatus, collector.nothing_checked) == (pytest.ExitCode.OK, None)


def _report(when: str, *props: tuple[str, object]) -> SimpleNamespace:
    return SimpleNamespace(when=when, user_properties=list(props))


def test_a_workers_record_is_kept_once_and_readers_get_plain_values(tmp_path):
    collector, _ = _collector(ON_COMMAND_LINE, tmp_path)
    record = case_record(run_case("baseline/ucb", CONFIG))
    call = _report("call", (RESULT_KEY, record), ("other", 1))
    collector.pytest_runtest_logreport(call)  # type: ignore[arg-type]
    assert collector.records == {("baseline/ucb", "quick"): record}
    props = dict(call.user_properties)
    assert props["other"] == 1
    assert (props["model"], props["config"], props["verdict"]) == ("baseline/ucb", "quick", "pass")
    assert RESULT_KEY not in props  # no raw replies in --junitxml
    teardown = _report("teardown", (RESULT_KEY, {**record, "model": "baseline/ts"}))
    collector.pytest_runtest_logreport(teardown)  # type: ignore[arg-type]
    assert list(collector.records) == [("baseline/ucb", "quick")]  # only the call report counts


def test_cassettes_for_a_case_this_run_does_not_record_are_not_written(tmp_path):
    collector, _ = _collector(ON_COMMAND_LINE, tmp_path)
    sent = {"model": "lab/x", "config": "quick", "episodes": {"0": ["{}", 1]}}
    call = _report("call", (CASSETTES_KEY, sent))
    collector.pytest_runtest_logreport(call)  # type: ignore[arg-type]
    assert call.user_properties == [
        (CASSETTES_KEY, ["cassettes of lab/x x quick came from a worker for no case of this run"])
    ]
    setup = _report("setup", (CASSETTES_KEY, sent))
    collector.pytest_runtest_logreport(setup)  # type: ignore[arg-type]
    assert setup.user_properties == [(CASSETTES_KEY, ["0"])]  # file names only, nothing written
    assert not (tmp_path / "cassettes").exists()
