"""Seeded instances with common random numbers, validated specs, and the episode loop's rules."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bandit_bench.core.agents.base import Decision
from bandit_bench.core.bandit import draw_instance
from bandit_bench.core.episode import run_episode
from bandit_bench.core.specs import (
    BUILTIN_CONFIGS,
    DesignSpec,
    InstanceSpec,
    RunSpec,
    SpecError,
    config_from_table,
    instance_preset,
)

HARD10 = instance_preset("hard", 10)


def test_episode_instances_are_pinned():
    first = draw_instance(HARD10, 0, 0)[0]
    assert first.best_arm == 4
    assert first.seed == 928571051
    assert first.rewards[:3].tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 1, 1], [0, 1, 0, 1, 0]]
    assert first.means == (0.4, 0.4, 0.4, 0.4, 0.6)
    assert [draw_instance(HARD10, 0, e)[0].seed for e in (1, 2)] == [445116967, 695100224]
    assert [int(draw_instance(HARD10, 0, e)[0].rewards.sum()) for e in range(3)] == [24, 24, 26]


def test_same_episode_same_draws_in_any_process_and_order():
    code = (
        "from bandit_bench.core.bandit import draw_instance\n"
        "from bandit_bench.core.specs import instance_preset\n"
        "i, h, p = draw_instance(instance_preset('hard', 10), 0, 2)\n"
        "print(i.best_arm, i.seed, i.rewards.tolist(), h.integers(5, size=4).tolist())"
    )
    # Another process with another hash salt: Python's hash() must play no part.
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout
    later_first = [draw_instance(HARD10, 0, e) for e in (5, 3, 2)][-1]
    inst, harness, _ = later_first
    assert out.split()[0:2] == [str(inst.best_arm), str(inst.seed)]
    assert (
        out.strip()
        == f"{inst.best_arm} {inst.seed} {inst.rewards.tolist()} {harness.integers(5, size=4).tolist()}"
    )


def test_global_numpy_state_plays_no_part():
    """Seed defect 5: the notebook seeded the global generator; episodes must not depend on it."""
    np.random.seed(1)
    a = draw_instance(HARD10, 0, 0)[0]
    np.random.seed(2)
    np.random.random(100)
    b = draw_instance(HARD10, 0, 0)[0]
    assert a.best_arm == b.best_arm and (a.rewards == b.rewards).all()


def test_reward_table_is_fixed_up_front_and_read_only():
    inst = draw_instance(HARD10, 0, 0)[0]
    assert inst.rewards.shape == (10, 5) and inst.rewards.dtype == np.int8
    with pytest.raises(ValueError):
        inst.rewards[0, 0] = 1
    assert [inst.pull(t, 4) for t in range(10)] == inst.rewards[:, 4].tolist()


def test_seeds_depend_on_base_seed_instance_and_episode():
    base = draw_instance(HARD10, 0, 0)[0]
    assert draw_instance(HARD10, 1, 0)[0].seed != base.seed
    assert draw_instance(HARD10, 0, 1)[0].seed != base.seed
    assert draw_instance(instance_preset("easy", 10), 0, 0)[0].seed != base.seed


def test_best_arm_is_spread_over_arms():
    best = [draw_instance(InstanceSpec(5, 0.2, 5), 0, e)[0].best_arm for e in range(500)]
    counts = np.bincount(best, minlength=5)
    assert counts.min() > 70  # each arm best in about a fifth of the episodes


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (lambda: InstanceSpec(1, 0.2, 10), "k", "1"),
        (lambda: InstanceSpec(5, 0.0, 10), "delta", "0.0"),
        (lambda: InstanceSpec(5, 1.0, 10), "delta", "1.0"),
        (lambda: InstanceSpec(5, 0.2, 0), "horizon", "0"),
        (lambda: RunSpec(episodes=0), "episodes", "0"),
        (lambda: DesignSpec.parse("BXRN0"), "design", "'BXRN0'"),
        (lambda: instance_preset("medium", 10), "instance", "'medium'"),
    ],
)
def test_bad_spec_names_field_value_and_allowed(build, field, value):
    with pytest.raises(SpecError) as info:
        build()
    msg = str(info.value)
    assert msg.startswith(f"{field}: got {value}; expected ")


def test_design_codes_and_ascii_spelling():
    d = DesignSpec.parse("BSSCt0")
    assert (d.code, d.ascii_code, d.temperature, d.distribution) == ("BSSC~0", "BSSCt0", 0.0, False)
    assert DesignSpec.parse("ANRC1").temperature == 1.0
    assert DesignSpec.parse("BNSND").distribution


def test_presets_match_the_paper():
    assert (HARD10.k, HARD10.delta) == (5, 0.2)
    easy = instance_preset("easy", 10)
    assert (easy.k, easy.delta) == (4, 0.5)
    assert {"BNRN0-hard-T100", "BSSC~0-hard-T100", "BNRN0-hard-T25", "BSSC~0-hard-T25"} <= set(
        BUILTIN_CONFIGS
    )
    assert BUILTIN_CONFIGS["BSSC~0-hard-T100"].run.episodes == 10


def test_config_table_errors_name_the_table():
    with pytest.raises(SpecError, match=r"\[tool.bandit_bench.configs.'x'\]"):
        config_from_table("x", {"design": "BNRN0", "colour": "red"})


class Scripted:
    name = "scripted"

    def __init__(self, decisions: list[Decision]) -> None:
        self.decisions = decisions

    def choose(self, history, ctx):
        if len(history) >= len(self.decisions):
            raise AssertionError("agent asked for more steps than scripted")
        return self.decisions[len(history)]


def test_invalid_steps_are_recorded_and_the_harness_picks_from_the_episode_stream():
    inst, harness, policy = draw_instance(HARD10, 0, 0)
    decisions = [Decision(valid=True, arm=2, raw="<Answer>red</Answer>")] + [
        Decision(valid=False, raw="I pick blue", reason="no-tag")
    ] * 9
    traj = run_episode(
        Scripted(decisions), inst, harness, policy, ("blue", "green", "red", "yellow", "purple")
    )
    expected_random = draw_instance(HARD10, 0, 0)[1].integers(5, size=9)  # the same harness stream
    assert [s.arm for s in traj.steps] == [2, *[int(a) for a in expected_random]]
    assert [s.valid for s in traj.steps] == [True] + [False] * 9
    assert traj.steps[1].raw == "I pick blue" and traj.steps[1].reason == "no-tag"
    assert [s.reward for s in traj.steps] == [inst.rewards[s.t, s.arm] for s in traj.steps]


def test_distribution_answers_are_sampled_by_the_harness():
    inst, harness, policy = draw_instance(HARD10, 0, 1)
    dist = (0.5, 0.0, 0.5, 0.0, 0.0)
    d = Decision(valid=True, distribution=dist)
    traj = run_episode(Scripted([d] * 10), inst, harness, policy, ("a", "b", "c", "d", "e"))
    fresh = draw_instance(HARD10, 0, 1)[1]  # the same episode's harness stream, from its start
    expected = [int(fresh.choice(5, p=np.asarray(dist))) for _ in range(10)]
    assert [s.arm for s in traj.steps] == expected
    assert set(expected) == {0, 2}  # both arms drawn: the sample is not a constant
