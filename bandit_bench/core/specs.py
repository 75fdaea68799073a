"""Frozen, validated specifications: instance, prompt design, run, and named case configs.

Every constructor validates its fields and raises :class:`SpecError` naming the field, the
value received and what is allowed, so a typo in ``pyproject.toml`` or on the command line
stops a run before any request is paid for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class SpecError(ValueError):
    """A specification field holds a value that is not allowed."""

    def __init__(self, field_name: str, value: object, allowed: str, hint: str = "") -> None:
        self.field = field_name
        self.value = value
        self.allowed = allowed
        self.hint = hint
        msg = f"{field_name}: got {value!r}; expected {allowed}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


def _require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(name, value, f"an integer >= {minimum}")
    return value


def _require_unit(name: str, value: object, *, open_interval: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SpecError(name, value, "a number in (0, 1)" if open_interval else "a number in [0, 1]")
    v = float(value)
    if open_interval and not 0.0 < v < 1.0:
        raise SpecError(name, value, "a number in (0, 1), exclusive")
    if not open_interval and not 0.0 <= v <= 1.0:
        raise SpecError(name, value, "a number in [0, 1]")
    return v


# ---------------------------------------------------------------------------- instance


# Drawn whole up front (float64 draws, then an int8 table): 10 million is ~90 MB per episode.
MAX_REWARD_DRAWS = 10_000_000
# A case keeps every step of its N episodes (trajectories, then the report's step rows): about
# 530 bytes per step at its peak for a reference algorithm (measured: N = 10, T = 100,000, k = 5
# peaked at 531 MB), more for a model whose raw replies are kept. A million steps per case keeps
# one case near half a GB; the largest horizon with 10 episodes took 5.6 GB and failed after a
# paid recording.
MAX_CASE_STEPS = 1_000_000
# How many arm names each scenario has (prompts.BUTTON_COLOURS, the letters A-Z); kept here so
# that validating a config does not import the prompt renderer (numpy, jinja2).
ARM_NAME_COUNTS = {"B": 20, "A": 26}


@dataclass(frozen=True)
class InstanceSpec:
    """A K-armed Bernoulli bandit: one best arm at 0.5 + delta/2, the others at 0.5 - delta/2."""

    k: int
    delta: float
    horizon: int

    def __post_init__(self) -> None:
        _require_int("k", self.k, 2)
        object.__setattr__(self, "delta", _require_unit("delta", self.delta, open_interval=True))
        _require_int("horizon", self.horizon, 1)
        if self.horizon * self.k > MAX_REWARD_DRAWS:
            raise SpecError(
                "horizon",
                self.horizon,
                f"an integer <= {MAX_REWARD_DRAWS // self.k} with k = {self.k}",
                hint=f"An episode's reward table (horizon x k draws) is drawn whole before its first "
                f"step; at most {MAX_REWARD_DRAWS:,} draws, about {MAX_REWARD_DRAWS * 9 // 10**6} MB",
            )

    @property
    def best_mean(self) -> float:
        return 0.5 + self.delta / 2

    @property
    def other_mean(self) -> float:
        return 0.5 - self.delta / 2

    @property
    def key(self) -> str:
        """Identity used for seeding: every model and design on this instance gets the same draws."""
        return f"K{self.k}-d{self.delta:g}-T{self.horizon}"


INSTANCE_PRESETS: dict[str, tuple[int, float]] = {"hard": (5, 0.2), "easy": (4, 0.5)}

# The history policies of the single-round screen (appendix E), by their baseline names; kept
# here so that validating a config does not import numpy.
HISTORY_SOURCES: tuple[str, ...] = ("uniform", "ucb", "ts")


def instance_preset(name: str, horizon: int) -> InstanceSpec:
    if name not in INSTANCE_PRESETS:
        raise SpecError("instance", name, f"one of {sorted(INSTANCE_PRESETS)}")
    k, delta = INSTANCE_PRESETS[name]
    return InstanceSpec(k=k, delta=delta, horizon=horizon)


# ---------------------------------------------------------------------------- design

SCENARIOS = {"B": "buttons", "A": "advertisements"}
FRAMINGS = {"N": "neutral", "S": "suggestive"}
HISTORIES = {"R": "raw", "S": "summarized"}
COTS = {"N": "none", "C": "chain of thought", "C~": "reinforced chain of thought"}
OUTPUTS = {"0": "one arm at temperature 0", "1": "one arm at temperature 1", "D": "distribution"}

# "C~" is the paper's C with a tilde; "Ct" is the ASCII spelling for shells and file names.
_CODE_RE = re.compile(r"^([BA])([NS])([RS])(C~|Ct|CT|C|N)([01D])$")


@dataclass(frozen=True)
class DesignSpec:
    """A prompt design in the paper's five-letter code, e.g. ``BNRN0`` or ``BSSC~0``."""

    scenario: str = "B"
    framing: str = "N"
    history: str = "R"
    cot: str = "N"
    output: str = "0"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("scenario", self.scenario, SCENARIOS),
            ("framing", self.framing, FRAMINGS),
            ("history", self.history, HISTORIES),
            ("cot", self.cot, COTS),
            ("output", self.output, OUTPUTS),
        ):
            if value not in allowed:
                raise SpecError(f"design.{name}", value, f"one of {list(allowed)}")

    @classmethod
    def parse(cls, code: str) -> DesignSpec:
        m = _CODE_RE.match(code.strip()) if isinstance(code, str) else None
        if m is None:
            raise SpecError(
                "design",
                code,
                "a five-part code: scenario B|A, framing N|S, history R|S, "
                "chain of thought N|C|C~ (ASCII: Ct), output 0|1|D; e.g. BNRN0 or BSSC~0",
            )
        scenario, framing, history, cot, output = m.groups()
        if cot in ("Ct", "CT"):
            cot = "C~"
        return cls(scenario, framing, history, cot, output)

    @property
    def code(self) -> str:
        return f"{self.scenario}{self.framing}{self.history}{self.cot}{self.output}"

    @property
    def ascii_code(self) -> str:
        """The code with ``C~`` spelled ``Ct``: safe in file names and shells."""
        return self.code.replace("C~", "Ct")

    @property
    def temperature(self) -> float:
        return 1.0 if self.output == "1" else 0.0

    @property
    def distribution(self) -> bool:
        return self.output == "D"

    @property
    def max_tokens(self) -> int:
        """Room for the answer: short without chain of thought, a paragraph of reasoning with it."""
        if self.cot == "N":
            return 60 if self.distribution else 20
        return 800


# ---------------------------------------------------------------------------- run and case


@dataclass(frozen=True)
class RunSpec:
    episodes: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        _require_int("episodes", self.episodes, 1)
        _require_int("seed", self.seed, 0)


@dataclass(frozen=True)
class CaseConfig:
    """A named benchmark case: design x instance x run, with the thresholds a model must meet."""

    name: str
    design: DesignSpec
    instance: InstanceSpec
    run: RunSpec = field(default_factory=RunSpec)
    min_format_compliance: float = 0.9
    min_best_arm_rate: float = 0.0
    # Not a paper design: asks the server to force the answer grammar (see agents.llm).
    constrained: bool = False
    # Models known to fall short here: reported as strict xfail so CI pins today's verdict.
    xfail_models: tuple[str, ...] = ()
    # Set by with_overrides: how to ask for this config on the command line (for hints).
    selector: str = ""
    # Set by with_overrides when the name changed: the config this one was derived from.
    origin: str = ""
    # The single-round experiment (appendix E): each episode is a history of history_length
    # rounds played by this baseline ("uniform", "ucb", "ts"), then one decision of the model.
    single_round: str = ""
    history_length: int = 0
    # "classic": the best-arm threshold is the classic algorithms' floor at this instance and
    # horizon (classic_best_arm_floor), recomputed when --horizon changes T.
    best_arm_rule: str = ""
    # Why the threshold is what it is, when with_overrides recomputed it (shown in headers).
    threshold_note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.~+-]+", self.name):
            raise SpecError("config name", self.name, "letters, digits and _ . ~ + -")
        _require_unit("min_format_compliance", self.min_format_compliance)
        _require_unit("min_best_arm_rate", self.min_best_arm_rate)
        if self.constrained and self.design.distribution:
            raise SpecError("constrained", True, "false for distribution (D) designs")
        steps = self.run.episodes * self.instance.horizon
        if steps > MAX_CASE_STEPS:
            raise SpecError(
                "episodes x horizon",
                f"{self.run.episodes} x {self.instance.horizon} = {steps:,} steps",
                f"at most {MAX_CASE_STEPS:,} steps per case",
                hint=f"A case keeps every step of its episodes in memory, about half a KB each "
                f"(~{MAX_CASE_STEPS * 530 // 10**6} MB at the cap); checked before anything runs or is "
                "paid for. Lower --episodes or --horizon",
            )
        if self.single_round:
            if self.single_round not in HISTORY_SOURCES:
                raise SpecError("single_round", self.single_round, f"one of {', '.join(HISTORY_SOURCES)}")
            if isinstance(self.history_length, bool) or not 1 <= self.history_length < self.instance.horizon:
                raise SpecError(
                    "history_length", self.history_length, f"an integer in 1..{self.instance.horizon - 1}"
                )
        names = ARM_NAME_COUNTS.get(self.design.scenario)
        if names is not None and self.instance.k > names:
            what = "button colours" if self.design.scenario == "B" else "advertisement letters"
            raise SpecError(
                "k",
                self.instance.k,
                f"an integer <= {names}: scenario {self.design.scenario} has {names} {what}",
            )

    def with_overrides(
        self,
        *,
        episodes: int | None = None,
        horizon: int | None = None,
        min_format_compliance: float | None = None,
        min_best_arm_rate: float | None = None,
    ) -> CaseConfig:
        """The config with command-line overrides. A new horizon is a new instance, so the name
        changes with it (``...-T25`` -> ``...-T50``): its cassettes, report rows and expected
        failures are then its own, never the recorded T = 25 ones."""
        out = self
        selector = [f"--bandit-config '{self.name}'"]
        if episodes is not None and episodes != self.run.episodes:
            out = replace(out, run=replace(out.run, episodes=episodes))
            selector.append(f"--episodes {episodes}")
        if horizon is not None and horizon != self.instance.horizon:
            suffix = f"-T{self.instance.horizon}"
            name = re.sub(f"{suffix}(?=-|$)", f"-T{horizon}", self.name) if suffix in self.name else ""
            out = replace(
                out,
                name=name or f"{self.name}-T{horizon}",
                instance=replace(out.instance, horizon=horizon),
                origin=self.origin or self.name,
            )
            selector.append(f"--horizon {horizon}")
        if min_format_compliance is not None:
            out = replace(out, min_format_compliance=min_format_compliance)
        if min_best_arm_rate is not None:
            out = replace(out, min_best_arm_rate=min_best_arm_rate)
        if out is not self:
            out = replace(out, selector=" ".join(selector))
        return out

    @property
    def cli_args(self) -> str:
        """The options that select this config again, overrides included."""
        return self.selector or f"--bandit-config '{self.name}'"


def _preset(design: str, instance: str, horizon: int, episodes: int, **kw: Any) -> CaseConfig:
    d = DesignSpec.parse(design)
    name = f"{d.code}-{instance}-T{horizon}" + ("-constrained" if kw.get("constrained") else "")
    return CaseConfig(
        name=name,
        design=d,
        instance=instance_preset(instance, horizon),
        run=RunSpec(episodes=episodes, seed=0),
        **kw,
    )


# Best-arm thresholds of the long configs: the lowest best-arm rate of UCB, TS and Greedy over
# 1000 episodes of that instance and horizon (`bandit-bench baselines`, seed 0), rounded down to
# a multiple of 0.05, so a model passes when it is in the classic algorithms' league. Hard T=100:
# 0.445 (TS) -> 0.40; easy T=100: 0.770 (Greedy) -> 0.75; hard T=200: 0.495 -> 0.45; hard T=500:
# 0.498 -> 0.45 (tests/unit/test_suites.py recomputes them). At T = 25 even UCB cannot
# concentrate yet, so the quick presets only hold format compliance.
BEST_ARM_THRESHOLDS: dict[tuple[str, int], float] = {
    ("hard", 100): 0.40,
    ("easy", 100): 0.75,
    ("hard", 200): 0.45,
    ("hard", 500): 0.45,
}

# The GPT-4 designs of the paper's main grid (Figure 11, T = 100), in the order of its tables.
# (a) buttons on the hard instance has ten; the easy instance and the adverts have the nine
# without reinforced chain of thought.
PAPER_BUTTONS_HARD: tuple[str, ...] = (
    "BNRN0",
    "BNRN1",
    "BNRND",
    "BNRC0",
    "BNSN0",
    "BSRN0",
    "BSSC0",
    "BSSC1",
    "BSSCD",
    "BSSC~0",
)
PAPER_NINE: tuple[str, ...] = PAPER_BUTTONS_HARD[:-1]


def _adverts(code: str) -> str:
    return "A" + code[1:]


def _long(design: str, instance: str, horizon: int, episodes: int, **kw: Any) -> CaseConfig:
    return _preset(
        design,
        instance,
        horizon,
        episodes,
        min_best_arm_rate=BEST_ARM_THRESHOLDS[instance, horizon],
        best_arm_rule="classic",
        **kw,
    )


def _paper_grid() -> list[CaseConfig]:
    """Figure 11's grid at T = 100, 10 episodes each (the paper: N = 10 for (a), 3 for (b)-(d))."""
    return (
        [_long(d, "hard", 100, 10) for d in PAPER_BUTTONS_HARD]
        + [_long(d, "easy", 100, 10) for d in PAPER_NINE]
        + [_long(_adverts(d), "hard", 100, 10) for d in PAPER_NINE]
        + [_long(_adverts(d), "easy", 100, 10) for d in PAPER_NINE]
    )


def _paper_fig1() -> list[CaseConfig]:
    """Figure 1's two long runs: (a) BNRN0, T = 500, N = 20; (b) BSSC~0, T = 200, N = 40."""
    return [_long("BNRN0", "hard", 500, 20), _long("BSSC~0", "hard", 200, 40)]


# The 24 designs of the GPT-3.5 grid (Figures 12-15: no reinforced chain of thought), in the
# order of its tables, and the 16 of Llama 2's (Figure 16: no distribution output).
GPT35_DESIGNS: tuple[str, ...] = tuple(
    f"B{framing}{history}{cot}{out}" for framing in "NS" for history in "RS" for cot in "NC" for out in "01D"
)
LLAMA2_DESIGNS: tuple[str, ...] = tuple(d for d in GPT35_DESIGNS if not d.endswith("D"))


def _paper_gpt35() -> dict[str, list[CaseConfig]]:
    """Figures 12-15: GPT-3.5 on buttons and adverts, hard and easy, T = 100, N = 20.

    Named ``...-T100-N20``: the plain ``...-T100`` names are Figure 11's and 16's N = 10, and a
    config name is one cassette folder, so the two replicate counts cannot share a name.
    """
    panels = {"fig12": ("B", "hard"), "fig13": ("A", "hard"), "fig14": ("B", "easy"), "fig15": ("A", "easy")}
    out = {}
    for panel, (scenario, instance) in panels.items():
        configs = []
        for d in GPT35_DESIGNS:
            cfg = _long(scenario + d[1:], instance, 100, 20)
            configs.append(replace(cfg, name=f"{cfg.name}-N20"))
        out[panel] = configs
    return out


def _paper_fig16() -> list[CaseConfig]:
    """Figure 16: Llama 2 13B on buttons, hard instance, T = 100, N = 10 (the names of Figure
    11's grid where the design is in both)."""
    return [_long(d, "hard", 100, 10) for d in LLAMA2_DESIGNS]


def _paper_fig7() -> list[CaseConfig]:
    """Figure 7: GPT-4's two reinforced chain-of-thought runs at T = 200, N = 40."""
    return [_long("BSRC~0", "hard", 200, 40), _long("BSSC~0", "hard", 200, 40)]


def _paper_fig6() -> list[CaseConfig]:
    """Figure 6: GPT-4's BNRND and BNSND over T = 200, N = 20 (per-round plots; no table)."""
    return [_long("BNRND", "hard", 200, 20), _long("BNSND", "hard", 200, 20)]


# Appendix E's single-round experiment: histories of t = 30 rounds on the hard instance (told
# T = 100, as in an episode), 50 per history policy, one decision each: 150 requests a design.
SINGLE_ROUND_DESIGNS: tuple[str, ...] = ("BNRN0", "BNSN0", "BSSC~0")
SINGLE_ROUND_HISTORIES = 50
SINGLE_ROUND_LENGTH = 30


def _single_round() -> list[CaseConfig]:
    out = []
    for design in SINGLE_ROUND_DESIGNS:
        for source in HISTORY_SOURCES:
            cfg = _preset(design, "hard", 100, SINGLE_ROUND_HISTORIES)
            out.append(
                replace(
                    cfg,
                    name=f"{cfg.name}-single-{source}",
                    single_round=source,
                    history_length=SINGLE_ROUND_LENGTH,
                )
            )
    return out


def _builtin_configs() -> dict[str, CaseConfig]:
    configs = [
        *_paper_grid(),
        *_paper_fig1(),
        *_paper_fig16(),
        *_paper_fig7(),
        *_paper_fig6(),
        *(c for panel in _paper_gpt35().values() for c in panel),
        *_single_round(),
        _preset("BNRN0", "hard", 25, 5),
        _preset("BSSC~0", "hard", 25, 5),
        _preset("BNSN0", "hard", 25, 5, constrained=True),
        # A small model on a paper-scale instance: summarized history keeps the prompt short.
        # The grid's ten episodes, recorded by record-local in three sittings (0-1 on 2026-11-25,
        # 2-9 on 2026-11-30); the manifest is the recording run's (see test_recordings).
        _long("BNSN0", "hard", 100, 10, constrained=True),
        _preset("BNRN0", "easy", 25, 5),
    ]
    # A config that two figures share (Figure 11's BNRN0-hard-T100 is also Figure 16's) is one
    # config; the same name must never mean two different configs.
    out: dict[str, CaseConfig] = {}
    for c in configs:
        if out.setdefault(c.name, c) != c:
            raise AssertionError(f"two built-in configs named {c.name}: {out[c.name]} and {c}")
    return out


BUILTIN_CONFIGS: dict[str, CaseConfig] = _builtin_configs()
DEFAULT_CONFIGS: tuple[str, ...] = ("BNRN0-hard-T25", "BSSC~0-hard-T25")

# Named sets of built-in configs, selectable with --bandit-config like a config name.
SUITES: dict[str, tuple[str, ...]] = {
    # The paper's main T = 100 grid (Figure 11 (a)-(d)).
    "paper": tuple(c.name for c in _paper_grid()),
    # The paper's two long runs (Figure 1 (a) and (b)).
    "paper-fig1": tuple(c.name for c in _paper_fig1()),
    # Figure 6's two distribution designs over T = 200 (the per-round panels).
    "paper-fig6": tuple(c.name for c in _paper_fig6()),
    # Figure 7's table: BSRC~0 and BSSC~0 at T = 200, N = 40.
    "paper-fig7": tuple(c.name for c in _paper_fig7()),
    # GPT-3.5's grid, one suite per table (N = 20), and all four together.
    **{f"paper-{panel}": tuple(c.name for c in cs) for panel, cs in _paper_gpt35().items()},
    "paper-gpt35": tuple(c.name for cs in _paper_gpt35().values() for c in cs),
    # Llama 2's grid (Figure 16, N = 10).
    "paper-fig16": tuple(c.name for c in _paper_fig16()),
    # Appendix E's single-round screen (Figure 19): 150 requests per design.
    "paper-single-round": tuple(c.name for c in _single_round()),
}


def config_from_table(name: str, table: Mapping[str, Any]) -> CaseConfig:
    """Build a config from a ``[tool.bandit_bench.configs.NAME]`` table."""
    where = f"[tool.bandit_bench.configs.{name!r}]"
    try:
        return _config_from_table(name, table, where)
    except SpecError as err:
        if err.field.startswith(where):
            raise
        # A field's own check (k, delta, design...) does not know which table it came from.
        raise SpecError(f"{where}.{err.field}", err.value, err.allowed, err.hint) from None


def check_table_shape(model_name: str, table: Any, where: str) -> None:
    """``table`` has the keys and types of ``core.formats.<model_name>``, else a :class:`SpecError`.

    The one conversion of a TOML table's shape problem into the project's error (field, value,
    what is allowed); a missing key reads ``got nothing``."""
    from bandit_bench.core import formats

    try:
        formats.check(getattr(formats, model_name), table, where)
    except formats.FormatError as err:
        p = err.problem
        raise SpecError(p.where, p.got, p.expected) from None


def _config_from_table(name: str, table: Mapping[str, Any], where: str) -> CaseConfig:
    check_table_shape("ConfigTable", table, where)  # keys and types; the values are checked below
    horizon = table.get("horizon", 100)
    if "instance" in table:
        inst = instance_preset(table["instance"], horizon)
        if "k" in table or "delta" in table:
            raise SpecError(
                f"{where}.k/delta", table.get("k"), "either 'instance' or 'k' and 'delta', not both"
            )
    else:
        inst = InstanceSpec(k=table.get("k", 5), delta=table.get("delta", 0.2), horizon=horizon)
    xfail = table.get("xfail_models", [])
    constrained = table.get("constrained", False)
    return CaseConfig(
        name=name,
        design=DesignSpec.parse(table["design"]),
        instance=inst,
        run=RunSpec(episodes=table.get("episodes", 10), seed=table.get("seed", 0)),
        min_format_compliance=table.get("min_format_compliance", 0.9),
        min_best_arm_rate=table.get("min_best_arm_rate", 0.0),
        constrained=constrained,
        xfail_models=tuple(xfail),
    )
