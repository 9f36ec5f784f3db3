"""Every route is one line of ``server/app.py``'s ``ROUTES`` (docs/design/server.md).

Routes used to be added three ways (a route table joined by imports made for their side
effect, routes added one by one, a ``setup`` that added the WebSocket route). These tests
keep them in one list: no other module registers a route, and the list has no repeat.
"""

import ast
from pathlib import Path

from cosmictron.server.app import ROUTES

SERVER = Path(__file__).resolve().parents[2] / "src" / "cosmictron" / "server"

REGISTERING = {"RouteTableDef", "add_routes", "add_route", "add_get", "add_post", "add_put"}
REGISTERING |= {"add_delete", "add_patch", "add_head", "add_view", "add_static"}


def registrations(path: Path) -> list[str]:
    """Where ``path`` names an aiohttp call that adds routes, as ``file:line name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        name = node.attr if isinstance(node, ast.Attribute) else None
        if name in REGISTERING:
            found.append(f"{path.name}:{node.lineno} {name}")
    return found


def test_only_app_py_adds_routes() -> None:
    found = [hit for path in sorted(SERVER.glob("*.py")) for hit in registrations(path)]
    assert [hit.split(":")[0] + " " + hit.split()[1] for hit in found] == ["app.py add_routes"], (
        found
    )


def test_registrations_finds_a_route_added_elsewhere(tmp_path: Path) -> None:
    module = tmp_path / "extra.py"
    module.write_text("def setup(app):\n    app.router.add_get('/x', handler)\n")
    assert registrations(module) == ["extra.py:2 add_get"]


def test_routes_list_each_method_and_path_once() -> None:
    pairs = [(route.method, route.path) for route in ROUTES]
    assert len(pairs) == len(set(pairs))
    assert ("GET", "/v1/database/{name}/subscribe") in pairs
