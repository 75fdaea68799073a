"""The case matrix: which models and which configs one run covers, resolved and validated."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .recording import safe_component
from .runner import validate_model
from .settings import ProjectSettings
from .specs import CaseConfig, SpecError


@dataclass(frozen=True)
class Case:
    model: str
    config: CaseConfig
    expected_failure: bool = False

    @property
    def id(self) -> str:
        return f"{self.model}-{self.config.name}"


def split_models(values: Iterable[str]) -> list[str]:
    """``--model a --model b,c`` -> [a, b, c], each validated, duplicates dropped in order."""
    out: list[str] = []
    for value in values:
        parts = value.split(",")
        for part in parts:
            if not part.strip():
                raise SpecError("--model", value, "comma-separated model ids with no empty entry")
            # Not stripped: " x" is a typo, and a model id never holds a space (validate_model says so).
            model = validate_model(part)
            if model not in out:
                _check_distinct_folder("--model", model, out, _model_folder)
                out.append(model)
    return out


def _model_folder(model: str) -> str:
    return "/".join(safe_component(p) for p in model.split("/") if p)


def _check_distinct_folder(
    field: str, name: str, others: Iterable[str], folder: Callable[[str], str]
) -> None:
    """Two cases must never share cassette files (``a~b`` and ``atb`` both map to ``atb``)."""
    for other in others:
        if folder(other) == folder(name):
            raise SpecError(
                field, name, f"a name whose cassette folder differs from that of {other!r} ({folder(name)})"
            )


def discover_models(cassette_dir: Path) -> list[str]:
    """Models with cassettes: ``<dir>/<model...>/<config>/<NNN>.json`` -> ``model`` (slashes kept)."""
    if not cassette_dir.is_dir():
        return []
    models = set()
    for path in cassette_dir.rglob("*.json"):
        rel = path.relative_to(cassette_dir).parts
        if len(rel) >= 3 and path.stem.isdigit():
            models.add("/".join(rel[:-2]))
    return sorted(models)


def recorded_configs(cassette_dir: Path, model: str, configs: dict[str, CaseConfig]) -> list[str]:
    base = cassette_dir.joinpath(*[safe_component(p) for p in model.split("/")])
    # The folder name cassette_path writes (safe_component).
    return [name for name, cfg in configs.items() if (base / safe_component(cfg.name)).is_dir()]


_PATTERN_CHARS = frozenset("*?[")


def expand_config_names(names: Iterable[str], settings: ProjectSettings) -> list[str]:
    """Config names, suite names (:data:`~bandit_bench.specs.SUITES`) and shell-style patterns
    (``'BS*-hard-T100'``, matched with :func:`fnmatch.fnmatchcase` against every config name and
    its ASCII spelling) -> config names, in the order given, each once.

    A config of the project named like a suite is that config, not the suite.
    """
    from fnmatch import fnmatchcase

    from .specs import SUITES

    # The ASCII spelling of a design code works in config names too (BSSCt0-hard-T25).
    ascii_twin = {safe_component(n): n for n in settings.configs}
    out: list[str] = []
    for given in names:
        if given in settings.configs or given in ascii_twin:
            found = [given if given in settings.configs else ascii_twin[given]]
        elif given in SUITES:
            found = [n for n in SUITES[given] if n in settings.configs]
        elif _PATTERN_CHARS & set(given):
            found = [
                n for n in settings.configs if fnmatchcase(n, given) or fnmatchcase(safe_component(n), given)
            ]
            if not found:
                raise SpecError(
                    "--bandit-config",
                    given,
                    f"a pattern matching at least one of {', '.join(sorted(settings.configs))}",
                    "Patterns are case-sensitive shell patterns (* ? [...]); quote them in the shell",
                )
        else:
            raise SpecError(
                "--bandit-config",
                given,
                f"one of {', '.join(sorted(settings.configs))} (or add [tool.bandit_bench.configs.NAME])",
                f"Or a suite ({', '.join(SUITES)}) or a shell pattern such as 'BS*-hard-T100'",
            )
        out += [n for n in found if n not in out]
    return out


def resolve_configs(
    names: Iterable[str],
    settings: ProjectSettings,
    *,
    episodes: int | None = None,
    horizon: int | None = None,
) -> list[CaseConfig]:
    out: list[CaseConfig] = []
    for name in expand_config_names(names, settings):
        cfg = settings.configs[name].with_overrides(episodes=episodes, horizon=horizon)
        if cfg not in out:
            _check_distinct_folder("--bandit-config", name, [c.name for c in out], safe_component)
            out.append(cfg)
    return out


def build_cases(models: list[str], configs: list[CaseConfig], settings: ProjectSettings) -> list[Case]:
    return [Case(m, c, settings.expected_failure(m, c)) for m in models for c in configs]
