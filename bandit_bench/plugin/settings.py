"""Project settings from ``[tool.bandit_bench]`` in ``pyproject.toml``.

::

    [tool.bandit_bench.configs.my-config]   # a named config, beside the built-in presets
    design = "BSSC~0"
    instance = "hard"        # or k = 5 and delta = 0.2
    horizon = 50
    episodes = 10
    min_format_compliance = 0.9
    min_best_arm_rate = 0.3

    [tool.bandit_bench.xfail]               # known shortfalls, reported as strict xfail
    "local/smollm2-135m-instruct" = ["BNRN0-hard-T25"]

    [tool.bandit_bench.prices]              # USD per million tokens
    "openai/gpt-4o-mini" = { prompt = 0.15, completion = 0.60 }

    [tool.bandit_bench.models."o4-mini"]    # request profile (running/profiles.py, docs/providers.md)
    token_limit = 6000
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Price lives with the one cost rule (core.replies.cost_usd), which the report uses too.
from bandit_bench.core.replies import Price
from bandit_bench.core.specs import BUILTIN_CONFIGS, CaseConfig, SpecError, config_from_table

_KNOWN_TABLES = {"configs", "xfail", "prices", "models"}


@dataclass(frozen=True)
class ProjectSettings:
    configs: dict[str, CaseConfig] = field(default_factory=lambda: dict(BUILTIN_CONFIGS))
    xfail: dict[str, frozenset[str]] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    source: Path | None = None
    # [tool.bandit_bench.models."<id or pattern>"]: request profiles (running.profiles).
    profiles: Any = None

    def __post_init__(self) -> None:
        if self.profiles is None:
            from bandit_bench.running.profiles import ProfileSettings

            object.__setattr__(self, "profiles", ProfileSettings())

    def expected_failure(self, model: str, config: CaseConfig) -> bool:
        return model in config.xfail_models or config.name in self.xfail.get(model, frozenset())

    def expected_failure_entry(self, model: str, config: CaseConfig) -> str:
        """Where the expected failure is declared, as a user finds it in ``pyproject.toml``."""
        if config.name in self.xfail.get(model, frozenset()):
            return f'[tool.bandit_bench.xfail] "{model}" (the entry "{config.name}")'
        return f'[tool.bandit_bench.configs."{config.name}"] xfail_models (the entry "{model}")'


def _check_model(where: str, model: str, validate: Any) -> None:
    try:
        validate(model)
    except SpecError as err:
        raise SpecError(where, model, err.allowed) from None


def load_settings(pyproject: Path | None) -> ProjectSettings:
    """Built-in presets merged with the project's own table; errors name the file and field."""
    if pyproject is None or not pyproject.is_file():
        return ProjectSettings()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError(str(pyproject), type(err).__name__, f"a readable TOML file ({err})") from None
    table = data.get("tool", {}).get("bandit_bench", {})
    return settings_from_table(table, pyproject)


def settings_from_table(table: Any, source: Path | None = None) -> ProjectSettings:
    where = "[tool.bandit_bench]"
    if not isinstance(table, Mapping):
        raise SpecError(where, table, "a table")
    unknown = set(table) - _KNOWN_TABLES
    if unknown:
        raise SpecError(f"{where} key", sorted(unknown)[0], f"one of {sorted(_KNOWN_TABLES)}")
    configs = dict(BUILTIN_CONFIGS)
    raw_configs = table.get("configs", {})
    if not isinstance(raw_configs, Mapping):
        raise SpecError(f"{where}.configs", raw_configs, "a table of named configs")
    from bandit_bench.running.runner import validate_model

    for name, cfg in raw_configs.items():
        configs[name] = config_from_table(name, cfg)
        for model in configs[name].xfail_models:
            _check_model(f"{where}.configs.{name!r}.xfail_models", model, validate_model)
    xfail: dict[str, frozenset[str]] = {}
    raw_xfail = table.get("xfail", {})
    if not isinstance(raw_xfail, Mapping):
        raise SpecError(f"{where}.xfail", raw_xfail, "a table of model id = [config names]")
    for model, names in raw_xfail.items():
        _check_model(f"{where}.xfail", model, validate_model)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SpecError(f"{where}.xfail.{model!r}", names, "a list of config names")
        missing = [n for n in names if n not in configs]
        if missing:
            raise SpecError(f"{where}.xfail.{model!r}", missing[0], f"one of the configs {sorted(configs)}")
        xfail[model] = frozenset(names)
    prices: dict[str, Price] = {}
    raw_prices = table.get("prices", {})
    if not isinstance(raw_prices, Mapping):
        raise SpecError(f"{where}.prices", raw_prices, "a table of model id = {prompt, completion}")
    for model, p in raw_prices.items():
        ok = (
            isinstance(p, Mapping)
            and set(p) == {"prompt", "completion"}
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in p.values())
        )
        if not ok:
            raise SpecError(
                f"{where}.prices.{model!r}",
                p,
                "{ prompt = USD per 1M tokens, completion = USD per 1M tokens }",
            )
        prices[model] = Price(float(p["prompt"]), float(p["completion"]))
    from bandit_bench.running.profiles import ProfileSettings

    profiles = ProfileSettings.from_tables(table.get("models", {}))
    return ProjectSettings(configs=configs, xfail=xfail, prices=prices, source=source, profiles=profiles)
