"""Query budgets and rate limits over real sockets (HTTP and WebSocket).

The finding these tests pin: ``SELECT COUNT(*) FROM item a, item b, item c WHERE a.v +
b.v + c.v = -1`` on a 3,000-row public table, sent without a token, ran for minutes and
every reducer call to the database timed out meanwhile. Now it is stopped by the
anonymous budget with ``query_cancelled``, and reducer calls sent while it runs commit
(and are answered) before it is stopped. The budgets and rates are made small through
the ``COSMICTRON_*`` variables the server reads, so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.server.conftest import Server, start_server, stop_server, strict_loads
from tests.server.test_websocket import PROTOCOL, Client

MODULE = """
from cosmictron import *

@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)
    v: int = 0

@reducer
def seed(ctx: ReducerContext, n: int) -> None:
    for i in range(n):
        Item.insert(Item(id=i, v=i))

@reducer
def add(ctx: ReducerContext, id: int, v: int) -> int:
    Item.insert(Item(id=id, v=v))
    return id
"""

CARTESIAN = "SELECT COUNT(*) FROM item a, item b, item c WHERE a.v + b.v + c.v = -1"
SUBSCRIBABLE_CARTESIAN = "SELECT a.* FROM item a, item b, item c WHERE a.v + b.v + c.v = -1"

BUDGETS = {
    "COSMICTRON_QUERY_ANONYMOUS_TIME_S_MAX": "3",
    "COSMICTRON_QUERY_ANONYMOUS_ROWS_EXAMINED_MAX": str(10**12),
    "COSMICTRON_QUERY_ANONYMOUS_ROWS_MAX": "100",
    "COSMICTRON_QUERY_ROWS_EXAMINED_MAX": "2000000",
}


def serve(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[Server, str]]:
    server = start_server(tmp_path / "data", "--profile", "development", env=env)
    try:
        _, token = server.deployer()
        assert server.deploy("shop", MODULE, token).status == 201
        assert server.request("POST", "/v1/database/shop/call/seed", [3000], token).status == 200
        yield server, token
    finally:
        out = stop_server(server)
        assert server.process.returncode == 0, out


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    yield from serve(tmp_path, BUDGETS)


def sql(server: Server, text: str, token: str | None = None) -> Any:
    return server.request(
        "POST", "/v1/database/shop/sql", text, token=token, content_type="text/plain"
    )


def test_the_anonymous_cartesian_query_is_cancelled_and_calls_commit_meanwhile(shop):
    server, token = shop
    replies: list[Any] = []
    query = threading.Thread(target=lambda: replies.append(sql(server, CARTESIAN)))
    query.start()
    time.sleep(0.5)  # let the query start; it runs for its 3 s budget
    calls = []
    for i in range(5):
        calls.append(server.request("POST", "/v1/database/shop/call/add", [10_000 + i, -1]))
        calls.append(server.request("POST", "/v1/database/shop/call/add", [20_000 + i, -1], token))
    answered_while_the_query_ran = not replies
    query.join()
    assert answered_while_the_query_ran, "a reducer call waited for the query"
    assert [call.status for call in calls] == [200] * 10
    assert [call.body["return_value"] for call in calls[:2]] == [10_000, 20_000]
    (reply,) = replies
    assert reply.status == 422, reply
    assert reply.body["error"]["code"] == "query_cancelled"
    message = reply.body["error"]["message"]
    assert "3 s (its time budget)" in message
    assert "query_anonymous_time_s_max" in message and "POST /v1/identity" in message
    count = sql(server, "SELECT COUNT(*) FROM item WHERE v = -1", token)
    assert count.body["rows"] == [{"COUNT(*)": 10}]


def test_a_token_gets_the_larger_budget_and_its_own_limits(shop):
    server, token = shop
    reply = sql(server, CARTESIAN, token)
    assert reply.status == 422, reply
    assert reply.body["error"]["code"] == "resource_exhausted"
    assert "more than 2,000,000 rows" in reply.body["error"]["message"]
    assert "COSMICTRON_QUERY_ROWS_EXAMINED_MAX" in reply.body["error"]["message"]
    anonymous = sql(server, "SELECT * FROM item")
    assert anonymous.status == 422 and anonymous.body["error"]["code"] == "resource_exhausted"
    assert "more than 100 rows" in anonymous.body["error"]["message"]
    assert len(sql(server, "SELECT * FROM item", token).body["rows"]) == 3000


def ws_run(server: Server, scenario: Any) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as http:

            async def connect(token: str | None = None) -> Client:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                url = f"{server.url}/v1/database/shop/subscribe"
                ws = await http.ws_connect(url, protocols=(PROTOCOL,), headers=headers)
                client = Client(ws)
                await client.expect("IdentityToken")
                return client

            await scenario(connect)

    asyncio.run(main())


def test_over_websocket_the_query_and_the_subscription_are_stopped_and_calls_go_on(shop):
    server, token = shop

    async def scenario(connect: Any) -> None:
        anonymous = await connect()
        caller = await connect(token)
        query_id = await anonymous.send("OneOffQuery", query_string=CARTESIAN)
        await asyncio.sleep(0.5)
        results = [await caller.call("add", 30_000 + i, -2) for i in range(5)]
        assert [result["status"] for result in results] == ["committed"] * 5
        kind, body = await anonymous.receive()
        assert kind == "OneOffQueryResult" and body["request_id"] == query_id
        assert body["error_code"] == "query_cancelled"
        assert "query_anonymous_time_s_max" in body["error"]

        await anonymous.send("Subscribe", query_id=7, query_strings=[SUBSCRIBABLE_CARTESIAN])
        error = await anonymous.expect("SubscriptionError")
        assert error["query_id"] == 7 and error["error_code"] == "query_cancelled"
        # The connection is kept, and the subscription was not registered.
        applied = await anonymous.subscribe(8, "SELECT * FROM item WHERE v = -2")
        assert len(applied["tables"][0]["rows"]) == 5

    ws_run(server, scenario)


RATES = {
    "COSMICTRON_RATE_ANONYMOUS_QUERIES_PER_S": "0.01",
    "COSMICTRON_RATE_ANONYMOUS_QUERIES_BURST": "3",
    "COSMICTRON_RATE_ANONYMOUS_CALLS_PER_S": "0.01",
    "COSMICTRON_RATE_ANONYMOUS_CALLS_BURST": "3",
    "COSMICTRON_RATE_ANONYMOUS_CONNECTIONS_PER_S": "0.01",
    "COSMICTRON_RATE_ANONYMOUS_CONNECTIONS_BURST": "2",
    "COSMICTRON_RATE_QUERIES_PER_S": "0.01",
    "COSMICTRON_RATE_QUERIES_BURST": "4",
    "COSMICTRON_RATE_CALLS_PER_S": "0.01",
    "COSMICTRON_RATE_CALLS_BURST": "4",  # the fixture's seed call is one
    "COSMICTRON_RATE_SUBSCRIPTIONS_PER_S": "0.01",
    "COSMICTRON_RATE_SUBSCRIPTIONS_BURST": "2",
    "COSMICTRON_RATE_CONNECTIONS_PER_S": "0.01",
    "COSMICTRON_RATE_CONNECTIONS_BURST": "2",
}


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    yield from serve(tmp_path, RATES)


def raw(server: Server, method: str, path: str, body: bytes, token: str | None = None):
    """(status, headers, JSON body): the test client's ``request`` hides headers."""
    request = urllib.request.Request(server.url + path, data=body, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, strict_loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, strict_loads(error.read())


def test_http_rate_limits_answer_429_with_retry_after(limited):
    server, token = limited
    query = json.dumps({"query": "SELECT COUNT(*) FROM item"}).encode()
    statuses = [raw(server, "POST", "/v1/database/shop/sql", query)[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, headers, body = raw(server, "POST", "/v1/database/shop/sql", query)
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "rate_limited"
    assert "rate_anonymous_queries_per_s" in body["error"]["message"]
    # A token has a bucket of its own.
    assert raw(server, "POST", "/v1/database/shop/sql", query, token)[0] == 200

    call = json.dumps([5999, 1]).encode()
    path = "/v1/database/shop/call/add"
    statuses = [raw(server, "POST", path, json.dumps([5000 + i, 1]).encode())[0] for i in range(3)]
    assert statuses == [200, 200, 200]
    status, headers, body = raw(server, "POST", path, call)
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert "Retry-After" in headers
    # The refused call did nothing.
    rows = raw(server, "POST", "/v1/database/shop/sql", query, token)[2]["rows"]
    assert rows == [{"COUNT(*)": 3003}]


def test_websocket_rate_limits_refuse_one_request_and_keep_the_connection(limited):
    server, token = limited

    async def scenario(connect: Any) -> None:
        client = await connect(token)
        # Calls: the seed used one of the 4; three more pass, the next is refused.
        results = [await client.call("add", 6000 + i, 1) for i in range(4)]
        assert [r["status"] for r in results] == ["committed"] * 3 + ["failed"]
        assert results[-1]["error_code"] == "rate_limited"
        assert "rate_calls_per_s" in results[-1]["error"]
        # Queries: four pass (shared with HTTP for this identity), then refused.
        for _ in range(4):
            await client.send("OneOffQuery", query_string="SELECT COUNT(*) FROM item")
            assert "tables" in await client.expect("OneOffQueryResult")
        await client.send("OneOffQuery", query_string="SELECT COUNT(*) FROM item")
        refused = await client.expect("OneOffQueryResult")
        assert refused["error_code"] == "rate_limited"
        # Subscriptions: two pass, the third is refused; the connection still serves.
        await client.subscribe(1, "SELECT * FROM item WHERE v = 100")
        await client.subscribe(2, "SELECT * FROM item WHERE v = 101")
        await client.send("Subscribe", query_id=3, query_strings=["SELECT * FROM item"])
        error = await client.expect("SubscriptionError")
        assert error["query_id"] == 3 and error["error_code"] == "rate_limited"
        await client.send("Unsubscribe", query_id=1)
        assert (await client.expect("UnsubscribeApplied"))["query_id"] == 1

    ws_run(server, scenario)


def test_websocket_connections_are_rate_limited_before_the_upgrade(limited):
    server, token = limited

    async def scenario(connect: Any) -> None:
        await connect()
        await connect()
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await connect()
        assert caught.value.status == 429
        await connect(token)  # an identity's bucket is its own

    ws_run(server, scenario)
