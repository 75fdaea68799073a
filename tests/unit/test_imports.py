"""Start-up stays light: pytest imports the plugin at every start, users import the package."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("openai", "vcr", "pandas", "matplotlib", "httpx2", "jinja2", "pydantic")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


def test_import_bandit_bench_loads_nothing_heavy():
    loaded = _loaded_after("import bandit_bench")
    assert not loaded & {*HEAVY, "numpy"}


def test_plugin_import_loads_nothing_heavy():
    loaded = _loaded_after("import bandit_bench.plugin.plugin")
    assert not loaded & {*HEAVY, "numpy"}


def test_public_names_resolve_lazily_to_their_modules_objects():
    import importlib

    import bandit_bench

    assert bandit_bench.DesignSpec.parse("BSSCt0").code == "BSSC~0"
    assert set(bandit_bench.__all__) <= set(dir(bandit_bench))
    for name in bandit_bench.__all__:
        module = importlib.import_module(bandit_bench._EXPORTS[name], "bandit_bench")
        assert getattr(bandit_bench, name) is getattr(module, name), name
    try:
        bandit_bench.not_a_name  # noqa: B018
    except AttributeError as err:
        assert "has no attribute 'not_a_name'" in str(err)
    else:
        raise AssertionError("unknown names must raise AttributeError")


def test_the_plugins_old_module_name_hands_over_the_same_hooks():
    # An editable install made before the rename still names bandit_bench.plugin.hooks as its
    # pytest11 entry point: that module must give pytest the plugin's very hook functions.
    import bandit_bench.plugin.hooks as old
    import bandit_bench.plugin.plugin as plugin

    hooks = {n for n in vars(plugin) if n.startswith("pytest_")}
    assert hooks and all(getattr(old, n) is getattr(plugin, n) for n in hooks)
