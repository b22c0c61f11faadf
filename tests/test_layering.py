"""The package's imports only go down the declared layers, and no module imports itself round a cycle."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmovod"

# Bottom to top: a package may import itself and the packages before it, never one after it.
LAYERS = ("io", "readers", "prep", "clip", "features", "descriptions", "aggregator", "classifiers", "evaluation",
          "handoff", "vocabulary", "assets", "demo", "cli")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The mmovod modules `path` imports anywhere in it (also inside functions), resolved to modules:
    `from mmovod.a import b` is module mmovod.a.b when that is a module, else mmovod.a."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    return {name: imported_modules(path, set(paths), root) for name, path in paths.items()}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def upward_edges(graph: dict[str, set[str]], layers=LAYERS) -> list[tuple[str, str]]:
    rank = {layer: i for i, layer in enumerate(layers)}
    return sorted((src, dst) for src, dsts in graph.items() for dst in dsts
                  if layer_of(src) is not None and layer_of(dst) is not None
                  and rank[layer_of(dst)] > rank[layer_of(src)])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

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


def test_every_subpackage_has_a_declared_layer():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")} - {"data"}
    assert packages == set(LAYERS)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_no_import_goes_up_a_layer(graph):
    assert upward_edges(graph) == []


def test_no_import_cycle(graph):
    assert cycles(graph) == []


def test_the_drawing_of_package_imports_is_current(graph):
    """docs/images/package_imports.png (scripts/draw_package_imports.py) stores the imports it draws; they
    are the imports between packages the code has now."""
    import json

    from PIL import Image

    edges = sorted({(layer_of(src), layer_of(dst)) for src, dsts in graph.items() for dst in dsts
                    if None not in (layer_of(src), layer_of(dst)) and layer_of(src) != layer_of(dst)})
    with Image.open(PACKAGE.parent / "docs/images/package_imports.png") as drawing:
        drawn = [tuple(edge) for edge in json.loads(drawing.text["edges"])]
    assert drawn == edges, "re-run python scripts/draw_package_imports.py"


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    """Break the layering on purpose in a copy of two modules: both checks must see it."""
    root = tmp_path / "mmovod"
    for package in ("io", "readers"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "io" / "atomic.py").write_text("from mmovod.readers import wordnet\n")
    (root / "readers" / "wordnet.py").write_text("def f():\n    from mmovod.io.atomic import x\n")
    graph = import_graph(root)
    assert upward_edges(graph) == [("mmovod.io.atomic", "mmovod.readers"), ("mmovod.io.atomic", "mmovod.readers.wordnet")]
    assert cycles(graph) == [["mmovod.io.atomic", "mmovod.readers.wordnet"]]



def test_no_test_module_imports_another():
    """Shared fixtures live in conftest.py and helpers in modules not named test_*: a test module that imports
    another runs that module's fixtures twice and ties the two files together."""
    tests = PACKAGE.parent / "tests"
    test_modules = {module_name(p, tests) for p in tests.rglob("test_*.py")}
    offenders = {}
    for path in tests.rglob("test_*.py"):
        imported = imported_modules(path, test_modules, tests)
        if imported:
            offenders[module_name(path, tests)] = sorted(imported)
    assert offenders == {}


def test_maintenance_scripts_import_only_installed_packages():
    """`python scripts/<name>.py` puts scripts/, not the repository, on the import path: the tool modules are
    reached as `mmovod.cli.commands.<tool>`, never as `tools.<tool>`."""
    local = {"tools", "tests", "bench", "scripts"}
    found = []
    for path in sorted((PACKAGE.parent / "scripts").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in local]
    assert found == []
