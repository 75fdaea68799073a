"""Concurrency safety: episodes in flight at once, xdist workers and two runs sharing a report folder.

Each episode owns one cassette file and nothing else writes it; cases whose names would map to
the same cassette folder are refused up front; every report file is replaced whole, so two
writers racing on one folder leave each file equal to one writer's version, never a mix.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.core.seeding import api_seed
from bandit_bench.core.specs import BUILTIN_CONFIGS, CaseConfig, DesignSpec, InstanceSpec, RunSpec, SpecError
from bandit_bench.plugin.cases import resolve_configs, split_models
from bandit_bench.plugin.settings import settings_from_table
from bandit_bench.recording.transport import cassette_path
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.reporting.writer import write_reports
from bandit_bench.running.runner import RunOptions, run_case
from bandit_bench.servers.simulator import SimReply, Simulator, cycle

WAIT = 60.0  # upper bound for the barrier; reaching it is what the test checks, never how fast
EPISODES, HORIZON = 6, 4
CONFIG = CaseConfig(
    name="crowd",
    design=DesignSpec.parse("BNRN0"),
    instance=InstanceSpec(k=5, delta=0.2, horizon=HORIZON),
    run=RunSpec(episodes=EPISODES, seed=0),
)


def _seed_of(episode: int) -> int:
    return api_seed(0, CONFIG.instance.key, episode)


def test_episodes_in_flight_at_once_each_write_their_own_cassette(tmp_path: Path) -> None:
    barrier = threading.Barrier(EPISODES, timeout=WAIT)
    first_seen: set[int] = set()
    lock = threading.Lock()
    answer = cycle()

    def policy(body: dict[str, Any], call: int) -> SimReply:
        with lock:
            first = body["seed"] not in first_seen
            first_seen.add(body["seed"])
        if first:
            barrier.wait()  # every episode's first request is held until all six are in flight
        return answer(body, call)

    cassettes = tmp_path / "cassettes"
    with Simulator(policy) as sim:
        opts = RunOptions(
            base_url=sim.base_url,
            api_key="sk-test",
            cassette_dir=cassettes,
            record_mode="once",
            concurrency=EPISODES,
        )
        result = run_case("sim/crowd", CONFIG, opts)
        assert sim.errors == []
        assert sim.max_in_flight == EPISODES
    assert result.errors == []

    paths = [cassette_path(cassettes, "sim/crowd", CONFIG.name, e) for e in range(EPISODES)]
    assert len(set(paths)) == EPISODES
    folder = paths[0].parent
    files = sorted(p for p in cassettes.rglob("*") if p.is_file())
    assert files == [folder / ".lock", *paths, folder / "manifest.json"]
    for episode, path in enumerate(paths):
        interactions = json.loads(path.read_text(encoding="utf-8"))["interactions"]
        # Only this episode's own traffic, whole and in order.
        assert [json.loads(i["request"]["body"])["seed"] for i in interactions] == [
            _seed_of(episode)
        ] * HORIZON
        prompts = [json.loads(i["request"]["body"])["messages"][-1]["content"] for i in interactions]
        assert len(set(prompts)) == HORIZON

    # Replayed concurrently, each episode reads only its own file and gets the same decisions.
    replay = run_case(
        "sim/crowd", CONFIG, RunOptions(base_url="http://127.0.0.1:9/v1", cassette_dir=cassettes)
    )
    assert replay.errors == []
    assert [[s.arm for s in t.steps] for t in replay.trajectories] == [
        [s.arm for s in t.steps] for t in result.trajectories
    ]


def test_names_sharing_a_cassette_folder_are_refused() -> None:
    table = {
        "configs": {
            "mine~1": {"design": "BNRN0", "instance": "hard", "horizon": 5},
            "minet1": {"design": "BSSC~0", "instance": "hard", "horizon": 5},
        }
    }
    settings = settings_from_table(table)
    with pytest.raises(SpecError) as info:
        resolve_configs(["mine~1", "minet1"], settings)
    assert str(info.value) == (
        "--bandit-config: got 'minet1'; expected a name whose cassette folder differs from that of "
        "'mine~1' (minet1)"
    )
    assert [c.name for c in resolve_configs(["mine~1", "mine~1"], settings)] == ["mine~1"]
    with pytest.raises(SpecError) as info:
        split_models(["vendor/model:free", "vendor/model_free"])
    assert str(info.value) == (
        "--model: got 'vendor/model_free'; expected a name whose cassette folder differs from that of "
        "'vendor/model:free' (vendor/model_free)"
    )


def test_xdist_workers_record_disjoint_cassettes(bench_project) -> None:
    pytester = bench_project(
        """
[tool.bandit_bench.configs.one]
design = "BNRN0"
instance = "hard"
horizon = 3
episodes = 2
min_format_compliance = 0.0

[tool.bandit_bench.configs.two]
design = "BSSC~0"
instance = "hard"
horizon = 3
episodes = 2
min_format_compliance = 0.0
""",
    )
    with Simulator(cycle()) as sim:
        result = pytester.runpytest(
            "-n", "2", "--model", "sim/a,sim/b", "--bandit-config", "one", "--bandit-config", "two",
            "--base-url", sim.base_url, "--record-mode=once",
        )  # fmt: skip
        result.assert_outcomes(passed=4)
        assert sim.calls == 4 * 2 * 3
        assert sim.errors == []
    files = sorted(p.relative_to(pytester.path).as_posix() for p in (pytester.path / "cassettes").rglob("*"))
    expected = [f"cassettes/sim/{m}/{c}/{e:03d}.json" for m in "ab" for c in ("one", "two") for e in range(2)]
    assert [f for f in files if f.endswith(".json") and not f.endswith("manifest.json")] == expected
    for rel in expected:
        _, _, model, config, episode = rel.split("/")
        bodies = [
            json.loads(i["request"]["body"])
            for i in json.loads((pytester.path / rel).read_text(encoding="utf-8"))["interactions"]
        ]
        assert {b["model"] for b in bodies} == {f"sim/{model}"}
        horizon_key = InstanceSpec(k=5, delta=0.2, horizon=3).key
        assert {b["seed"] for b in bodies} == {api_seed(0, horizon_key, int(episode[:3]))}
        # BNRN0 shows raw history, BSSC~0 a summary: each file holds its own config's prompts.
        system = bodies[0]["messages"][0]["content"]
        assert ("You are a bandit algorithm" in system) == (config == "two")


def test_two_runs_writing_one_report_folder_never_mix_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # each run's files are the same every time
    config = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    runs = {
        "ucb": [case_record(run_case("baseline/ucb", config))],
        "uniform": [
            case_record(run_case("baseline/uniform", config)),
            case_record(run_case("baseline/ts", config)),
        ],
    }
    # What each run writes on its own.
    alone = {name: write_reports(records, tmp_path / name) for name, records in runs.items()}
    versions = {f: {p[f].read_bytes() for p in alone.values()} for f in alone["ucb"]}
    assert all(len(v) == 2 for v in versions.values())  # the two runs really differ in every file

    shared = tmp_path / "shared"
    rounds = 5
    barrier = threading.Barrier(2, timeout=WAIT)
    failures: list[BaseException] = []
    seen: list[dict[str, bytes]] = []

    def writer(records: list[dict[str, Any]]) -> None:
        try:
            for _ in range(rounds):
                barrier.wait()  # both runs start each round together
                write_reports(records, shared)
                # Whatever a reader finds at any moment is one run's whole file.
                seen.append({f: (shared / f).read_bytes() for f in versions})
        except BaseException as err:  # noqa: BLE001 - reported below
            failures.append(err)

    threads = [threading.Thread(target=writer, args=(records,)) for records in runs.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(seen) == 2 * rounds
    for snapshot in [*seen, {f: (shared / f).read_bytes() for f in versions}]:
        for name, data in snapshot.items():
            assert data in versions[name], name
    for line in (shared / "steps.jsonl").read_text(encoding="utf-8").splitlines():
        json.loads(line)
    assert sorted(p.name for p in shared.iterdir()) == sorted(versions)  # no temporary file left


def _episodes_finishing_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_second: bool) -> Any:
    """Eight threads save their episodes at once: episode 0's manifest write waits (bounded)
    until the seven others have queued theirs, so the batching is fixed, not a matter of timing."""
    import time

    import bandit_bench.recording.casefolder as casefolder

    config = BUILTIN_CONFIGS["BNRN0-hard-T25"].with_overrides(episodes=8)
    folder = casefolder.CaseFolder(
        tmp_path / "cassettes", "sim/batch", config, "http://127.0.0.1:9/v1", "once"
    )
    writes: list[list[str]] = []
    real = casefolder.write_json_atomic
    entered = threading.Event()

    def write(path: Path, data: Any) -> None:
        if not writes:
            entered.set()
            deadline = time.monotonic() + 60  # an upper bound for the threads to queue, never asserted
            while len(folder._queued) < 7 and time.monotonic() < deadline:
                time.sleep(0.01)
        writes.append(sorted(data["episodes"]))
        if fail_second and len(writes) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(casefolder, "write_json_atomic", write)
    errors: dict[int, BaseException] = {}

    def save(e: int) -> None:
        try:
            folder.write_episode(e, json.dumps({"interactions": [], "version": 1}), 25)
        except BaseException as err:
            errors[e] = err

    threads = [threading.Thread(target=save, args=(e,)) for e in range(8)]
    threads[0].start()
    entered.wait(60)  # episode 0 writes the first manifest alone; the others come while it does
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join()
    return folder, writes, errors


def test_episodes_that_finish_together_are_listed_by_one_manifest_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bandit_bench.recording.casefolder import read_manifest

    folder, writes, errors = _episodes_finishing_together(tmp_path, monkeypatch, fail_second=False)
    assert not errors
    # The first write lists its own episode; the second all seven that queued meanwhile.
    assert len(writes) == 2 and len(writes[0]) == 1 and len(writes[1]) == 8
    manifest = read_manifest(folder.path)
    assert manifest is not None and sorted(manifest["episodes"]) == [f"{e:03d}.json" for e in range(8)]
    assert sorted(p.name for p in folder.path.glob("[0-9]*.json")) == [f"{e:03d}.json" for e in range(8)]


def test_a_failed_manifest_write_fails_every_episode_it_listed_and_saves_none_of_their_cassettes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bandit_bench.recording.casefolder import read_manifest

    folder, writes, errors = _episodes_finishing_together(tmp_path, monkeypatch, fail_second=True)
    assert len(writes) == 2 and writes[0] == ["000.json"]
    first = writes[0][0]
    # The seven episodes of the failed write all report it; no cassette the manifest disowns.
    assert sorted(f"{e:03d}.json" for e in errors) == sorted(set(writes[1]) - {first})
    assert all(isinstance(err, OSError) for err in errors.values())
    assert [p.name for p in folder.path.glob("[0-9]*.json")] == [first]
    manifest = read_manifest(folder.path)
    assert manifest is not None and list(manifest["episodes"]) == [first]


def test_episodes_that_start_together_share_one_tls_context_and_one_template_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight episode threads start at once: the CA bundle is read once and the prompt templates
    compiled once, not once per thread (each took a quarter of a second on a busy machine)."""
    import time

    import httpx2
    import jinja2

    import bandit_bench.core.prompts as prompts
    import bandit_bench.running.deadline as deadline

    built: list[str] = []
    real_ssl, real_env = httpx2.create_ssl_context, jinja2.Environment

    def slow_ssl(*args: Any, **kwargs: Any) -> Any:
        built.append("ssl")
        time.sleep(0.2)  # the others arrive while the first builds: what made each build its own
        return real_ssl(*args, **kwargs)

    def slow_env(*args: Any, **kwargs: Any) -> Any:
        built.append("env")
        time.sleep(0.2)
        return real_env(*args, **kwargs)

    monkeypatch.setattr(httpx2, "create_ssl_context", slow_ssl)
    monkeypatch.setattr(jinja2, "Environment", slow_env)
    for cached in (deadline._build_ssl_context, prompts._environment, prompts._locked_environment):
        cached.cache_clear()
    start = threading.Barrier(8)
    got: list[tuple[Any, Any]] = []

    def episode() -> None:
        start.wait()
        got.append((deadline._ssl_context(), prompts._environment()))

    threads = [threading.Thread(target=episode) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cached in (deadline._build_ssl_context, prompts._environment, prompts._locked_environment):
        cached.cache_clear()  # the next test builds its own, unpatched
    assert sorted(built) == ["env", "ssl"]
    assert len({id(c) for c, _ in got}) == 1 and len({id(e) for _, e in got}) == 1
