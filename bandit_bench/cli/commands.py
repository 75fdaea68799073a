"""The ``bandit-bench`` command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its arguments and
sets ``func`` to its handler; :data:`_COMMANDS` lists them in the order ``--help`` shows them.
A new subcommand (``report``, ``compare``, ``record-local``) is one more function and one more
entry there. Handlers take the parsed arguments and return the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bandit_bench.core.agents.baselines import BASELINES, run_on_instances
from bandit_bench.core.metrics import EpisodeBatch, point_values
from bandit_bench.core.specs import DEFAULT_CONFIGS, InstanceSpec, RunSpec, SpecError
from bandit_bench.recording.modes import MODES

if TYPE_CHECKING:
    from bandit_bench.plugin.settings import ProjectSettings

# ---------------------------------------------------------------------------- baselines

BASELINE_COLUMNS: tuple[str, ...] = (
    "algorithm",
    "median_reward",
    "suffix_failure_freq",
    "k_min_frac",
    "greedy_frac",
    "best_arm_rate",
    "mean_regret",
)


def baseline_rows(spec: InstanceSpec, run: RunSpec, *, epsilon: float = 0.1) -> list[dict[str, str | float]]:
    """One row of point metrics per baseline, on the instances the pytest plugin draws.

    Episode ``i`` is ``draw_instance(spec, run.seed, i)``, so these rows sit on the very reward
    tables the LLM runs face, with the same draws as the report's reference rows
    (:func:`~bandit_bench.core.agents.baselines.run_on_instances`).
    """
    rows: list[dict[str, str | float]] = []
    for name in BASELINES:
        r = run_on_instances(name, spec, run.seed, run.episodes, epsilon=epsilon)
        batch = EpisodeBatch.from_arrays(r.arms, r.rewards, r.best_arm, k=spec.k, delta=spec.delta)
        # Point values only: the table prints no intervals, and the bootstrap would cost more
        # than running the algorithms.
        values = point_values(batch)
        rows.append({"algorithm": name, **{c: values[c] for c in BASELINE_COLUMNS[1:]}})
    return rows


def _fixed3(value: float) -> str:
    text = f"{value:.3f}"
    # Rescaled rewards can land a rounding error below zero; "-0.000" would read as a sign.
    return "0.000" if text == "-0.000" else text


def format_table(rows: Sequence[dict[str, str | float]], columns: Sequence[str]) -> str:
    """Plain-text table: text left-aligned, numbers right-aligned with 3 decimals."""
    from bandit_bench.reporting.columns import aligned_table

    cells = [[c if isinstance(c, str) else _fixed3(c) for c in (r[k] for k in columns)] for r in rows]
    numeric = {i for i, c in enumerate(columns) if rows and not isinstance(rows[0][c], str)}
    return "\n".join(aligned_table([list(columns), *cells], numeric))


def _cmd_baselines(args: argparse.Namespace) -> int:
    spec = InstanceSpec(k=args.k, delta=args.delta, horizon=args.horizon)
    run = RunSpec(episodes=args.episodes, seed=args.seed)
    if not 0.0 <= args.epsilon <= 1.0:
        raise SpecError("epsilon", args.epsilon, "a number in [0, 1]")
    rows = baseline_rows(spec, run, epsilon=args.epsilon)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, BASELINE_COLUMNS))
    return 0


def _add_baselines(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "baselines",
        help="run the classic algorithms on the benchmark's instances",
        description="Run UCB, Thompson sampling, greedy, epsilon-greedy and uniform on the same "
        "seeded instances as the LLM runs, and print their metrics.",
    )
    p.add_argument("--k", type=int, default=5, help="number of arms (default 5)")
    p.add_argument("--delta", type=float, default=0.2, help="gap between best and other means (default 0.2)")
    p.add_argument("--horizon", type=int, default=100, help="steps per episode (default 100)")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per algorithm (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="base seed, as in the run config (default 0)")
    p.add_argument("--epsilon", type=float, default=0.1, help="exploration rate of eps_greedy (default 0.1)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_cmd_baselines)


# ---------------------------------------------------------------------------- report, compare


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bandit_bench.reporting.tables import ReportDirError
    from bandit_bench.reporting.writer import rerender_reports

    try:
        paths = rerender_reports(Path(args.dir))
    except ReportDirError as err:
        print(f"bandit-bench report: {err}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="re-render report.md and report.html of a report folder",
        description="Write report.md and report.html again from the folder's summary.json and "
        "steps.jsonl, without running anything.",
    )
    p.add_argument("dir", metavar="DIR", help="a report folder written by a pytest run (e.g. reports/)")
    p.set_defaults(func=_cmd_report)


# Exit codes of `bandit-bench compare`: 0 no regression, 1 a significant regression, 2 a folder
# cannot be read or an argument is wrong, 3 what OLD checked is not all compared in NEW.
COMPARE_INCOMPLETE = 3


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bandit_bench.reporting.compare import compare_dirs
    from bandit_bench.reporting.tables import ReportDirError

    if not args.tolerance >= 0:
        raise SpecError("--tolerance", args.tolerance, "a number >= 0 (an absolute change, e.g. 0.05)")
    try:
        outcome = compare_dirs(Path(args.old), Path(args.new), tolerance=args.tolerance)
    except ReportDirError as err:
        print(f"bandit-bench compare: {err}", file=sys.stderr)
        return 2
    print(outcome.text)
    if outcome.regressed:
        return 1
    return COMPARE_INCOMPLETE if outcome.incomplete else 0


def _add_compare(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two report folders; exit 1 on a significant regression, 3 when incomplete",
        description="For each model x config in both folders, compare format compliance, best-arm "
        "rate and SuffFailFreq(T/2) episode by episode (same seeds, same instances) with a one-sided "
        "paired sign-flip permutation test. Exit 1 when a metric got worse by more than the "
        "tolerance with p < 0.05; exit 3 when the comparison is incomplete (a model x config of OLD "
        "is missing in NEW, a NEW case errored or has no complete episode, or no model row is in "
        "both: reference baselines never count); exit 2 when a folder cannot be read; 0 otherwise.",
    )
    p.add_argument("old", metavar="OLD", help="the earlier report folder (the reference)")
    p.add_argument("new", metavar="NEW", help="the later report folder (the one under test)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="absolute worsening allowed before a significant change counts (default 0.05)",
    )
    p.set_defaults(func=_cmd_compare)


# ---------------------------------------------------------------------------- configs

CONFIG_COLUMNS: tuple[str, ...] = (
    "name",
    "source",
    "design",
    "instance",
    "T",
    "N",
    "min_format_compliance",
    "min_best_arm_rate",
    "xfail_models",
)


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` from ``start`` upwards, as pytest finds the project's."""
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def config_rows(settings: ProjectSettings) -> list[dict[str, Any]]:
    """One row per config ``--bandit-config`` accepts: the built-in ones, then the project's."""
    from bandit_bench.core.specs import BUILTIN_CONFIGS, INSTANCE_PRESETS

    presets = {v: k for k, v in INSTANCE_PRESETS.items()}
    rows = []
    for name, cfg in settings.configs.items():
        inst = cfg.instance
        preset = presets.get((inst.k, inst.delta))
        rows.append(
            {
                "name": name,
                "source": "built-in" if BUILTIN_CONFIGS.get(name) == cfg else "project",
                "design": cfg.design.code + (" constrained" if cfg.constrained else ""),
                "instance": f"{preset + ': ' if preset else ''}K={inst.k}, delta={inst.delta:g}",
                "T": inst.horizon,
                "N": cfg.run.episodes,
                "min_format_compliance": cfg.min_format_compliance,
                "min_best_arm_rate": cfg.min_best_arm_rate,
                "xfail_models": ", ".join(cfg.xfail_models),
            }
        )
    return rows


def _cmd_configs(args: argparse.Namespace) -> int:
    from bandit_bench.core.specs import SUITES
    from bandit_bench.plugin.settings import load_settings

    pyproject = Path(args.pyproject) if args.pyproject else find_pyproject(Path.cwd())
    if args.pyproject and not Path(args.pyproject).is_file():
        raise SpecError("--pyproject", args.pyproject, "an existing pyproject.toml")
    settings = load_settings(pyproject)
    rows = config_rows(settings)
    suites = {name: [n for n in names if n in settings.configs] for name, names in SUITES.items()}
    if args.json:
        print(json.dumps({"configs": rows, "suites": suites, "default": list(DEFAULT_CONFIGS)}, indent=2))
        return 0
    table = [{k: v if isinstance(v, (str, float)) else str(v) for k, v in r.items()} for r in rows]
    print(format_table(table, CONFIG_COLUMNS))
    print()
    for name, names in suites.items():
        print(f"suite {name}: {len(names)} configs (--bandit-config {name})")
    print(f"project settings: {pyproject if pyproject else 'none (no pyproject.toml here or above)'}")
    print(
        "default: the configs a model has cassettes for, else "
        + ", ".join(DEFAULT_CONFIGS)
        + ". Shell patterns work too: --bandit-config 'BS*-hard-T100'"
    )
    return 0


def _add_configs(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "configs",
        help="list the configs --bandit-config accepts (built-in and the project's)",
        description="List every named config (design, instance, horizon T, episodes N, thresholds, "
        "declared expected failures) from the built-in presets and [tool.bandit_bench.configs] of "
        "the nearest pyproject.toml, and the suites.",
    )
    p.add_argument("--pyproject", help="the project's pyproject.toml (default: the nearest, upwards)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_configs)


# ---------------------------------------------------------------------------- init


def _cmd_init(args: argparse.Namespace) -> int:
    from bandit_bench.cli.scaffold import CI_TEST_COMMAND, WORKFLOW_PATH, init_project, install_spec
    from bandit_bench.plugin.cases import discover_models, expand_config_names, resolve_configs, split_models
    from bandit_bench.plugin.settings import load_settings

    root = Path(args.dir)
    if not root.is_dir():
        raise SpecError("--dir", args.dir, "an existing folder (the repository)")
    settings = load_settings(root / "pyproject.toml")
    models = split_models(args.model or []) or discover_models(root / "cassettes")
    if not models:
        raise SpecError("--model", None, "the models CI checks (repeatable), e.g. --model openai/gpt-4o-mini")
    configs = expand_config_names(args.bandit_config or DEFAULT_CONFIGS, settings)
    resolve_configs(configs, settings)
    install, warning = (args.install, None) if args.install else install_spec()
    result = init_project(root, models, configs, install=install)
    for line in result.written:
        print(f"wrote    {line}")
    for line in result.skipped:
        print(f"skipped  {line}")
    if warning and any(str(WORKFLOW_PATH) == line for line in result.written):
        print(f"warning  {warning}")
    # An existing bandit_models list is never edited: a model outside it is one CI never runs.
    ci_models = _ini_models(root / "pyproject.toml")
    outside = [m for m in models if ci_models is not None and m not in ci_models]
    if outside:
        print(
            f"warning  CI runs the models of bandit_models in pyproject.toml ({', '.join(ci_models or [])}); "
            f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not among them: add "
            f"{'it' if len(outside) == 1 else 'them'} there, or CI never replays what you record"
        )
    names = " ".join(f"--model {m}" for m in models)
    print(
        "\nNext: record the cassettes once and commit them (CI replays them with no key):\n"
        f"  OPENROUTER_API_KEY=... pytest {names} --record-mode=once\n"
        "  git add cassettes pyproject.toml .gitignore .github && git commit -m 'bandit-bench'\n"
        f"CI then runs: {CI_TEST_COMMAND}"
    )
    return 0


def _ini_models(pyproject: Path) -> list[str] | None:
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    models = data.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("bandit_models")
    return [str(m) for m in models] if isinstance(models, list) else None


def _add_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init",
        help="set up a repository: pytest ini keys and a GitHub Actions workflow (never overwrites)",
        description="Write into the repository what running bandit-bench in CI needs, and only "
        "what it lacks: bandit_models / bandit_configs in [tool.pytest.ini_options] of "
        "pyproject.toml, a [tool.bandit_bench.xfail] table, .github/workflows/bandit-bench.yml "
        "(install, replay offline, compare with the last report, upload reports/) and reports/ in "
        ".gitignore. Existing files and tables are left alone and listed as skipped.",
    )
    p.add_argument("--model", action="append", metavar="ID", help="model CI checks (repeatable)")
    p.add_argument(
        "--bandit-config",
        action="append",
        metavar="NAME",
        help="config, suite or pattern (repeatable; default "
        + ", ".join(DEFAULT_CONFIGS)
        + "; `bandit-bench configs` lists them)",
    )
    p.add_argument("--dir", default=".", help="the repository (default: the current folder)")
    p.add_argument(
        "--install",
        default=None,
        help="what the workflow pip-installs, as one pip argument (default: the way this copy was "
        "installed, when CI can repeat it: its git URL or wheel URL; else pytest-bandit-bench, "
        "not yet on PyPI). E.g. 'pytest-bandit-bench @ git+https://github.com/OWNER/REPO@v0.1.0'",
    )
    p.set_defaults(func=_cmd_init)


# ---------------------------------------------------------------------------- entry point

_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_baselines,
    _add_report,
    _add_compare,
    _add_configs,
    _add_init,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bandit-bench", description="Does this language model explore, in context?"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help and on malformed arguments; return its code so callers
        # (tests, scripts) get an int like for every other outcome.
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.func(args)
    except SpecError as err:
        print(f"bandit-bench {args.command}: {err}", file=sys.stderr)
        return 2
    return code


# ---------------------------------------------------------------------------- record-local


def _cmd_record_local(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bandit_bench.servers.llama import (
        RECORD_CONFIGS,
        LocalServerError,
        record_local,
        terminate_like_ctrl_c,
    )

    try:
        with terminate_like_ctrl_c():
            return record_local(
                venv=Path(args.venv),
                configs=args.bandit_config or RECORD_CONFIGS,
                episodes=args.episodes,
                horizon=args.horizon,
                workers=args.workers,
                record_mode=args.record_mode,
                port=args.port,
                threads=args.threads,
            )
    except LocalServerError as err:
        print(f"bandit-bench record-local: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: pytest was stopped (complete episodes are saved), then the server.
        print("bandit-bench record-local: interrupted; pytest and the server were stopped", file=sys.stderr)
        return 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}; expected an integer >= 1")
    return value


def _add_record_local(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bandit_bench.servers.llama import DEFAULT_VENV, PYTHON_ENV_VAR, RECORD_CONFIGS

    p = sub.add_parser(
        "record-local",
        help="record cassettes of SmolLM2-135M-Instruct behind a local llama.cpp server",
        description="Install llama-cpp-python[server] and the SmolLM2 weights when missing, start "
        "the server on 127.0.0.1, record the configs as local/smollm2-135m-instruct through the "
        "pytest plugin, and stop the server (also on Ctrl-C). Run it from the repository.",
    )
    p.add_argument(
        "--venv",
        default=str(DEFAULT_VENV),
        help=f"venv for the server, created when missing (default {DEFAULT_VENV}); unused when "
        f"this python or ${PYTHON_ENV_VAR} has llama_cpp",
    )
    p.add_argument(
        "--bandit-config",
        action="append",
        metavar="NAME",
        help=f"config to record (repeatable; default {', '.join(RECORD_CONFIGS)})",
    )
    p.add_argument("--episodes", type=int, help="override the configs' number of episodes")
    p.add_argument("--horizon", type=int, help="override the configs' horizon T")
    p.add_argument("-n", dest="workers", type=int, default=0, help="pytest-xdist workers (default 0)")
    p.add_argument(
        "--record-mode",
        default="once",
        # The modes that record: all but none.
        choices=tuple(m.name for m in MODES.values() if m.records_missing_episodes),
        help="once (default) records what is missing; rewrite re-records everything",
    )
    p.add_argument("--port", type=int, default=0, help="server port (default 0: a free one)")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="llama.cpp threads (default: one per core; 1 is often faster on a busy machine)",
    )
    p.set_defaults(func=_cmd_record_local)


_COMMANDS.append(_add_record_local)


if __name__ == "__main__":
    raise SystemExit(main())
