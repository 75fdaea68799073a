"""The package's layers, read from its source: every import points down, and none goes round.

Layers, lowest first (docs/architecture.md): a module may import its own layer and the ones
below it. Imports inside functions count too: a lazy import is still a dependency, and the
cycles this test was written against (collector <-> plugin, report <-> html_report) were lazy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bandit_bench"

LAYERS = ("core", "recording", "running", "reporting", "plugin", "servers", "cli")
# What each layer must never import, whatever the layer rule allows.
FORBIDDEN = {
    "core": ("pytest", "openai", "httpx2", "vcr", "_pytest", "xdist"),
    "recording": ("pytest", "openai", "_pytest", "xdist"),
    "running": ("pytest", "_pytest", "xdist"),
    "reporting": ("pytest", "openai", "_pytest", "xdist"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "bandit_bench" and all(a.name == "__version__" for a in node.names):
                continue  # the version string: the root holds it and imports nothing for it
            out.add(target)
            # ``from pkg import mod`` imports the module pkg.mod when there is one.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _file_of(candidate) is not None:
                    out.add(candidate)
    return out


def _file_of(module: str) -> Path | None:
    if not module.startswith("bandit_bench"):
        return None
    rel = Path(*module.split(".")[1:]) if "." in module else Path()
    for candidate in (PACKAGE / rel / "__init__.py", (PACKAGE / rel).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package root: the public facade, allowed to front every layer
    return parts[1] if parts[1] in LAYERS else parts[1]


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        graph[name] = {m for m in _imports(path) if _file_of(m) is not None and m != name}
    return graph


def test_every_module_belongs_to_a_layer() -> None:
    strays = [m for m in _graph() if m != "bandit_bench" and _layer(m) not in LAYERS]
    assert not strays, f"modules outside the layers {LAYERS}: {strays}; move them into one"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, imports in _graph().items():
        mine = _layer(module)
        if mine is None:
            continue
        for target in imports:
            theirs = _layer(target)
            if theirs is None:
                upward.append(f"{module} -> {target} (the package root fronts every layer)")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                upward.append(f"{module} ({mine}) -> {target} ({theirs})")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_stay_free_of_pytest_and_the_api_client(layer: str) -> None:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[layer]:
                found.append(f"{_module_name(path)} imports {name}")
    assert not found, "\n".join(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    # A package's __init__ importing its own submodules is not a cycle worth reporting.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in _graph().items()}
    graph.pop("bandit_bench", None)
    assert _cycles(graph) == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    # The two circles this test was written against, as a graph: the checker must see them.
    graph = {
        "bandit_bench.plugin.collector": {"bandit_bench.plugin.plugin"},
        "bandit_bench.plugin.plugin": {"bandit_bench.plugin.collector"},
        "bandit_bench.reporting.tables": {"bandit_bench.reporting.html"},
        "bandit_bench.reporting.html": {"bandit_bench.reporting.tables"},
        "bandit_bench.core.specs": set(),
    }
    assert sorted(_cycles(graph)) == [
        ["bandit_bench.plugin.collector", "bandit_bench.plugin.plugin"],
        ["bandit_bench.reporting.html", "bandit_bench.reporting.tables"],
    ]
    assert LAYERS.index(_layer("bandit_bench.plugin.plugin") or "") > LAYERS.index("core")


# The one function allowed to be long: the option table, one add_option call per option.
_LONG_ALLOWED = {("bandit_bench/plugin/options.py", "add_options")}


def _long_functions(source: str, limit: int = 60) -> list[tuple[str, int]]:
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_function_of_the_package_is_over_60_lines() -> None:
    root = Path(__file__).resolve().parents[2]
    found = [
        (str(path.relative_to(root)), name, length)
        for path in sorted((root / "bandit_bench").rglob("*.py"))
        for name, length in _long_functions(path.read_text())
        if (str(path.relative_to(root)), name) not in _LONG_ALLOWED
    ]
    assert found == [], "split these by responsibility (issue 24's rule)"
    # The rule sees a long one, nested ones included.
    body = "\n".join(f"        x{i} = {i}" for i in range(60))
    assert _long_functions(f"def outer():\n    def inner():\n{body}\n") == [("outer", 62), ("inner", 61)]
