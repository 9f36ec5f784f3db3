"""``/logs`` (NDJSON, level filter, follow) and ``/metrics`` against a real server."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from tests.server.conftest import Server, strict_loads

MODULE = """
import logging
from cosmictron import *

log = logging.getLogger(__name__)

@table(public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    name: str = ""

@reducer
def add(ctx: ReducerContext, name: str) -> None:
    if not name:
        raise ValueError("an item needs a name")
    log.info("adding %s", name)
    if name.startswith("!"):
        log.warning("suspicious name %s", name)
    ctx.db.item.insert(Item(name=name))
"""


def ndjson(server: Server, query: str, token: str | None) -> tuple[int, list[dict]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{server.url}/v1/database/shop/logs{query}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/x-ndjson")
            return response.status, [strict_loads(line) for line in response.read().splitlines()]
    except urllib.error.HTTPError as error:
        return error.code, [strict_loads(error.read())]


def test_logs_are_ndjson_filtered_by_level_and_owner_only(server: Server) -> None:
    _, token = server.deployer()
    assert server.deploy("shop", MODULE, token).status == 201
    for name in ["apple", "!pear", ""]:
        server.request("POST", "/v1/database/shop/call/add", [name])
    status, lines = ndjson(server, "", token)
    assert status == 200
    messages = [(line["level"], line["message"]) for line in lines]
    assert ("INFO", "adding apple") in messages and ("WARNING", "suspicious name !pear") in messages
    failure = [line for line in lines if line["level"] == "ERROR"]
    assert len(failure) == 1 and "an item needs a name" in failure[0]["message"]
    assert failure[0]["reducer"] == "add"
    _, warnings = ndjson(server, "?level=warning", token)
    assert [line["level"] for line in warnings] == ["WARNING", "ERROR"]
    _, last = ndjson(server, "?num_lines=1", token)
    assert last == lines[-1:]
    status, error = ndjson(server, "", None)
    assert status == 403 and "only the owner" in error[0]["error"]["message"]
    status, error = ndjson(server, "?level=loud", token)
    assert status == 400 and "unknown level" in error[0]["error"]["message"]
    status, error = ndjson(server, "?num_lines=x", token)
    assert status == 400


def test_follow_streams_new_lines(server: Server) -> None:
    _, token = server.deployer()
    assert server.deploy("shop", MODULE, token).status == 201

    async def follow() -> list[dict]:
        got: list[dict] = []
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{server.url}/v1/database/shop/logs?follow=true&num_lines=0"
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
            assert reply.status == 200
            for name in ["one", "two"]:
                await asyncio.to_thread(
                    server.request, "POST", "/v1/database/shop/call/add", [name]
                )
            while len(got) < 2:
                line = await asyncio.wait_for(reply.content.readline(), 10)
                got.append(strict_loads(line))
        return got

    lines = asyncio.run(follow())
    assert [line["message"] for line in lines] == ["adding one", "adding two"]


def test_metrics_count_calls_errors_and_syncs(server: Server) -> None:
    _, token = server.deployer()
    assert server.deploy("shop", MODULE, token).status == 201
    for name in ["a", "b", "", "c"]:
        server.request("POST", "/v1/database/shop/call/add", [name])
    import urllib.request

    with urllib.request.urlopen(server.metrics_request(), timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    where = 'database="shop",reducer="add"'
    assert samples[f"cosmictron_reducer_calls_total{{{where}}}"] == 4
    assert samples[f"cosmictron_reducer_errors_total{{{where}}}"] == 1
    assert samples[f'cosmictron_reducer_duration_seconds_bucket{{{where},le="+Inf"}}'] == 4
    assert samples[f"cosmictron_reducer_duration_seconds_count{{{where}}}"] == 4
    assert samples['cosmictron_transactions_total{database="shop"}'] == 3
    assert samples["cosmictron_databases"] == 1
    assert 'cosmictron_fsync_seconds_total{database="shop"}' in samples
    assert samples['cosmictron_subscriptions{database="shop"}'] == 0
    assert samples['cosmictron_connected_clients{database="shop"}'] == 0
    assert samples['cosmictron_client_queue_messages_max{database="shop"}'] == 0
    assert re.search(r"^# TYPE cosmictron_reducer_duration_seconds histogram$", text, re.M)


def test_the_server_profile_flag_and_the_environment_follow_the_precedence(tmp_path) -> None:
    """Without --profile the environment's policy holds (this server syncs every call);
    --profile is a flag, and a profile named at a higher level fills every setting, so
    it wins over the environment (docs/guide/durability.md, "Precedence")."""
    import urllib.request

    from tests.server.conftest import start_server, stop_server

    def syncs_after_two_calls(*flags: str) -> float:
        server = start_server(
            tmp_path / f"data{len(flags)}", *flags, env={"COSMICTRON_FSYNC_POLICY": "always"}
        )
        try:
            _, token = server.deployer()
            assert server.deploy("shop", MODULE, token).status == 201
            for name in ["a", "b"]:
                server.request("POST", "/v1/database/shop/call/add", [name])
            with urllib.request.urlopen(server.metrics_request(), timeout=10) as response:
                text = response.read().decode()
            return next(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('cosmictron_fsync_total{database="shop"}')
            )
        finally:
            stop_server(server)

    assert syncs_after_two_calls() >= 2
    assert syncs_after_two_calls("--profile", "development") == 0
