"""The shape of every file bandit-bench reads back, one definition per format (pydantic).

- ``Manifest`` (with ``ManifestSpec``, ``ManifestEpisode``): a case folder's ``manifest.json``
  (``recording/casefolder.py``);
- ``CassetteFile`` (with ``CassetteInteraction``, ...): an episode cassette, vcrpy's JSON
  format, checked before vcrpy reads it (``recording/transport.py``; vcrpy stays the serializer);
- ``Completion``: a chat completion body, as a cassette holds it and the agent reads it
  (``recording/transport.completion_problem``; the content parts and the usage arithmetic are
  ``core/replies.py``'s);
- ``SummaryFile`` / ``SummaryRow`` and ``StepLine``: a report folder's ``summary.json`` and
  ``steps.jsonl`` (``reporting/tables.py``, read back by ``report`` and ``compare``);
- ``ProjectTable``, ``ConfigTable``, ``PriceTable``: the ``[tool.bandit_bench]`` table of
  ``pyproject.toml``, one named config and one price in it (``plugin/settings.py``,
  ``core/specs.py``; the ``models`` profile tables are ``running/profiles.check_table``'s).

The models check *shape* (which keys, which JSON types); what a value means (a design code, a
horizon's bound, a model id) stays with the constructors that own it (``core/specs.py``, ...).
They are strict (no ``"10"`` for 10, no ``true`` for 1). A JSON file's unknown keys are ignored
(a newer version may add some; readers keep the file's own dict, so a rewrite keeps them too);
a TOML table refuses them, where a typo must not pass silently. The two formats read at every
step of a replay (cassette, completion) are TypedDicts, which pydantic checks without building
objects (docs/performance.md); the rest are models.

:func:`check` turns pydantic's ``ValidationError`` into a :class:`FormatError` in the project's
own wording (where, what came, what was expected), built from each field's ``description``;
readers wrap it in their own exception with the file's path and what to do. Import this
module (and with it pydantic, 0.2 s) inside the function that reads a file, never at start-up
(``tests/unit/test_imports.py``).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, NotRequired, Required, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict

M = TypeVar("M", bound=BaseModel)


class _Missing:
    """The value of a key that is not there: ``got nothing`` in a message."""

    def __repr__(self) -> str:
        return "nothing"


MISSING: Any = _Missing()


class _Open(BaseModel):
    """A JSON object whose unknown keys are ignored: a newer version may add some."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Closed(BaseModel):
    """A JSON/TOML object whose every key is known: an unknown one is a typo to report."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


WholeNumber = Annotated[int, Field(ge=0, description="a whole number >= 0")]
Count = Annotated[int, Field(ge=1, description="a whole number >= 1")]


# ---------------------------------------------------------------------------- manifest.json


class ManifestSpec(_Open):
    """What defines a case's requests and instances (``casefolder.config_spec``).

    Every key is optional: a manifest written by hand before ``spec`` existed (the adopted
    folders) still reads; a key that is there must have its type."""

    design: str | None = Field(None, description="a design code such as BNRN0")
    instance: str | None = Field(None, description="an instance preset name or null")
    k: Count | None = None
    delta: float | None = Field(None, description="a number")
    T: Count | None = None
    N: Count | None = None
    seed: WholeNumber | None = None
    constrained: bool | None = Field(None, description="true or false")
    single_round: str | None = Field(None, description="a policy name such as UCB")
    history_length: Count | None = None


class ManifestEpisode(_Open):
    """One listed episode file: when and in which record mode it was written."""

    recorded_at: str = Field(description="a UTC time such as 2026-01-31T12:00:00Z")
    record_mode: str = Field(description="a record mode such as once")
    requests: WholeNumber


class DerivedFrom(_Open):
    config: str = Field(description="the config name this one shortens")
    T: Count


class Manifest(_Open):
    """A case folder's ``manifest.json`` (format 1; ``casefolder.new_manifest`` writes it)."""

    EXPECTED: ClassVar[str] = "an object with model, config and episodes"

    bandit_bench_manifest: Count | None = None  # 1; a newer format number is read as far as it fits
    model: str = Field(description="the model id (text)")
    config: str = Field(description="the config name (text)")
    episodes: dict[str, ManifestEpisode] = Field(description="an object of episode file -> entry")
    spec: ManifestSpec | None = None
    base_url: str | None = Field(None, description="the endpoint's URL (text)")
    bandit_bench_version: str | None = Field(None, description="a version (text)")
    record_mode: str | None = Field(None, description="a record mode such as once")
    recorded_at: str | None = Field(None, description="a UTC time such as 2026-01-31T12:00:00Z")
    early_stop: bool | None = Field(None, description="true or false")
    derived_from: DerivedFrom | None = None
    request: dict[str, Any] | None = Field(None, description="an object (the request sent)")
    note: str | None = Field(None, description="text")


# ---------------------------------------------------------------------------- cassettes


# A cassette is checked at every load, each of its interactions: TypedDicts, which pydantic
# checks without building objects (3 us an interaction against 8 us for the same models, and
# 31 us for json.loads of it; docs/performance.md).
_CASSETTE_CONFIG = ConfigDict(strict=True, extra="ignore")


class CassetteRequest(TypedDict):
    """A recorded request, as vcrpy's ``Request(**fields)`` takes it: these four keys, no other."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    method: Annotated[str, Field(description="text")]
    uri: Annotated[str, Field(description="text")]
    body: Annotated[str, Field(description="text")] | None
    headers: Annotated[dict[str, Any], Field(description="an object of header name -> values")]


class CassetteStatus(TypedDict):
    __pydantic_config__ = _CASSETTE_CONFIG  # type: ignore[misc]
    # 100-599 and 2xx are checked by the transport, which says why a cassette holds only 2xx.
    code: Annotated[int, Field(description="an HTTP status code")]


class CassetteBody(TypedDict):
    __pydantic_config__ = _CASSETTE_CONFIG  # type: ignore[misc]
    string: Annotated[str, Field(description="text")]


class CassetteResponse(TypedDict):
    """A recorded response; its header values (text or lists of text) are checked by the transport."""

    __pydantic_config__ = _CASSETTE_CONFIG  # type: ignore[misc]
    status: CassetteStatus
    headers: NotRequired[Annotated[dict[str, Any], Field(description="an object of header name -> values")]]
    body: CassetteBody


class CassetteInteraction(TypedDict):
    __pydantic_config__ = _CASSETTE_CONFIG  # type: ignore[misc]
    request: CassetteRequest
    response: CassetteResponse


class CassetteFile(TypedDict):
    """An episode cassette, vcrpy's JSON format (``recording/transport.py`` reads and writes it
    through vcrpy; this is what vcrpy's reader needs, checked before it runs)."""

    __pydantic_config__ = _CASSETTE_CONFIG  # type: ignore[misc]
    version: NotRequired[Annotated[int, Field(description="1 (vcrpy's cassette format)")] | None]
    interactions: Annotated[list[CassetteInteraction], Field(description="a list of interactions")]


# ---------------------------------------------------------------------------- chat completions

# core.replies.MAX_USAGE_NUMBER (a test keeps them equal): every whole number up to it is exact
# as a float, which the report sums into. Not imported: core.replies is loaded at start-up.
MAX_USAGE_NUMBER = 2**53
_TOKENS = f"a whole number in [0, {MAX_USAGE_NUMBER}]"
Tokens = Annotated[int, Field(ge=0, le=MAX_USAGE_NUMBER, description=_TOKENS)]


# The chat completion is read at every step of a replay and a recording: it is a set of
# TypedDicts, which pydantic checks in about a quarter of the time of the same models (it builds
# no objects; docs/performance.md). Every key is optional but "choices"; unknown keys are ignored.
_COMPLETION_CONFIG = ConfigDict(strict=True, extra="ignore")


class FunctionCall(TypedDict):
    __pydantic_config__ = _COMPLETION_CONFIG  # type: ignore[misc]
    name: NotRequired[Annotated[str, Field(description="text")] | None]
    arguments: NotRequired[Annotated[str, Field(description="text")] | None]


class ToolCall(TypedDict):
    __pydantic_config__ = _COMPLETION_CONFIG  # type: ignore[misc]
    function: FunctionCall


class CompletionMessage(TypedDict):
    __pydantic_config__ = _COMPLETION_CONFIG  # type: ignore[misc]
    # "content" is text, null or a list of documented parts: core.replies.content_problem.
    tool_calls: NotRequired[Annotated[list[ToolCall], Field(description="a list")] | None]


class CompletionChoice(TypedDict):
    __pydantic_config__ = _COMPLETION_CONFIG  # type: ignore[misc]
    message: NotRequired[CompletionMessage | None]
    finish_reason: NotRequired[Annotated[str, Field(description="text")] | None]


Cost = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_USAGE_NUMBER,
        allow_inf_nan=False,
        description=f"a finite number in [0, {MAX_USAGE_NUMBER}]",
    ),
]


class CompletionUsage(TypedDict):
    """Token counts and the provider's cost: what the report sums and budgets rely on."""

    __pydantic_config__ = _COMPLETION_CONFIG  # type: ignore[misc]
    prompt_tokens: NotRequired[Tokens | None]
    completion_tokens: NotRequired[Tokens | None]
    total_tokens: NotRequired[Tokens | None]
    cost: NotRequired[Cost | None]


class Completion(TypedDict):
    """A chat completion body, as far as bandit-bench reads it: the first choice's message
    (content, tool calls), its finish reason, and the usage (``recording/transport.py``'s
    ``completion_problem`` checks every body with it before anything reads the body)."""

    __pydantic_config__ = _COMPLETION_CONFIG  # type: ignore[misc]
    choices: Annotated[list[CompletionChoice], Field(description="a list")]
    usage: NotRequired[CompletionUsage | None]


# ---------------------------------------------------------------------------- summary, steps


class SummaryRow(_Open):
    """One row of ``summary.json``: the keys every version wrote; the rest default (tables.py)."""

    model: str = Field(description="a model id (text)")
    config: str = Field(description="a config name (text)")
    k: Count
    delta: float = Field(description="a number")
    horizon: Count
    episodes: WholeNumber


class SummaryFile(_Open):
    """``summary.json``: the run's metadata and its rows (a bare list of rows is an older version's)."""

    EXPECTED: ClassVar[str] = 'an object with "run" (an object) and "rows" (a list of summary rows)'

    run: dict[str, Any] = Field(default_factory=dict, description="an object (the run's metadata)")
    rows: list[SummaryRow] = Field(description="a list of summary rows")


class StepLine(_Open):
    """One line of ``steps.jsonl``: the keys that pair and score an episode."""

    model: str = Field(description="a model id (text)")
    config: str = Field(description="a config name (text)")
    episode: WholeNumber
    t: WholeNumber
    arm: WholeNumber
    reward: Annotated[int, Field(ge=0, le=1, description="0 or 1")]
    valid: bool = Field(description="true or false")
    best_arm: WholeNumber


# ---------------------------------------------------------------------------- pyproject.toml


class ConfigTable(_Closed):
    """``[tool.bandit_bench.configs.NAME]``: one named config (``core.specs.config_from_table``).

    Types only, in the words of the constructors that check the values (``InstanceSpec``,
    ``RunSpec``, ``CaseConfig``), so a wrong type and a wrong value read alike."""

    EXPECTED: ClassVar[str] = "a table of config fields"

    # DesignSpec.parse checks the code and says what a code is; instance_preset names the presets.
    design: Any = Field(description="a design code such as BNRN0 or BSSC~0")
    instance: Any = None
    k: int | None = Field(None, description="an integer >= 2")
    delta: float | None = Field(None, description="a number in (0, 1)")
    horizon: int | None = Field(None, description="an integer >= 1")
    episodes: int | None = Field(None, description="an integer >= 1")
    seed: int | None = Field(None, description="an integer >= 0")
    min_format_compliance: float | None = Field(None, description="a number in [0, 1]")
    min_best_arm_rate: float | None = Field(None, description="a number in [0, 1]")
    constrained: bool | None = Field(None, description="true or false")
    xfail_models: list[Annotated[str, Field(description="a model id (text)")]] | None = Field(
        None, description="a list of model ids"
    )


class PriceTable(_Closed):
    """``[tool.bandit_bench.prices]``: one model's price (``plugin.settings.Price``)."""

    EXPECTED: ClassVar[str] = "{ prompt = USD per 1M tokens, completion = USD per 1M tokens }"

    prompt: float = Field(ge=0, description="USD per 1M prompt tokens (a number >= 0)")
    completion: float = Field(ge=0, description="USD per 1M completion tokens (a number >= 0)")


ConfigNames = Annotated[
    list[Annotated[str, Field(description="a config name (text)")]],
    Field(description="a list of config names"),
]


class ProjectTable(_Closed):
    """``[tool.bandit_bench]`` of ``pyproject.toml`` (``plugin.settings.settings_from_table``).

    Each config is checked as a ``ConfigTable`` under its own name, each ``models`` table by
    ``running.profiles.check_table`` (also the ``--request-profile`` checker, with its hints)."""

    EXPECTED: ClassVar[str] = "a table"

    configs: dict[str, Any] = Field(default_factory=dict, description="a table of named configs")
    xfail: dict[str, ConfigNames] = Field(
        default_factory=dict, description="a table of model id = [config names]"
    )
    prices: dict[str, PriceTable] = Field(
        default_factory=dict, description="a table of model id = {prompt, completion}"
    )
    models: dict[str, Any] = Field(
        default_factory=dict, description='a table of "<model id or pattern>" = { settings }'
    )


# ---------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where, what came and what was expected.

    ``where``, ``got`` and ``expected`` are the three arguments of ``core.specs.SpecError``, so
    a TOML table's problem becomes one. ``where`` is empty for the document itself."""

    where: str
    got: Any  # the value found; MISSING when the key is absent
    expected: str
    kind: str = "type"  # "type", "missing" or "extra"
    siblings: tuple[str, ...] = ()  # for a missing key: the keys its object does hold

    def __str__(self) -> str:
        if self.kind == "missing":
            keys = "key" if len(self.siblings) == 1 else "keys"
            held = f"the {keys} {', '.join(self.siblings)}" if self.siblings else "no keys"
            got = f"no such key (its object holds {held})"
        else:
            got = f"got {show(self.got)}"
        return (
            f"{self.where}: {got}; expected {self.expected}"
            if self.where
            else f"{got}; expected {self.expected}"
        )


class FormatError(ValueError):
    """A document that does not have its format's shape; ``problem`` is the first thing wrong."""

    def __init__(self, problem: Problem, more: int = 0) -> None:
        self.problem = problem
        self.more = more  # how many further problems the document has
        also = f" (and {more} more {'problem' if more == 1 else 'problems'})" if more else ""
        super().__init__(f"{problem}{also}")


def show(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: repr, cut at ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"a whole number of {len(str(abs(value)))} digits"  # repr of a huge int is slow
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check(model: type[M], data: Any, where: str = "") -> M:
    """``data`` as ``model``; a :class:`FormatError` in the project's wording when it does not fit.

    ``where`` prefixes the location (``"[tool.bandit_bench]"``); locations read like
    ``episodes.'000.json'.requests`` or ``rows[2].horizon``."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise as_format_error(model, err, where) from None


def as_format_error(model: type[BaseModel], err: ValidationError, where: str = "") -> FormatError:
    """pydantic's error about ``model`` as the project's (for a caller that validated itself)."""
    return FormatError(first_problem(model, err, where), err.error_count() - 1)


def first_problem(model: Any, err: ValidationError, where: str = "") -> Problem:
    """The first of pydantic's errors, as a :class:`Problem` (never pydantic's own dump).

    ``model`` is the model (or TypedDict) that was validated: its fields' descriptions say
    what was expected."""
    item = err.errors(include_url=False)[0]
    loc = tuple(item["loc"])
    place = location(model, loc, where)
    if item["type"] == "extra_forbidden":
        owner = _type_at(model, loc[:-1])
        if _is_model(owner):
            known = sorted(f.alias or n for n, f in owner.model_fields.items())
        else:
            known = sorted(_typeddict_hints(owner)) if _is_typeddict(owner) else []
        owner_place = location(model, loc[:-1], where)
        return Problem(f"{owner_place} key" if owner_place else "key", loc[-1], f"one of {known}", "extra")
    expected = expected_at(model, loc)
    if item["type"] == "missing":
        # pydantic gives the object that lacks the key as the input.
        parent = item.get("input")
        held = tuple(sorted(map(str, parent))) if isinstance(parent, dict) else ()
        return Problem(place, MISSING, expected, "missing", held)
    return Problem(place, item.get("input"), expected)


def _field(tp: Any, name: Any) -> tuple[Any, str | None] | None:
    """The annotation and description of field ``name`` of a model or TypedDict (else None)."""
    if not isinstance(name, str):
        return None
    if _is_model(tp):
        info = tp.model_fields.get(name)
        if info is None:
            return None
        return info.annotation, info.description or _annotated_description(info.metadata)
    if _is_typeddict(tp):
        hints = _typeddict_hints(tp)
        if name not in hints:
            return None
        annotation = _unwrap_required(hints[name])
        return annotation, _type_description(annotation)
    return None


def location(model: Any, loc: tuple[Any, ...], where: str = "") -> str:
    """``loc`` as text: fields as ``.name``, list items as ``[i]``, object keys as ``.'key'``."""
    out = where
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        field = _field(tp, part)
        if field is not None:
            out += f".{part}" if out else part
            tp = field[0]
        elif isinstance(part, int):
            out += f"[{part}]"
            tp = _item_type(tp)
        else:
            out += f".{part!r}"  # a table's or object's own key, as pyproject's errors always wrote it
            tp = _item_type(tp)
    return out


def expected_at(model: Any, loc: tuple[Any, ...]) -> str:
    """What the field at ``loc`` must hold, in words: its description, else its type's name."""
    tp: Any = model
    described = None
    for part in loc:
        tp = _unwrap(tp)
        field = _field(tp, part)
        if field is not None:
            tp, described = field
        else:
            described = None
            tp = _item_type(tp)
    return described or _type_words(tp)


def _type_at(model: Any, loc: tuple[Any, ...]) -> Any:
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        field = _field(tp, part)
        tp = field[0] if field is not None else _item_type(tp)
    return _unwrap(tp)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__required_keys__")


def _typeddict_hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp, include_extras=True)


def _unwrap_required(tp: Any) -> Any:
    """``NotRequired[X]`` / ``Required[X]`` -> ``X``."""
    while typing.get_origin(tp) in (NotRequired, Required):
        tp = typing.get_args(tp)[0]
    return tp


def _type_description(tp: Any) -> str | None:
    """The description an ``Annotated[X, Field(description=...)]`` (maybe ``| None``) carries."""
    tp = _strip_none(tp)
    if typing.get_origin(tp) is Annotated:
        return _annotated_description(list(typing.get_args(tp)[1:]))
    return None


def _unwrap(tp: Any) -> Any:
    """``X | None``, ``Annotated[X, ...]`` and ``NotRequired[X]`` -> ``X``."""
    while True:
        origin = typing.get_origin(tp)
        if origin in (Annotated, NotRequired, Required):
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, _UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _strip_none(tp: Any) -> Any:
    """``X | None`` -> ``X`` (``Annotated`` kept, for its description)."""
    if typing.get_origin(tp) in (typing.Union, _UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _item_type(tp: Any) -> Any:
    tp = _unwrap(tp)
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, tuple) and args:
        return args[0]
    return Any


def _annotated_description(metadata: list[Any]) -> str | None:
    for m in metadata:
        if getattr(m, "description", None):
            return str(m.description)
    return None


def _type_words(tp: Any) -> str:
    tp = _strip_none(tp)
    if typing.get_origin(tp) is Annotated:
        described = _annotated_description(list(typing.get_args(tp)[1:]))
        if described:
            return described
    tp = _unwrap(tp)
    origin = typing.get_origin(tp) or tp
    if _is_typeddict(tp):
        if tp in _TYPEDDICT_EXPECTED:
            return _TYPEDDICT_EXPECTED[tp]
        # Not __required_keys__: under ``from __future__ import annotations`` it cannot see
        # NotRequired (the annotations are strings when the class is made).
        required = [k for k, h in _typeddict_hints(tp).items() if typing.get_origin(h) is not NotRequired]
        return f"an object with {', '.join(required)}" if required else "an object"
    if _is_model(tp) and getattr(tp, "EXPECTED", None):
        return str(tp.EXPECTED)
    if _is_model(tp):
        required = [f.alias or n for n, f in tp.model_fields.items() if f.is_required()]
        return f"an object with {', '.join(required)}" if required else "an object"
    words = {
        str: "text",
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        dict: "an object",
        list: "a list",
    }
    return words.get(origin, "a value of the documented type")


_UnionType = type(int | None)
# What a TypedDict is called where its own description is wanted (a TypedDict holds no ClassVar).
_TYPEDDICT_EXPECTED: dict[Any, str] = {CassetteFile: "vcrpy's JSON object with interactions"}


__all__ = [
    "Completion",
    "CassetteFile",
    "MISSING",
    "FormatError",
    "Manifest",
    "ManifestEpisode",
    "ManifestSpec",
    "Problem",
    "StepLine",
    "as_format_error",
    "SummaryFile",
    "SummaryRow",
    "check",
    "ConfigTable",
    "PriceTable",
    "ProjectTable",
    "show",
]
