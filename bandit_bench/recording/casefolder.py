"""One case's recording as one unit: ``<cassettes>/<model>/<config>/`` with its manifest and lock.

The folder name of a model or config is a file-safe spelling (``qwen2.5:0.5b`` ->
``qwen2.5_0.5b``), so it cannot be read back as an id. ``manifest.json`` beside the cassettes
holds what the folder is a recording *of*: the exact model id sent to the API, the config and
its full spec, the endpoint (credentials removed), the bandit-bench version, and per episode
file when and in which record mode it was written. Discovery reads ids from manifests; replay
refuses an episode file the manifest does not list (a second recording mixed into the folder);
recording refuses a folder whose manifest names another model or config (two ids, one folder).

Every write of a cassette or manifest goes through a temporary file and ``os.replace``.
Writers of one folder are serialised by a lock file (``.lock``, see :meth:`CaseFolder.lock`),
held by the process that records, for the whole case.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bandit_bench.recording.modes import REPLAYING_MODES, record_mode
from bandit_bench.recording.transport import (
    CassetteError,
    CorruptCassetteError,
    case_dir,
    check_file,
    episode_file,
    write_text_atomic,
)

if TYPE_CHECKING:
    from bandit_bench.core.specs import CaseConfig

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
# A manifest lists one line per episode: a few KB. Anything larger is not one of ours.
MAX_MANIFEST_BYTES = 1024 * 1024
LOCK_FILE = ".lock"


class FolderConflictError(CassetteError):
    """The case folder belongs to another model or config, or mixes two recordings."""


class UnwritableFolderError(CassetteError):
    """A cassette could not be saved there: found before the first request is paid for."""


def public_url(url: str) -> str:
    """The URL without credentials (the reports' rule too)."""
    from bandit_bench.recording.redaction import public_url as strip

    return strip(url) or ""


def config_spec(config: CaseConfig) -> dict[str, Any]:
    """What defines a case's requests and instances (thresholds are judged, not recorded)."""
    from bandit_bench.core.specs import INSTANCE_PRESETS

    inst = config.instance
    preset = next((n for n, kd in INSTANCE_PRESETS.items() if kd == (inst.k, inst.delta)), None)
    spec: dict[str, Any] = {
        "design": config.design.code,
        "instance": preset,
        "k": inst.k,
        "delta": inst.delta,
        "T": inst.horizon,
        "N": config.run.episodes,
        "seed": config.run.seed,
        "constrained": config.constrained,
    }
    if config.single_round:
        # One decision after a history of this policy (appendix E); absent for an episode config.
        spec["single_round"] = config.single_round
        spec["history_length"] = config.history_length
    return spec


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version() -> str:
    from bandit_bench import __version__

    return __version__


def new_manifest(
    model: str,
    config: CaseConfig,
    base_url: str,
    record_mode: str,
    early_stop: bool = False,
    request: dict[str, Any] | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "bandit_bench_manifest": MANIFEST_FORMAT,
        "model": model,
        "config": config.name,
        "spec": config_spec(config),
        "base_url": public_url(base_url),
        "bandit_bench_version": _version(),
        "record_mode": record_mode,
        "recorded_at": _now(),
        "episodes": {},
    }
    if early_stop:
        # The last recording ran in --early-stop waves: a replay then runs in the same waves,
        # with or without the flag, and stops where the recording stopped. (Absent otherwise.)
        manifest["early_stop"] = True
    if config.origin:
        manifest["derived_from"] = {"config": config.origin, "T": config.instance.horizon}
    if request:
        # What each request carried besides the prompt (running.profiles.effective_request). A
        # manifest without it was recorded with the request bandit-bench always sent.
        manifest["request"] = request
    return manifest


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none (a folder from before manifests)."""
    path = folder / MANIFEST
    fix = (
        "Restore it from version control (git checkout -- FILE), or delete the folder's files and "
        "record the case again with --record-mode=rewrite."
    )
    try:
        # The cassette rules: a regular file (not a FIFO, not a link to /dev/zero) of sane size.
        check_file(path, MAX_MANIFEST_BYTES, "a manifest")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CorruptCassetteError(f"manifest {path} cannot be read ({err}). {fix}") from None
    from bandit_bench.core.formats import FormatError, Manifest, check

    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested deeper than the parser goes
        why = "nested too deep" if isinstance(err, RecursionError) else f"not valid JSON: {err}"
        raise CorruptCassetteError(
            f"manifest {path} is not a bandit-bench manifest ({why}; expected JSON with model, config "
            f"and episodes). {fix}"
        ) from None
    try:
        # The shape only; the file's own dict is what callers read and what a write keeps.
        check(Manifest, data)
    except FormatError as err:
        raise CorruptCassetteError(f"manifest {path} is not a bandit-bench manifest ({err}). {fix}") from None
    return data


@dataclass(frozen=True)
class Recording:
    """A case folder found on disk, with what its manifest says it holds."""

    folder: Path
    model: str
    config: str
    manifest: dict[str, Any]


def is_folder(path: Path) -> bool:
    """``Path.is_dir`` that is False, not an error, for a name too long for the file system."""
    try:
        return path.is_dir()
    except OSError:
        return False


def find_recordings(cassette_dir: Path) -> list[Recording]:
    """Every case folder with a manifest under ``cassette_dir``, sorted by model then config."""
    if not is_folder(cassette_dir):
        return []
    found = []
    for path in cassette_dir.rglob(MANIFEST):
        manifest = read_manifest(path.parent)
        if manifest is not None:
            found.append(Recording(path.parent, manifest["model"], manifest["config"], manifest))
    return sorted(found, key=lambda r: (r.model, r.config))


def unlisted_files(folder: Path, manifest: dict[str, Any] | None, episodes: range) -> list[Path]:
    """Episode files present on disk that the manifest does not list (another recording's)."""
    if manifest is None:
        return []
    listed = manifest["episodes"]
    return [
        folder / episode_file(e)
        for e in episodes
        if episode_file(e) not in listed and (folder / episode_file(e)).exists()
    ]


# One lock object per lock file in this process: filelock's locks count re-entries per thread,
# so the pytest controller can hold a case's lock for the session while run_case takes it again.
_registry_lock = threading.Lock()
_LOCKS: dict[Path, Any] = {}
_manifest_lock = threading.Lock()


class CaseFolder:
    """The writer of one case's recording: checks, lock, cassettes and manifest."""

    def __init__(
        self,
        cassette_dir: Path,
        model: str,
        config: CaseConfig,
        base_url: str,
        record_mode: str,
        early_stop: bool = False,
    ):
        self.early_stop = early_stop
        self.model = model
        self.config = config
        self.base_url = base_url
        self.record_mode = record_mode
        self.path = case_dir(cassette_dir, model, config.name)
        self._written: set[str] = set()
        self._created: Path | None = None  # the topmost folder check_writable created
        # The case's effective request, written into the manifest with each episode.
        self.request: dict[str, Any] | None = None
        # Episodes waiting to be listed by the next manifest write, and the errors of writes
        # that listed an episode for another thread (write_episode).
        self._queue_lock = threading.Lock()
        self._queued: dict[str, int] = {}
        self._failed: dict[str, BaseException] = {}

    # ------------------------------------------------------------------ checks

    def check_identity(self, manifest: dict[str, Any] | None = None) -> None:
        """Refuse a folder whose manifest says it records another model or config."""
        manifest = read_manifest(self.path) if manifest is None else manifest
        if manifest is None:
            return
        if manifest["model"] != self.model:
            raise FolderConflictError(
                f"cassette folder {self.path} holds recordings of model {manifest['model']!r} "
                f"(its {MANIFEST}); model {self.model!r} maps to the same folder name. The two ids "
                f"would mix their recordings: use --cassette-dir to keep {self.model!r} apart, or "
                f"run {manifest['model']!r} if that is the model you meant."
            )
        if manifest["config"] != self.config.name:
            raise FolderConflictError(
                f"cassette folder {self.path} holds recordings of config {manifest['config']!r} "
                f"(its {MANIFEST}); config {self.config.name!r} maps to the same folder name. "
                "Rename one of the two configs."
            )

    def check_writable(self) -> None:
        """Everything that would stop a cassette from being saved, found before any request.

        Creates the folder, then writes and removes a probe named like the longest file a save
        writes (mkstemp's temporary name), so a component that is a file, a name too long for the
        file system, a read-only disk or a full one are all reported before paying."""
        try:
            missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
            if missing:
                self._created = missing[-1]
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".{episode_file(999)}.probe0000.tmp"
            with open(probe, "w", encoding="utf-8") as fh:
                fh.write("{}")
            probe.unlink()
        except OSError as err:
            raise UnwritableFolderError(
                f"cassettes of {self.model} x {self.config.name} cannot be saved in {self.path} "
                f"({type(err).__name__}: {err.strerror or err}). Nothing was requested. Choose a "
                "writable, shorter --cassette-dir (every part of it a folder, not a file)."
            ) from None

    # ------------------------------------------------------------------ lock

    def _filelock(self) -> Any:
        import filelock

        path = (self.path / LOCK_FILE).absolute()
        with _registry_lock:
            # One FileLock per lock file in the process, kept alive here (filelock's own
            # singletons are weakly held: a collected lock is a released lock). Nested holders
            # (the controller for the session, run_case for the case) count up and down instead
            # of deadlocking on their own flock().
            if path not in _LOCKS:
                _LOCKS[path] = filelock.FileLock(path, thread_local=False)
            return _LOCKS[path]

    def acquire(self, notify: Callable[[str], None] | None = None) -> None:
        """Take the folder's lock; while another process holds it, say so once and wait."""
        import filelock

        lock = self._filelock()
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if notify is not None:
                then = (
                    # all and rewrite record every request whatever the folder holds: said as it is.
                    f"then this run records the case again, paying again (record mode {self.record_mode!r})"
                    if record_mode(self.record_mode).records_every_request
                    else "what it recorded is then replayed, not paid for again"
                )
                notify(
                    f"{self.model} x {self.config.name}: another process is recording into {self.path}; "
                    f"waiting for it to finish ({then})"
                )
            lock.acquire()

    def release(self) -> None:
        lock = self._filelock()
        lock.release()
        if not lock.is_locked:
            self._tidy()

    def _tidy(self) -> None:
        """A case that recorded nothing leaves nothing: not its lock file, not empty folders.

        filelock's Unix lock re-checks the inode it locked, so unlinking a released lock file
        while another process waits on it is safe."""
        try:
            if [p.name for p in self.path.iterdir()] != [LOCK_FILE]:
                return
            (self.path / LOCK_FILE).unlink()
            folder = self.path
            while self._created is not None and (folder == self._created or self._created in folder.parents):
                folder.rmdir()
                folder = folder.parent
        except OSError:
            pass  # not empty (another writer) or already gone: nothing to tidy

    @contextmanager
    def lock(self, notify: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the folder's lock for the block (the whole case: check, record, write)."""
        self.acquire(notify)
        try:
            yield
        finally:
            self.release()

    # ------------------------------------------------------------------ writes

    def write_episode(self, episode: int, text: str, requests: int) -> Path:
        """List one complete episode in the manifest, then save its cassette.

        In this order a process killed in between leaves a listed episode whose file is missing
        (the next ``once`` run records it) rather than a paid-for file the manifest disowns.
        Episodes that finish together (the threads of one case) are listed by one manifest write:
        each queues its entry, and whichever thread writes the manifest next lists every entry
        queued by then; the others find theirs listed (or its write's error) and save their
        cassettes, which no lock holds back. Eight episodes in flight then cost two manifest
        writes instead of eight, each with its fsync."""
        path = self.path / episode_file(episode)
        self.path.mkdir(parents=True, exist_ok=True)
        with self._queue_lock:
            self._queued[path.name] = requests
        with _manifest_lock:
            if path.name in self._queued:
                with self._queue_lock:
                    batch, self._queued = self._queued, {}
                try:
                    self._list(batch)
                except BaseException as err:
                    for name in batch:
                        self._failed[name] = err
                    raise
            failed = self._failed.pop(path.name, None)
        if failed is not None:
            raise failed
        write_text_atomic(path, text)
        return path

    def _list(self, batch: dict[str, int]) -> None:
        """One manifest write listing the episodes of ``batch`` (file name -> requests)."""
        manifest = read_manifest(self.path)
        if manifest is not None:
            self.check_identity(manifest)
        fresh = new_manifest(
            self.model, self.config, self.base_url, self.record_mode, self.early_stop, self.request
        )
        if manifest is None or (record_mode(self.record_mode).rewrites_folder and not self._written):
            # rewrite: this run's episodes are the folder's recording; files it did not
            # write are no longer listed, so a replay refuses them instead of blending.
            manifest = fresh
        else:
            episodes = manifest["episodes"]
            manifest.update(fresh)
            manifest["episodes"] = episodes
            if not self.early_stop:
                manifest.pop("early_stop", None)  # this run records the episodes in full
        for name, requests in batch.items():
            self._written.add(name)
            manifest["episodes"][name] = {
                "recorded_at": fresh["recorded_at"],
                "record_mode": self.record_mode,
                "requests": requests,
            }
        manifest["episodes"] = dict(sorted(manifest["episodes"].items()))
        write_json_atomic(self.path / MANIFEST, manifest)


@dataclass(frozen=True)
class AsRecorded:
    """How a replay runs a case folder: as its manifest says it was recorded."""

    config: CaseConfig
    early_stop: bool
    base_url: str | None  # the endpoint the cassettes came from (credentials removed)


def as_recorded(
    cassette_dir: Path, model: str, config: CaseConfig, *, episodes_given: bool, early_stop: bool
) -> AsRecorded:
    """The replay rules of the manifest (record mode ``none``).

    - N, T and the seed are the recording's (``spec``), unless ``--episodes`` was given;
    - a folder recorded in ``--early-stop`` waves replays in the same waves, with or without the
      flag, so it stops where the recording stopped, with the same verdict;
    - ``--early-stop`` over a folder that was not recorded so and lacks some of its N episodes
      runs every episode, so the missing ones error exactly as the full run's would (never a
      verdict from the episodes that happen to be there).
    """
    from dataclasses import replace

    folder = case_dir(cassette_dir, model, config.name)
    try:
        manifest = read_manifest(folder)
    except CassetteError:
        manifest = None  # the run itself reports a damaged manifest, naming the fix
    recorded_early = False
    base_url = None
    if manifest is not None and manifest.get("model") == model and manifest.get("config") == config.name:
        # read_manifest checked the shape (core.formats.ManifestSpec): N and T are whole
        # numbers >= 1 and the seed one >= 0 where they are given.
        spec: dict[str, Any] = manifest.get("spec") or {}
        n, t, seed = spec.get("N"), spec.get("T"), spec.get("seed")
        if not episodes_given and n is not None and n != config.run.episodes:
            config = config.with_overrides(episodes=n)
        if t is not None and t != config.instance.horizon:
            config = replace(config, instance=replace(config.instance, horizon=t))
        if seed is not None and seed != config.run.seed:
            config = replace(config, run=replace(config.run, seed=seed))
        recorded_early = manifest.get("early_stop") is True
        base_url = manifest.get("base_url")
    if recorded_early:
        return AsRecorded(config, True, base_url)
    if early_stop:
        missing = [e for e in range(config.run.episodes) if not (folder / episode_file(e)).exists()]
        if missing:
            return AsRecorded(config, False, base_url)
    return AsRecorded(config, early_stop, base_url)


def adopt_recordings(
    cassette_dir: Path, model: str, config: CaseConfig, *, record_mode: str, recorded_at: str, note: str
) -> dict[str, Any]:
    """Write the manifest of a case folder recorded before manifests existed, from its cassettes.

    ``model`` must be the id that produced them (the folder name is only a file-safe spelling);
    the base URL is read from the recorded requests; ``record_mode``, ``recorded_at`` and
    ``note`` say what is known of the recording run, which the cassettes do not hold."""
    from bandit_bench.recording.transport import load_cassette

    folder = case_dir(cassette_dir, model, config.name)
    files = sorted(p for p in folder.glob("[0-9][0-9][0-9].json"))
    if not files:
        raise CassetteError(f"{folder} holds no episode cassette (NNN.json) to describe")
    manifest = new_manifest(model, config, "", record_mode)
    base_urls = set()
    for path in files:
        requests, _ = load_cassette(path)
        for req in requests:
            uri = urlsplit(req.uri)
            base_urls.add(
                urlunsplit((uri.scheme, uri.netloc, uri.path.rsplit("/chat/completions", 1)[0], "", ""))
            )
        manifest["episodes"][path.name] = {
            "recorded_at": recorded_at,
            "record_mode": record_mode,
            "requests": len(requests),
        }
    if len(base_urls) != 1:
        raise CassetteError(
            f"{folder}: the cassettes were recorded from {sorted(base_urls)}, not one endpoint"
        )
    manifest.update(base_url=public_url(base_urls.pop()), recorded_at=recorded_at, note=note)
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def mixed_recording_message(folder: Path, files: list[Path], rewrite_cmd: str) -> str:
    names = " ".join(str(f) for f in files)
    is_, it = ("is", "it") if len(files) == 1 else ("are", "them")
    return (
        f"{', '.join(f.name for f in files)} in {folder} {is_} not part of the recording its {MANIFEST} "
        "describes (left by an earlier recording, e.g. before a rewrite with fewer episodes); replaying "
        f"{it} would blend two recordings. Delete {it} (rm {names}) and record with --record-mode=once, "
        f"or record the whole case again: {rewrite_cmd}"
    )


__all__ = [
    "MANIFEST",
    "REPLAYING_MODES",
    "CaseFolder",
    "FolderConflictError",
    "Recording",
    "UnwritableFolderError",
    "config_spec",
    "find_recordings",
    "public_url",
    "read_manifest",
]
