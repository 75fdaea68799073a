"""The case matrix: which models and which configs one run covers, resolved and validated."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bandit_bench.core.specs import CaseConfig, SpecError
from bandit_bench.core.thresholds import follow_horizon
from bandit_bench.plugin.settings import ProjectSettings
from bandit_bench.recording.casefolder import MANIFEST, Recording, find_recordings, is_folder
from bandit_bench.recording.transport import safe_component
from bandit_bench.running.runner import validate_model


@dataclass(frozen=True)
class Case:
    model: str
    config: CaseConfig
    expected_failure: bool = False
    # Per case, from its manifest on a replay (casefolder.as_recorded); None: the run's option.
    early_stop: bool | None = None

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


def _legacy_folders(cassette_dir: Path) -> list[tuple[str, str]]:
    """(model folder path, config folder) of case folders written before manifests existed."""
    if not is_folder(cassette_dir):
        return []
    out = set()
    for path in cassette_dir.rglob("*.json"):
        rel = path.relative_to(cassette_dir).parts
        if len(rel) >= 3 and path.stem.isdigit() and not (path.parent / MANIFEST).exists():
            out.add(("/".join(rel[:-2]), rel[-2]))
    return sorted(out)


def recordings(cassette_dir: Path) -> list[Recording]:
    """The case folders under ``cassette_dir`` (:func:`find_recordings`), each manifest's model id
    checked: a bad one is blamed on its manifest, not on a ``--model`` nobody gave."""
    found = find_recordings(cassette_dir)
    for r in found:
        try:
            validate_model(r.model)
        except SpecError as err:
            raise SpecError(
                f"the model of {r.folder / MANIFEST}",
                r.model,
                err.allowed,
                hint="Restore the manifest from version control (git checkout -- FILE), or delete the folder",
            ) from None
    return found


def discover_models(cassette_dir: Path) -> list[str]:
    """Models with cassettes, by the exact id in each case folder's manifest.

    A folder name is a file-safe spelling (``qwen2.5:0.5b`` -> ``qwen2.5_0.5b``) and cannot be
    read back as an id; only a folder from before manifests falls back to it."""
    models = {r.model for r in recordings(cassette_dir)}
    models.update(model for model, _ in _legacy_folders(cassette_dir))
    return sorted(models)


def recorded_configs(cassette_dir: Path, model: str, configs: dict[str, CaseConfig]) -> list[str]:
    """Config names recorded for ``model``: from manifests (override-made configs included), then
    known configs whose folder predates manifests."""
    names = [r.config for r in recordings(cassette_dir) if r.model == model]
    legacy = {folder for m, folder in _legacy_folders(cassette_dir) if m == _model_folder(model)}
    names += [
        name for name, cfg in configs.items() if safe_component(cfg.name) in legacy and name not in names
    ]
    return names


_T_SUFFIX = re.compile(r"-T(\d+)(?=-|$)")


def derive_config(
    name: str, settings: ProjectSettings, recordings: Iterable[Recording] = ()
) -> CaseConfig | None:
    """A config made by an override (``--horizon 30`` makes ``BNRN0-hard-T30``), asked for by name.

    A manifest that recorded it names the config it came from; without one, the name is matched
    against each known config with another horizon. None when nothing fits; an error when the
    name fits several configs (``BNRN0-hard-T30`` from ``-T25`` and from ``-T100``)."""
    bases = {
        (r.manifest["derived_from"]["config"], r.manifest["derived_from"]["T"])
        for r in recordings
        if r.config == name and isinstance(r.manifest.get("derived_from"), dict)
    }
    candidates = [(b, t) for b, t in sorted(bases) if b in settings.configs and isinstance(t, int)]
    if not candidates:
        for base, cfg in settings.configs.items():
            own = f"-T{cfg.instance.horizon}"
            if own in cfg.name:
                pattern = re.escape(cfg.name).replace(re.escape(own), r"-T(\d+)", 1)
            else:
                pattern = re.escape(cfg.name) + r"-T(\d+)"
            m = re.fullmatch(pattern, name)
            if m and int(m.group(1)) >= 1 and int(m.group(1)) != cfg.instance.horizon:
                candidates.append((base, int(m.group(1))))
    derived = [
        follow_horizon(settings.configs[b], settings.configs[b].with_overrides(horizon=t))
        for b, t in candidates
    ]
    derived = [d for d in derived if d.name == name]
    if len(derived) > 1:
        options = " or ".join(f"--bandit-config '{d.origin}' --horizon {d.instance.horizon}" for d in derived)
        raise SpecError(
            "--bandit-config",
            name,
            "a config name that says which config it was made from",
            hint=f"{name} can be made from several configs: ask for it as {options}",
        )
    return derived[0] if derived else None


_PATTERN_CHARS = frozenset("*?[")


def expand_config_names(
    names: Iterable[str], settings: ProjectSettings, recordings: Iterable[Recording] = ()
) -> list[str]:
    """Config names, suite names (:data:`~bandit_bench.core.specs.SUITES`) and shell-style patterns
    (``'BS*-hard-T100'``, matched with :func:`fnmatch.fnmatchcase` against every config name and
    its ASCII spelling) -> config names, in the order given, each once.

    A config of the project named like a suite is that config, not the suite.
    """
    from fnmatch import fnmatchcase

    from bandit_bench.core.specs import SUITES

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
                    f"a pattern matching at least one of the {_configs_listed(settings)}",
                    "Patterns are case-sensitive shell patterns (* ? [...]); quote them in the shell",
                )
        elif derive_config(given, settings, recordings) is not None:
            found = [given]  # made by --horizon from a known config (BNRN0-hard-T30)
        else:
            raise SpecError(
                "--bandit-config",
                given,
                f"one of the {_configs_listed(settings)} (or add [tool.bandit_bench.configs.NAME])",
                _did_you_mean(given, [*settings.configs, *SUITES])
                + f"Or a suite ({', '.join(SUITES)}) or a shell pattern such as 'BS*-hard-T100', or a "
                "config with another horizon such as BNRN0-hard-T30",
            )
        out += [n for n in found if n not in out]
    return out


def _configs_listed(settings: ProjectSettings) -> str:
    # The count, not the ~170 names: the command prints them as a table.
    return f"{len(settings.configs)} configs that `bandit-bench configs` lists"


def _did_you_mean(given: str, names: Iterable[str]) -> str:
    """ "Did you mean X or Y? " for the names closest to a mistyped one, else ""."""
    import difflib

    close = difflib.get_close_matches(given, sorted(set(names)), n=3, cutoff=0.75)
    return f"Did you mean {' or '.join(close)}? " if close else ""


def resolve_configs(
    names: Iterable[str],
    settings: ProjectSettings,
    *,
    episodes: int | None = None,
    horizon: int | None = None,
    cassette_dir: Path | None = None,
) -> list[CaseConfig]:
    out: list[CaseConfig] = []
    found = recordings(cassette_dir) if cassette_dir is not None else []
    for name in expand_config_names(names, settings, found):
        base = settings.configs.get(name) or derive_config(name, settings, found)
        assert base is not None  # expand_config_names only passes names it can resolve
        cfg = follow_horizon(base, base.with_overrides(episodes=episodes, horizon=horizon))
        same = next((i for i, c in enumerate(out) if c.name == cfg.name), None)
        if same is not None:
            # Two names made one config (recordings at T = 10 and T = 30 replayed with
            # --horizon 30): one case, the one asked for by its own name if there is one.
            if name == cfg.name:
                out[same] = cfg
            continue
        if cfg not in out:
            _check_distinct_folder("--bandit-config", name, [c.name for c in out], safe_component)
            out.append(cfg)
    return out


def build_cases(models: list[str], configs: list[CaseConfig], settings: ProjectSettings) -> list[Case]:
    return [Case(m, c, settings.expected_failure(m, c)) for m in models for c in configs]
