"""``POST /v1/database/{name}/bulk_insert/{table}`` against a real server process.

Each test deploys a module with every column type, sends CSV or NDJSON, and reads the
rows back with SQL. Refusals are checked for what they promise: the first bad line and
column named, nothing inserted (row count and tx_offset unchanged).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import Server, fresh_database, start_server, stop_server, strict_loads

MODULE = """
import enum
from typing import Optional
from cosmictron import *

class Color(enum.Enum):
    RED = 1
    GREEN = 2

@type
class Point:
    x: int
    y: int

@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)
    name: str = ""
    price: float = 0.0
    owner: str = field(default="", index="btree")

@table(name="every")
class Every:
    id: int = field(primary_key=True)
    small: i8 = 0
    big: u128 = 0
    ratio: f32 = 0.0
    flag: bool = False
    text: str = ""
    blob: bytes = b""
    who: Identity = field(default=Identity.zero())
    at: Timestamp = field(default=Timestamp(0))
    maybe: Optional[int] = None
    note: Optional[str] = None
    color: Color = Color.RED
    tags: list[str] = field(default=[])
    point: Optional[Point] = None

@table(name="event")
class Event:
    id: int = field(primary_key=True, auto_inc=True)
    seq: int = field(index="btree", default=0)
    name: str = ""
"""

IDENTITY = "ab" * 32


@pytest.fixture
def server(module_server: Server) -> Server:
    """The module's one server: each test gets a new ``shop`` database on it (``owner``)."""
    return module_server


@pytest.fixture
def owner(server: Server) -> Iterator[str]:
    with fresh_database(server, "shop", MODULE) as token:
        yield token


def post(server: Server, table: str, body: str | bytes, token: str | None, kind: str = "text/csv"):
    return server.request(
        "POST", f"/v1/database/shop/bulk_insert/{table}", body, token, content_type=kind
    )


def rows(server: Server, token: str, query: str) -> list[dict]:
    reply = server.request("POST", "/v1/database/shop/sql", query, token)
    assert reply.status == 200, reply
    return reply.body["rows"]


def state(server: Server, token: str, table: str) -> tuple[int, int]:
    count = rows(server, token, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
    schema = server.request("GET", "/v1/database/shop/schema")
    return count, schema.body["tx_offset"]


def item_csv(count: int, bad_row: int | None = None) -> str:
    lines = ["id,name,price,owner"]
    for i in range(count):
        price = "abc" if i == bad_row else f"{i / 4}"
        lines.append(f"{i},item {i},{price},owner-{i % 7}")
    return "\n".join(lines) + "\n"


def test_csv_rows_are_inserted_in_one_transaction(server, owner):
    _, before = state(server, owner, "item")
    reply = post(server, "item", item_csv(1000), owner)
    assert reply.status == 200, reply
    assert reply.body == {"table": "item", "rows_inserted": 1000, "tx_offset": before + 1}
    assert state(server, owner, "item") == (1000, before + 1)
    found = rows(server, owner, "SELECT * FROM item WHERE owner = 'owner-3' AND id = 10")
    assert found == [{"id": 10, "name": "item 10", "price": 2.5, "owner": "owner-3"}]


def test_every_column_type_from_csv(server, owner):
    body = (
        "id,small,big,ratio,flag,text,blob,who,at,maybe,note,color,tags,point\n"
        f'1,-5,{2**100},0.5,true,"a, ""quoted""\nline",0xdead,0x{IDENTITY},'
        '2026-01-02T03:04:05.000006Z,7,hi,GREEN,"[""a"",""b""]","{""x"": 1, ""y"": 2}"\n'
        f"2,0,0,1,0,,beef,{IDENTITY},1000000,,,RED,[],\n"
        f"3,1,1,1,FALSE,x,,{IDENTITY},0,0,,RED,[],\n"
    )
    reply = post(server, "every", body, owner)
    assert reply.status == 200, reply
    got = rows(server, owner, "SELECT * FROM every ORDER BY id")
    assert got[0] == {
        "id": 1,
        "small": -5,
        "big": str(2**100),  # past 2**53: a decimal string in JSON
        "ratio": 0.5,
        "flag": True,
        "text": 'a, "quoted"\nline',
        "blob": "dead",
        "who": IDENTITY,
        "at": "2026-01-02T03:04:05.000006Z",
        "maybe": 7,
        "note": "hi",
        "color": "GREEN",
        "tags": ["a", "b"],
        "point": {"x": 1, "y": 2},
    }
    assert got[1]["text"] == "" and got[1]["note"] is None and got[1]["maybe"] is None
    assert got[1]["at"] == "1970-01-01T00:00:01Z" and got[1]["point"] is None
    assert got[2]["flag"] is False and got[2]["maybe"] == 0 and got[2]["blob"] == ""


def test_every_column_type_from_ndjson(server, owner):
    lines = [
        {
            "id": 1,
            "small": 3,
            "big": 2**100,
            "flag": True,
            "text": "",
            "blob": "00ff",
            "who": IDENTITY,
            "at": "2026-01-02T03:04:05Z",
            "note": "",
            "color": "GREEN",
            "tags": ["x"],
            "point": {"x": 3, "y": 4},
        },
        {"id": 2, "maybe": None, "note": None, "at": 5},
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    reply = post(server, "every", body, owner, "application/x-ndjson")
    assert reply.status == 200, reply
    assert reply.body["rows_inserted"] == 2
    got = rows(server, owner, "SELECT * FROM every ORDER BY id")
    assert got[0]["note"] == "" and got[0]["point"] == {"x": 3, "y": 4}
    assert got[0]["big"] == str(2**100) and got[0]["who"] == IDENTITY
    assert got[1]["note"] is None and got[1]["at"] == "1970-01-01T00:00:00.000005Z"


def test_one_bad_row_in_the_middle_refuses_all_naming_line_and_column(server, owner):
    before = state(server, owner, "item")
    reply = post(server, "item", item_csv(20_000, bad_row=5010), owner)
    assert reply.status == 400, reply
    # Line 1 is the header, so row 5010 (0-based) is line 5012.
    message = reply.body["error"]["message"]
    assert message == "line 5012, column 'price': expected f64, got 'abc'", message
    assert state(server, owner, "item") == before


def test_a_range_error_found_by_the_table_check_names_the_line(server, owner):
    before = state(server, owner, "every")
    body = "id,small\n1,1\n2,300\n"
    reply = post(server, "every", body, owner)
    assert reply.status == 400, reply
    message = reply.body["error"]["message"]
    assert message.startswith("line 3: ") and "'small'" in message and "i8" in message
    assert state(server, owner, "every") == before


def test_a_duplicate_key_is_a_conflict_naming_the_line_and_nothing_is_kept(server, owner):
    before = state(server, owner, "item")
    body = "id,name\n1,a\n2,b\n1,c\n"
    reply = post(server, "item", body, owner)
    assert reply.status == 409, reply
    assert reply.body["error"]["message"].startswith("line 4: "), reply.body
    assert state(server, owner, "item") == before


def test_a_bad_ndjson_line_is_named(server, owner):
    body = '{"id": 1}\n{"id": 2, "price": "x"}\n'
    reply = post(server, "item", body, owner, "application/x-ndjson")
    assert reply.status == 400
    assert reply.body["error"]["message"].startswith("line 2: "), reply.body
    reply = post(
        server, "item", '{"id": 1}\n\n{"id": 2, "nope": 1}\n', owner, "application/x-ndjson"
    )
    assert reply.body["error"]["message"].startswith("line 3: table 'item' has no column 'nope'")
    reply = post(server, "item", '{"id": 1}\n[1]\n', owner, "application/x-ndjson")
    assert reply.body["error"]["message"].startswith("line 2: expected a JSON object")


def test_header_mismatch_is_refused(server, owner):
    reply = post(server, "item", "id,nmae\n1,x\n", owner)
    assert reply.status == 400
    assert reply.body["error"]["message"].startswith(
        "line 1 (header): table 'item' has no column 'nmae'"
    )
    reply = post(server, "item", "name\nx\n", owner)
    assert reply.status == 400
    assert "column 'id' of table 'item' is missing and has no default" in str(reply.body)
    reply = post(server, "item", "id,id\n1,1\n", owner)
    assert "appears twice" in reply.body["error"]["message"]
    reply = post(server, "item", "id,name\n1\n", owner)
    assert reply.body["error"]["message"] == "line 2: expected 2 fields (as the header), got 1"


def test_missing_columns_take_defaults_and_auto_inc_draws_ids(server, owner):
    reply = post(server, "event", "seq,name\n5,a\n6,b\n", owner)
    assert reply.status == 200, reply
    assert rows(server, owner, "SELECT id, seq FROM event ORDER BY id") == [
        {"id": 1, "seq": 5},
        {"id": 2, "seq": 6},
    ]


def test_only_the_owner_may_bulk_insert(server, owner):
    _, stranger = server.identity()
    assert post(server, "item", item_csv(3), stranger).status == 403
    assert post(server, "item", item_csv(3), None).status == 403
    assert state(server, owner, "item")[0] == 0


def test_unknown_table_and_database_are_404(server, owner):
    reply = post(server, "nope", item_csv(3), owner)
    assert reply.status == 404 and "no table named 'nope'" in reply.body["error"]["message"]
    reply = server.request(
        "POST", "/v1/database/nodb/bulk_insert/item", "id\n1\n", owner, content_type="text/csv"
    )
    assert reply.status == 404


def test_empty_body_and_wrong_media_type_are_refused(server, owner):
    assert "the body is empty" in post(server, "item", b"", owner).body["error"]["message"]
    reply = post(server, "item", b"", owner, "application/x-ndjson")
    assert reply.status == 400 and "the body is empty" in reply.body["error"]["message"]
    reply = post(server, "item", "[]", owner, "application/json")
    assert reply.status == 400 and "text/csv" in reply.body["error"]["message"]


def test_header_only_inserts_nothing(server, owner):
    before = state(server, owner, "item")
    reply = post(server, "item", "id,name\n", owner)
    assert reply.status == 200 and reply.body["rows_inserted"] == 0
    assert state(server, owner, "item")[0] == 0 and reply.body["tx_offset"] >= before[1]


def test_idempotency_key_applies_a_batch_once(server, owner):
    path = "/v1/database/shop/bulk_insert/item"
    first = _keyed(server, path, item_csv(10), owner, "file:2")
    again = _keyed(server, path, item_csv(10), owner, "file:2")
    assert first["already_applied"] is False and again["already_applied"] is True
    assert again["tx_offset"] == first["tx_offset"] and again["rows_inserted"] == 10
    assert state(server, owner, "item")[0] == 10


def test_idempotency_keys_survive_a_restart(tmp_path: Path):
    server = start_server(tmp_path / "data", "--profile", "development")
    try:
        _, token = server.deployer()
        assert server.deploy("shop", MODULE, token).status == 201
        path = "/v1/database/shop/bulk_insert/item"
        first = _keyed(server, path, item_csv(10), token, "k:2")
    finally:
        stop_server(server, signal.SIGKILL)
    server = start_server(tmp_path / "data", "--profile", "development")
    try:
        again = _keyed(server, path, item_csv(10), token, "k:2")
        assert again == {**first, "already_applied": True}
    finally:
        stop_server(server)


def _keyed(server: Server, path: str, body: str, token: str, key: str) -> dict:
    import urllib.request

    request = urllib.request.Request(server.url + path, data=body.encode(), method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "text/csv")
    request.add_header("Idempotency-Key", key)
    with urllib.request.urlopen(request, timeout=30) as response:
        return strict_loads(response.read())


def test_a_body_over_the_limit_is_413(tmp_path: Path):
    os.environ["COSMICTRON_BULK_INSERT_BODY_BYTES_MAX"] = "10000"
    try:
        server = start_server(tmp_path / "data", "--profile", "development")
    finally:
        del os.environ["COSMICTRON_BULK_INSERT_BODY_BYTES_MAX"]
    try:
        _, token = server.deployer()
        assert server.deploy("shop", MODULE, token).status == 201
        reply = post(server, "item", item_csv(2000), token)
        assert reply.status == 413, reply
        assert reply.body["error"]["code"] == "too_large"
        assert state(server, token, "item")[0] == 0
        assert post(server, "item", item_csv(10), token).status == 200
    finally:
        stop_server(server)
