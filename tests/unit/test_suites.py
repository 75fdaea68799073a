"""The paper's experiments by name: the suites' contents, their thresholds, and pattern selection."""

from __future__ import annotations

import math
import re

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
    # Figure 11's five, then Figure 16's five more (built-in order).
    assert expand_config_names(["BS*-hard-T100"], settings) == [
        "BSRN0-hard-T100",
        "BSSC0-hard-T100",
        "BSSC1-hard-T100",
        "BSSCD-hard-T100",
        "BSSC~0-hard-T100",
        "BSRN1-hard-T100",
        "BSRC0-hard-T100",
        "BSRC1-hard-T100",
        "BSSN0-hard-T100",
        "BSSN1-hard-T100",
    ]
    assert expand_config_names(["A?RND-*-T100"], settings) == ["ANRND-hard-T100", "ANRND-easy-T100"]
    assert expand_config_names(["A?RND-*-N20"], settings) == [
        "ANRND-hard-T100-N20",
        "ASRND-hard-T100-N20",
        "ANRND-easy-T100-N20",
        "ASRND-easy-T100-N20",
    ]
    assert expand_config_names(["*-T[25]00"], settings) == [
        "BNRN0-hard-T500",
        "BSSC~0-hard-T200",
        "BSRC~0-hard-T200",
        "BNRND-hard-T200",
        "BNSND-hard-T200",
    ]
    # The ASCII spelling of C~ matches too; patterns are case-sensitive.
    assert expand_config_names(["BSSCt0-*"], settings) == [
        "BSSC~0-hard-T100",
        "BSSC~0-hard-T200",
        "BSSC~0-hard-T100-single-uniform",
        "BSSC~0-hard-T100-single-ucb",
        "BSSC~0-hard-T100-single-ts",
        "BSSC~0-hard-T25",
    ]
    assert expand_config_names(["my-*"], settings) == ["my-BSxx"]
    with pytest.raises(SpecError, match="a pattern matching at least one of"):
        expand_config_names(["bnrn0-*"], settings)


def test_a_mistyped_config_gets_the_closest_names_and_the_count_not_the_list() -> None:
    settings = _settings()
    with pytest.raises(SpecError) as err:
        expand_config_names(["BSSC~0-hard-T25x"], settings)
    message = str(err.value)
    assert f"expected one of the {len(settings.configs)} configs that `bandit-bench configs` lists" in message
    assert "Did you mean BSSC~0-hard-T25 or BSSC~0-hard-T200 or BSSC~0-hard-T100? " in message
    assert "BNRN0-easy-T25" not in message  # the ~170 names are not printed
    # A suite's name is suggested too; a name close to nothing gets no suggestion.
    with pytest.raises(SpecError, match=r"Did you mean paper-fig7 or paper-fig6 or paper-fig1\? "):
        expand_config_names(["paper-fig"], settings)
    with pytest.raises(SpecError) as err:
        expand_config_names(["nope"], settings)
    assert "Did you mean" not in str(err.value)


def test_overrides_apply_to_every_config_of_a_suite() -> None:
    configs = resolve_configs(["paper"], _settings(), episodes=3)
    assert len(configs) == 37 and {c.run.episodes for c in configs} == {3}


def test_a_project_config_named_like_a_suite_is_the_config() -> None:
    settings = _settings(paper={"design": "BNRN0", "instance": "easy", "horizon": 7})
    assert expand_config_names(["paper"], settings) == ["paper"]


def test_unknown_name_mentions_suites_and_patterns() -> None:
    suites = ", ".join(SUITES)
    assert suites.startswith("paper, paper-fig1, ")
    with pytest.raises(SpecError, match=rf"Or a suite \({re.escape(suites)}\) or a shell pattern"):
        expand_config_names(["paper-fig2"], _settings())


GPT35 = [f"{s}{f}{h}{c}{o}" for s in "B" for f in "NS" for h in "RS" for c in "NC" for o in "01D"]


def test_gpt35_suites_are_figures_12_to_15() -> None:
    panels = {"paper-fig12": ("B", "hard"), "paper-fig13": ("A", "hard"), "paper-fig14": ("B", "easy"),
              "paper-fig15": ("A", "easy")}  # fmt: skip
    for suite, (scenario, instance) in panels.items():
        names = list(SUITES[suite])
        assert names == [f"{scenario}{d[1:]}-{instance}-T100-N20" for d in GPT35], suite
        for name in names:
            cfg = BUILTIN_CONFIGS[name]
            assert (cfg.instance.horizon, cfg.run.episodes) == (100, 20)
            assert cfg.min_best_arm_rate == (0.40 if instance == "hard" else 0.75)
            assert "paper/gpt-3.5" in [r["model"] for r in published_records(cfg)], name
    assert SUITES["paper-gpt35"] == sum((SUITES[s] for s in panels), ())


def test_llama2_suite_is_figure_16() -> None:
    names = list(SUITES["paper-fig16"])
    assert names == [f"{d}-hard-T100" for d in GPT35 if not d.endswith("D")]
    assert {BUILTIN_CONFIGS[n].run.episodes for n in names} == {10}
    # Figure 11's configs where the design is in both: one name, one config, one cassette folder.
    assert set(names) & set(SUITES["paper"]) == {
        "BNRN0-hard-T100", "BNRN1-hard-T100", "BNRC0-hard-T100", "BNSN0-hard-T100", "BSRN0-hard-T100",
        "BSSC0-hard-T100", "BSSC1-hard-T100",
    }  # fmt: skip


def test_figure_6_and_7_suites() -> None:
    assert SUITES["paper-fig7"] == ("BSRC~0-hard-T200", "BSSC~0-hard-T200")
    assert {BUILTIN_CONFIGS[n].run.episodes for n in SUITES["paper-fig7"]} == {40}
    (row,) = published_records(BUILTIN_CONFIGS["BSRC~0-hard-T200"])
    assert (row["source"], row["episodes"]) == ("Figure 7, row BSRC~0", 40)
    assert SUITES["paper-fig6"] == ("BNRND-hard-T200", "BNSND-hard-T200")
    for name in SUITES["paper-fig6"]:
        cfg = BUILTIN_CONFIGS[name]
        assert (cfg.instance.k, cfg.instance.delta, cfg.instance.horizon, cfg.run.episodes) == (
            5,
            0.2,
            200,
            20,
        )


def test_every_published_model_row_has_a_config_in_a_suite() -> None:
    """Each of the paper's 151 model rows is runnable by name: some suite holds a config with its
    design, instance, horizon and replicate count. Figure 11(b)-(d) ran N = 3; the `paper` suite
    runs those designs at Figure 11(a)'s N = 10 (more, never fewer)."""
    from bandit_bench.reporting.published import published_rows

    in_suites = [BUILTIN_CONFIGS[n] for names in SUITES.values() for n in names]
    rows = published_rows()
    assert len(rows) == 151
    for r in rows:
        matches = [
            c.run.episodes
            for c in in_suites
            if (c.design.code, c.instance.k, c.instance.delta, c.instance.horizon)
            == (r.design, r.k, r.delta, r.horizon)
            and not c.constrained
        ]
        if r.source.startswith(("Figure 11(b)", "Figure 11(c)", "Figure 11(d)")):
            assert matches and min(matches) >= r.replicates, r.source
        else:
            assert r.replicates in matches, (r.model, r.source)


def test_configs_lists_every_suite(capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:
    from bandit_bench.cli.commands import main

    monkeypatch.chdir(tmp_path)
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for suite, names in SUITES.items():
        assert f"suite {suite}: {len(names)} configs (--bandit-config {suite})" in out
    for name in SUITES["paper-gpt35"] + SUITES["paper-fig16"]:
        assert f"\n{name} " in out


def test_thresholds_follow_the_horizon_run() -> None:
    """`--horizon 10` on the paper suite: each best-arm threshold is the classic algorithms' floor
    at that instance and T = 10 (not T = 100's, which not even UCB reaches at T = 10)."""
    from bandit_bench.core.specs import instance_preset
    from bandit_bench.core.thresholds import classic_best_arm_floor

    for (instance, horizon), value in BEST_ARM_THRESHOLDS.items():
        inst = instance_preset(instance, horizon)
        assert classic_best_arm_floor(inst.k, inst.delta, horizon) == value
    configs = resolve_configs(["paper"], _settings(), horizon=10)
    assert len(configs) == 37
    for cfg in configs:
        floor = 0.20 if cfg.instance.k == 5 else 0.40
        assert (cfg.instance.horizon, cfg.min_best_arm_rate) == (10, floor), cfg.name
        assert cfg.threshold_note == "UCB/TS/Greedy floor at T=10"
    # Format-only presets stay format-only; the configs' own T keeps its table value.
    assert resolve_configs(["BNRN0-hard-T25"], _settings(), horizon=10)[0].min_best_arm_rate == 0.0
    assert resolve_configs(["BNRN0-hard-T100"], _settings(), episodes=3)[0].min_best_arm_rate == 0.40
