"""The tree is the architecture: imports point one way and never close a circle.

The import graph is built from the source (every `import` and `from ... import`, at the top of
a module or inside a function, since a circle held together by a function-level import is still
a circle), with each name resolved to the module that defines it: `from leaderboard import
validate_entries` is an arrow to leaderboard.validate, through the package's re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crambench", "data_prep", "cramming", "glue_eval", "leaderboard", "sweep")

# The pipeline, bottom to top: a module may import from its own layer and the ones below it.
# crambench's shell (the `cram` CLI and `cram demo`) is the one layer above every stage.
LAYERS = ("crambench", "data_prep", "cramming", "glue_eval", "leaderboard", "sweep",
          "crambench.shell")


def _layer(module: str) -> int:
    """Index in LAYERS of the longest layer name that is `module` or a package above it; a
    package's `__main__` (`python -m cramming`) is the shell."""
    if module.endswith(".__main__"):
        return LAYERS.index("crambench.shell")
    best = max((name for name in LAYERS if module == name or module.startswith(name + ".")),
               key=len)
    return LAYERS.index(best)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "remote_code" in path.parts:  # shipped beside exported weights, not imported
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _reexports(package: str) -> dict[str, str]:
    """Name -> defining module for what a package's __init__ imports or lazily exports."""
    table = {}
    for node in ast.walk(TREES[package]):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                table[alias.asname or alias.name] = node.module
        elif isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
            # a lazy_exports table: {"name": "module" or "module:attribute"}
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    module = value.value.partition(":")[0]
                    if module in MODULES:
                        table[key.value] = module
    return table


def _arrows(name: str) -> list[tuple[str, str, int]]:
    """(imported module, the name taken from it or "", line) for each project import."""
    arrows = []
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            arrows += [(a.name, "", node.lineno) for a in node.names if a.name in MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES and not node.level:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in MODULES:  # `from pkg import module`
                    arrows.append((target, "", node.lineno))
                    continue
                defined = _reexports(node.module).get(alias.name, node.module)
                if defined != name:  # a package's __init__ re-exporting its own module's name
                    arrows.append((defined, alias.name, node.lineno))
    return arrows


GRAPH = {name: _arrows(name) for name in MODULES}


def test_the_graph_sees_every_package_and_their_arrows():
    assert set(PACKAGES) <= set(MODULES)
    assert sum(map(len, GRAPH.values())) > 200  # a parser that finds nothing passes nothing
    assert ("crambench.errors", "UserError") in {(t, n) for t, n, _ in
                                                 GRAPH["leaderboard.validate"]}


def test_imports_run_down_the_pipeline():
    against = [f"{name}:{line} imports {target}" for name, arrows in GRAPH.items()
               for target, _, line in arrows if _layer(target) > _layer(name)]
    assert not against, "imports against the pipeline's direction:\n" + "\n".join(against)


def test_no_import_circles():
    circles = _strongly_connected({n: {t for t, _, _ in arrows} for n, arrows in GRAPH.items()})
    big = [sorted(c) for c in circles if len(c) > 1]
    assert not big, "import circles:\n" + "\n".join(" <-> ".join(c) for c in big)


def test_no_module_takes_another_modules_private_names():
    private = [f"{name}:{line} takes {target}.{taken}" for name, arrows in GRAPH.items()
               for target, taken, line in arrows
               if taken.startswith("_") and target != name]
    assert not private, "\n".join(private)


def test_no_two_modules_share_a_name_across_packages():
    """Modules with one name do one job: a stage's `command.py` (its CLI verb) and `job.py`
    (the library function behind the verb) are the names allowed in several packages; a
    subpackage and a module inside it never share a name either."""
    by_name: dict[str, list[str]] = {}
    for name in MODULES:
        leaf = name.rsplit(".", 1)[-1]
        if name not in PACKAGES and leaf not in ("command", "job", "__main__"):
            by_name.setdefault(leaf, []).append(name)
    shared = {leaf: names for leaf, names in by_name.items() if len(names) > 1}
    assert not shared, shared


@pytest.mark.parametrize("base", ["crambench.errors", "crambench.contracts", "crambench.files",
                                  "crambench.locks", "crambench.progress", "crambench.units"])
def test_the_core_imports_no_stage(base):
    assert all(t.startswith("crambench.") for t, _, _ in GRAPH[base]), GRAPH[base]


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred nodes)."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    result.append(component)
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return result
