"""PUT over an existing database: hot-swap with migration, refusals, clear, over HTTP."""

from __future__ import annotations

from tests.server.conftest import Server

V1 = """
from cosmictron import *

@table(public=True)
class Item:
    id: int = field(primary_key=True)
    name: str = ""

@reducer
def add(ctx: ReducerContext, id: int, name: str) -> None:
    ctx.db.item.insert(Item(id, name))
"""

V2 = (
    V1.replace('    name: str = ""\n', '    name: str = ""\n    price: int = 0\n')
    + """
@reducer
def price_of(ctx: ReducerContext, id: int) -> int:
    return ctx.db.item.id.find(id).price

@init
def seed(ctx: ReducerContext) -> None:
    ctx.db.item.insert(Item(100, "seeded"))
"""
)

INCOMPATIBLE = V1.replace('    name: str = ""\n', "    title: int = 0\n")


def test_update_migrates_refuses_and_clears(server: Server) -> None:
    _, token = server.deployer()
    assert server.deploy("shop", V1, token).status == 201
    server.request("POST", "/v1/database/shop/call/add", [1, "pen"])
    updated = server.deploy("shop", V2, token)
    assert updated.status == 200 and updated.body["created"] is False
    migration = updated.body["migration"]
    assert migration["columns_added"] and "price_of" in str(migration["reducers_added"])
    rows = server.request("POST", "/v1/database/shop/sql", "SELECT * FROM item").body["rows"]
    assert rows == [{"id": 1, "name": "pen", "price": 0}]
    assert server.request("POST", "/v1/database/shop/call/price_of", [1]).body["return_value"] == 0

    refused = server.deploy("shop", INCOMPATIBLE, token)
    assert refused.status == 400 and refused.body["error"]["code"] == "schema_error"
    message = refused.body["error"]["message"]
    assert "name" in message and "price" in message  # every incompatibility is listed
    broken = server.deploy("shop", "def broken(:\n", token)
    assert broken.status == 400 and "SyntaxError" in broken.body["error"]["message"]
    still = server.request("POST", "/v1/database/shop/call/price_of", [1])
    assert still.status == 200  # the running version is untouched

    cleared = server.deploy("shop", V2, token, clear=True)
    assert cleared.status == 200 and cleared.body["migration"]["cleared"] is True
    rows = server.request("POST", "/v1/database/shop/sql", "SELECT id FROM item").body["rows"]
    assert rows == [{"id": 100}]  # wiped, then init ran

    _, stranger = server.deployer()
    assert server.deploy("shop", V2, stranger).status == 403
