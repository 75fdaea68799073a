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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Price lives with the one cost rule (core.replies.cost_usd), which the report uses too.
from bandit_bench.core.replies import Price
from bandit_bench.core.specs import (
    BUILTIN_CONFIGS,
    CaseConfig,
    SpecError,
    check_table_shape,
    config_from_table,
)


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
    # Which keys, which types (core.formats.ProjectTable); what the names mean is checked here.
    check_table_shape("ProjectTable", table, where)
    configs = dict(BUILTIN_CONFIGS)
    from bandit_bench.running.runner import validate_model

    for name, cfg in table.get("configs", {}).items():
        configs[name] = config_from_table(name, cfg)
        for model in configs[name].xfail_models:
            _check_model(f"{where}.configs.{name!r}.xfail_models", model, validate_model)
    xfail: dict[str, frozenset[str]] = {}
    for model, names in table.get("xfail", {}).items():
        _check_model(f"{where}.xfail", model, validate_model)
        missing = [n for n in names if n not in configs]
        if missing:
            raise SpecError(f"{where}.xfail.{model!r}", missing[0], f"one of the configs {sorted(configs)}")
        xfail[model] = frozenset(names)
    prices = {
        model: Price(float(p["prompt"]), float(p["completion"]))
        for model, p in table.get("prices", {}).items()
    }
    from bandit_bench.running.profiles import ProfileSettings

    profiles = ProfileSettings.from_tables(table.get("models", {}))
    return ProjectSettings(configs=configs, xfail=xfail, prices=prices, source=source, profiles=profiles)
