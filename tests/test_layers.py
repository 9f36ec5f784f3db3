"""Layers import only downward (DESIGN.md §1), checked by walking every import with ast.

A layer may import root modules (errors, values, limits, config) and the layers listed
below it; root modules import no layer.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "cosmictron"

ROOT_MODULES = {"errors", "values", "limits", "config", "bounded_json"}
ALLOWED = {
    "ledger": set(),
    "durability": {"ledger"},
    "datastore": set(),
    "module": {"datastore"},
    "query": {"datastore"},
    "subscription": {"datastore", "query"},
    "host": {"module", "datastore", "durability", "ledger", "query", "subscription"},
    "agents": {"module", "datastore"},
    "server": {"host", "module", "datastore", "durability", "ledger", "query", "subscription"},
    "client": set(),
    "cli": {"client", "server", "host", "durability", "ledger", "module", "datastore"},
    "integrations": {"client", "host"},
    "testing": {"durability", "ledger"},
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
