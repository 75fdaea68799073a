"""`bandit-bench init` (a repository set up for CI, never overwritten) and `bandit-bench configs`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from bandit_bench.cli.commands import main
from bandit_bench.cli.scaffold import CI_TEST_COMMAND, WORKFLOW_PATH
from bandit_bench.servers.simulator import cycle

PROJECT = """[project]
name = "my-model"

[tool.bandit_bench.configs.quick]
design = "BNRN0"
instance = "hard"
horizon = 6
episodes = 3
"""


def _env() -> dict[str, str]:
    # The installed package's own python and scripts first, as a CI runner's PATH would have them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _workflow_steps(root: Path) -> dict[str, dict[str, object]]:
    data = yaml.safe_load((root / WORKFLOW_PATH).read_text())
    assert set(data) == {"name", "on", "permissions", "jobs"}
    [job] = data["jobs"].values()
    return {step.get("name", step.get("uses")): step for step in job["steps"]}


def test_init_writes_what_ci_needs_and_its_pytest_command_passes_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], simulator
) -> None:
    (tmp_path / "pyproject.toml").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--model", "sim/cycle", "--bandit-config", "quick"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == [
        "wrote    pyproject.toml: [tool.pytest.ini_options]",
        f"wrote    {WORKFLOW_PATH}",
        "wrote    .gitignore: reports/, cassettes/**/.lock",
    ]
    assert "skipped  pyproject.toml: [tool.bandit_bench] exists" in out  # it holds the config
    assert f"CI then runs: {CI_TEST_COMMAND}" in out
    data = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert data["project"]["name"] == "my-model"  # the project's own table is kept
    assert data["tool"]["pytest"]["ini_options"] == {
        "bandit_models": ["sim/cycle"],
        "bandit_configs": ["quick"],
    }
    assert list(data["tool"]["bandit_bench"]) == ["configs"]

    steps = _workflow_steps(tmp_path)
    # This copy is an editable install from a path CI cannot reach: the PyPI name, and a warning
    # saying what to pass instead.
    assert steps["Install bandit-bench"]["run"] == "python -m pip install pytest-bandit-bench"
    assert "warning  the workflow installs 'pytest-bandit-bench' from PyPI, where no release" in out
    judge = steps["Replay the cassettes offline and judge"]["run"]
    assert CI_TEST_COMMAND in judge and "--compare-to=previous-reports" in judge
    upload = steps["Upload reports/"]
    assert upload["if"] == "always()" and upload["with"] == {
        "name": "bandit-bench-reports",
        "path": "reports/",
    }
    fetch = steps["Fetch the default branch's last report (the OLD of --compare-to)"]["run"]
    assert "gh run download" in fetch and "--dir previous-reports" in fetch

    # Record once (the step a team does by hand, with a key), then run the workflow's own step.
    sim = simulator(cycle())
    record = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--base-url",
            sim.base_url,
            "--record-mode=once",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert record.returncode == 0, record.stdout
    sim.stop()
    assert sorted(
        p.name for p in (tmp_path / "cassettes" / "sim" / "cycle" / "quick").glob("[0-9]*.json")
    ) == [
        "000.json",
        "001.json",
        "002.json",
    ]
    shutil.rmtree(tmp_path / "reports")

    def judge_run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", judge], cwd=tmp_path, env=_env(), capture_output=True, text=True, check=False
        )

    first = judge_run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 passed" in first.stdout and "comparison" not in first.stdout
    assert (tmp_path / "reports" / "summary.json").is_file()
    # The next run has the previous report (as the fetch step leaves it): it compares and passes.
    shutil.copytree(tmp_path / "reports", tmp_path / "previous-reports")
    second = judge_run()
    assert second.returncode == 0, second.stdout
    assert "bandit-bench: comparison" in second.stdout and "no regression" in second.stdout


def test_init_refuses_to_overwrite_and_says_what_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        PROJECT + '\n[tool.pytest.ini_options]\naddopts = "-q"\nbandit_models = ["openai/gpt-4o-mini"]\n'
    )
    (tmp_path / WORKFLOW_PATH).parent.mkdir(parents=True)
    (tmp_path / WORKFLOW_PATH).write_text("name: ours\n")
    (tmp_path / ".gitignore").write_text("reports/\ncassettes/**/.lock")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--model", "sim/cycle"]) == 0
    assert capsys.readouterr().out.splitlines()[:5] == [
        "skipped  pyproject.toml: [tool.pytest.ini_options] already names bandit-bench models",
        "skipped  pyproject.toml: [tool.bandit_bench] exists",
        f"skipped  {WORKFLOW_PATH} exists (not overwritten)",
        "skipped  .gitignore: reports/ is ignored already",
        "skipped  .gitignore: cassettes/**/.lock is ignored already",
    ]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_adds_keys_under_an_existing_ini_table_and_defers_to_pytest_ini(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "-q"\n')
    assert main(["init", "--dir", str(tmp_path), "--model", "a/b", "--bandit-config", "BNRN0-*"]) == 0
    data = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    ini = data["tool"]["pytest"]["ini_options"]
    assert list(ini) == ["bandit_models", "bandit_configs", "addopts"]
    assert ini["bandit_models"] == ["a/b"] and ini["addopts"] == "-q"
    # A pattern is written as the configs it stands for, checked now rather than in CI.
    assert "BNRN0-hard-T25" in ini["bandit_configs"]
    assert all(name.startswith("BNRN0-") for name in ini["bandit_configs"])
    assert data["tool"]["bandit_bench"] == {"xfail": {}}
    other = tmp_path / "other"
    other.mkdir()
    (other / "pytest.ini").write_text("[pytest]\n")
    capsys.readouterr()
    assert main(["init", "--dir", str(other), "--model", "a/b"]) == 0
    out = capsys.readouterr().out
    assert "skipped  pytest reads pytest.ini, not pyproject.toml: add under its [pytest] section: " in out
    assert not (other / "pyproject.toml").exists()


def test_init_needs_a_model_and_known_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--dir", str(tmp_path)]) == 2
    assert "--model: got None; expected the models CI checks" in capsys.readouterr().err
    assert main(["init", "--dir", str(tmp_path), "--model", "a/b", "--bandit-config", "nope"]) == 2
    assert "--bandit-config: got 'nope'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written on an error


def test_configs_lists_built_in_and_project_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(PROJECT + 'xfail_models = ["sim/cycle"]\n')
    sub = tmp_path / "src"
    sub.mkdir()
    monkeypatch.chdir(sub)  # the nearest pyproject.toml upwards, as pytest finds it
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "name", "source", "design", "instance", "T", "N", "min_format_compliance", "min_best_arm_rate",
        "xfail_models",
    ]  # fmt: skip
    rows = {
        line.split()[0]: line
        for line in lines[2:]
        if line and not line.startswith(("suite", "project", "default"))
    }
    assert rows["quick"].split() == [
        "quick",
        "project",
        "BNRN0",
        "hard:",
        "K=5,",
        "delta=0.2",
        "6",
        "3",
        "0.900",
        "0.000",
        "sim/cycle",
    ]
    assert rows["BNRN0-hard-T25"].split()[:8] == [
        "BNRN0-hard-T25",
        "built-in",
        "BNRN0",
        "hard:",
        "K=5,",
        "delta=0.2",
        "25",
        "5",
    ]
    assert rows["BNSN0-hard-T25-constrained"].split()[2:4] == ["BNSN0", "constrained"]
    assert f"project settings: {tmp_path / 'pyproject.toml'}" in lines
    assert any(
        line.startswith("default: the configs a model has cassettes for, else BNRN0-hard-T25")
        for line in lines
    )
    assert main(["configs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in data["configs"]} >= {"quick", "BNRN0-hard-T25", "BSSC~0-hard-T100"}
    assert data["default"] == ["BNRN0-hard-T25", "BSSC~0-hard-T25"]


def test_bandit_config_help_names_the_configs_command(pytester: pytest.Pytester) -> None:
    help_text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert "--bandit-config=BANDIT_CONFIG" in help_text
    assert (
        "`bandit-bench configs` lists them. Default: the configs the model has cassettes for, "
        "else BNRN0-hard-T25, BSSC~0-hard-T25" in help_text
    )


def _fetch_script(root: Path) -> str:
    return str(
        _workflow_steps(root)["Fetch the default branch's last report (the OLD of --compare-to)"]["run"]
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="the workflow's steps are bash")
def test_the_workflow_treats_a_missing_or_expired_artifact_as_not_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gh run download` failing (the artifact expired after 90 days, or was never uploaded)
    leaves no previous-reports/ and does not fail the job; the judge step then does not compare."""
    assert main(["init", "--dir", str(tmp_path), "--model", "a/b"]) == 0
    data = yaml.safe_load((tmp_path / WORKFLOW_PATH).read_text())
    [job] = data["jobs"].values()
    # push and pull_request for a branch of this repository would run the job twice.
    assert job["if"] == (
        "github.event_name != 'pull_request' || "
        "github.event.pull_request.head.repo.full_name != github.repository"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in {
        "run-list-finds-one": "echo 1234",
        "download-fails": "mkdir -p previous-reports; echo 'no valid artifacts found' >&2; exit 1",
    }.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "gh").write_text(
        '#!/bin/sh\nif [ "$2" = list ]; then exec run-list-finds-one; else exec download-fails; fi\n'
    )
    for p in bin_dir.iterdir():
        p.chmod(0o755)
    env = {**_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "BRANCH": "main"}
    done = subprocess.run(
        ["bash", "-e", "-c", _fetch_script(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "no earlier report of main to download: this run is not compared" in done.stdout
    assert not (tmp_path / "previous-reports").exists()


def test_init_quotes_the_install_spec_and_ignores_lock_files(tmp_path: Path) -> None:
    spec = "pytest-bandit-bench @ git+https://github.com/o/r@v0.1.0"
    assert main(["init", "--dir", str(tmp_path), "--model", "a/b", "--install", spec]) == 0
    run = _workflow_steps(tmp_path)["Install bandit-bench"]["run"]
    assert run == "python -m pip install 'pytest-bandit-bench @ git+https://github.com/o/r@v0.1.0'"
    assert "cassettes/**/.lock" in (tmp_path / ".gitignore").read_text().splitlines()
    # git itself leaves a case folder's lock file out of `git add cassettes`.
    if shutil.which("git"):
        lock = tmp_path / "cassettes" / "a" / "b" / "quick" / ".lock"
        lock.parent.mkdir(parents=True)
        lock.write_text("")
        (lock.parent / "000.json").write_text("{}")
        subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
        subprocess.run(["git", "add", "cassettes"], cwd=tmp_path, check=True)
        staged = subprocess.run(
            ["git", "diff", "--cached", "--name-only"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert staged == ["cassettes/a/b/quick/000.json"]


def test_init_again_with_another_model_says_ci_does_not_run_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--dir", str(tmp_path), "--model", "a/b"]) == 0
    capsys.readouterr()
    assert main(["init", "--dir", str(tmp_path), "--model", "c/d"]) == 0
    out = capsys.readouterr().out
    assert (
        "warning  CI runs the models of bandit_models in pyproject.toml (a/b); c/d is not among them: "
        "add it there, or CI never replays what you record"
    ) in out


def test_the_release_workflow_builds_checks_and_publishes_on_a_tag() -> None:
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / ".github/workflows/release.yml").read_text())
    assert data["on"]["push"] == {"tags": ["v*"]}
    build = data["jobs"]["build"]["steps"]
    runs = "\n".join(str(s.get("run", "")) for s in build)
    assert "python -m build" in runs and "twine check --strict dist/*" in runs
    publish = data["jobs"]["publish"]
    assert publish["needs"] == "build" and publish["if"] == "startsWith(github.ref, 'refs/tags/v')"
    # Trusted publishing: an OIDC token, no stored API token.
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["steps"][-1] == {"uses": "pypa/gh-action-pypi-publish@release/v1"}
    assert "password" not in str(publish)
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert project["name"] == "pytest-bandit-bench" and project["scripts"] == {
        "bandit-bench": "bandit_bench.cli.commands:main"
    }
