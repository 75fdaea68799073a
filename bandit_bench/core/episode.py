"""The one loop: an agent on an instance for T steps -> a trajectory."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from bandit_bench.core.agents.base import Agent, AgentError, Decision, EpisodeContext
from bandit_bench.core.bandit import BanditInstance


@dataclass(frozen=True)
class StepRecord:
    t: int
    arm: int
    reward: int
    valid: bool
    raw: str | None = None
    reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    cost: float | None = None
    reasoning: str | None = None
    reasoning_tokens: int = 0
    finish_reason: str | None = None


@dataclass
class Trajectory:
    episode: int
    k: int
    horizon: int
    delta: float
    best_arm: int
    steps: list[StepRecord] = field(default_factory=list)
    # Set when a step failed for a reason other than the reply's format (API fault, cassette).
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As ``dataclasses.asdict`` gives it, built directly: asdict deep-copies every field of
        every step, which cost as much as the replay itself at T = 510."""
        out = {name: getattr(self, name) for name in _TRAJECTORY_FIELDS if name != "steps"}
        out["steps"] = [{name: getattr(s, name) for name in _STEP_FIELDS} for s in self.steps]
        # asdict's key order: the fields as declared.
        return {name: out[name] for name in _TRAJECTORY_FIELDS}


_STEP_FIELDS = tuple(f.name for f in fields(StepRecord))
_TRAJECTORY_FIELDS = tuple(f.name for f in fields(Trajectory))


def _marks_changed(name: str) -> Any:
    """``list.<name>``, which also marks a :class:`History` as changed by someone else."""
    method = getattr(list, name)

    def changed(self: History, *args: Any, **kwargs: Any) -> Any:
        self._own = False
        return method(self, *args, **kwargs)

    changed.__name__ = name
    return changed


class History(list[tuple[int, int]]):
    """The ``(arm, reward)`` pairs played so far, oldest first, as :func:`run_episode` hands
    them to the agent: a plain list to read (or change: it is the agent's to use), whose pairs
    the harness also keeps as rows of an int array, each checked as it was added. A prompt then
    reads those rows instead of checking and converting the whole history at every step (O(T)
    a step, O(T^2) an episode). Any change made by others to the list marks the rows as no
    longer its copy: the prompt then checks the list itself, as it does for any sequence."""

    def __init__(self, k: int, horizon: int) -> None:
        super().__init__()
        self.k = k
        self._rows = np.zeros((max(horizon, 0), 2), dtype=np.int64)
        self._own = True  # False once anyone but the harness changed the list

    def push(self, arm: int, reward: int) -> None:
        """The harness's append: the pair checked, then kept in the list and the rows."""
        if not (0 <= arm < self.k) or reward not in (0, 1) or len(self) >= len(self._rows):
            self._own = False  # not a round the harness plays: the list alone holds it
        elif self._own:
            self._rows[len(self)] = (arm, reward)
        list.append(self, (arm, reward))

    def rows(self, k: int) -> np.ndarray | None:
        """The (t, 2) rows of the pairs, read-only, when they are still the list's and were
        checked against ``k`` arms; else None."""
        if not self._own or k != self.k:
            return None
        view = self._rows[: len(self)]
        view.flags.writeable = False
        return view

    append = _marks_changed("append")
    extend = _marks_changed("extend")
    insert = _marks_changed("insert")
    pop = _marks_changed("pop")
    remove = _marks_changed("remove")
    clear = _marks_changed("clear")
    sort = _marks_changed("sort")
    reverse = _marks_changed("reverse")
    __setitem__ = _marks_changed("__setitem__")
    __delitem__ = _marks_changed("__delitem__")
    __iadd__ = _marks_changed("__iadd__")
    __imul__ = _marks_changed("__imul__")


def run_episode(
    agent: Agent,
    instance: BanditInstance,
    harness_rng: np.random.Generator,
    policy_rng: np.random.Generator,
    arm_names: tuple[str, ...],
    on_step: Any = None,
    steps: int | None = None,
) -> Trajectory:
    """Run one episode.

    An invalid reply is recorded as invalid with its raw text and the harness picks an arm
    uniformly at random from the episode's harness generator, so the episode goes on and stays
    reproducible. A distribution answer is sampled from the same generator.

    ``steps`` stops the episode after that many rounds (a single-round episode: its history
    and one decision), while the agent is still told the instance's horizon.
    """
    traj = Trajectory(
        episode=instance.episode,
        k=instance.k,
        horizon=instance.horizon,
        delta=instance.spec.delta,
        best_arm=instance.best_arm,
    )
    ctx = EpisodeContext(instance=instance, arm_names=arm_names, rng=policy_rng)
    history = History(instance.k, instance.horizon)
    for t in range(instance.horizon if steps is None else min(steps, instance.horizon)):
        try:
            d = agent.choose(history, ctx)
        except AgentError as err:
            traj.error = f"step {t + 1} of {instance.horizon}: {err}"
            break
        arm = _arm_played(d, instance.k, harness_rng)
        reward = instance.pull(t, arm)
        history.push(arm, reward)
        traj.steps.append(_step_record(t, arm, reward, d))
        if on_step is not None:
            on_step(t)
    return traj


def _arm_played(d: Decision, k: int, harness_rng: np.random.Generator) -> int:
    """The arm asked for; a draw from the distribution asked for; else a uniform draw."""
    if d.valid and d.distribution is not None:
        return int(harness_rng.choice(k, p=np.asarray(d.distribution)))
    if d.valid and d.arm is not None:
        return d.arm
    return int(harness_rng.integers(k))


def _step_record(t: int, arm: int, reward: int, d: Decision) -> StepRecord:
    return StepRecord(
        t=t,
        arm=arm,
        reward=reward,
        valid=d.valid,
        raw=d.raw,
        reason=d.reason,
        prompt_tokens=d.prompt_tokens,
        completion_tokens=d.completion_tokens,
        latency=d.latency,
        cost=d.cost,
        reasoning=d.reasoning,
        reasoning_tokens=d.reasoning_tokens,
        finish_reason=d.finish_reason,
    )
