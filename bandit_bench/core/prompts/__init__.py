"""The prompts of the paper's design space, rendered from the jinja2 templates beside this file.

``system.j2`` and ``user.j2`` hold every word the model reads; this module only computes what
they show (names, counts, averages) and checks its inputs. The three examples of appendix B.1 of
Krishnamurthy et al. (NeurIPS 2024), BNRN, ASSCD and BSSC~, come out word for word; the other
designs follow their patterns, and ``PROVENANCE.md`` beside this file says which sentence is
printed by the paper and which is inferred.
K, T and the arm names always come from the arguments, never from the text (seed defect 2).
"""

from __future__ import annotations

import operator
import string
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bandit_bench.core.episode import History
from bandit_bench.core.specs import DesignSpec

if TYPE_CHECKING:
    import jinja2

__all__ = ["BUTTON_COLOURS", "answer_grammar", "arm_names", "render_messages"]

# The paper's five colours come first, so K=5 gives exactly its buttons.
BUTTON_COLOURS: tuple[str, ...] = (
    "blue",
    "green",
    "red",
    "yellow",
    "purple",
    "orange",
    "pink",
    "brown",
    "gray",
    "black",
    "white",
    "cyan",
    "magenta",
    "teal",
    "olive",
    "navy",
    "maroon",
    "lime",
    "indigo",
    "violet",
)
_AD_NAMES: tuple[str, ...] = tuple(string.ascii_uppercase)

_TEMPLATE_DIR = Path(__file__).resolve().parent


def arm_names(scenario: str, k: int) -> tuple[str, ...]:
    """The K arm names of a scenario: colours for buttons ("B"), letters for advertisements ("A")."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: got {k!r}; expected an integer >= 1")
    if scenario == "B":
        pool, what = BUTTON_COLOURS, "button colours"
    elif scenario == "A":
        pool, what = _AD_NAMES, "advertisement letters"
    else:
        raise ValueError(f"scenario: got {scenario!r}; expected 'B' (buttons) or 'A' (advertisements)")
    if k > len(pool):
        raise ValueError(
            f"k: got {k}; scenario {scenario!r} has only {len(pool)} {what}. "
            f"Use k <= {len(pool)} or pass your own names to render_messages."
        )
    return pool[:k]


_ENVIRONMENT_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Under a lock, its templates compiled before anyone uses it: a recording's episode threads
    # all render their first prompt at once, and each compiled the templates in an environment
    # of its own (lru_cache does not hold back a second caller while the first computes).
    with _ENVIRONMENT_LOCK:
        return _locked_environment()


@lru_cache(maxsize=1)
def _locked_environment() -> jinja2.Environment:
    # Imported here so that `import bandit_bench` does not pay for jinja2.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATE_DIR),
        # Plain text for a chat API: HTML escaping would turn <Answer> into &lt;Answer&gt;.
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # The templates ship inside the package: no file is checked for changes at every step.
        auto_reload=False,
        # A misspelt variable must fail loudly rather than render as an empty string.
        undefined=jinja2.StrictUndefined,
    )
    for name in ("system.j2", "user.j2"):
        env.get_template(name)  # compiled once, here
    return env


@dataclass(frozen=True)
class _Round:
    name: str
    reward: int


@dataclass(frozen=True)
class _Summary:
    name: str
    count: int
    mean: float | None


def _check_names(names: tuple[str, ...]) -> None:
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"names: got {names!r}; expected a non-empty tuple of non-empty strings")
    folded = [n.lower() for n in names]
    if len(set(folded)) != len(folded):
        # Answers are matched case-insensitively, so names equal up to case could not be told apart.
        raise ValueError(f"names: got {names!r}; expected names that differ even ignoring case")


def _check_history(history: Sequence[tuple[int, int]], k: int) -> np.ndarray:
    """The history as a (t, 2) int array. Vectorised: it runs at every step, over every past step
    (the harness's own History hands over rows it checked as they came, O(1) a step)."""
    if isinstance(history, History):
        rows = history.rows(k)
        if rows is not None:
            return rows
    try:
        arr = np.asarray(history) if len(history) else np.zeros((0, 2), dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"history: {err}; expected a sequence of (arm index, reward) int pairs") from err
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
        # Find the offending step for the message; floats and strings ("1", 1.0) are refused.
        for t, step in enumerate(history):
            try:
                arm_raw, reward_raw = step
                operator.index(arm_raw), operator.index(reward_raw)
            except (TypeError, ValueError):
                raise ValueError(
                    f"history[{t}]: got {step!r}; expected an (arm index, reward) int pair"
                ) from None
        raise ValueError(f"history: got an array of {arr.dtype}; expected (arm index, reward) int pairs")
    bad_arm = np.flatnonzero((arr[:, 0] < 0) | (arr[:, 0] >= k))
    if bad_arm.size:
        t = int(bad_arm[0])
        raise ValueError(f"history[{t}]: arm {int(arr[t, 0])} is out of range 0..{k - 1} for {k} names")
    bad_reward = np.flatnonzero((arr[:, 1] != 0) & (arr[:, 1] != 1))
    if bad_reward.size:
        t = int(bad_reward[0])
        raise ValueError(f"history[{t}]: reward {int(arr[t, 1])} is not 0 or 1 (Bernoulli rewards)")
    return arr.astype(np.int64, copy=False)


def render_messages(
    design: DesignSpec,
    names: tuple[str, ...],
    horizon: int,
    history: Sequence[tuple[int, int]],
) -> list[dict[str, str]]:
    """The system and user messages for the next step of an episode.

    ``history`` holds the past ``(arm index, reward)`` pairs of this episode, oldest first; arm
    ``i`` is shown under ``names[i]``, so counts can never be shown under another arm's name.
    """
    if not isinstance(design, DesignSpec):
        raise ValueError(f"design: got {design!r}; expected a DesignSpec (DesignSpec.parse('BNRN0'))")
    _check_names(names)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon: got {horizon!r}; expected an integer >= 1")
    k = len(names)
    rounds = _check_history(history, k)
    pulls = np.bincount(rounds[:, 0], minlength=k).tolist()
    wins = np.bincount(rounds[:, 0], weights=rounds[:, 1], minlength=k).astype(np.int64).tolist()
    context = {
        **_design_context(design, names, horizon),
        "played": len(rounds),
        # Only the raw-history designs show every round; the others need not build the list.
        "rounds": [_Round(names[a], r) for a, r in rounds.tolist()] if design.history == "R" else [],
        "summary": [_Summary(names[i], pulls[i], wins[i] / pulls[i] if pulls[i] else None) for i in range(k)],
    }
    return [
        {"role": "system", "content": _system_content(design, names, horizon)},
        {"role": "user", "content": _environment().get_template("user.j2").render(context)},
    ]


@lru_cache(maxsize=256)
def _system_content(design: DesignSpec, names: tuple[str, ...], horizon: int) -> str:
    """The system message: the same at every step of every episode of a config (no history)."""
    return _environment().get_template("system.j2").render(_design_context(design, names, horizon))


def _design_context(design: DesignSpec, names: tuple[str, ...], horizon: int) -> dict[str, Any]:
    """What both templates are told of the design, the arms and the horizon."""
    return {
        "scenario": design.scenario,
        "suggestive": design.framing == "S",
        "summarized": design.history == "S",
        "cot": design.cot,
        "distribution": design.distribution,
        "k": len(names),
        "horizon": horizon,
        "name_list": ", ".join(names),
        # The paper's "A:n1,B:n2,C:n3,D:n4,E:n5": one numbered weight per arm, for any names.
        "dist_example": ",".join(f"{n}:n{i + 1}" for i, n in enumerate(names)),
    }


def _gbnf_literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


@lru_cache(maxsize=64)  # the same arms at every step of every episode
def answer_grammar(names: tuple[str, ...]) -> str:
    """A llama.cpp GBNF grammar whose only sentences are ``<Answer>NAME</Answer>``, NAME in ``names``.

    Not part of any paper design: it backs the constrained-answer configs, where a small model's
    choices only become measurable once the server cannot emit anything but a valid answer.
    """
    _check_names(names)
    alternatives = " | ".join(_gbnf_literal(n) for n in names)
    return f'root ::= "<Answer>" ({alternatives}) "</Answer>"'
