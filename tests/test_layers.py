"""Layers import only downward (DESIGN.md §1), checked by walking every import with ast.

A layer may import root modules (errors, values, limits, config) and the layers listed
below it; root modules import no layer. Inside a layer, modules import each other in
one direction too: no import cycle anywhere, counting imports made inside functions and
under ``TYPE_CHECKING`` (they are cycles all the same, only deferred), and ``host/``'s
façade (``host/database.py``) is imported by no module of its own package, so every
other module of ``host/`` can be read and tested without it.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "cosmictron"

ROOT_MODULES = {
    "errors",
    "values",
    "limits",
    "config",
    "bounded_json",
    "bounded_msgpack",
    "names",
    "lazy",
    "nats_client",
}
ALLOWED = {
    "ledger": set(),
    "durability": {"ledger"},
    "datastore": set(),
    "module": {"datastore"},
    "query": {"datastore"},
    "subscription": {"datastore", "query"},
    "host": {"module", "datastore", "durability", "ledger", "query", "subscription"},
    "agents": {"module", "datastore"},
    "server": {
        "cluster",
        "host",
        "module",
        "datastore",
        "durability",
        "ledger",
        "query",
        "subscription",
    },
    "client": set(),
    "cli": {"cluster", "client", "server", "host", "durability", "ledger", "module", "datastore"},
    "integrations": {"client", "host", "agents"},
    "testing": {"durability", "ledger"},
    "cluster": {"host", "module", "datastore", "durability", "ledger", "query", "subscription"},
}


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "cosmictron" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_layers_import_only_downward():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "__init__.py":
            continue
        owner = relative.parts[0].removesuffix(".py")
        imported = imported_layers(path) - ROOT_MODULES - {owner}
        if owner in ROOT_MODULES:
            allowed: set[str] = set()
        else:
            assert owner in ALLOWED, f"{owner} is not a known layer; add it to ALLOWED"
            allowed = ALLOWED[owner]
        for layer in sorted(imported - allowed):
            problems.append(f"{relative} imports cosmictron.{layer}")
    assert not problems, "\n".join(problems)


def test_every_layer_says_what_it_owns():
    for directory in sorted(p for p in PACKAGE.iterdir() if list(p.glob("*.py"))):
        init = directory / "__init__.py"
        assert init.exists(), f"{directory.name} has no __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{directory.name} has no docstring"


def module_name(path: Path) -> str:
    """``src/cosmictron/host/core.py`` -> ``cosmictron.host.core`` (a package: its name)."""
    parts = ["cosmictron", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The modules of ours that ``path`` imports, wherever the import statement is.

    ``from cosmictron.host import hotswap`` imports the module ``cosmictron.host.hotswap``;
    ``from cosmictron.host import Database`` imports ``cosmictron.host`` (its
    ``__init__.py``). The parent packages Python imports on the way are not counted:
    every submodule would otherwise depend on its package's ``__init__.py``.
    """
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {name for name in found if name in modules and name != this}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    return {name: imported_modules(path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                yield from visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def test_cycles_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert list(cycles(graph)) == [["a", "b", "c"]]
    assert list(cycles({"a": {"b"}, "b": set()})) == []


def test_no_import_cycle_anywhere():
    found = [" -> ".join(component) for component in cycles(import_graph())]
    assert not found, "import cycles (each line one set of modules):\n" + "\n".join(found)


ABOVE_THE_FACADE = {"cosmictron.host.backup"}
"""Modules of a package that use its façade as a client does (restoring a backup opens a
``Database``); they import the package (``cosmictron.host``), never ``database.py``, and
nothing in the package imports them."""


def test_host_modules_do_not_import_the_facade():
    """``Database`` composes the operations; they work on ``core.DatabaseCore`` instead."""
    graph = import_graph()
    facade = "cosmictron.host.database"
    inside = [name for name in graph if name.startswith("cosmictron.host.")]
    importers = sorted(name for name in inside if facade in graph[name])
    assert not importers, f"{facade} imported from inside host/ by: {', '.join(importers)}"
    above = sorted(name for name in inside if ABOVE_THE_FACADE & graph[name])
    assert not above, f"modules above the façade imported from inside host/ by: {above}"


def test_no_package_imports_its_own_init():
    """A layer's ``__init__.py`` is its face to the layers above; inside, modules import
    each other directly, or the layer would depend on itself. (The root package is no
    layer: ``cosmictron.__version__`` is read from anywhere.)"""
    graph = import_graph()
    packages = {module_name(path) for path in PACKAGE.rglob("__init__.py")} - {"cosmictron"}
    problems = [
        f"{name} imports {package}"
        for name, imported in sorted(graph.items())
        for package in sorted(imported & packages)
        if name.startswith(f"{package}.") and name not in ABOVE_THE_FACADE
    ]
    assert not problems, "\n".join(problems)
