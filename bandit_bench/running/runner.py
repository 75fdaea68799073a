"""Run one case (model x config): N seeded episodes, concurrently, each with its own cassette.

This is the library entry point the pytest plugin calls; a script can call it too::

    from bandit_bench.running.runner import RunOptions, run_case
    from bandit_bench.core.specs import BUILTIN_CONFIGS
    result = run_case("baseline/ucb", BUILTIN_CONFIGS["BNRN0-hard-T25"], RunOptions())
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from bandit_bench.core.agents.base import AgentError
from bandit_bench.core.specs import CaseConfig, SpecError
from bandit_bench.recording.redaction import Secret, redact, register_url
from bandit_bench.recording.transport import CassetteError, CorruptCassetteError
from bandit_bench.running.credentials import key_env_for, key_help, key_problem

if TYPE_CHECKING:
    from bandit_bench.core.early_stop import Settlement
    from bandit_bench.core.episode import Trajectory
    from bandit_bench.recording.casefolder import CaseFolder

BASELINE_PREFIX = "baseline/"
# The error of an episode the budget stopped: not an API fault, the case reports it apart.
BUDGET_STOPPED = "stopped by the budget (--max-cost)"
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"


@dataclass(frozen=True)
class StepProgress:
    """A case's progress after a step: how many steps are done, and how many of them were
    recorded (paid for, sent to the API) or replayed from a cassette."""

    model: str
    config: str
    done: int
    total: int
    recorded: int
    replayed: int


ProgressFn = Callable[[StepProgress], None]


@dataclass(frozen=True, repr=False)
class RunOptions:
    """How a case runs. ``api_key`` is sent as is to ``base_url`` (see
    :func:`bandit_bench.running.credentials.select_api_key` for choosing it by endpoint); a plain string
    is wrapped in a :class:`~bandit_bench.recording.redaction.Secret`, so no repr shows it."""

    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = None
    # The variable the key was meant to come from (--api-key-env), for hints and messages.
    api_key_env: str | None = None
    cassette_dir: Path = Path("cassettes")
    record_mode: str = "none"
    concurrency: int = 8
    max_retries: int = 2
    request_timeout: float = 60.0
    max_rps: float | None = None
    progress: ProgressFn | None = None
    # False on a pytest-xdist worker that does not share the controller's cassette folder: a
    # recorded episode's cassette goes to ``relay`` as it completes (else it stays in
    # CaseResult.cassettes) and the controller writes it.
    write_cassettes: bool = True
    # False on an xdist worker sharing the controller's folder: the controller holds every case
    # folder's lock for the session, on behalf of its workers, which write under it.
    lock_folders: bool = True
    # An object with ``episode(model, config, episode, text, requests)``: told of each complete
    # episode as it completes (``text`` None when it was written here); False from it means the
    # text did not travel and the episode stays in CaseResult.cassettes.
    relay: Any = None
    # Set from outside (the controller is gone, the session is stopping): every case of the
    # process stops as on Ctrl-C, requests in flight dropped.
    stop: threading.Event | None = None
    # Told once when another process holds the case folder's lock and this run waits.
    notify: Callable[[str], None] | None = None
    # Run episodes in waves and stop once the verdict is settled (see early_stop).
    early_stop: bool = False
    # --max-cost: a spend.Budget shared by the session's workers (None: no limit).
    budget: Any = None
    # The user's request profiles ([tool.bandit_bench.models], --request-profile): a
    # profiles.ProfileSettings, or None for the built-in ones alone.
    profiles: Any = None
    # False: base_url is the default, not the user's choice; a case folder recorded elsewhere
    # then gets the request profile of the endpoint its manifest names (its replay must send
    # what was recorded). True: base_url decides, except in record mode "none", which always
    # replays with the recording endpoint's profile.
    base_url_given: bool = False
    # --max-rpm / --max-tpm: a ratelimit.SessionRateLimit shared by every case and worker.
    rate_limit: Any = None

    def __post_init__(self) -> None:
        timeout = self.request_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
            # inf or 1e300 would overflow a socket timeout mid-run
            raise SpecError("request_timeout", timeout, "a number of seconds in (0, 86400]")
        check_base_url(self.base_url)
        if isinstance(self.api_key, str):
            object.__setattr__(
                self, "api_key", Secret(self.api_key, "RunOptions.api_key") if self.api_key else None
            )

    def __repr__(self) -> str:
        # pytest -l prints locals: neither the key nor a password in the URL may show.
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return redact(f"RunOptions({inner})")


def hint_url(base_url: str) -> str:
    """``base_url`` as a hint may print it: credentials are used for the request, the hint shows
    where they go (``USER:PASSWORD@``, ``?api-key=VALUE``), not what they are."""
    from urllib.parse import parse_qsl, urlencode

    from bandit_bench.recording.redaction import PUBLIC_QUERY_PARAMS

    parts = urlsplit(base_url.rstrip("/"))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "USER:PASSWORD@" + netloc.rsplit("@", 1)[1]
    query = [
        (k, v if k.lower() in PUBLIC_QUERY_PARAMS else "VALUE")
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), urlencode(query), ""))
    return f"'{url}'" if query else url


def check_base_url(base_url: Any) -> None:
    """Refuse a base URL no request could go to, without showing its credentials."""
    from bandit_bench.recording.redaction import shown_url

    allowed = "an http(s) URL such as https://openrouter.ai/api/v1 or http://127.0.0.1:8080/v1"
    if not isinstance(base_url, str):
        raise SpecError("--base-url", type(base_url).__name__, allowed)
    register_url(base_url)  # before anything could print it
    try:
        parts = urlsplit(base_url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        raise SpecError(
            "--base-url", "(unparseable URL, not shown)", allowed, hint=f"It does not parse: {err}"
        ) from None
    if not ok:
        # Without a scheme "user:password@host" does not parse as credentials: drop up to the '@'.
        shown = shown_url(base_url).rpartition("@")[2]
        # Without a scheme, httpx would take "127.0.0.1:8001/v1" as a relative path.
        hint = f"Add the scheme: --base-url=http://{shown}" if "://" not in base_url else ""
        raise SpecError("--base-url", shown, allowed, hint=hint)


def is_baseline(model: str) -> bool:
    return model.startswith(BASELINE_PREFIX)


def validate_model(model: str) -> str:
    """Any ``provider/name`` (or a local server's bare name) is an API id; ``baseline/*`` must exist."""
    from bandit_bench.core.agents.baselines import BASELINES

    if not isinstance(model, str) or not model.strip() or any(c.isspace() for c in model):
        raise SpecError("--model", model, "a model id such as openai/gpt-4o-mini or baseline/ucb (no spaces)")
    if model.startswith("/") or model.endswith("/") or "//" in model:
        raise SpecError("--model", model, "provider/name, e.g. openai/gpt-4o-mini (no empty parts)")
    if is_baseline(model) and model[len(BASELINE_PREFIX) :] not in BASELINES:
        allowed = ", ".join(BASELINE_PREFIX + b for b in BASELINES)
        raise SpecError("--model", model, f"one of {allowed} for a baseline")
    return model


class RunCancelled(Exception):
    """Raised inside episodes still running when the run is interrupted (Ctrl-C)."""


class RateLimiter:
    """At most ``rps`` request starts per second, shared by the episodes of a case."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def record_command(model: str, config: CaseConfig, opts: RunOptions | None = None, mode: str = "once") -> str:
    """The command that (re-)records a case, overrides, folder and endpoint included.

    ``once`` for a missing cassette; ``rewrite`` for a stale one, which ``once`` would only
    replay again."""
    opts = opts or RunOptions()
    base_url = hint_url(opts.base_url)
    extra = "" if opts.cassette_dir == Path("cassettes") else f" --cassette-dir={opts.cassette_dir}"
    host = urlsplit(base_url).hostname or ""
    if model == "local/smollm2-135m-instruct" and (base_url == DEFAULT_BASE_URL or host in _LOOPBACK):
        return (
            f"bandit-bench record-local {config.cli_args} --record-mode={mode} "
            "(it starts the llama.cpp server)"
        )
    cmd = f"pytest --model {model} {config.cli_args} --record-mode={mode}{extra}"
    if model.startswith("local/") and base_url == DEFAULT_BASE_URL:
        return f"{cmd} --base-url=http://127.0.0.1:PORT/v1 (with the model's local server running)"
    if opts.api_key_env:
        cmd += f" --api-key-env={opts.api_key_env}"
    env = key_env_for(opts.base_url, opts.api_key_env)
    if base_url == DEFAULT_BASE_URL:
        return f"{env}=... {cmd}"
    if env is not None:
        return f"{env}=... {cmd} --base-url={base_url}"
    return (
        f"{cmd} --base-url={base_url} (with the server running; it is sent no key unless given one: "
        "--api-key-env NAME or --api-key)"
    )


@dataclass
class CaseResult:
    model: str
    config: CaseConfig
    trajectories: list[Trajectory] = field(default_factory=list)
    recorded: int = 0
    replayed: int = 0
    # Set when --early-stop ended the case before its last episode.
    settled: Settlement | None = None
    # What each request carried besides the prompt (profiles.effective_request), and where a
    # design's defining parameter was not honoured (profiles.honour_notes).
    request: dict[str, Any] = field(default_factory=dict)
    request_notes: list[str] = field(default_factory=list)
    # Episodes --max-cost left unfinished (never started, or stopped mid-way and not saved).
    budget_stopped: list[int] = field(default_factory=list)
    budget_note: str = ""
    # episode -> (cassette text, requests in it): recorded episodes not yet written
    # (RunOptions.write_cassettes=False); write them with casefolder.CaseFolder.write_episode.
    cassettes: dict[int, tuple[str, int]] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return [f"episode {t.episode}: {t.error}" for t in self.trajectories if t.error]


def _episode(
    model: str,
    config: CaseConfig,
    episode: int,
    opts: RunOptions,
    limiter: RateLimiter | None,
    counter: Callable[[bool], None],
    cancel: threading.Event | None = None,
    sink: Callable[[int, str, int], object] | None = None,
    refused: str | None = None,
    profile: Any = None,
    hint_opts: RunOptions | None = None,
) -> tuple[Trajectory, int, int]:
    # Imported here: the plugin imports this module at pytest start-up, numpy is not needed then.
    from bandit_bench.core.bandit import draw_instance
    from bandit_bench.core.episode import Trajectory, run_episode
    from bandit_bench.core.prompts import arm_names
    from bandit_bench.recording.transport import cassette_path

    instance, harness_rng, policy_rng = draw_instance(config.instance, config.run.seed, episode)
    names = arm_names(config.design.scenario, config.instance.k)
    path = cassette_path(opts.cassette_dir, model, config.name, episode)
    hint = f"To record it: {record_command(model, config, hint_opts or opts)}"
    stale_hint = f"To record it again: {record_command(model, config, hint_opts or opts, mode='rewrite')}"
    try:
        transport = _episode_transport(path, opts, model, refused, cancel, hint, stale_hint)
        problem = _missing_key(transport, path, opts)
    except CassetteError as err:
        problem = str(err)
        if isinstance(err, CorruptCassetteError):
            # The fix, as a command: the case's own options, folder and endpoint.
            problem += f" {stale_hint}"
    if problem is not None:
        traj = Trajectory(episode, instance.k, instance.horizon, instance.spec.delta, instance.best_arm)
        traj.error = problem
        return traj, 0, 0
    client, agent = _episode_agent(model, config, opts, transport, limiter, profile)
    seen = [0]

    def on_step(t: int) -> None:
        if config.single_round and t < config.history_length:
            return  # a history round: the history policy's, no request
        recorded = transport.recorded != seen[0]
        seen[0] = transport.recorded
        counter(recorded)

    steps = None
    played: Any = agent
    if config.single_round:
        from bandit_bench.core.single_round import HistoryThenAgent

        # The history policy plays its rounds (no request), then the model makes one decision.
        played = HistoryThenAgent(config.single_round, agent, config.history_length)
        steps = config.history_length + 1
    try:
        traj = run_episode(played, instance, harness_rng, policy_rng, names, on_step=on_step, steps=steps)
        _keep_cassette(traj, transport, path, episode, sink)
    finally:
        client.close()
    return traj, transport.recorded, transport.replayed


def _episode_transport(
    path: Path,
    opts: RunOptions,
    model: str,
    refused: str | None,
    cancel: threading.Event | None,
    hint: str,
    stale_hint: str,
) -> Any:
    """The episode's cassette transport, with the budget's and the rate limit's guards;
    CassetteError when the case may not run (``refused``) or the cassette cannot be used."""
    from bandit_bench.recording.transport import make_transport

    if refused:
        raise CassetteError(refused)
    inner = None
    if opts.record_mode != "none":
        from bandit_bench.running.deadline import network_transport

        # Bounds each whole request by --request-timeout, and drops it when the run is cancelled.
        inner = network_transport(opts.request_timeout, cancel)
    transport = make_transport(path, opts.record_mode, opts.base_url, inner, hint, stale_hint)
    if opts.budget is not None and transport.records:
        # Only a request that is sent is priced (a replay-only run needs no price).
        transport.guard = opts.budget.guard(model)
    if opts.rate_limit is not None:
        from bandit_bench.running.ratelimit import LimitGuard

        transport.limiter = LimitGuard(opts.rate_limit, cancel)
    return transport


def _missing_key(transport: Any, path: Path, opts: RunOptions) -> str | None:
    """Why the episode cannot send the requests it must record (no key, or an unusable one);
    None when it can. The transport is closed when it cannot."""
    # new_episodes may well replay every request: its key is checked by the API if it is needed.
    p = transport.policy
    must_record = transport.records and not (p.replays and p.records_missing_steps and transport.exists)
    problem = None
    if must_record and not opts.api_key and key_env_for(opts.base_url, opts.api_key_env) is not None:
        problem = (
            f"cassette {path} must be recorded (record mode {opts.record_mode!r}) but no API key is set: "
            f"{key_help(opts.base_url, opts.api_key_env)}, or replay with --record-mode=none."
        )
    elif transport.records and key_problem(opts.api_key):
        problem = f"cannot send the request: {key_problem(opts.api_key)}"
    if problem is not None:
        transport.close()
    return problem


def _episode_agent(
    model: str,
    config: CaseConfig,
    opts: RunOptions,
    transport: Any,
    limiter: RateLimiter | None,
    profile: Any,
) -> tuple[Any, Any]:
    """The API client on the episode's transport, and the LLM agent that asks it."""
    from bandit_bench.running.llm import LLMAgent, make_client

    client = make_client(
        opts.base_url,
        opts.api_key,
        transport,
        max_retries=0 if transport.replay_only else opts.max_retries,
        timeout=opts.request_timeout,
        key_header=profile.key_header if profile is not None else "authorization",
    )
    agent = LLMAgent(
        model,
        config.design,
        client,
        constrained=config.constrained,
        before_request=limiter.wait if limiter and transport.records else None,
        key_advice=(
            f"Check the API key (sent from {opts.api_key.source})"
            if opts.api_key
            else f"No API key was sent: {key_help(opts.base_url, opts.api_key_env)}"
        ),
        profile=profile,
    )
    return client, agent


def _keep_cassette(
    traj: Trajectory, transport: Any, path: Path, episode: int, sink: Callable[[int, str, int], object] | None
) -> None:
    """Write the cassette of a complete episode (a partial one would break replay), through
    ``sink`` when the session gathers them; an error on ``traj`` when it cannot be written, or
    when the budget stopped the episode."""
    text = transport.serialized() if traj.error is None else None
    if text is not None:
        try:
            if sink is None:
                transport.save()
            else:
                sink(episode, text, transport.interactions)
        except OSError as err:
            traj.error = (
                f"cassette {path} could not be written ({type(err).__name__}: {err}); "
                "the episode's answers are lost. Check the cassette folder and record again."
            )
    elif transport.guard is not None and transport.guard.refused:
        traj.error = BUDGET_STOPPED


def _baseline_case(model: str, config: CaseConfig) -> CaseResult:
    """A classic algorithm on the case's instances, all episodes at once (no HTTP, no cassette)."""
    from bandit_bench.core.agents.baselines import run_on_instances
    from bandit_bench.core.episode import StepRecord, Trajectory

    spec = config.instance
    result = CaseResult(model=model, config=config)
    if config.single_round:
        # One decision per history: the per-step path, on the histories every model sees.
        from bandit_bench.core.agents.baselines import BaselineAgent
        from bandit_bench.core.bandit import draw_instance
        from bandit_bench.core.episode import run_episode
        from bandit_bench.core.prompts import arm_names
        from bandit_bench.core.single_round import HistoryThenAgent

        agent = HistoryThenAgent(
            config.single_round, BaselineAgent(model[len(BASELINE_PREFIX) :]), config.history_length
        )
        names = arm_names(config.design.scenario, spec.k)
        for i in range(config.run.episodes):
            instance, harness_rng, policy_rng = draw_instance(spec, config.run.seed, i)
            result.trajectories.append(
                run_episode(agent, instance, harness_rng, policy_rng, names, steps=config.history_length + 1)
            )
        return result
    run = run_on_instances(model[len(BASELINE_PREFIX) :], spec, config.run.seed, config.run.episodes)
    for i, (arms, rewards) in enumerate(zip(run.arms.tolist(), run.rewards.tolist(), strict=True)):
        pairs = enumerate(zip(arms, rewards, strict=True))
        steps = [StepRecord(t=t, arm=a, reward=r, valid=True) for t, (a, r) in pairs]
        best = int(run.best_arm[i])
        result.trajectories.append(Trajectory(i, spec.k, spec.horizon, spec.delta, best, steps))
    return result


class _CaseCancel(threading.Event):
    """A case's cancel flag, also set while the session's ``stop`` flag is (a lost controller)."""

    def __init__(self, session: threading.Event | None) -> None:
        super().__init__()
        self._session = session

    def is_set(self) -> bool:
        return super().is_set() or (self._session is not None and self._session.is_set())


# After Ctrl-C, how long episodes get to notice (in-flight reads look every deadline.POLL
# seconds) and to finish saving a complete cassette. A thread asleep in the client's retry
# backoff is not waited for: episode threads are daemons and cannot hold the exit.
CANCEL_GRACE = 3.0

_T = TypeVar("_T")


def _in_threads(
    indices: list[int], workers: int, run_one: Callable[[int], _T], cancel: threading.Event
) -> list[_T]:
    """``run_one`` over ``indices`` on ``workers`` daemon threads; results in index order.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so one stuck in a
    request or in a backoff sleep kept Ctrl-C waiting for minutes, and a second Ctrl-C then
    printed a threading traceback. Here the first Ctrl-C cancels (requests in flight included)
    and waits at most CANCEL_GRACE seconds; a second one leaves at once.
    """
    from bandit_bench.running.deadline import Cancelled

    results: dict[int, _T] = {}
    failures: list[BaseException] = []
    todo = iter(indices)
    lock = threading.Lock()
    finished = threading.Event()
    alive = [workers]

    def work() -> None:
        try:
            while not cancel.is_set():
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                try:
                    results[i] = run_one(i)
                except (RunCancelled, Cancelled):
                    return
                except BaseException as err:  # a bug: stop the others and re-raise it in the caller
                    failures.append(err)
                    cancel.set()
                    return
        finally:
            with lock:
                alive[0] -= 1
                if alive[0] == 0:
                    finished.set()

    for k in range(workers):
        threading.Thread(target=work, name=f"episode-{k}", daemon=True).start()
    try:
        while not finished.wait(0.5):  # a timed wait: Ctrl-C reaches the main thread here
            pass
    except BaseException:
        cancel.set()
        finished.wait(CANCEL_GRACE)  # a second Ctrl-C interrupts this wait
        raise
    if failures:
        raise failures[0]
    if cancel.is_set() and len(results) < len(indices):
        raise RunCancelled("the run was stopped")  # the session's stop flag (a lost controller)
    return [results[i] for i in indices]


def run_case(
    model: str,
    config: CaseConfig,
    opts: RunOptions | None = None,
    *,
    min_format_compliance: float | None = None,
    min_best_arm_rate: float | None = None,
) -> CaseResult:
    """Run the config's N episodes of ``model``; up to ``opts.concurrency`` in flight at once.

    With ``opts.early_stop`` the episodes run in waves, in index order, and no new wave starts
    once the remaining episodes cannot change the verdict against the thresholds (the config's,
    or the overrides given here as to :func:`~bandit_bench.reporting.evaluation.case_record`).

    When the run may record, the case folder is checked first (writable, its manifest names this
    model and config) and its lock is held until the last cassette is written.
    """
    opts = opts or RunOptions()
    validate_model(model)
    if is_baseline(model):
        return _baseline_case(model, config)
    from bandit_bench.recording.casefolder import CaseFolder

    result = CaseResult(model=model, config=config)
    folder = CaseFolder(opts.cassette_dir, model, config, opts.base_url, opts.record_mode, opts.early_stop)
    writes_here = opts.record_mode != "none" and opts.write_cassettes
    refused: str | None = None
    if writes_here:
        try:
            # Every reason a cassette could not be saved, found before the first request.
            folder.check_writable()
        except CassetteError as err:
            refused = str(err)
    locked = writes_here and refused is None and opts.lock_folders
    if locked:
        # Held for the whole case: a second process recording it waits, then replays.
        folder.acquire(opts.notify)
    try:
        outcomes = _run_case_in(folder, refused, result, opts, min_format_compliance, min_best_arm_rate)
    finally:
        if locked:
            folder.release()
    return _gather(result, outcomes, opts)


def _run_case_in(
    folder: CaseFolder,
    refused: str | None,
    result: CaseResult,
    opts: RunOptions,
    min_format_compliance: float | None,
    min_best_arm_rate: float | None,
) -> list[tuple[Trajectory, int, int]]:
    model, config = result.model, result.config
    n = config.run.episodes
    manifest, refused, unlisted, mixed = _read_folder(folder, refused, model, config, opts)
    replays_only = _replays_only(folder, opts, n)
    profile, problem = _case_profile(model, config, opts, manifest, result, replays_only)
    folder.request = result.request
    refused = refused or problem

    sink = _episode_sink(folder, opts, result)

    def why_refused(episode: int) -> str | None:
        if refused:
            return refused
        if mixed and folder.path / f"{episode:03d}.json" in unlisted:
            return mixed
        return None

    limiter = RateLimiter(opts.max_rps) if opts.max_rps else None
    cancel = _CaseCancel(opts.stop)
    counter = _step_counter(model, config, opts, cancel)

    waves = _waves(config, opts)
    workers = max(1, min(opts.concurrency, max(len(w) for w in waves)))
    if workers > 1 and replays_only:
        # Replay has no latency to hide: threads would only contend for the GIL (a third slower).
        workers = 1
    hint_opts = _hint_options(opts, manifest)

    def one(i: int) -> tuple[Trajectory, int, int]:
        return _episode(
            model, config, i, opts, limiter, counter, cancel, sink, why_refused(i), profile, hint_opts
        )

    outcomes: list[tuple[Trajectory, int, int]] = []
    try:
        for wave in waves:
            if workers == 1:
                outcomes += [one(i) for i in wave]
            else:
                outcomes += _in_threads(list(wave), workers, one, cancel)
            if _stop_after_wave(outcomes, result, opts, min_format_compliance, min_best_arm_rate):
                break
    except BaseException:
        cancel.set()
        raise
    return outcomes


def _episode_sink(
    folder: CaseFolder, opts: RunOptions, result: CaseResult
) -> Callable[[int, str, int], None]:
    """Where a complete episode's cassette goes: the case folder, the controller (through the
    relay), or the result (for the session to write)."""
    model, config = result.model, result.config

    def sink(episode: int, text: str, requests: int) -> None:
        # Each complete episode reaches disk (or the controller) as soon as it completes: a
        # Ctrl-C, a killed worker or a killed controller loses only episodes still running.
        if opts.write_cassettes:
            folder.write_episode(episode, text, requests)
            if opts.relay is not None:
                opts.relay.episode(model, config.name, episode, None, requests)
        elif opts.relay is None or not opts.relay.episode(model, config.name, episode, text, requests):
            result.cassettes[episode] = (text, requests)

    return sink


def _step_counter(
    model: str, config: CaseConfig, opts: RunOptions, cancel: threading.Event
) -> Callable[[bool], None]:
    """Called after each step (told whether it was recorded): reports progress, and unwinds the
    episode once the case is cancelled."""
    # A single-round episode stops after its history and one decision.
    n = config.run.episodes
    total = n if config.single_round else n * config.instance.horizon
    done = recorded_steps = 0
    lock = threading.Lock()

    def counter(recorded: bool) -> None:
        nonlocal done, recorded_steps
        if cancel.is_set():
            # Unwinds the episode before its cassette is saved: nothing half-recorded lands.
            raise RunCancelled(f"{model} x {config.name} interrupted")
        with lock:
            done += 1
            recorded_steps += recorded
            progress = StepProgress(model, config.name, done, total, recorded_steps, done - recorded_steps)
        if opts.progress is not None:
            opts.progress(progress)

    return counter


def _read_folder(
    folder: CaseFolder, refused: str | None, model: str, config: CaseConfig, opts: RunOptions
) -> tuple[dict[str, Any] | None, str | None, list[Path], str | None]:
    """The case folder's manifest; why the case cannot run from it (``refused`` kept); the
    episode files the manifest does not list (in a replaying mode), and the message refusing
    them."""
    from bandit_bench.recording.casefolder import (
        REPLAYING_MODES,
        mixed_recording_message,
        read_manifest,
        unlisted_files,
    )

    manifest = None
    if refused is None:
        try:
            manifest = read_manifest(folder.path)
            folder.check_identity(manifest)
        except CassetteError as err:
            refused = str(err)
    unlisted = []
    if refused is None and opts.record_mode in REPLAYING_MODES:
        unlisted = unlisted_files(folder.path, manifest, range(config.run.episodes))
    mixed = (
        mixed_recording_message(folder.path, unlisted, record_command(model, config, opts, mode="rewrite"))
        if unlisted
        else None
    )
    return manifest, refused, unlisted, mixed


def _waves(config: CaseConfig, opts: RunOptions) -> list[range]:
    """The episodes in the order they are run: one wave, or --early-stop's waves."""
    n = config.run.episodes
    # The early-stop rule bounds shares over N x T steps; a single-round case has one decision
    # per episode, so it always runs whole.
    if not opts.early_stop or config.single_round:
        return [range(n)]
    from bandit_bench.core.early_stop import wave_size

    size = wave_size(n)
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def _hint_options(opts: RunOptions, manifest: dict[str, Any] | None) -> RunOptions | None:
    """A replay's hints name the endpoint the folder was recorded from (and so its key
    variable), not the default one, unless the run named an endpoint itself."""
    recorded_url = manifest.get("base_url") if manifest is not None else None
    if (
        opts.record_mode == "none"
        and isinstance(recorded_url, str)
        and recorded_url
        and opts.base_url == DEFAULT_BASE_URL
        and recorded_url.rstrip("/") != DEFAULT_BASE_URL
    ):
        from dataclasses import replace

        return replace(opts, base_url=recorded_url)
    return None


def _stop_after_wave(
    outcomes: list[tuple[Trajectory, int, int]],
    result: CaseResult,
    opts: RunOptions,
    min_format_compliance: float | None,
    min_best_arm_rate: float | None,
) -> bool:
    """Whether no further wave starts: the budget refused a request, an episode errored, or the
    verdict is settled (kept in ``result.settled``)."""
    config, n = result.config, result.config.run.episodes
    if any(o[0].error == BUDGET_STOPPED for o in outcomes):
        return True  # no new wave once the budget refused a request
    if opts.early_stop and not config.single_round and len(outcomes) < n:
        from bandit_bench.core.early_stop import effective_thresholds, settle

        trajs = [o[0] for o in outcomes]
        if any(t.error for t in trajs):
            return True  # an errored episode fails the case whatever comes next
        thresholds = effective_thresholds(config, min_format_compliance, min_best_arm_rate)
        result.settled = settle(trajs, n, thresholds)
        return result.settled is not None
    return False


def _identified_server(
    config: CaseConfig, manifest: dict[str, Any] | None, endpoint: str, asks: bool, opts: RunOptions
) -> tuple[str, str] | None:
    """What a local endpoint is, for a constrained config (vLLM and llama.cpp's server are asked
    for a forced answer in different fields, and each ignores the other's, so a wrong guess
    leaves the answers unconstrained): its model list when the run will send requests (``asks``),
    else (or when it does not answer) the server its recording found."""
    from bandit_bench.running.profiles import SERVER_OWNERS, detect_server

    if not config.constrained or detect_server(endpoint) != "generic":
        return None
    if asks:
        from bandit_bench.running.llm import identify_server

        server = identify_server(endpoint, opts.api_key)
        if server is not None:
            return server, "named by the endpoint's GET /models"
    recorded = ((manifest or {}).get("request") or {}).get("server")
    if isinstance(recorded, str) and recorded in SERVER_OWNERS.values():
        return recorded, "as recorded in manifest.json"
    return None


def _case_profile(
    model: str,
    config: CaseConfig,
    opts: RunOptions,
    manifest: dict[str, Any] | None,
    result: CaseResult,
    replays_only: bool,
) -> tuple[Any, str | None]:
    """The case's request profile, its effective request (kept in ``result``), and why the case
    cannot run with it: a constrained config the server cannot constrain, or a recording made
    with another request (a replay would otherwise be stale request by request, or blend two)."""
    from bandit_bench.recording.casefolder import REPLAYING_MODES
    from bandit_bench.running.profiles import (
        comparable,
        constrained_refusal,
        effective_request,
        honour_notes,
        legacy_request,
        request_diff,
        resolve_profile,
    )

    endpoint = opts.base_url
    # A replay sends nothing: its profile is the recording's endpoint's, whatever --base-url
    # says (a replay does not depend on the base URL). So is a run given no --base-url.
    recorded_at = manifest.get("base_url") if manifest is not None else None
    if recorded_at and (opts.record_mode == "none" or not opts.base_url_given):
        endpoint = recorded_at
    identified = _identified_server(config, manifest, endpoint, not replays_only, opts)
    profile = resolve_profile(model, endpoint, opts.profiles, identified)
    result.request = effective_request(profile, config.design, constrained=config.constrained)
    result.request_notes = honour_notes(profile, config.design)
    if config.constrained:
        refusal = constrained_refusal(profile, model)
        if refusal is not None:
            return profile, refusal
    if manifest is not None and opts.record_mode in REPLAYING_MODES and manifest.get("episodes"):
        # A manifest from before request profiles was recorded with the one request there was.
        recorded = manifest.get("request") or legacy_request(config.design, constrained=config.constrained)
        if comparable(recorded) != comparable(result.request):
            return profile, (
                f"stale: the request profile changed since {model} x {config.name} was recorded "
                f"({request_diff(recorded, result.request)}; profile from {', '.join(profile.sources)}). "
                "Replaying would send requests the cassettes do not hold. Re-record with "
                f"{record_command(model, config, opts, mode='rewrite')}, or restore the profile it was "
                'recorded with (its manifest.json, "request")'
            )
    return profile, None


def _replays_only(folder: CaseFolder, opts: RunOptions, episodes: int) -> bool:
    """Whether no episode of this run can send a request: every one replays from its cassette."""
    if opts.record_mode == "none":
        return True
    if opts.record_mode != "once":  # the others record, or may record steps a cassette lacks
        return False
    return all((folder.path / f"{episode:03d}.json").is_file() for episode in range(episodes))


def _gather(result: CaseResult, outcomes: list[tuple[Trajectory, int, int]], opts: RunOptions) -> CaseResult:
    model, config = result.model, result.config
    n = config.run.episodes
    stopped_by_budget = False
    for traj, recorded, replayed in outcomes:
        result.recorded += recorded
        result.replayed += replayed
        if traj.error == BUDGET_STOPPED:
            stopped_by_budget = True
            continue
        result.trajectories.append(traj)
    if stopped_by_budget:
        ran = {t.episode for t in result.trajectories}
        result.budget_stopped = [i for i in range(n) if i not in ran]
        limit = opts.budget.limit if opts.budget is not None else 0.0
        result.budget_note = (
            f"budget --max-cost ${limit:g} reached: {len(ran)} of {n} episodes ran (complete ones are "
            f"saved; a partial episode never is). To resume, run {record_command(model, config, opts)} "
            "with a larger or no --max-cost: --record-mode=once replays the saved episodes and records "
            "only the missing ones."
        )
    return result


__all__ = ["AgentError", "CaseResult", "RunOptions", "StepProgress", "run_case", "validate_model"]
