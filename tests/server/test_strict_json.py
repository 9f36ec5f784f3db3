"""Strict JSON in and out (issue 21, item 4), over real sockets.

``Infinity``, ``-Infinity``, ``NaN`` and ``1e400`` (which overflows to infinity) are
refused on input with a 400 naming the argument, parameter or line; a reducer that
stores or returns a non-finite float fails and commits nothing; and no reply, update or
export carries one (every test here reads through ``strict_loads``). ``-0.0`` is finite
and round-trips.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.conftest import (
    Server,
    fresh_database,
    shared_server,
    strict_loads,
)
from tests.server.rawws import RawWebSocket

MODULE = """
import logging
from cosmictron import *

@table(public=True)
class Reading:
    id: int = field(primary_key=True, auto_inc=True)
    value: float = 0.0
    series: list[float] = field(default=[])

@reducer
def record(ctx: ReducerContext, value: float, series: list[float] = []) -> int:
    return ctx.db.reading.insert(Reading(value=value, series=series)).id

@reducer
def many(ctx: ReducerContext, count: int) -> None:
    for number in range(count):
        ctx.db.reading.insert(Reading(value=number / 3, series=[-0.0, 1e308]))

@reducer
def overflow(ctx: ReducerContext, value: float) -> None:
    ctx.db.reading.insert(Reading(value=value * 1e308 * 10))

@reducer
def untyped(ctx: ReducerContext, value: float):
    ctx.db.reading.insert(Reading(value=value))
    return {"scaled": [value * 1e308 * 10]}
"""

NON_FINITE = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400"]


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module; none of its tests may make it print a traceback."""
    with shared_server(tmp_path_factory, refuse_tracebacks=True) as server:
        yield server


@pytest.fixture
def readings(lab_server: Server) -> Iterator[tuple[Server, str]]:
    """A new ``lab`` database for this test."""
    with fresh_database(lab_server, "lab", MODULE) as token:
        yield lab_server, token


def rows(server: Server, token: str) -> list[dict[str, Any]]:
    reply = server.request("POST", "/v1/database/lab/sql", "SELECT * FROM reading", token)
    assert reply.status == 200, reply
    return list(reply.body["rows"])


def assert_refused(reply: Any, code: str, *words: str) -> None:
    assert reply.status == 400, reply
    assert reply.body["error"]["code"] == code, reply
    for word in words:
        assert word in reply.body["error"]["message"], reply


def test_call_arguments(readings: tuple[Server, str]) -> None:
    server, token = readings
    for literal in NON_FINITE:
        for body in (f"[{literal}]", f'{{"value": {literal}}}', f"[1.0, [2.0, {literal}]]"):
            reply = server.request(
                "POST", "/v1/database/lab/call/record", body, token, "application/json"
            )
            assert_refused(reply, "invalid_request", "not finite")
            name = "'series'" if body.startswith("[1.0") else "'value'"
            assert name in reply.body["error"]["message"], reply
    assert rows(server, token) == []
    reply = server.request(
        "POST", "/v1/database/lab/call/record", "[-0.0, [0.0, -0.0]]", token, "application/json"
    )
    assert reply.status == 200, reply
    (row,) = rows(server, token)
    assert row["value"] == 0.0 and str(row["value"]) == "-0.0", row


def test_sql_parameters_and_computed_values(readings: tuple[Server, str]) -> None:
    server, token = readings
    for literal in NON_FINITE:
        query = "SELECT * FROM reading WHERE value < :limit"
        body = f'{{"query": "{query}", "params": {{"limit": {literal}}}}}'
        reply = server.request("POST", "/v1/database/lab/sql", body, token, "application/json")
        assert_refused(reply, "not_finite", "'limit'")
    assert server.request("POST", "/v1/database/lab/call/record", [10.0], token).status == 200
    reply = server.request(
        "POST", "/v1/database/lab/sql", "SELECT value * 1e308 AS big FROM reading", token
    )
    assert_refused(reply, "not_finite", "inf")  # refused, never a bare Infinity


def test_reducers_cannot_store_or_return_non_finite(readings: tuple[Server, str]) -> None:
    server, token = readings
    reply = server.request("POST", "/v1/database/lab/call/overflow", [10.0], token)
    assert reply.status == 400 and "not finite" in reply.body["error"]["message"], reply
    reply = server.request("POST", "/v1/database/lab/call/untyped", [10.0], token)
    assert reply.status == 400 and "returned inf" in reply.body["error"]["message"], reply
    assert rows(server, token) == []  # neither committed


def test_bulk_rows(readings: tuple[Server, str]) -> None:
    server, token = readings
    for literal in NON_FINITE:
        body = f'{{"value": 1.0}}\n{{"value": {literal}}}\n'
        reply = server.request(
            "POST", "/v1/database/lab/bulk_insert/reading", body, token, "application/x-ndjson"
        )
        assert_refused(reply, "invalid_request", "line 2", "not finite")
    for cell in ["inf", "-inf", "nan", "1e400", "Infinity"]:
        body = f"value\n1.5\n{cell}\n"
        reply = server.request(
            "POST", "/v1/database/lab/bulk_insert/reading", body, token, "text/csv"
        )
        assert_refused(reply, "invalid_request", "line 3")
    assert rows(server, token) == []


def test_websocket_messages_and_updates(readings: tuple[Server, str]) -> None:
    server, token = readings
    ws = RawWebSocket(server.url, "lab", token)
    assert ws.status == 101
    ws.receive_json()  # IdentityToken (strict_loads reads every frame)
    ws.send_json(
        {"Subscribe": {"request_id": 1, "query_id": 1, "query_strings": ["SELECT * FROM reading"]}}
    )
    assert "SubscribeApplied" in ws.receive_json()
    for number, literal in enumerate(NON_FINITE):
        ws.send(
            f'{{"CallReducer": {{"request_id": {number}, "reducer": "record", '
            f'"args": [{literal}]}}}}'
        )
        result = ws.receive_json()["ReducerResult"]
        assert result["status"] == "failed" and "not finite" in result["error"], result
        assert "'value'" in result["error"], result
    ws.send('{"CallReducer": {"request_id": "ok", "reducer": "record", "args": [1e308]}}')
    kinds = {next(iter(ws.receive_json())) for _ in range(2)}
    assert kinds == {"TransactionUpdate", "ReducerResult"}, kinds
    ws.send(
        '{"OneOffQuery": {"request_id": "q", '
        '"query_string": "SELECT value * 10 AS big FROM reading"}}'
    )
    reply = ws.receive_json()["OneOffQueryResult"]
    assert reply["error_code"] == "not_finite", reply
    ws.close()


def test_exports_parse_strictly(readings: tuple[Server, str]) -> None:
    server, token = readings
    for value in [1e308, -1e308, 5e-324, -0.0]:
        assert (
            server.request("POST", "/v1/database/lab/call/record", [value, [value]], token).status
            == 200
        )
    request = urllib.request.Request(f"{server.url}/v1/database/lab/export/reading?format=ndjson")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        exported = [strict_loads(line) for line in response.read().splitlines()]
    assert [row["value"] for row in exported] == [1e308, -1e308, 5e-324, -0.0]


def test_the_strict_parser_refuses_what_it_must() -> None:
    """The helper every server test reads through; a test that cannot fail proves nothing."""
    for text in ["Infinity", "[-Infinity]", '{"a": NaN}', "1e400", "[-1e400]"]:
        with pytest.raises(ValueError):
            strict_loads(text)
    assert strict_loads("[1e308, -0.0]") == [1e308, -0.0]


def test_large_updates_made_off_the_loop_reach_every_subscriber(
    readings: tuple[Server, str],
) -> None:
    """An update of 1500 rows (past feed.LARGE_UPDATE_ROWS) is encoded on the writer's
    thread once for both subscribers; a one-row update after it still comes in order."""
    server, token = readings
    sockets = [RawWebSocket(server.url, "lab", token) for _ in range(2)]
    subscribe = {
        "Subscribe": {"request_id": 1, "query_id": 1, "query_strings": ["SELECT * FROM reading"]}
    }
    for ws in sockets:
        ws.receive_json()  # IdentityToken
        ws.send_json(subscribe)
        assert ws.receive_json()["SubscribeApplied"]["tables"][0]["rows"] == []
    assert server.request("POST", "/v1/database/lab/call/many", [1500], token).status == 200
    assert server.request("POST", "/v1/database/lab/call/record", [2.5], token).status == 200
    for ws in sockets:
        first = ws.receive_json()["TransactionUpdate"]
        (table,) = first["tables"]
        assert len(table["inserts"]) == 1500 and table["deletes"] == []
        assert {row["series"][0] for row in table["inserts"]} == {-0.0}
        second = ws.receive_json()["TransactionUpdate"]
        assert second["tx_offset"] > first["tx_offset"]
        assert [row["value"] for row in second["tables"][0]["inserts"]] == [2.5]
        ws.close()
