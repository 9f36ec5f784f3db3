"""SQL byte and depth budgets over a real server and real sockets (issue 21).

The finding: a 2 kB anonymous query concatenating one 1 MB parameter with itself built
a 256 MB value and grew the server by gigabytes. Here that attack is refused (422
``resource_exhausted`` naming the anonymous value limit) and the server's resident set
(``VmRSS`` of its process, from /proc) grows by a few MB at most over twenty attacks.
The other limits are crossed with small values the server reads from its environment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmictron import limits
from tests.server.conftest import Server, start_server, stop_server

MODULE = """
from cosmictron import *

@table(public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@reducer
def fill(ctx: ReducerContext, count: int, size: int) -> None:
    for _ in range(count):
        ctx.db.item.insert(Item(text="x" * size))
"""

RESULT_BYTES_MAX = 50_000
ANONYMOUS_RESULT_BYTES_MAX = 20_000
ANONYMOUS_HELD_BYTES_MAX = 10_000


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    env = {
        "COSMICTRON_QUERY_RESULT_BYTES_MAX": str(RESULT_BYTES_MAX),
        "COSMICTRON_QUERY_ANONYMOUS_RESULT_BYTES_MAX": str(ANONYMOUS_RESULT_BYTES_MAX),
        "COSMICTRON_QUERY_ANONYMOUS_HELD_BYTES_MAX": str(ANONYMOUS_HELD_BYTES_MAX),
    }
    server = start_server(tmp_path / "server-data", "--profile", "development", env=env)
    try:
        _, token = server.deployer()
        assert server.deploy("shop", MODULE, token).status == 201
        reply = server.request("POST", "/v1/database/shop/call/fill", [30, 1000], token)
        assert reply.status == 200, reply
        yield server, token
    finally:
        out = stop_server(server)
        assert "Traceback" not in out, out


def rss_bytes(server: Server) -> int:
    """The server process's resident set size, from /proc/<pid>/status."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def sql(server: Server, query: str, params: dict[str, Any], token: str | None = None) -> Any:
    body = {"query": query, "params": params}
    return server.request("POST", "/v1/database/shop/sql", body, token)


def assert_error(reply: Any, status: int, code: str, *words: str) -> None:
    assert reply.status == status, reply
    assert reply.body["error"]["code"] == code, reply
    for word in words:
        assert word in reply.body["error"]["message"], reply


def test_the_anonymous_self_concatenation_attack_is_refused_and_rss_stays_flat(
    served: tuple[Server, str],
) -> None:
    server, token = served
    doubled = ":p"
    for _ in range(8):  # 256 copies of :p, the 256 MB value of the finding
        doubled = f"({doubled}||{doubled})"
    attack = f"SELECT {doubled} FROM item"
    assert len(attack) < 2600
    big = "a" * 1_000_000
    reply = sql(server, attack, {"p": big})  # warm up: the first request allocates
    assert_error(reply, 422, "resource_exhausted", "sql_anonymous_value_bytes_max")
    assert f"{limits.sql_anonymous_value_bytes_max:,} bytes" in reply.body["error"]["message"]
    before = rss_bytes(server)
    started = time.monotonic()
    for _ in range(20):
        reply = sql(server, attack, {"p": big})
        assert_error(reply, 422, "resource_exhausted", "COSMICTRON_SQL_ANONYMOUS_VALUE_BYTES_MAX")
    growth = rss_bytes(server) - before
    each_ms = (time.monotonic() - started) / 20 * 1000
    print(f"RSS growth over 20 attacks: {growth / 1e6:.1f} MB; {each_ms:.0f} ms per attack")
    assert growth < 16_000_000, f"the server grew by {growth:,} bytes"
    # the same query with a token gets the larger limit, and is still refused
    reply = sql(server, attack, {"p": big}, token)
    assert_error(reply, 422, "resource_exhausted", "limits.sql_value_bytes_max")
    assert "anonymous" not in reply.body["error"]["message"]
    assert server.request("GET", "/v1/health").status == 200
    assert sql(server, "SELECT :p || :p FROM item WHERE id = 1", {"p": "ab"}).status == 200


def test_result_bytes_past_the_callers_limit_are_refused(served: tuple[Server, str]) -> None:
    server, token = served
    query = "SELECT text FROM item"  # 30 rows of 1,000 characters: 30,000 bytes
    assert_error(
        sql(server, query, {}),
        422,
        "resource_exhausted",
        f"{ANONYMOUS_RESULT_BYTES_MAX:,} bytes",
        "COSMICTRON_QUERY_ANONYMOUS_RESULT_BYTES_MAX",
    )
    assert len(sql(server, query, {}, token).body["rows"]) == 30
    assert_error(
        sql(server, "SELECT text || text FROM item", {}, token),
        422,
        "resource_exhausted",
        f"{RESULT_BYTES_MAX:,} bytes",
        "COSMICTRON_QUERY_RESULT_BYTES_MAX",
    )


def test_parameters_past_their_count_or_bytes_are_400_and_413(tmp_path: Path) -> None:
    env = {"COSMICTRON_SQL_PARAMS_COUNT_MAX": "3", "COSMICTRON_SQL_PARAMS_BYTES_MAX": "500"}
    server = start_server(tmp_path / "server-data", "--profile", "development", env=env)
    try:
        _, token = server.deployer()
        assert server.deploy("shop", MODULE, token).status == 201
        query = "SELECT id FROM item WHERE id = :id"
        assert sql(server, query, {"id": 1, "unused": "x" * 400}).status == 200
        assert_error(
            sql(server, query, {"id": 1, "a": 1, "b": 2, "c": 3}),
            400,
            "invalid_request",
            "more than 3",
            "COSMICTRON_SQL_PARAMS_COUNT_MAX",
        )
        assert_error(
            sql(server, query, {"id": 1, "unused": "x" * 500}),
            413,
            "too_large",
            "500 bytes",
            "COSMICTRON_SQL_PARAMS_BYTES_MAX",
        )
        assert server.request("GET", "/v1/health").status == 200
    finally:
        out = stop_server(server)
        assert "Traceback" not in out, out


def test_nesting_past_the_sql_limits_is_400_too_deep(served: tuple[Server, str]) -> None:
    server, _ = served
    deep = "SELECT * FROM item WHERE " + "(" * 5000 + "id = 1" + ")" * 5000
    assert_error(sql(server, deep, {}), 400, "too_deep", "limits.sql_depth_max")
    chain = "SELECT * FROM item WHERE " + " AND ".join(["id = 1"] * 1000)
    assert_error(sql(server, chain, {}), 400, "too_deep", "limits.sql_expression_depth_max")
    assert sql(server, "SELECT id FROM item WHERE ((id = 1))", {}).body["rows"] == [{"id": 1}]


def test_a_sort_holding_past_the_anonymous_limit_is_refused(served: tuple[Server, str]) -> None:
    server, token = served
    query = "SELECT id FROM item ORDER BY text || id"  # sorts 30 keys of 1,000+ characters
    assert_error(
        sql(server, query, {}),
        422,
        "resource_exhausted",
        f"{ANONYMOUS_HELD_BYTES_MAX:,} bytes",
        "COSMICTRON_QUERY_ANONYMOUS_HELD_BYTES_MAX",
    )
    assert len(sql(server, query, {}, token).body["rows"]) == 30
