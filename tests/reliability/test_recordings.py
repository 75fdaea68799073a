"""One case, one recording (issue 12): manifests, record modes, override configs, checks before
paying. Real client, real sockets to the simulator, real files, the plugin driven from outside."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bandit_bench.core.specs import BUILTIN_CONFIGS, CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.plugin.cases import discover_models
from bandit_bench.recording.casefolder import (
    MANIFEST,
    adopt_recordings,
    config_spec,
    public_url,
    read_manifest,
)
from bandit_bench.recording.transport import case_dir, cassette_path, load_cassette
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import always, cycle

REPO = Path(__file__).parents[2]
SHIPPED_MODEL = "local/smollm2-135m-instruct"
UNREACHABLE = "http://127.0.0.1:9/v1"

PYPROJECT = """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 4
episodes = 3
min_format_compliance = 0.0
"""
QUICK = CaseConfig("quick", DesignSpec.parse("BNRN0"), InstanceSpec(5, 0.2, 4), RunSpec(episodes=3))


@pytest.fixture
def project(bench_project) -> pytest.Pytester:
    return bench_project(PYPROJECT, own_test=True)


# What describes the run rather than its results: a replay differs there by design.
RUN_LINES = (
    "- record mode:",
    "- requests recorded:",
    "- requests replayed:",
    "- written (UTC):",
    "- base URL:",
)


def _report(project: pytest.Pytester) -> dict[str, object]:
    """The report's results, byte for byte: every file but the run-provenance fields."""
    folder = project.path / "reports"
    out: dict[str, object] = {name: (folder / name).read_bytes() for name in ("summary.csv", "steps.jsonl")}
    out["summary.json rows"] = json.loads((folder / "summary.json").read_text())["rows"]
    md = (folder / "report.md").read_text().splitlines()
    out["report.md"] = [line for line in md if not line.startswith(RUN_LINES)]
    return out


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------- 1. manifests


def test_the_manifest_says_what_the_folder_is_a_recording_of(tmp_path, simulator):
    sim = simulator(cycle())
    opts = RunOptions(base_url=sim.base_url, api_key="sk-test", cassette_dir=tmp_path, record_mode="once")
    assert run_case("vendor/x:free", QUICK, opts).errors == []
    folder = case_dir(tmp_path, "vendor/x:free", "quick")
    assert folder == tmp_path / "vendor" / "x_free" / "quick"
    assert _files(folder) == [".lock", "000.json", "001.json", "002.json", MANIFEST]
    manifest = read_manifest(folder)
    assert manifest is not None
    episodes = manifest.pop("episodes")
    recorded_at = manifest.pop("recorded_at")
    assert manifest == {
        "bandit_bench_manifest": 1,
        "model": "vendor/x:free",
        "config": "quick",
        "spec": {
            "design": "BNRN0",
            "instance": "hard",
            "k": 5,
            "delta": 0.2,
            "T": 4,
            "N": 3,
            "seed": 0,
            "constrained": False,
        },
        "base_url": sim.base_url,
        "bandit_bench_version": "0.1.0",
        "record_mode": "once",
        # What the requests carried besides the prompt (issue 19): the generic server's request.
        "request": {
            "server": "generic",
            "token_limit": {"max_tokens": 20},
            "temperature": 0.0,
            "seed": "seed",
            "system": "system message",
        },
    }
    assert list(episodes) == ["000.json", "001.json", "002.json"]
    assert [{**e, "recorded_at": "-"} for e in episodes.values()] == [
        {"recorded_at": "-", "record_mode": "once", "requests": 4}
    ] * 3
    # The folder's date is that of its last write.
    assert recorded_at == max(e["recorded_at"] for e in episodes.values())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", recorded_at)


def test_base_urls_lose_their_credentials():
    assert public_url("https://user:sk-secret@api.example.org:8443/v1?api_key=sk-2&region=eu#x") == (
        "https://api.example.org:8443/v1"
    )
    assert public_url("http://127.0.0.1:8001/v1") == "http://127.0.0.1:8001/v1"


MODEL_IDS = ["qwen2.5:0.5b", "vendor/x:free", "lab/modèle-ü"]


def test_ids_whose_folder_names_differ_are_discovered_as_themselves_and_replay(project, simulator):
    sim = simulator(cycle())
    for model in MODEL_IDS:
        recorded = project.runpytest(
            "--model", model, "--bandit-config", "quick", "--base-url", sim.base_url, "--record-mode=once"
        )
        recorded.assert_outcomes(passed=1)
    assert sim.calls == len(MODEL_IDS) * 3 * 4
    cassettes = project.path / "cassettes"
    assert sorted(p.relative_to(cassettes).parent.as_posix() for p in cassettes.rglob(MANIFEST)) == [
        "lab/mod_le-_/quick",  # the folder is a file-safe spelling; the manifest holds the id
        "qwen2.5_0.5b/quick",
        "vendor/x_free/quick",
    ]
    assert discover_models(cassettes) == sorted(MODEL_IDS)
    sim.stop()
    # A plain `pytest`: every model is found by its exact id and replays offline.
    replayed = project.runpytest("--base-url", UNREACHABLE)
    replayed.assert_outcomes(passed=3)
    replayed.stdout.fnmatch_lines(["*requests: 0 recorded, 36 replayed*"])
    ids = project.runpytest("--collect-only", "-q")
    # pytest escapes non-ASCII in node ids: compare with its own spelling.
    spelled = [m.encode("unicode_escape").decode("ascii") for m in sorted(MODEL_IDS)]
    ids.stdout.fnmatch_lines([f"*test_bandit[[]{m}-quick[]]" for m in spelled])


def test_a_folder_recorded_before_manifests_is_still_discovered_and_replays(project, simulator):
    # Cassettes written before manifests existed (the episode files only): a plain `pytest` finds
    # the model and config from the folder names and replays them (bandit_bench.plugin.cases).
    sim = simulator(cycle())
    recorded = project.runpytest(
        "--model", "lab/old", "--bandit-config", "quick", "--base-url", sim.base_url, "--record-mode=once"
    )  # fmt: skip
    recorded.assert_outcomes(passed=1)
    sim.stop()
    folder = project.path / "cassettes" / "lab" / "old" / "quick"
    (folder / MANIFEST).unlink()
    assert _files(folder) == [".lock", "000.json", "001.json", "002.json"]
    assert discover_models(project.path / "cassettes") == ["lab/old"]
    replayed = project.runpytest("--base-url", UNREACHABLE, "--collect-only", "-q")
    replayed.stdout.fnmatch_lines(["*test_bandit[[]lab/old-quick[]]"])
    replayed = project.runpytest("--base-url", UNREACHABLE)
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["*requests: 0 recorded, 12 replayed*"])


def test_two_ids_for_one_folder_are_refused_at_record_time_across_runs(project, simulator):
    sim = simulator(cycle())
    project.runpytest(
        "--model",
        "qwen2.5:0.5b",
        "--bandit-config",
        "quick",
        "--base-url",
        sim.base_url,
        "--record-mode=once",
    ).assert_outcomes(passed=1)
    calls = sim.calls
    before = {p: p.read_bytes() for p in (project.path / "cassettes").rglob("*.json")}
    # Another run, another id with the same file-safe folder name.
    clash = project.runpytest(
        "--model", "qwen2.5_0.5b", "--bandit-config", "quick", "--base-url", sim.base_url, "--record-mode=all"
    )
    assert clash.ret == pytest.ExitCode.USAGE_ERROR
    clash.stderr.fnmatch_lines(
        [
            "*holds recordings of model 'qwen2.5:0.5b' (its manifest.json); "
            "model 'qwen2.5_0.5b' maps to the same*"
        ]
    )
    assert sim.calls == calls  # nothing paid for
    assert {p: p.read_bytes() for p in (project.path / "cassettes").rglob("*.json")} == before
    # Replaying under the other id is refused too: its answers are another model's.
    replay = project.runpytest(
        "--model", "qwen2.5_0.5b", "--bandit-config", "quick", "--base-url", UNREACHABLE
    )
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines(["*holds recordings of model 'qwen2.5:0.5b'*"])


@pytest.mark.parametrize(
    "name", ["BNRN0-hard-T25", "BSSC~0-hard-T25", "BNSN0-hard-T25-constrained", "BNSN0-hard-T100-constrained"]
)
def test_shipped_cassettes_have_manifests_made_from_their_recordings(tmp_path, name):
    folder = case_dir(REPO / "cassettes", SHIPPED_MODEL, name)
    shipped = read_manifest(folder)
    assert shipped is not None
    assert (shipped["model"], shipped["config"]) == (SHIPPED_MODEL, name)
    episodes = BUILTIN_CONFIGS[name].run.episodes
    assert list(shipped["episodes"]) == [f"{e:03d}.json" for e in range(episodes)]
    assert shipped["spec"] == config_spec(BUILTIN_CONFIGS[name])
    for episode, entry in shipped["episodes"].items():
        requests, _ = load_cassette(folder / episode)
        assert entry["requests"] == len(requests)
    if name == "BNSN0-hard-T100-constrained":
        # Episodes 2-9 of the T = 100 case were recorded by record-local itself, from other
        # ports than episodes 0-1: its manifest is the recording run's, not rebuilt from cassettes.
        return
    # The same code, run again on a copy of the cassettes, writes the same manifest.
    copy = case_dir(tmp_path, SHIPPED_MODEL, name)
    shutil.copytree(folder, copy)
    (copy / MANIFEST).unlink()
    again = adopt_recordings(
        tmp_path,
        SHIPPED_MODEL,
        BUILTIN_CONFIGS[name],
        record_mode=shipped["record_mode"],
        recorded_at=shipped["recorded_at"],
        note=shipped["note"],
    )
    assert again == {**shipped, "bandit_bench_version": again["bandit_bench_version"]}
    assert discover_models(REPO / "cassettes") == [SHIPPED_MODEL]


# ---------------------------------------------------------------------------- 2. record modes


def _run(project: pytest.Pytester, base_url: str, *args: str) -> pytest.RunResult:
    return project.runpytest("--model", "sim/m", "--bandit-config", "quick", "--base-url", base_url, *args)


@pytest.mark.parametrize("mode", ["once", "new_episodes", "all", "rewrite"])
def test_a_replay_right_after_a_recording_run_reproduces_its_report(project, simulator, mode):
    old = simulator(always(0))
    # An earlier recording of episodes 0 and 1 (always arm 0); this run's server answers arm 2.
    _run(project, old.base_url, "--record-mode=once", "--episodes", "2").assert_outcomes(passed=1)
    new = simulator(always(2))
    recorded = _run(project, new.base_url, f"--record-mode={mode}")
    recorded.assert_outcomes(passed=1)
    report = _report(project)
    replayed = _run(project, UNREACHABLE)
    replayed.assert_outcomes(passed=1)
    assert _report(project) == report
    steps = [json.loads(line) for line in (project.path / "reports/steps.jsonl").read_text().splitlines()]
    arms = {s["episode"]: s["arm"] for s in steps if s["model"] == "sim/m"}
    # once and new_episodes keep the episodes on disk and record the missing one; all and rewrite
    # record every episode again (vcrpy's appending 'all' would replay the older answers).
    expected = {0: 0, 1: 0, 2: 2} if mode in ("once", "new_episodes") else {0: 2, 1: 2, 2: 2}
    assert arms == expected
    assert new.calls == (4 if mode in ("once", "new_episodes") else 12)


def test_rewrite_with_fewer_episodes_never_replays_a_blend(project, simulator):
    old = simulator(always(0))
    _run(project, old.base_url, "--record-mode=once").assert_outcomes(passed=1)
    new = simulator(always(2))
    _run(project, new.base_url, "--record-mode=rewrite", "--episodes", "2").assert_outcomes(passed=1)
    report = _report(project)
    folder = project.path / "cassettes/sim/m/quick"
    assert list(json.loads((folder / MANIFEST).read_text())["episodes"]) == ["000.json", "001.json"]
    # The rewritten episodes replay as recorded...
    _run(project, UNREACHABLE, "--episodes", "2").assert_outcomes(passed=1)
    assert _report(project) == report
    # ...and so does the default replay: the manifest says N = 2 (issue 20: a folder replays as
    # recorded), so the older third episode is never read.
    _run(project, UNREACHABLE).assert_outcomes(passed=1)
    assert _report(project) == report
    # Asked for the config's three episodes, the replay refuses the older third one instead of
    # blending it in.
    blended = _run(project, UNREACHABLE, "--episodes", "3")
    blended.assert_outcomes(failed=1)
    blended.stdout.fnmatch_lines(
        [
            f"*002.json in {folder} is not part of the recording its manifest.json describes*"
            f"Delete it (rm {folder / '002.json'}) and record with --record-mode=once*"
            "--record-mode=rewrite*"
        ]
    )
    # The fix it names works: delete, record the missing episode, replay all three.
    (folder / "002.json").unlink()
    _run(project, new.base_url, "--record-mode=once").assert_outcomes(passed=1)
    _run(project, UNREACHABLE).assert_outcomes(passed=1)


# ---------------------------------------------------------------------------- 3. override configs


def test_a_config_made_by_an_override_is_a_config(project, simulator):
    sim = simulator(cycle())
    base = "BNRN0-hard-T25"
    recorded = project.runpytest(
        "--model", "sim/m", "--bandit-config", base, "--horizon", "3", "--base-url", sim.base_url,
        "--record-mode=once", "--min-format-compliance=0",
    )  # fmt: skip
    recorded.assert_outcomes(passed=1)
    folder = project.path / "cassettes/sim/m/BNRN0-hard-T3"
    manifest = read_manifest(folder)
    assert manifest is not None and manifest["derived_from"] == {"config": base, "T": 3}
    sim.stop()
    # By name: BNRN0-hard-T3 could come from -T25, -T100 or -T500; the manifest says -T25.
    by_name = project.runpytest(
        "--model", "sim/m", "--bandit-config", "BNRN0-hard-T3", "--base-url", UNREACHABLE,
        "--min-format-compliance=0",
    )  # fmt: skip
    by_name.assert_outcomes(passed=1)
    by_name.stdout.fnmatch_lines(["*requests: 0 recorded, 15 replayed*"])
    # A plain pytest discovers it and replays it.
    plain = project.runpytest("--base-url", UNREACHABLE, "--min-format-compliance=0", "--collect-only", "-q")
    plain.stdout.fnmatch_lines(["*test_bandit[[]sim/m-BNRN0-hard-T3[]]"])
    project.runpytest("--base-url", UNREACHABLE, "--min-format-compliance=0").assert_outcomes(passed=1)


def test_an_override_config_of_a_project_config_is_derivable_from_its_name_alone(project):
    listed = project.runpytest("--model", "sim/m", "--bandit-config", "quick-T9", "--collect-only", "-q")
    listed.stdout.fnmatch_lines(["*test_bandit[[]sim/m-quick-T9[]]"])


# ---------------------------------------------------------------------------- 4. check before paying


@pytest.mark.parametrize(
    ("where", "why"),
    [
        ("a-file/cassettes", "NotADirectoryError"),
        ("x" * 300, "OSError: File name too long"),
    ],
    ids=["component-is-a-file", "name-too-long"],
)
def test_a_cassette_that_could_not_be_saved_stops_the_run_before_the_first_request(
    project, simulator, where, why
):
    (project.path / "a-file").write_text("not a folder")
    sim = simulator(cycle())
    result = _run(project, sim.base_url, "--record-mode=once", f"--cassette-dir={where}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*cassettes of sim/m x quick cannot be saved in *{why}*Nothing was requested*"]
    )
    assert sim.calls == 0


def test_a_300_character_model_id_records_and_replays(tmp_path, simulator):
    model = "vendor/" + "m" * 300
    sim = simulator(cycle())
    opts = RunOptions(base_url=sim.base_url, api_key="sk-test", cassette_dir=tmp_path, record_mode="once")
    assert run_case(model, QUICK, opts).errors == []
    path = cassette_path(tmp_path, model, "quick", 0)
    assert len(path.parent.parent.name) <= 120
    assert discover_models(tmp_path) == [model]
    replay = run_case(model, QUICK, RunOptions(base_url=UNREACHABLE, cassette_dir=tmp_path))
    assert replay.errors == [] and replay.replayed == 12


@pytest.mark.parametrize("flag", ["--cassette-dir=", "--report-dir="])
def test_an_empty_folder_option_is_a_usage_error(project, flag):
    result = project.runpytest("--model", "baseline/ucb", "--bandit-config", "quick", flag)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*{flag[:-1]}: got ''; expected a folder path (it was empty; was a variable unset?)"]
    )
    assert not (project.path / "summary.json").exists()
