"""The case folder's promises, checked on the folder object itself (no server, no pytest run):
what the manifest says, which recording each write keeps or replaces, the lock that waits and
tidies, the replay rules, and the messages that name the fix (bandit_bench.recording.casefolder)."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import filelock
import pytest

from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.recording import casefolder
from bandit_bench.recording.casefolder import (
    MANIFEST,
    AsRecorded,
    CaseFolder,
    FolderConflictError,
    Recording,
    UnwritableFolderError,
    adopt_recordings,
    as_recorded,
    find_recordings,
    mixed_recording_message,
    new_manifest,
    read_manifest,
    unlisted_files,
    write_json_atomic,
)
from bandit_bench.recording.transport import CassetteError, CorruptCassetteError, case_dir

CASE = CaseConfig("quick", DesignSpec.parse("BNRN0"), InstanceSpec(5, 0.2, 4), RunSpec(episodes=3))
MODEL = "lab/modèle-ü"


def _folder(root: Path, mode: str = "once", early_stop: bool = False, model: str = MODEL) -> CaseFolder:
    return CaseFolder(
        root, model, CASE, "https://u:pw-0123456789@api.example/v1?k=1", mode, early_stop=early_stop
    )


def _episodes(folder: CaseFolder) -> dict[str, tuple[str, int]]:
    manifest = read_manifest(folder.path)
    assert manifest is not None
    return {name: (e["record_mode"], e["requests"]) for name, e in manifest["episodes"].items()}


# ------------------------------------------------------------------------------ the manifest


def test_the_manifest_of_a_derived_single_round_case_says_all_it_is(tmp_path: Path) -> None:
    config = CaseConfig(
        "sr~T9", DesignSpec.parse("BNRN0"), InstanceSpec(3, 0.3, 9), RunSpec(episodes=2, seed=7),
        origin="sr", single_round="ucb", history_length=8,
    )  # fmt: skip
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    folder = CaseFolder(tmp_path, MODEL, config, "http://127.0.0.1:8/v1", "once", early_stop=True)
    folder.request = {"server": "generic", "temperature": 0.0}
    folder.write_episode(1, "{}", 9)
    after = dt.datetime.now(dt.UTC)
    path = case_dir(tmp_path, MODEL, "sr~T9") / MANIFEST
    text = path.read_text(encoding="utf-8")
    manifest = json.loads(text)
    # Indented, the model id as written (not \u-escaped), one newline at the end: a diff reads it.
    assert text == json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    assert '"model": "lab/modèle-ü"' in text
    recorded_at = manifest.pop("recorded_at")
    assert manifest == {
        "bandit_bench_manifest": 1,
        "model": MODEL,
        "config": "sr~T9",
        # k=3, delta=0.3 is no preset: "instance" is null, k and delta say it.
        "spec": {
            "design": "BNRN0", "instance": None, "k": 3, "delta": 0.3, "T": 9, "N": 2, "seed": 7,
            "constrained": False, "single_round": "ucb", "history_length": 8,
        },
        "base_url": "http://127.0.0.1:8/v1",
        "bandit_bench_version": casefolder._version(),
        "record_mode": "once",
        "episodes": {"001.json": {"recorded_at": recorded_at, "record_mode": "once", "requests": 9}},
        "early_stop": True,
        "derived_from": {"config": "sr", "T": 9},
        "request": {"server": "generic", "temperature": 0.0},
    }  # fmt: skip
    # The time is UTC whatever the machine's zone.
    written = dt.datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before <= written <= after


def test_times_are_utc_on_a_machine_in_another_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "XYZ-05:45")  # UTC+05:45, a POSIX zone that needs no zone database
    time.tzset()
    try:
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        recorded_at = new_manifest(MODEL, CASE, "", "once")["recorded_at"]
        after = dt.datetime.now(dt.UTC)
    finally:
        monkeypatch.undo()
        time.tzset()
    written = dt.datetime.strptime(recorded_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before <= written <= after


def test_a_manifest_that_cannot_be_read_names_itself_and_the_fix(tmp_path: Path) -> None:
    fix = (
        "Restore it from version control (git checkout -- FILE), or delete the folder's files and "
        "record the case again with --record-mode=rewrite."
    )
    big = tmp_path / "big"
    big.mkdir()
    (big / MANIFEST).write_bytes(b" " * (casefolder.MAX_MANIFEST_BYTES + 1))
    with pytest.raises(CorruptCassetteError) as err:
        read_manifest(big)
    assert str(err.value) == (
        f"manifest {big / MANIFEST} cannot be read (1048577 bytes, more than the 1048576 a manifest may "
        f"hold: it was not read). {fix}"
    )
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / MANIFEST).write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(CorruptCassetteError) as err:
        read_manifest(deep)
    assert str(err.value) == (
        f"manifest {deep / MANIFEST} is not a bandit-bench manifest (nested too deep; expected JSON with "
        f"model, config and episodes). {fix}"
    )
    assert read_manifest(tmp_path / "none") is None


def test_recordings_are_found_by_their_manifests_ids_sorted_by_model(tmp_path: Path) -> None:
    # Created in an order that is neither the ids' nor the folder names' ('m/a:1' is folder a_1).
    for model in ("m/a_0", "m/a_2", "m/a:1"):
        _folder(tmp_path, model=model).write_episode(0, "{}", 4)
    (tmp_path / "m" / "stray").mkdir()  # a folder without a manifest is not a recording
    found = find_recordings(tmp_path)
    assert [(r.model, r.config, r.folder) for r in found] == [
        ("m/a:1", "quick", tmp_path / "m" / "a_1" / "quick"),
        ("m/a_0", "quick", tmp_path / "m" / "a_0" / "quick"),
        ("m/a_2", "quick", tmp_path / "m" / "a_2" / "quick"),
    ]
    assert found[0] == Recording(found[0].folder, "m/a:1", "quick", read_manifest(found[0].folder) or {})
    assert find_recordings(tmp_path / "missing") == []


def test_episode_files_the_manifest_does_not_list_are_another_recording(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    for e in range(4):
        (folder / f"{e:03d}.json").write_text("{}", encoding="utf-8")
    manifest = {"episodes": {"000.json": {}, "002.json": {}}}
    assert unlisted_files(folder, manifest, range(5)) == [folder / "001.json", folder / "003.json"]
    assert unlisted_files(folder, None, range(5)) == []  # a folder from before manifests
    assert mixed_recording_message(folder, [folder / "001.json"], "pytest REWRITE") == (
        f"001.json in {folder} is not part of the recording its manifest.json describes (left by an "
        "earlier recording, e.g. before a rewrite with fewer episodes); replaying it would blend two "
        f"recordings. Delete it (rm {folder / '001.json'}) and record with --record-mode=once, or record "
        "the whole case again: pytest REWRITE"
    )
    two = [folder / "001.json", folder / "003.json"]
    assert mixed_recording_message(folder, two, "pytest REWRITE") == (
        f"001.json, 003.json in {folder} are not part of the recording its manifest.json describes (left "
        "by an earlier recording, e.g. before a rewrite with fewer episodes); replaying them would blend "
        f"two recordings. Delete them (rm {folder / '001.json'} {folder / '003.json'}) and record with "
        "--record-mode=once, or record the whole case again: pytest REWRITE"
    )


# ------------------------------------------------------------------------------ writes


def test_once_adds_episodes_to_the_recording_and_rewrite_replaces_it(tmp_path: Path) -> None:
    first = _folder(tmp_path, "once")
    for e in range(4):
        first.write_episode(e, "{}", 4)
    # A later once run adds an episode: the earlier ones stay listed.
    _folder(tmp_path, "once").write_episode(4, "{}", 3)
    assert _episodes(first) == {f"{e:03d}.json": ("once", 4) for e in range(4)} | {"004.json": ("once", 3)}
    # rewrite: the run's first write starts a new recording; its next writes add to it.
    rewrite = _folder(tmp_path, "rewrite")
    rewrite.write_episode(1, "{}", 2)
    rewrite.write_episode(0, "{}", 2)
    assert _episodes(rewrite) == {"000.json": ("rewrite", 2), "001.json": ("rewrite", 2)}


def test_early_stop_is_kept_only_while_the_folder_is_recorded_in_waves(tmp_path: Path) -> None:
    def early(folder: CaseFolder) -> object:
        return (read_manifest(folder.path) or {}).get("early_stop")

    waves = _folder(tmp_path, "once", early_stop=True)
    waves.write_episode(0, "{}", 4)
    assert early(waves) is True
    again = _folder(tmp_path, "once", early_stop=True)
    again.write_episode(1, "{}", 4)
    assert early(again) is True
    full = CaseFolder(tmp_path, MODEL, CASE, "", "once")  # early_stop defaults to False
    full.write_episode(2, "{}", 4)
    assert early(full) is None  # this run recorded its episodes in full


def test_a_write_into_another_models_folder_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    _folder(tmp_path, model="qwen2.5:0.5b").write_episode(0, "{}", 4)
    other = _folder(tmp_path, model="qwen2.5_0.5b")
    assert other.path == _folder(tmp_path, model="qwen2.5:0.5b").path
    with pytest.raises(FolderConflictError, match="holds recordings of model 'qwen2.5:0.5b'"):
        other.write_episode(1, "{}", 4)
    assert sorted(p.name for p in other.path.iterdir()) == ["000.json", MANIFEST]


def test_a_write_into_another_configs_folder_names_both(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    manifest = new_manifest(MODEL, CASE, "", "once")
    manifest["config"] = "quick.other"
    folder.path.mkdir(parents=True)
    write_json_atomic(folder.path / MANIFEST, manifest)
    with pytest.raises(FolderConflictError) as err:
        folder.write_episode(0, "{}", 4)
    assert str(err.value) == (
        f"cassette folder {folder.path} holds recordings of config 'quick.other' (its manifest.json); "
        "config 'quick' maps to the same folder name. Rename one of the two configs."
    )


def test_a_first_write_creates_the_whole_folder_path(tmp_path: Path) -> None:
    folder = CaseFolder(tmp_path / "new" / "dir", MODEL, CASE, "", "once")
    assert folder.write_episode(2, '{"x": 1}', 4) == tmp_path / "new/dir/lab/mod_le-_/quick/002.json"
    assert (folder.path / "002.json").read_text(encoding="utf-8") == '{"x": 1}'
    manifest = read_manifest(folder.path)
    assert manifest is not None and manifest["base_url"] == ""  # no endpoint given: none made up


def test_episodes_queued_together_all_fail_when_their_manifest_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads' episodes listed by one manifest write that fails: both threads raise its
    error and neither saves a cassette the manifest does not list."""
    folder = _folder(tmp_path)
    folder.path.mkdir(parents=True)
    boom = OSError("disk full")

    def failing_list(batch: dict[str, int]) -> None:
        raise boom

    monkeypatch.setattr(folder, "_list", failing_list)
    raised: dict[int, BaseException] = {}

    def write(e: int) -> None:
        try:
            folder.write_episode(e, "{}", 4)
        except BaseException as err:  # noqa: BLE001 - the test keeps whatever the thread raised
            raised[e] = err

    # Both threads queue their episode while the manifest lock is held, then one write lists both.
    with casefolder._manifest_lock:
        threads = [threading.Thread(target=write, args=(e,)) for e in (0, 1)]
        for t in threads:
            t.start()
        while len(folder._queued) < 2:
            time.sleep(0.001)
    for t in threads:
        t.join()
    assert raised == {0: boom, 1: boom}
    assert list(folder.path.iterdir()) == []


# ------------------------------------------------------------------------------ checks and lock


def test_an_unwritable_folder_is_reported_before_any_request(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    folder = CaseFolder(tmp_path / "file", MODEL, CASE, "", "once")
    with pytest.raises(UnwritableFolderError) as err:
        folder.check_writable()
    assert str(err.value).startswith(f"cassettes of {MODEL} x quick cannot be saved in {folder.path} (")
    assert str(err.value).endswith(
        "). Nothing was requested. Choose a writable, shorter --cassette-dir (every part of it a folder, "
        "not a file)."
    )


def test_a_case_that_recorded_nothing_leaves_no_lock_and_no_folder_it_made(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    folder = CaseFolder(tmp_path / "kept" / "made", MODEL, CASE, "", "once")
    folder.check_writable()
    with folder.lock():
        assert sorted(p.name for p in folder.path.iterdir()) == [".lock"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]
    # A folder that holds a recording keeps it and its lock file.
    kept = CaseFolder(tmp_path / "kept", MODEL, CASE, "", "once")
    kept.check_writable()
    with kept.lock():
        kept.write_episode(0, "{}", 4)
    assert sorted(p.name for p in kept.path.iterdir()) == [".lock", "000.json", MANIFEST]


def test_the_lock_is_taken_again_by_another_thread_of_the_holding_process(tmp_path: Path) -> None:
    """The controller holds a case's lock for the session; the case then runs in a worker thread
    that takes it again: it must count up, not wait for itself."""
    folder = _folder(tmp_path)
    folder.check_writable()
    waited: list[str] = []

    def refuse_to_wait(message: str) -> None:
        waited.append(message)
        raise RuntimeError("would wait for itself")

    with folder.lock():
        worker = threading.Thread(target=_folder(tmp_path).acquire, args=(refuse_to_wait,))
        worker.start()
        worker.join()
        assert waited == []
        _folder(tmp_path).release()  # the worker's hold
    assert not (folder.path / ".lock").exists()  # both released: the empty case is tidied


@pytest.mark.parametrize(
    ("mode", "then"),
    [
        ("once", "what it recorded is then replayed, not paid for again"),
        ("rewrite", "then this run records the case again, paying again (record mode 'rewrite')"),
    ],
)
def test_a_folder_another_process_records_into_is_waited_for_and_said_once(
    tmp_path: Path, mode: str, then: str
) -> None:
    folder = _folder(tmp_path, mode)
    folder.check_writable()
    other = filelock.FileLock(folder.path / ".lock")  # another process's lock: its own file handle
    other.acquire()
    said: list[str] = []

    def notify(message: str) -> None:
        said.append(message)
        other.release()  # the other process finishes

    with folder.lock(notify):
        pass
    assert said == [
        f"{MODEL} x quick: another process is recording into {folder.path}; waiting for it to finish ({then})"
    ]
    folder.acquire()  # free now: nothing said
    folder.release()
    assert len(said) == 1


# ------------------------------------------------------------------------------ replay rules


def _manifest(root: Path, **fields: Any) -> Path:
    folder = case_dir(root, MODEL, "quick")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = new_manifest(MODEL, CASE, "http://127.0.0.1:8/v1", "once") | fields
    write_json_atomic(folder / MANIFEST, manifest)
    return folder


def _with(config: CaseConfig, n: int, t: int, seed: int) -> CaseConfig:
    """``config`` as a replay of a recording with N=n, T=t and this seed runs it."""
    from dataclasses import replace

    base = config.with_overrides(episodes=n) if n != config.run.episodes else config
    return replace(base, instance=replace(base.instance, horizon=t), run=replace(base.run, seed=seed))


def test_a_replay_runs_the_recordings_n_t_and_seed_unless_episodes_are_given(tmp_path: Path) -> None:
    spec = casefolder.config_spec(CASE) | {"N": 5, "T": 7, "seed": 3}
    _manifest(tmp_path, spec=spec)
    got = as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=False)
    assert got == AsRecorded(_with(CASE, 5, 7, 3), False, "http://127.0.0.1:8/v1")
    given = as_recorded(tmp_path, MODEL, CASE, episodes_given=True, early_stop=False)
    assert given == AsRecorded(_with(CASE, 3, 7, 3), False, "http://127.0.0.1:8/v1")
    # Only the seed differs: N and T stay.
    _manifest(tmp_path, spec=casefolder.config_spec(CASE) | {"seed": 3})
    seeded = as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=False)
    assert seeded == AsRecorded(_with(CASE, 3, 4, 3), False, "http://127.0.0.1:8/v1")
    # A manifest without a spec (it is optional) changes nothing; nor does one of another model
    # (the run refuses that one by name).
    _manifest(tmp_path, spec=None)
    assert as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=False) == AsRecorded(
        CASE, False, "http://127.0.0.1:8/v1"
    )
    _manifest(tmp_path, spec=spec, model="other/model")
    assert as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=True) == AsRecorded(
        CASE, False, None
    )


def test_a_folder_recorded_in_waves_replays_in_waves_with_or_without_the_flag(tmp_path: Path) -> None:
    folder = _manifest(tmp_path, early_stop=True)
    (folder / "000.json").write_text("{}", encoding="utf-8")  # only one of the 3 episodes
    for flag in (False, True):
        got = as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=flag)
        assert got == AsRecorded(CASE, True, "http://127.0.0.1:8/v1"), flag


def test_early_stop_over_a_full_recording_missing_episodes_runs_every_episode(tmp_path: Path) -> None:
    folder = _manifest(tmp_path)
    for e in (0, 2):
        (folder / f"{e:03d}.json").write_text("{}", encoding="utf-8")
    url = "http://127.0.0.1:8/v1"
    assert as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=True) == AsRecorded(
        CASE, False, url
    )
    (folder / "001.json").write_text("{}", encoding="utf-8")
    assert as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=True) == AsRecorded(
        CASE, True, url
    )
    assert as_recorded(tmp_path, MODEL, CASE, episodes_given=False, early_stop=False) == AsRecorded(
        CASE, False, url
    )
    # No manifest: the run's own flag, and no recorded endpoint.
    assert as_recorded(tmp_path / "x", MODEL, CASE, episodes_given=False, early_stop=True) == AsRecorded(
        CASE, False, None
    )


# ------------------------------------------------------------------------------ adopting old folders


def _record(root: Path, sim: Any, episodes: int, path: str = "/v1") -> str:
    from bandit_bench.running.runner import RunOptions, run_case

    config = CaseConfig(
        "tiny", DesignSpec.parse("BNRN0"), InstanceSpec(5, 0.2, 1), RunSpec(episodes=episodes)
    )
    opts = RunOptions(base_url=sim.url(path), api_key="sk-test", cassette_dir=root, record_mode="once")
    assert run_case("lab/old", config, opts).errors == []
    return str(sim.url(path))


def test_a_folder_from_before_manifests_is_adopted_from_its_cassettes(tmp_path: Path) -> None:
    from bandit_bench.servers.simulator import Simulator, always

    config = CaseConfig("tiny", DesignSpec.parse("BNRN0"), InstanceSpec(5, 0.2, 1), RunSpec(episodes=2))
    folder = case_dir(tmp_path, "lab/old", "tiny")
    with pytest.raises(CassetteError, match=f"^{folder} holds no episode cassette"):
        adopt_recordings(tmp_path, "lab/old", config, record_mode="once", recorded_at="x", note="n")
    with Simulator(always(0)) as sim:
        # A relay whose own path holds /chat/completions: only the last one is the request's.
        url = _record(tmp_path, sim, 2, "/relay/chat/completions/v1")
    os.unlink(folder / MANIFEST)
    manifest = adopt_recordings(
        tmp_path, "lab/old", config, record_mode="once", recorded_at="2025-01-02T03:04:05Z", note="adopted"
    )
    assert read_manifest(folder) == manifest
    version = manifest.pop("bandit_bench_version")
    assert version == casefolder._version()
    assert manifest == {
        "bandit_bench_manifest": 1,
        "model": "lab/old",
        "config": "tiny",
        "spec": casefolder.config_spec(config),
        "base_url": url,
        "record_mode": "once",
        "recorded_at": "2025-01-02T03:04:05Z",
        "episodes": {
            name: {"recorded_at": "2025-01-02T03:04:05Z", "record_mode": "once", "requests": 1}
            for name in ("000.json", "001.json")
        },
        "note": "adopted",
    }
    # Episodes recorded from two endpoints are not one recording: refused, naming both.
    os.unlink(folder / MANIFEST)
    os.unlink(folder / "001.json")
    with Simulator(always(0)) as other:
        other_url = _record(tmp_path, other, 2)
    os.unlink(folder / MANIFEST)
    with pytest.raises(CassetteError) as err:
        adopt_recordings(tmp_path, "lab/old", config, record_mode="once", recorded_at="x", note="n")
    assert str(err.value) == (
        f"{folder}: the cassettes were recorded from {sorted([url, other_url])}, not one endpoint"
    )
