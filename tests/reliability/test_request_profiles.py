"""Request profiles end to end (issue 19, request side): each provider's documented refusals,
played by the simulator's personalities on 127.0.0.1, through the real openai client.

Per row of the issue: what today's request (the legacy profile) gets from that provider, and
that the built-in profile (or one documented profile line) runs the case with what the provider
accepts, or refuses it before any request with a message that says what to set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bandit_bench.core.specs import CaseConfig, DesignSpec, InstanceSpec, RunSpec
from bandit_bench.recording.casefolder import read_manifest
from bandit_bench.reporting.evaluation import case_record
from bandit_bench.reporting.tables import model_text, stopped_notes, summary_row
from bandit_bench.running.profiles import ProfileSettings, resolve_profile
from bandit_bench.running.runner import CaseResult, RunOptions, run_case
from bandit_bench.servers.simulator import SimReply, Simulator, always, scripted

T = 3
BNRN0 = CaseConfig("BNRN0-p", DesignSpec.parse("BNRN0"), InstanceSpec(5, 0.2, T), RunSpec(episodes=1))
BNRN1 = CaseConfig("BNRN1-p", DesignSpec.parse("BNRN1"), InstanceSpec(5, 0.2, T), RunSpec(episodes=1))
CONSTRAINED = CaseConfig(
    "BNSN0-p-constrained",
    DesignSpec.parse("BNSN0"),
    InstanceSpec(5, 0.2, T),
    RunSpec(episodes=1),
    constrained=True,
)
# A reply no constrained decoder would let through: what an ignored grammar leaves.
UNCONSTRAINED = [SimReply("I would press the green one.")] * T


def _run(
    tmp_path: Path,
    sim: Simulator,
    model: str,
    config: CaseConfig = BNRN0,
    *,
    profile: dict | None = None,
    base_url: str | None = None,
    mode: str = "once",
    api_key: str | None = None,
) -> CaseResult:
    opts = RunOptions(
        base_url=base_url or sim.base_url,
        base_url_given=True,
        cassette_dir=tmp_path / "cassettes",
        record_mode=mode,
        max_retries=0,
        concurrency=1,
        api_key=api_key,
        profiles=ProfileSettings(cli=profile or {}),
    )
    return run_case(model, config, opts)


def _error(result: CaseResult) -> str:
    assert result.errors, "the case ran without an error"
    return result.errors[0]


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Simulator:
    personality, policy = request.param
    s = Simulator(policy or always(1), personality=personality)
    s.start()
    request.addfinalizer(s.stop)
    return s


def _param(personality: str | None, policy=None):  # noqa: ANN001, ANN202 - test helper
    return pytest.param((personality, policy), id=personality or "plain")


# ---------------------------------------------------------------------------- OpenAI reasoning


@pytest.mark.parametrize("sim", [_param("openai-reasoning")], indirect=True)
def test_o4_mini_today_gets_400_naming_the_profile_setting(tmp_path: Path, sim: Simulator) -> None:
    # Today's request (a model id no built-in family knows): max_tokens and temperature 0.
    err = _error(_run(tmp_path, sim, "sim/reasoner"))
    assert "HTTP 400" in err and "Unsupported parameter: 'max_tokens'" in err
    assert "--request-profile 'token_limit_field=max_completion_tokens'" in err
    assert not (tmp_path / "cassettes" / "sim" / "reasoner" / "BNRN0-p" / "000.json").exists()


@pytest.mark.parametrize("sim", [_param("openai-reasoning")], indirect=True)
def test_temperature_refusal_names_temperature_omit(tmp_path: Path, sim: Simulator) -> None:
    err = _error(_run(tmp_path, sim, "sim/reasoner", profile={"token_limit_field": "max_completion_tokens"}))
    assert "Unsupported value: 'temperature' does not support 0 with this model" in err
    assert "--request-profile 'temperature=omit'" in err


@pytest.mark.parametrize("sim", [_param("openai-reasoning")], indirect=True)
@pytest.mark.parametrize("model", ["o4-mini", "gpt-5-mini"])
def test_openai_reasoning_runs_with_the_builtin_profile(tmp_path: Path, sim: Simulator, model: str) -> None:
    # server=openai is what https://api.openai.com/v1 is detected as (test_profiles.py pins that).
    result = _run(tmp_path, sim, model, profile={"server": "openai"})
    assert not result.errors
    sent = sim.requests[0]
    assert "max_tokens" not in sent and "temperature" not in sent
    assert sent["max_completion_tokens"] == 20 + 4000
    record = case_record(result)
    assert record["metrics"]["format_compliance"]["value"] == 1.0
    # Temperature 0 of BNRN0 is not what the model ran at: labelled, beside the numbers.
    row = summary_row(record)
    assert model_text(row) == f"{model} *"
    assert row["request"].startswith("server=openai, max_completion_tokens=4020, temperature=not sent")
    (note,) = [n for n in stopped_notes([row]) if n.startswith("*")]
    assert "temperature 0 of design BNRN0 not sent" in note and "server's default (1)" in note
    manifest = read_manifest(tmp_path / "cassettes" / model / "BNRN0-p")
    assert manifest is not None
    assert manifest["request"]["token_limit"] == {"max_completion_tokens": 4020}
    assert manifest["request"]["temperature"] == "not sent"


@pytest.mark.parametrize("sim", [_param("openai-reasoning")], indirect=True)
def test_a_temperature_1_design_is_honoured_by_the_default(tmp_path: Path, sim: Simulator) -> None:
    record = case_record(_run(tmp_path, sim, "o4-mini", BNRN1, profile={"server": "openai"}))
    assert not record["errors"] and record["request_notes"] == []


@pytest.mark.parametrize("sim", [_param(None)], indirect=True)
def test_openai_o4_mini_on_openrouter_sends_max_tokens_with_the_allowance(
    tmp_path: Path, sim: Simulator
) -> None:
    result = _run(tmp_path, sim, "openai/o4-mini", profile={"server": "openrouter"})
    assert not result.errors
    assert sim.requests[0]["max_tokens"] == 4020 and "temperature" not in sim.requests[0]
    assert "not comparable with the paper's temperature-0 rows" in result.request_notes[0]


@pytest.mark.parametrize("sim", [_param(None)], indirect=True)
@pytest.mark.parametrize(
    ("model", "server", "limit"),
    [
        ("deepseek/deepseek-r1", "openrouter", 4020),
        ("qwen/qwen3-32b", "openrouter", 4020),
        ("gemini-2.5-flash", "gemini", 4020),
        ("deepseek-reasoner", "deepseek", 4020),
    ],
)
def test_reasoning_families_get_the_allowance(
    tmp_path: Path, sim: Simulator, model: str, server: str, limit: int
) -> None:
    result = _run(tmp_path, sim, model, profile={"server": server})
    assert not result.errors
    assert sim.requests[0]["max_tokens"] == limit


@pytest.mark.parametrize("sim", [_param(None)], indirect=True)
def test_one_profile_line_sets_the_allowance_and_effort(tmp_path: Path, sim: Simulator) -> None:
    profile = {
        "server": "openrouter",
        "reasoning_allowance": 500,
        "extra_body": {"reasoning": {"effort": "low"}},
    }
    result = _run(tmp_path, sim, "deepseek/deepseek-r1", profile=profile)
    assert not result.errors
    assert sim.requests[0]["max_tokens"] == 520 and sim.requests[0]["reasoning"] == {"effort": "low"}


# ---------------------------------------------------------------------------- Mistral, Anthropic


@pytest.mark.parametrize("sim", [_param("mistral")], indirect=True)
def test_mistral_refuses_seed_with_422_naming_random_seed(tmp_path: Path, sim: Simulator) -> None:
    err = _error(_run(tmp_path, sim, "mistral-small-latest"))
    assert "HTTP 422" in err and "--request-profile 'seed=random_seed'" in err


@pytest.mark.parametrize("sim", [_param("mistral")], indirect=True)
def test_mistral_runs_with_random_seed(tmp_path: Path, sim: Simulator) -> None:
    result = _run(tmp_path, sim, "mistral-small-latest", profile={"server": "mistral"})
    assert not result.errors
    sent = sim.requests[0]
    assert "seed" not in sent and isinstance(sent["random_seed"], int)
    assert result.request["seed"] == "random_seed"


@pytest.mark.parametrize("sim", [_param("anthropic")], indirect=True)
def test_claude_opus_4_7_temperature_deprecated(tmp_path: Path, sim: Simulator) -> None:
    # Today's request sends temperature.
    err = _error(_run(tmp_path, sim, "claude-opus-4-7", profile={"temperature": "send"}))
    assert "`temperature` is deprecated for this model" in err and "temperature=omit" in err
    result = _run(tmp_path, sim, "claude-opus-4-7", profile={"server": "anthropic"}, mode="rewrite")
    assert not result.errors
    assert "temperature" not in sim.requests[-1] and "seed" not in sim.requests[-1]
    assert "temperature 0 of design BNRN0 not sent" in result.request_notes[0]


# ---------------------------------------------------------------------------- Azure


@pytest.mark.parametrize("sim", [_param("azure")], indirect=True)
def test_azure_classic_gets_api_key_header_and_api_version(tmp_path: Path, sim: Simulator) -> None:
    base = sim.url("/openai/deployments/gpt-4o-mini")
    # Today's request: Bearer key, no api-version: Azure answers 404 (no such resource).
    err = _error(_run(tmp_path, sim, "gpt-4o-mini", base_url=base, api_key="azure-key-123"))
    assert "HTTP 404" in err
    result = _run(
        tmp_path, sim, "gpt-4o-mini", base_url=base, api_key="azure-key-123", profile={"server": "azure"}
    )
    assert not result.errors
    assert sim.paths[-1].endswith("/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21")
    headers = {k.lower(): v for k, v in sim.headers[-1].items()}
    assert headers["api-key"] == "azure-key-123" and "authorization" not in headers
    cassette = (tmp_path / "cassettes" / "gpt-4o-mini" / "BNRN0-p" / "000.json").read_text()
    assert "azure-key-123" not in cassette
    # The replay needs neither server nor key: the query is not part of the match.
    replay = _run(tmp_path, sim, "gpt-4o-mini", base_url=base, mode="none", profile={"server": "azure"})
    assert not replay.errors and replay.replayed == T


@pytest.mark.parametrize("sim", [_param("azure-v1")], indirect=True)
def test_azure_v1_takes_the_bearer_key(tmp_path: Path, sim: Simulator) -> None:
    result = _run(
        tmp_path,
        sim,
        "o4-mini",
        base_url=sim.url("/openai/v1"),
        api_key="k-v1",
        profile={"server": "azure-v1"},
    )
    assert not result.errors
    assert sim.requests[0]["max_completion_tokens"] == 4020
    assert "?" not in sim.paths[0]


# ---------------------------------------------------------------------------- constrained decoding


@pytest.mark.parametrize("sim", [_param("vllm", scripted(UNCONSTRAINED * 2))], indirect=True)
def test_vllm_ignores_grammar_and_honours_structured_outputs(tmp_path: Path, sim: Simulator) -> None:
    # Told it is llama.cpp, the request carries a grammar, which vLLM ignores: unconstrained.
    told = case_record(_run(tmp_path, sim, "sim/qwen", CONSTRAINED, profile={"server": "generic"}))
    assert told["metrics"]["format_compliance"]["value"] == 0.0
    result = _run(tmp_path, sim, "sim/qwen", CONSTRAINED, profile={"server": "vllm"}, mode="all")
    sent = sim.requests[-1]
    assert "grammar" not in sent
    assert sent["structured_outputs"] == {"regex": "<Answer>(blue|green|red|yellow|purple)</Answer>"}
    assert case_record(result)["metrics"]["format_compliance"]["value"] == 1.0


@pytest.mark.parametrize(
    ("server", "field"), [("vllm", "structured_outputs"), ("llamacpp", "grammar")], ids=["vllm", "llamacpp"]
)
def test_a_local_server_that_names_itself_is_asked_for_a_constrained_answer_its_way(
    tmp_path: Path, server: str, field: str
) -> None:
    """vLLM and llama.cpp's server say what they are in GET /v1/models ("owned_by"); a URL on
    127.0.0.1 does not. Nothing set by the user: the recording asks once, and a replay with no
    server up reads the answer from the manifest (it is not stale)."""
    from bandit_bench.running.llm import identify_server

    identify_server.cache_clear()
    sim = Simulator(scripted(UNCONSTRAINED), personality=server)
    with sim:
        url = sim.base_url
        result = _run(tmp_path, sim, "sim/local", CONSTRAINED)
        identify_server.cache_clear()
        # Nothing left to record: the rerun sends no request, the model list included.
        _run(tmp_path, sim, "sim/local", CONSTRAINED, mode="once")
    assert sim.model_lists == 1 and sim.calls == T
    assert {field} == {"grammar", "structured_outputs"} & set(sim.requests[0])
    assert case_record(result)["metrics"]["format_compliance"]["value"] == 1.0
    folder = tmp_path / "cassettes" / "sim" / "local" / CONSTRAINED.name
    request = read_manifest(folder)["request"]
    assert request["server"] == server and request["constrained"] == field
    identify_server.cache_clear()
    for mode in ("none", "once"):  # once: nothing left to record, and the server is gone
        again = _run(tmp_path, sim, "sim/local", CONSTRAINED, mode=mode, base_url=url)
        assert not again.errors, again.errors
        assert again.replayed == T and again.request == request


@pytest.mark.parametrize("sim", [_param(None, scripted(UNCONSTRAINED))], indirect=True)
def test_a_server_that_does_not_name_itself_keeps_the_generic_request(tmp_path: Path, sim: Simulator) -> None:
    from bandit_bench.running.llm import identify_server

    identify_server.cache_clear()
    result = _run(tmp_path, sim, "sim/local", CONSTRAINED)
    assert sim.model_lists == 1 and "grammar" in sim.requests[0]
    assert result.request["server"] == "generic"
    # An unconstrained config needs no answer from the server: nothing is asked.
    _run(tmp_path, sim, "sim/other", BNRN0)
    assert sim.model_lists == 1


@pytest.mark.parametrize("sim", [_param("ollama", scripted(UNCONSTRAINED))], indirect=True)
def test_ollama_constrained_by_json_schema(tmp_path: Path, sim: Simulator) -> None:
    result = _run(
        tmp_path, sim, "qwen3:0.6b", CONSTRAINED, base_url=sim.url("/v1"), profile={"server": "ollama"}
    )
    assert sim.requests[0]["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"] == [
        "blue",
        "green",
        "red",
        "yellow",
        "purple",
    ]
    record = case_record(result)
    assert record["metrics"]["format_compliance"]["value"] == 1.0
    # The raw reply is what came: the JSON object.
    assert json.loads(record["trajectories"][0]["steps"][0]["raw"]) == {"answer": "blue"}


@pytest.mark.parametrize("sim", [_param("openai-reasoning")], indirect=True)
def test_openai_refuses_grammar_and_accepts_json_schema(tmp_path: Path, sim: Simulator) -> None:
    err = _error(
        _run(
            tmp_path,
            sim,
            "gpt-5-mini",
            CONSTRAINED,
            profile={"token_limit_field": "max_completion_tokens", "temperature": "omit"},
        )
    )
    assert "Unrecognized request argument supplied: grammar" in err
    result = _run(tmp_path, sim, "gpt-5-mini", CONSTRAINED, profile={"server": "openai"}, mode="all")
    assert not result.errors
    assert case_record(result)["metrics"]["format_compliance"]["value"] == 1.0


@pytest.mark.parametrize("sim", [_param(None)], indirect=True)
@pytest.mark.parametrize("server", ["deepseek", "anthropic"])
def test_constrained_is_refused_up_front_where_the_server_has_none(
    tmp_path: Path, sim: Simulator, server: str
) -> None:
    err = _error(_run(tmp_path, sim, "m", CONSTRAINED, profile={"server": server}))
    assert sim.calls == 0
    assert f"on a {server} server: this config is constrained" in err
    assert "Nothing was requested" in err and "--request-profile constrained=json_schema" in err


# ---------------------------------------------------------------------------- templates


@pytest.mark.parametrize("sim", [_param("no-system-role")], indirect=True)
def test_a_template_without_system_role(tmp_path: Path, sim: Simulator) -> None:
    err = _error(_run(tmp_path, sim, "sim/gemma"))
    assert "System role not supported" in err and "--request-profile 'system=user'" in err
    result = _run(tmp_path, sim, "sim/gemma", profile={"system": "user"}, mode="all")
    assert not result.errors
    roles = [m["role"] for m in sim.requests[-1]["messages"]]
    assert roles == ["user"]
    assert sim.requests[-1]["messages"][0]["content"].startswith("You are in a room with 5 buttons")
    assert case_record(result)["metrics"]["format_compliance"]["value"] == 1.0


# ---------------------------------------------------------------------------- recorded request


@pytest.mark.parametrize("sim", [_param(None)], indirect=True)
def test_a_changed_profile_is_stale_not_a_silent_replay(tmp_path: Path, sim: Simulator) -> None:
    assert not _run(tmp_path, sim, "sim/m").errors
    same = _run(tmp_path, sim, "sim/m", mode="none")
    assert not same.errors and same.replayed == T
    changed = _run(tmp_path, sim, "sim/m", mode="none", profile={"token_limit": 64})
    err = _error(changed)
    assert err.startswith("episode 0: stale: the request profile changed since sim/m x BNRN0-p was recorded")
    assert 'token_limit: recorded {"max_tokens": 20}, now {"max_tokens": 64}' in err
    assert "--record-mode=rewrite" in err
    assert changed.replayed == 0


@pytest.mark.parametrize("sim", [_param(None)], indirect=True)
def test_a_manifest_from_before_profiles_reads_as_todays_request(tmp_path: Path, sim: Simulator) -> None:
    assert not _run(tmp_path, sim, "sim/m").errors
    path = tmp_path / "cassettes" / "sim" / "m" / "BNRN0-p" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["request"]
    path.write_text(json.dumps(manifest))
    assert not _run(tmp_path, sim, "sim/m", mode="none").errors
    err = _error(_run(tmp_path, sim, "sim/m", mode="none", profile={"seed": "omit"}))
    assert 'seed: recorded "seed", now "not sent"' in err


def test_a_replay_without_base_url_takes_the_recorded_endpoints_profile() -> None:
    # The shipped SmolLM2 cassettes were recorded from 127.0.0.1 (llama.cpp) and replay under
    # the default OpenRouter URL: their profile is the recorded endpoint's, unchanged.
    local = resolve_profile("local/smollm2-135m-instruct", "http://127.0.0.1:38647/v1")
    assert local.constrained == "grammar" and local.token_limit_field == "max_tokens"


# ---------------------------------------------------------------------------- through pytest

QUICK_TOML = """
[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 3
episodes = 1
min_format_compliance = 0.0
"""


def test_a_pyproject_models_table_runs_mistral(bench_project, simulator) -> None:  # noqa: ANN001
    sim = simulator(always(1), personality="mistral")
    project = bench_project(QUICK_TOML + '\n[tool.bandit_bench.models."mistral-*"]\nserver = "mistral"\n')
    args = ("--model", "mistral-small-latest", "--bandit-config", "quick", "--base-url", sim.base_url)
    result = project.runpytest(*args, "--record-mode=once")
    result.assert_outcomes(passed=1)
    assert "random_seed" in sim.requests[0] and "seed" not in sim.requests[0]
    report = (project.path / "reports" / "report.md").read_text()
    assert "## What each case sent" in report
    assert (
        "- mistral-small-latest x quick: server=mistral, max_tokens=20, temperature=0.0, seed=random_seed"
        in report
    )
    # The command-line twin overrides the table for one run: a different request is stale.
    stale = project.runpytest(*args, "--request-profile", "server=generic")
    stale.assert_outcomes(failed=1)
    stale.stdout.fnmatch_lines(
        ['*stale: the request profile changed*seed: recorded "random_seed", now "seed"*']
    )


def test_the_command_line_twin_marks_the_case_in_the_table(bench_project, simulator) -> None:  # noqa: ANN001
    sim = simulator(always(1), personality="openai-reasoning")
    project = bench_project(QUICK_TOML)
    result = project.runpytest(
        "--model",
        "sim/reasoner",
        "--bandit-config",
        "quick",
        "--base-url",
        sim.base_url,
        "--record-mode=once",
        "--request-profile",
        "token_limit_field=max_completion_tokens,temperature=omit,temperature_default=1",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "sim/reasoner [*] *pass",
            "[*] sim/reasoner x quick: temperature 0 of design BNRN0 not sent*not comparable*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "toml", "message"),
    [
        (
            ["--request-profile", "temperature=zero"],
            "",
            "--request-profile.temperature: got 'zero'; expected send or omit",
        ),
        (
            [],
            '[tool.bandit_bench.models."o4-mini"]\nmax_completion_tokens = 100\n',
            "[tool.bandit_bench.models.\"o4-mini\"] key: got 'max_completion_tokens'; expected one of "
            "server, token_limit_field, token_limit, reasoning_allowance, temperature, "
            "temperature_default, seed, system, constrained, key_header, extra_body, headers, query, "
            "reasoning, endpoint. Did you mean "
            'token_limit_field = "max_completion_tokens" (token_limit = N: its size)?',
        ),
    ],
)
def test_a_bad_profile_is_a_usage_error(bench_project, args: list, toml: str, message: str) -> None:  # noqa: ANN001
    project = bench_project(toml)
    result = project.runpytest("--model", "sim/x", *args, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: bandit-bench: {message}" in result.stderr.lines, result.stderr.str()


def test_the_bill_counts_the_profiles_token_limit(bench_project) -> None:  # noqa: ANN001
    project = bench_project(QUICK_TOML)
    result = project.runpytest(
        "--collect-only",
        "--model",
        "o4-mini",
        "--base-url",
        "https://api.openai.com/v1",
        "--bandit-config",
        "quick",
        "--record-mode=once",
    )
    # 3 requests of max_completion_tokens = 20 + 4000 each: the upper bound is the profile's.
    result.stdout.fnmatch_lines(["o4-mini x quick * 3 *~12,060 (max 12,060)*"])


@pytest.mark.parametrize("sim", [_param(None)], indirect=True)
def test_a_replay_takes_the_recording_endpoints_profile(tmp_path: Path, sim: Simulator) -> None:
    # Recorded as on OpenRouter (max_tokens, no temperature); replayed with a dummy local
    # --base-url, whose own profile would send max_completion_tokens: the recording's endpoint
    # decides, so the replay does not depend on the base URL.
    recorded = _run(tmp_path, sim, "openai/o4-mini", profile={"server": "openrouter"})
    assert not recorded.errors and sim.requests[0]["max_tokens"] == 4020
    manifest = tmp_path / "cassettes" / "openai" / "o4-mini" / "BNRN0-p" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["base_url"] = "https://openrouter.ai/api/v1"  # as if recorded from OpenRouter itself
    manifest.write_text(json.dumps(data))
    replay = _run(tmp_path, sim, "openai/o4-mini", base_url="http://127.0.0.1:9/v1", mode="none")
    assert not replay.errors and replay.replayed == T
