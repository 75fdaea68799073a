"""The file formats' one definition each (core/formats.py), seen through the readers users meet.

Each malformed file gives the project's message (which file, where in it, what came, what was
expected, what to do), never pydantic's own dump; a file an older version wrote still reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bandit_bench.core.formats import FormatError, Manifest, StepLine, SummaryFile, check
from bandit_bench.recording.casefolder import as_recorded, read_manifest
from bandit_bench.recording.transport import CorruptCassetteError

FIX = (
    "Restore it from version control (git checkout -- FILE), or delete the folder's files and record the "
    "case again with --record-mode=rewrite."
)


def manifest(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bandit_bench_manifest": 1,
        "model": "local/m",
        "config": "BNRN0-hard-T25",
        "spec": {"design": "BNRN0", "instance": "hard", "k": 5, "delta": 0.2, "T": 25, "N": 5, "seed": 0},
        "base_url": "http://127.0.0.1:8080/v1",
        "bandit_bench_version": "0.1.0",
        "record_mode": "once",
        "recorded_at": "2026-01-31T12:00:00Z",
        "episodes": {
            "000.json": {"recorded_at": "2026-01-31T12:00:00Z", "record_mode": "once", "requests": 25}
        },
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def write(folder: Path, data: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return folder / "manifest.json"


def refusal(folder: Path) -> str:
    with pytest.raises(CorruptCassetteError) as err:
        read_manifest(folder)
    assert "pydantic" not in str(err.value) and "validation error" not in str(err.value)
    return str(err.value)


# ---------------------------------------------------------------------------- manifest.json


def test_a_manifest_reads_as_the_dict_in_the_file(tmp_path: Path) -> None:
    data = manifest(note="adopted", early_stop=True, future_key={"x": 1})
    write(tmp_path, data)
    # Unknown keys (a newer version's) are kept as they are: a write keeps them too.
    assert read_manifest(tmp_path) == data


def test_a_manifest_without_the_optional_keys_of_later_versions_reads(tmp_path: Path) -> None:
    old = {"model": "m", "config": "c", "episodes": {}}
    write(tmp_path, old)
    assert read_manifest(tmp_path) == old


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (manifest(model=7), "model: got 7; expected the model id (text)"),
        (
            manifest(config=None),
            "config: no such key (its object holds the keys bandit_bench_manifest, bandit_bench_version, "
            "base_url, episodes, model, record_mode, recorded_at, spec); expected the config name (text)",
        ),
        (
            manifest(episodes=["000.json"]),
            "episodes: got ['000.json']; expected an object of episode file -> entry",
        ),
        (
            manifest(episodes={"000.json": {"recorded_at": "x", "record_mode": "once", "requests": -1}}),
            "episodes.'000.json'.requests: got -1; expected a whole number >= 0",
        ),
        (
            manifest(episodes={"000.json": {"recorded_at": "x", "requests": 3}}),
            "episodes.'000.json'.record_mode: no such key (its object holds the keys recorded_at, "
            "requests); expected a record mode such as once",
        ),
        (manifest(spec={"N": "10"}), "spec.N: got '10'; expected a whole number >= 1"),
        (manifest(spec={"T": True}), "spec.T: got True; expected a whole number >= 1"),
        (manifest(spec={"seed": -1}), "spec.seed: got -1; expected a whole number >= 0"),
        (manifest(spec=[5]), "spec: got [5]; expected an object"),
        (manifest(early_stop="yes"), "early_stop: got 'yes'; expected true or false"),
        (
            manifest(derived_from={"config": "x"}),
            "derived_from.T: no such key (its object holds the key config); expected a whole number >= 1",
        ),
        ([1, 2], "got [1, 2]; expected an object with model, config and episodes"),
        (
            manifest(model=1, config=2),
            "model: got 1; expected the model id (text) (and 1 more problem)",
        ),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_refused_saying_where(
    tmp_path: Path, data: Any, problem: str
) -> None:
    path = write(tmp_path, data)
    assert refusal(tmp_path) == f"manifest {path} is not a bandit-bench manifest ({problem}). {FIX}"


def test_a_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '{"model": "m",')
    assert refusal(tmp_path) == (
        f"manifest {path} is not a bandit-bench manifest (not valid JSON: Expecting property name enclosed "
        "in double quotes: line 1 column 15 (char 14); expected JSON with model, config and episodes). " + FIX
    )


def test_a_replay_takes_n_t_and_seed_from_a_checked_spec(tmp_path: Path) -> None:
    from bandit_bench.core.specs import BUILTIN_CONFIGS
    from bandit_bench.recording.transport import case_dir

    config = BUILTIN_CONFIGS["BNRN0-hard-T25"]
    folder = case_dir(tmp_path, "local/m", config.name)
    write(folder, manifest(spec={"N": 3, "T": 7, "seed": 11}))
    got = as_recorded(tmp_path, "local/m", config, episodes_given=False, early_stop=False)
    assert (got.config.run.episodes, got.config.instance.horizon, got.config.run.seed) == (3, 7, 11)
    assert got.base_url == "http://127.0.0.1:8080/v1"
    # A spec of the wrong shape is not half-used: the replay runs the config, and the run
    # itself reports the damaged manifest (read_manifest above).
    write(folder, manifest(spec={"N": 3, "T": "7"}))
    got = as_recorded(tmp_path, "local/m", config, episodes_given=False, early_stop=False)
    assert (got.config.run.episodes, got.config.instance.horizon) == (
        config.run.episodes,
        config.instance.horizon,
    )


# ---------------------------------------------------------------------------- the checker itself


def test_check_returns_the_model_and_keeps_pydantic_out_of_the_message() -> None:
    assert (
        check(
            StepLine,
            {
                "model": "m",
                "config": "c",
                "episode": 0,
                "t": 1,
                "arm": 2,
                "reward": 1,
                "valid": True,
                "best_arm": 0,
                "raw": "2",
            },
        ).arm
        == 2
    )
    with pytest.raises(FormatError) as err:
        check(
            SummaryFile,
            {"rows": [{"model": "m", "config": "c", "k": 5, "delta": "0.2", "horizon": 10, "episodes": 1}]},
        )
    assert str(err.value) == "rows[0].delta: got '0.2'; expected a number"
    assert err.value.problem.where == "rows[0].delta" and err.value.problem.got == "0.2"
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_long_or_huge_value_is_cut_in_the_message() -> None:
    with pytest.raises(
        FormatError, match=r"^model: got \['xxxxx.*\.\.\.; expected the model id \(text\)$"
    ) as err:
        check(Manifest, {"model": ["x" * 500], "config": "c", "episodes": {}})
    assert len(str(err.value)) < 130
    with pytest.raises(FormatError, match=r"^model: got a whole number of 400 digits; expected the model"):
        check(Manifest, {"model": 10**399, "config": "c", "episodes": {}})


# ---------------------------------------------------------------------------- [tool.bandit_bench]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"xfail": {"sim/x": ["BNRN0-hard-T25", 3]}},
            "[tool.bandit_bench].xfail.'sim/x'[1]: got 3; expected a config name (text)",
        ),
        (
            {"xfail": {"sim/x": "BNRN0-hard-T25"}},
            "[tool.bandit_bench].xfail.'sim/x': got 'BNRN0-hard-T25'; expected a list of config names",
        ),
        (
            {"prices": {"sim/x": {"prompt": 1, "completion": 2, "cached": 0.5}}},
            "[tool.bandit_bench].prices.'sim/x' key: got 'cached'; expected one of ['completion', 'prompt']",
        ),
        (
            {"prices": {"sim/x": {"prompt": 1}}},
            "[tool.bandit_bench].prices.'sim/x'.completion: got nothing; "
            "expected USD per 1M completion tokens (a number >= 0)",
        ),
        (
            {"prices": {"sim/x": {"prompt": "1", "completion": 2}}},
            "[tool.bandit_bench].prices.'sim/x'.prompt: got '1'; "
            "expected USD per 1M prompt tokens (a number >= 0)",
        ),
        (
            {"models": 3},
            '[tool.bandit_bench].models: got 3; expected a table of "<model id or pattern>" = { settings }',
        ),
        (
            {"configs": {"c": {"design": "BNRN0", "xfail_models": "sim/x"}}},
            "[tool.bandit_bench.configs.'c'].xfail_models: got 'sim/x'; expected a list of model ids",
        ),
        (
            {"configs": {"c": {"design": "BNRN0", "horizon": "100"}}},
            "[tool.bandit_bench.configs.'c'].horizon: got '100'; expected an integer >= 1",
        ),
        (
            {"configs": {"c": {"horizon": 100}}},
            "[tool.bandit_bench.configs.'c'].design: got nothing; "
            "expected a design code such as BNRN0 or BSSC~0",
        ),
        (
            {"configs": {"c": {"design": "BNRN0", "T": 100}}},
            "[tool.bandit_bench.configs.'c'] key: got 'T'; expected one of ['constrained', 'delta', "
            "'design', 'episodes', 'horizon', 'instance', 'k', 'min_best_arm_rate', 'min_format_compliance', "
            "'seed', 'xfail_models']",
        ),
    ],
)
def test_a_project_table_of_the_wrong_shape_names_the_field(table: dict[str, Any], message: str) -> None:
    from bandit_bench.core.specs import SpecError
    from bandit_bench.plugin.settings import settings_from_table

    with pytest.raises(SpecError) as err:
        settings_from_table(table)
    assert str(err.value) == message


def test_a_well_formed_project_table_reads() -> None:
    from bandit_bench.plugin.settings import settings_from_table

    settings = settings_from_table(
        {
            "configs": {
                "c": {"design": "BNRN0", "k": 3, "delta": 0.3, "horizon": 20, "xfail_models": ["sim/x"]}
            },
            "xfail": {"sim/y": ["c"]},
            "prices": {"sim/x": {"prompt": 1, "completion": 2.5}},
        }
    )
    assert settings.configs["c"].instance.k == 3 and settings.configs["c"].xfail_models == ("sim/x",)
    assert settings.xfail == {"sim/y": frozenset({"c"})}
    assert (settings.prices["sim/x"].prompt, settings.prices["sim/x"].completion) == (1.0, 2.5)


# ---------------------------------------------------------------------------- cassettes


def cassette(**request_changes: Any) -> dict[str, Any]:
    body = {"choices": [{"message": {"content": "<Answer>blue</Answer>"}, "finish_reason": "stop"}]}
    request = {"method": "POST", "uri": "http://x/v1/chat/completions", "body": "{}", "headers": {}}
    request.update(request_changes)
    return {
        "version": 1,
        "interactions": [
            {
                "request": request,
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"content-type": ["application/json"]},
                    "body": {"string": json.dumps(body)},
                },
            }
        ],
    }


def cassette_refusal(tmp_path: Path, data: Any) -> str:
    from bandit_bench.recording.transport import load_cassette

    path = tmp_path / "000.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(CorruptCassetteError) as err:
        load_cassette(path)
    message = str(err.value)
    prefix = f"cassette {path} is unreadable or not a vcrpy JSON cassette ("
    suffix = "). Delete it, or re-record it with --record-mode=rewrite."
    assert message.startswith(prefix) and message.endswith(suffix), message
    return message[len(prefix) : -len(suffix)]


def test_a_well_formed_cassette_loads_through_vcrpy(tmp_path: Path) -> None:
    from bandit_bench.recording.transport import load_cassette

    path = tmp_path / "000.json"
    path.write_text(json.dumps(cassette()))
    [request], [response] = load_cassette(path)
    assert (request.method, request.uri, request.body) == ("POST", "http://x/v1/chat/completions", b"{}")
    assert response["status"]["code"] == 200 and isinstance(response["body"]["string"], bytes)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda d: d["interactions"][0]["request"].update(body=3),
            "interaction 1: request.body is 3, not text",
        ),
        (
            lambda d: d["interactions"][0]["request"].pop("headers"),
            "interaction 1: request.headers is missing; expected an object of header name -> values",
        ),
        (
            lambda d: d["interactions"][0]["request"].update(timeout=5),
            "interaction 1: request key 'timeout' is not one vcrpy reads; "
            "expected one of ['body', 'headers', 'method', 'uri']",
        ),
        (
            lambda d: d["interactions"][0]["response"].pop("body"),
            "interaction 1: response.body is missing; expected an object with string",
        ),
        (
            lambda d: d["interactions"][0]["response"]["status"].update(code="200"),
            "interaction 1: response.status.code is '200', not an HTTP status code",
        ),
        (lambda d: d.update(interactions={}), "interactions is {}, not a list of interactions"),
        (lambda d: d["interactions"].append(7), "interaction 2 is 7, not an object with request, response"),
    ],
)
def test_a_cassette_of_the_wrong_shape_says_which_interaction_and_field(
    tmp_path: Path, change: Any, problem: str
) -> None:
    data = cassette()
    change(data)
    assert cassette_refusal(tmp_path, data) == problem


def test_an_old_vcrpy_cassette_or_not_json_is_refused(tmp_path: Path) -> None:
    old = [{"request": {}, "response": {}}]  # before vcrpy 1.0: a bare list of interactions
    assert cassette_refusal(tmp_path, old) == (
        "the file is [{'request': {}, 'response': {}}], not vcrpy's JSON object with interactions"
    )
    assert cassette_refusal(tmp_path, '{"interactions": [') == (
        "JSONDecodeError: Expecting value: line 1 column 19 (char 18)"
    )


# ---------------------------------------------------------------------------- chat completions


def test_the_completion_format_and_the_usage_reader_share_their_bound() -> None:
    from bandit_bench.core import formats, replies

    assert formats.MAX_USAGE_NUMBER == replies.MAX_USAGE_NUMBER


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {"choices": [{"message": {"tool_calls": "x"}}]},
            "choices[0].message.tool_calls is not a list (got 'x')",
        ),
        (
            {"choices": [{"message": {"tool_calls": [{"function": {"name": 3}}]}}]},
            "choices[0].message.tool_calls[0] has no function with a name (got {'function': {'name': 3}})",
        ),
        (
            {"choices": [{"message": {}}], "usage": {"cost": 10**400}},
            "usage.cost is not a finite number in [0, 9007199254740992] (got a whole number of 401 digits)",
        ),
        (
            {"choices": [{"message": {}}], "usage": {"total_tokens": True}},
            "usage.total_tokens is not a whole number in [0, 9007199254740992] (got True)",
        ),
        ({"choices": {"0": {}}}, "'choices' is not a list (got {'0': {}})"),
        ({"choices": [{"finish_reason": ["stop"]}]}, "choices[0].finish_reason is not text (got ['stop'])"),
        ({"choices": []}, "no 'choices' in the body"),
        # Optional keys (every key of a choice, of usage) do not make "an object with ..." of them.
        ({"choices": [None]}, "choices[0] is not an object (got None)"),
        ({"choices": [{}], "usage": "lots"}, "'usage' is not an object (got 'lots')"),
    ],
)
def test_a_completion_of_the_wrong_shape_says_which_field(body: dict[str, Any], problem: str) -> None:
    from bandit_bench.recording.transport import completion_problem

    assert completion_problem(body) == problem


def test_a_completion_with_unknown_keys_and_nulls_is_usable() -> None:
    from bandit_bench.recording.transport import completion_problem

    body = {
        "id": "x",
        "choices": [{"index": 0, "message": {"content": None, "tool_calls": None}, "finish_reason": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3, "cost": 0, "is_byok": False},
        "system_fingerprint": None,
    }
    assert completion_problem(body) is None
