"""Start-up stays light: pytest imports the plugin at every start, users import the package."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("openai", "vcr", "pandas", "matplotlib", "httpx2", "jinja2")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


def test_import_bandit_bench_loads_nothing_heavy():
    loaded = _loaded_after("import bandit_bench")
    assert not loaded & {*HEAVY, "numpy"}


def test_plugin_import_loads_nothing_heavy():
    loaded = _loaded_after("import bandit_bench.plugin")
    assert not loaded & {*HEAVY, "numpy"}


def test_public_names_resolve_lazily():
    import bandit_bench

    assert bandit_bench.DesignSpec.parse("BSSCt0").code == "BSSC~0"
    assert set(bandit_bench.__all__) <= set(dir(bandit_bench))
    for name in bandit_bench.__all__:
        assert getattr(bandit_bench, name) is not None
