"""The paper's experiments by name: the suites' contents, their thresholds, and pattern selection."""

from __future__ import annotations

import math

import pytest

from bandit_bench.core.specs import BEST_ARM_THRESHOLDS, BUILTIN_CONFIGS, SUITES, SpecError, config_from_table
from bandit_bench.plugin.cases import expand_config_names, resolve_configs
from bandit_bench.plugin.settings import ProjectSettings
from bandit_bench.reporting.published import published_records

PAPER_NINE = ["BNRN0", "BNRN1", "BNRND", "BNRC0", "BNSN0", "BSRN0", "BSSC0", "BSSC1", "BSSCD"]


def test_paper_suite_is_figure_11s_grid() -> None:
    names = list(SUITES["paper"])
    assert names == (
        [f"{d}-hard-T100" for d in [*PAPER_NINE, "BSSC~0"]]
        + [f"{d}-easy-T100" for d in PAPER_NINE]
        + [f"A{d[1:]}-hard-T100" for d in PAPER_NINE]
        + [f"A{d[1:]}-easy-T100" for d in PAPER_NINE]
    )
    assert len(names) == 37
    for name in names:
        cfg = BUILTIN_CONFIGS[name]
        inst = "hard" if "-hard-" in name else "easy"
        assert (cfg.instance.k, cfg.instance.delta) == ((5, 0.2) if inst == "hard" else (4, 0.5))
        assert (cfg.instance.horizon, cfg.run.episodes, cfg.run.seed) == (100, 10, 0)
        assert cfg.min_format_compliance == 0.9
        assert cfg.min_best_arm_rate == (0.40 if inst == "hard" else 0.75)
        assert not cfg.constrained
        assert cfg.design.code == name.split("-")[0]


def test_paper_fig1_suite_is_figure_1s_two_long_runs() -> None:
    assert SUITES["paper-fig1"] == ("BNRN0-hard-T500", "BSSC~0-hard-T200")
    a, b = (BUILTIN_CONFIGS[n] for n in SUITES["paper-fig1"])
    assert (a.design.code, a.instance.k, a.instance.delta, a.instance.horizon, a.run.episodes) == (
        "BNRN0",
        5,
        0.2,
        500,
        20,
    )
    assert (b.design.code, b.instance.horizon, b.run.episodes) == ("BSSC~0", 200, 40)
    assert a.min_best_arm_rate == b.min_best_arm_rate == 0.45


def test_every_paper_config_has_the_papers_gpt4_row() -> None:
    for name in SUITES["paper"]:
        models = [r["model"] for r in published_records(BUILTIN_CONFIGS[name])]
        assert "paper/gpt-4" in models, name
    # Figure 1(b)'s run is the one Figure 7 tabulates (T = 200, N = 40).
    (row,) = published_records(BUILTIN_CONFIGS["BSSC~0-hard-T200"])
    assert (row["model"], row["source"], row["episodes"]) == ("paper/gpt-4", "Figure 7, row BSSC~0", 40)
    assert published_records(BUILTIN_CONFIGS["BNRN0-hard-T500"]) == []  # Figure 1(a) has no table


@pytest.mark.parametrize(("instance", "horizon"), list(BEST_ARM_THRESHOLDS))
def test_thresholds_are_the_classic_algorithms_lowest_rate_rounded_down(instance: str, horizon: int) -> None:
    from bandit_bench.core.agents.baselines import run_on_instances
    from bandit_bench.core.metrics import EpisodeBatch, point_values
    from bandit_bench.core.specs import instance_preset

    spec = instance_preset(instance, horizon)
    rates = []
    for name in ("ucb", "ts", "greedy"):
        run = run_on_instances(name, spec, 0, 1000)
        batch = EpisodeBatch.from_arrays(run.arms, run.rewards, run.best_arm, spec.k, spec.delta)
        rates.append(point_values(batch)["best_arm_rate"])
    assert BEST_ARM_THRESHOLDS[instance, horizon] == pytest.approx(math.floor(min(rates) / 0.05) * 0.05)


def _settings(**extra: dict) -> ProjectSettings:
    configs = dict(BUILTIN_CONFIGS)
    for name, table in extra.items():
        configs[name] = config_from_table(name, table)
    return ProjectSettings(configs=configs)


def test_suite_names_expand_in_order() -> None:
    settings = _settings()
    assert expand_config_names(["paper-fig1"], settings) == ["BNRN0-hard-T500", "BSSC~0-hard-T200"]
    names = expand_config_names(["BNRN0-hard-T25", "paper", "BNRN0-hard-T100"], settings)
    assert names == ["BNRN0-hard-T25", *SUITES["paper"]]  # each once, first mention wins


def test_shell_patterns_select_configs() -> None:
    settings = _settings(**{"my-BSxx": {"design": "BSSN0", "instance": "hard"}})
    assert expand_config_names(["BS*-hard-T100"], settings) == [
        "BSRN0-hard-T100",
        "BSSC0-hard-T100",
        "BSSC1-hard-T100",
        "BSSCD-hard-T100",
        "BSSC~0-hard-T100",
    ]
    assert expand_config_names(["A?RND-*"], settings) == ["ANRND-hard-T100", "ANRND-easy-T100"]
    assert expand_config_names(["*-T[25]00"], settings) == ["BNRN0-hard-T500", "BSSC~0-hard-T200"]
    # The ASCII spelling of C~ matches too; patterns are case-sensitive.
    assert expand_config_names(["BSSCt0-*"], settings) == [
        "BSSC~0-hard-T100",
        "BSSC~0-hard-T200",
        "BSSC~0-hard-T25",
    ]
    assert expand_config_names(["my-*"], settings) == ["my-BSxx"]
    with pytest.raises(SpecError, match="a pattern matching at least one of"):
        expand_config_names(["bnrn0-*"], settings)


def test_overrides_apply_to_every_config_of_a_suite() -> None:
    configs = resolve_configs(["paper"], _settings(), episodes=3)
    assert len(configs) == 37 and {c.run.episodes for c in configs} == {3}


def test_a_project_config_named_like_a_suite_is_the_config() -> None:
    settings = _settings(paper={"design": "BNRN0", "instance": "easy", "horizon": 7})
    assert expand_config_names(["paper"], settings) == ["paper"]


def test_unknown_name_mentions_suites_and_patterns() -> None:
    with pytest.raises(SpecError, match=r"Or a suite \(paper, paper-fig1\) or a shell pattern"):
        expand_config_names(["paper-fig2"], _settings())
