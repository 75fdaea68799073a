"""Every bandit-bench option: its flag, ini twin, parsing, validation and default, in one place.

Adding an option touches this file: a line in :func:`add_options`, a field of :class:`Options`
and its reading in :func:`read_options` (and :class:`~bandit_bench.running.runner.RunOptions`
when the runner needs it). The hooks only consume :class:`Options`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.core.specs import DEFAULT_CONFIGS, SpecError
from bandit_bench.plugin.cases import split_models

MAX_REQUEST_TIMEOUT = 86400.0
# Options whose presence asks for the benchmark (issue: "options in use"), and their ini twins.
CASE_OPTIONS = ("model", "bandit_config", "cassette_dir")
CASE_INIS = ("bandit_models", "bandit_configs", "bandit_cassette_dir")
# Every bandit-bench option that takes a value: a value written after a space can be taken by
# pytest for a test path before the plugin's options are known (see _space_form_error).
VALUE_FLAGS: set[str] = set()
# Every option's dest and ini name, to tell whether bandit-bench is asked for at all.
DESTS: list[str] = []
INIS: list[str] = []


def add_options(parser: pytest.Parser) -> None:
    """Every bandit-bench option and its ini twin (the one table of them)."""
    group = parser.getgroup("bandit-bench", "bandit-bench: does the model explore in context?")

    def add(flag: str, ini: str | None, help: str, **kw: Any) -> None:
        group.addoption(flag, dest=flag.lstrip("-").replace("-", "_"), help=help, **kw)
        DESTS.append(flag.lstrip("-").replace("-", "_"))
        if ini:
            INIS.append(ini)
        if kw.get("action") not in ("store_true", "store_false", "count"):
            VALUE_FLAGS.add(flag)
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
    add(
        "--request-profile",
        "bandit_request_profile",
        "what every request of the run carries besides the prompt, over the built-in and pyproject "
        "profiles: comma-separated key=value, e.g. 'token_limit_field=max_completion_tokens,"
        "temperature=omit' or 'server=vllm' or 'extra_body.reasoning_effort=low' "
        "(keys: docs/providers.md)",
    )
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
    add(
        "--max-rpm",
        "bandit_max_rpm",
        "requests per minute for the whole session, shared by every case and xdist worker on this "
        "machine; a 429 pauses and slows all of them (default: no limit)",
        type=float,
    )
    add(
        "--max-tpm",
        "bandit_max_tpm",
        "tokens per minute for the whole session (prompt characters / 4 plus each request's max_tokens), "
        "shared like --max-rpm (default: no limit)",
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
    DESTS.append("early_stop")
    INIS.append("bandit_early_stop")


def options_in_use(config: pytest.Config) -> bool:
    """Whether any bandit-bench option or ini key is set: only then does the plugin do work that
    can fail (read pyproject's table, scan the cassette folder) when pytest starts."""

    def given(value: Any) -> bool:
        # Not `value not in (None, [], "", False)`: 0 == False, and --concurrency 0 is given.
        return value is not None and value is not False and value != [] and value != ""

    if any(given(config.getoption(dest, default=None)) for dest in DESTS):
        return True
    for name in INIS:
        try:
            if given(config.getini(name)):
                return True
        except ValueError:  # a bool ini key pytest cannot read: bandit-bench is asked for
            return True
    return False


# --record-mode belongs to pytest-recording (so both plugins coexist); its help line there is
# vcrpy's. What each mode does here, per episode (one cassette per complete episode):
RECORD_MODE_HELP = (
    "bandit-bench, per episode (one cassette per complete episode): none = replay only (the "
    "default; a missing cassette errors); once = replay the episodes that have a cassette, record "
    "the missing ones; new_episodes = replay what matches, record the rest into the same cassette; "
    "all = record every request of the run's episodes again (each episode's cassette replaced, "
    "other episodes kept); rewrite = like all, and the case's manifest then lists only this run's "
    "episodes"
)


def explain_record_mode(config: pytest.Config) -> None:
    """Put what --record-mode does here into ``pytest --help`` (pytest-recording declares it)."""
    parser = getattr(getattr(config, "_parser", None), "optparser", None)
    for action in getattr(parser, "_actions", []):
        if "--record-mode" in getattr(action, "option_strings", ()):
            action.help = RECORD_MODE_HELP


def opt(config: pytest.Config, name: str, ini: str | None, default: Any, cast: Any = str) -> Any:
    value = config.getoption(name)
    if value is None and ini:
        raw = config.getini(ini)
        try:
            value = cast(raw) if raw not in ("", None, []) else None
        except ValueError:
            allowed = "an integer" if cast is int else "a number"
            raise SpecError(f"[tool.pytest.ini_options] {ini}", raw, allowed) from None
    return default if value is None else value


def check_range(name: str, value: float | int | None, low: float, high: float | None = None) -> None:
    if value is None:
        return
    if not value >= low or (high is not None and value > high):  # NaN fails the first test
        allowed = f"a number in [{low}, {high}]" if high is not None else f"a number >= {low}"
        raise SpecError(name, value, allowed)


@dataclass(frozen=True)
class Options:
    """The run's options after parsing, validation and defaults (command line, else ini twin)."""

    models: list[str]  # validated ids; empty: the models with cassettes
    config_names: list[str]  # as given; resolved against the settings by the hooks
    episodes: int | None
    horizon: int | None
    thresholds: dict[str, float | None]
    cassette_dir: Path
    report_dir: Path
    base_url: str
    # True when --base-url or its ini twin chose the endpoint (not the default).
    base_url_given: bool
    # --request-profile, parsed and validated (running.profiles.parse_cli).
    request_profile: dict[str, Any]
    api_key: Any  # credentials.Secret | None: its repr never shows the key
    api_key_env: str | None
    record_mode: str
    concurrency: int
    max_retries: int
    request_timeout: float
    max_rps: float | None
    max_rpm: float | None
    max_tpm: float | None
    compare_to: Path | None
    max_cost: float | None
    early_stop: bool


def read_options(config: pytest.Config) -> Options:
    """Read and check every option; a bad value raises :class:`SpecError` naming it."""
    cassette_dir, report_dir = _folders(config)
    episodes, horizon = config.getoption("episodes"), config.getoption("horizon")
    check_range("--episodes", episodes, 1)
    check_range("--horizon", horizon, 1)
    thresholds = {
        "min_format_compliance": config.getoption("min_format_compliance"),
        "min_best_arm_rate": config.getoption("min_best_arm_rate"),
    }
    for key, value in thresholds.items():
        check_range("--" + key.replace("_", "-"), value, 0.0, 1.0)
    limits = _limits(config)

    models = split_models(config.getoption("model") or config.getini("bandit_models"))
    config_names = list(config.getoption("bandit_config") or config.getini("bandit_configs"))

    early_stop = config.getoption("early_stop")
    if early_stop is None:
        early_stop = bool(config.getini("bandit_early_stop"))
    max_cost = opt(config, "max_cost", "bandit_max_cost", None, float)
    if max_cost is not None and (not max_cost > 0 or max_cost == float("inf")):  # NaN fails `> 0`
        raise SpecError("--max-cost", max_cost, "a positive, finite amount of USD, e.g. --max-cost=5")

    record_mode = config.getoption("record_mode", default=None) or "none"
    endpoint = _endpoint(config, record_mode)
    compare_to = config.getoption("compare_to")
    _check_compare_to(compare_to, report_dir)
    return Options(
        models=models,
        config_names=config_names,
        episodes=episodes,
        horizon=horizon,
        thresholds=thresholds,
        cassette_dir=cassette_dir,
        report_dir=report_dir,
        record_mode=record_mode,
        compare_to=Path(compare_to) if compare_to else None,
        max_cost=max_cost,
        early_stop=early_stop,
        **endpoint,
        **limits,
    )


def _folders(config: pytest.Config) -> tuple[Path, Path]:
    """--cassette-dir and --report-dir (or their ini keys), relative to the project's root."""
    root = config.rootpath
    for flag in ("cassette_dir", "report_dir"):
        if config.getoption(flag) == "":
            # An unset shell variable (--report-dir=$DIR) would otherwise mean the project root.
            raise SpecError(
                f"--{flag.replace('_', '-')}", "", "a folder path (it was empty; was a variable unset?)"
            )
    cassette_dir = Path(opt(config, "cassette_dir", "bandit_cassette_dir", "cassettes"))
    if not cassette_dir.is_absolute():
        cassette_dir = root / cassette_dir
    report_dir = Path(opt(config, "report_dir", "bandit_report_dir", "reports"))
    if not report_dir.is_absolute():
        report_dir = root / report_dir
    return cassette_dir, report_dir


def _limits(config: pytest.Config) -> dict[str, Any]:
    """Concurrency, retries, the request timeout and the rate limits, checked."""
    concurrency = opt(config, "concurrency", "bandit_concurrency", 8, int)
    max_retries = opt(config, "max_retries", "bandit_max_retries", 2, int)
    timeout = opt(config, "request_timeout", "bandit_request_timeout", 60.0, float)
    max_rps = opt(config, "max_rps", "bandit_max_rps", None, float)
    check_range("--concurrency", concurrency, 1)
    check_range("--max-retries", max_retries, 0)
    # Beyond a day a socket timeout overflows (inf, 1e300): refused here, not mid-run.
    check_range("--request-timeout", timeout, 0.001, MAX_REQUEST_TIMEOUT)
    check_range("--max-rps", max_rps, 0.001)
    max_rpm = opt(config, "max_rpm", "bandit_max_rpm", None, float)
    max_tpm = opt(config, "max_tpm", "bandit_max_tpm", None, float)
    check_range("--max-rpm", max_rpm, 0.001)
    check_range("--max-tpm", max_tpm, 1)
    return {
        "concurrency": concurrency,
        "max_retries": max_retries,
        "request_timeout": timeout,
        "max_rps": max_rps,
        "max_rpm": max_rpm,
        "max_tpm": max_tpm,
    }


def _endpoint(config: pytest.Config, record_mode: str) -> dict[str, Any]:
    """The base URL, the request profile and the API key, checked (a key that cannot be sent
    is refused only when the run may record)."""
    from bandit_bench.running.credentials import key_problem, select_api_key
    from bandit_bench.running.profiles import parse_cli
    from bandit_bench.running.runner import DEFAULT_BASE_URL, check_base_url

    base_url = opt(config, "base_url", "bandit_base_url", None)
    base_url_given = base_url is not None
    base_url = base_url or DEFAULT_BASE_URL
    check_base_url(base_url)
    request_profile = parse_cli(opt(config, "request_profile", "bandit_request_profile", ""))
    api_key_env = opt(config, "api_key_env", "bandit_api_key_env", None)
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
    return {
        "base_url": base_url,
        "base_url_given": base_url_given,
        "request_profile": request_profile,
        "api_key": api_key,
        "api_key_env": api_key_env,
    }


def _check_compare_to(compare_to: str | None, report_dir: Path) -> None:
    """--compare-to names a readable report folder other than this run's; SOURCE_DATE_EPOCH, if
    set, is a valid time (both found before a paid run, not when its report is written)."""
    if compare_to and not (Path(compare_to) / "summary.json").is_file():
        raise SpecError("--compare-to", compare_to, "the report folder of an earlier run (with summary.json)")
    if compare_to:
        from bandit_bench.reporting.tables import ReportDirError, load_report_dir

        try:
            # Read now, not after a paid run: a damaged folder is a usage error, not a regression.
            load_report_dir(Path(compare_to))
        except ReportDirError as err:
            raise SpecError("--compare-to", compare_to, "a readable report folder", hint=str(err)) from None
    from bandit_bench.reporting.provenance import source_date_epoch

    _, epoch_problem = source_date_epoch()
    if epoch_problem is not None:
        # Found before the run, not when the report is written at its end.
        raise SpecError("the environment", "SOURCE_DATE_EPOCH", "a valid time", hint=epoch_problem)
    if compare_to and Path(compare_to).resolve() == report_dir.resolve():
        # This run's report replaces that folder before the comparison: it would compare with itself.
        raise SpecError(
            "--compare-to",
            compare_to,
            "a folder other than --report-dir",
            hint=f"Keep the earlier run elsewhere (cp -r {compare_to} previous-reports) and compare to that",
        )
