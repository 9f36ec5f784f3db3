"""``logs`` and ``subscribe`` against a fake server that speaks DESIGN.md §5's contract.

The real routes (NDJSON logs, the ``v1.json.cosmictron`` WebSocket) are being built on
other branches; until they merge, this stand-in (an aiohttp app on a thread, replacing
only the outside world) checks that the CLI sends what the contract says and prints
what it receives. tests/cli/test_server_commands.py has the same checks against the
real server, skipped until then.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.cli.test_server_commands import one_line_error, run

LOG_LINES = [
    {"ts_us": 1_700_000_000_000_000, "level": "DEBUG", "message": "warming up", "reducer": None},
    {
        "ts_us": 1_700_000_001_000_000,
        "level": "INFO",
        "message": "message 1 recorded",
        "reducer": "run_agent",
    },
    {
        "ts_us": 1_700_000_002_000_000,
        "level": "ERROR",
        "message": "no task 9",
        "reducer": "complete_task",
    },
]
SEEN = web.AppKey("seen", list)
TASK = {"id": 1, "title": "Read the Cosmictron tutorial", "done": False, "priority": 1}


async def logs(request: web.Request) -> web.StreamResponse:
    request.app[SEEN].append(dict(request.query))
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    for line in LOG_LINES[-int(request.query.get("num_lines", len(LOG_LINES))) :]:
        await response.write(json.dumps(line).encode() + b"\n")
    return response


async def subscribe(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(protocols=("v1.json.cosmictron",))
    await socket.prepare(request)
    await socket.send_json(
        {"IdentityToken": {"identity": "ab", "token": "secret", "connection_id": "01"}}
    )
    message = (await socket.receive_json())["Subscribe"]
    request.app[SEEN].append(message)
    ids = {"request_id": message["request_id"], "query_id": message["query_id"]}
    if "nope" in message["query_strings"][0]:
        await socket.send_json({"SubscriptionError": {**ids, "error": "no table named 'nope'"}})
        await socket.close()
        return socket
    tables = [{"table_name": "task", "rows": [TASK]}]
    await socket.send_json({"SubscribeApplied": {**ids, "tx_offset": 1, "tables": tables}})
    for offset in (2, 3):
        row = {**TASK, "id": offset, "title": f"task {offset}"}
        change = {"table_name": "task", "inserts": [row], "deletes": [TASK] if offset == 3 else []}
        update = {"tx_offset": offset, "timestamp": "2026-01-01T00:00:00Z", "tables": [change]}
        await socket.send_json({"TransactionUpdate": update})
    await socket.receive()  # until the client leaves
    return socket


@pytest.fixture
def fake_server() -> Iterator[tuple[str, list[dict]]]:
    """The stand-in on a free port, in its own thread; yields its URL and what it saw."""
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/v1/database/qs/logs", logs)
    app.router.add_get("/v1/database/qs/subscribe", subscribe)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    host, port = runner.addresses[0][:2]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://{host}:{port}", app[SEEN]
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_logs_prints_lines_and_filters_by_level(fake_server, tmp_path: Path):
    url, seen = fake_server
    human = run("logs", "qs", "--level", "info", "--server", url, config=tmp_path)
    assert human.returncode == 0, human.stderr
    assert human.stdout.splitlines() == [
        "2023-11-14T22:13:21.000000Z INFO     [run_agent] message 1 recorded",
        "2023-11-14T22:13:22.000000Z ERROR    [complete_task] no task 9",
    ]
    assert seen == [{"level": "INFO"}]
    document = run("logs", "qs", "-n", "1", "--json", "--server", url, config=tmp_path)
    assert json.loads(document.stdout) == {"database": "qs", "logs": LOG_LINES[-1:]}
    assert seen[-1] == {"num_lines": "1"}


def test_logs_follow_prints_ndjson(fake_server, tmp_path: Path):
    url, seen = fake_server
    result = run("logs", "qs", "-f", "--json", "--server", url, config=tmp_path)
    assert [json.loads(line) for line in result.stdout.splitlines()] == LOG_LINES
    assert seen == [{"follow": "true"}]
    one_line_error(
        run("logs", "other", "--server", url, config=tmp_path), 3, "not a Cosmictron server"
    )


def test_subscribe_prints_initial_rows_then_updates(fake_server, tmp_path: Path):
    url, seen = fake_server
    query = "SELECT * FROM task"
    result = run("subscribe", "qs", query, "--num-updates", "2", "--server", url, config=tmp_path)
    assert result.returncode == 0, result.stderr
    assert seen == [{"request_id": 1, "query_id": 1, "query_strings": [query]}]
    assert "task: 1 row at tx_offset 1" in result.stdout
    assert "Read the Cosmictron tutorial" in result.stdout
    assert "tx_offset 3 at 2026-01-01T00:00:00Z" in result.stdout
    assert '  - task {"id": 1, "title": "Read the Cosmictron tutorial"' in result.stdout
    assert '  + task {"id": 3, "title": "task 3"' in result.stdout


def test_subscribe_json_is_ndjson_without_the_token(fake_server, tmp_path: Path):
    url, _ = fake_server
    args = ("subscribe", "qs", "SELECT * FROM task", "--num-updates", "1", "--json")
    result = run(*args, "--server", url, config=tmp_path)
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert [next(iter(m)) for m in messages] == [
        "IdentityToken",
        "SubscribeApplied",
        "TransactionUpdate",
    ]
    assert "token" not in messages[0]["IdentityToken"]


def test_subscribe_errors_are_one_line(fake_server, tmp_path: Path):
    url, _ = fake_server
    result = run("subscribe", "qs", "SELECT * FROM nope", "--server", url, config=tmp_path)
    one_line_error(result, 1, "no table named 'nope'")
    refused = run("subscribe", "other", "SELECT 1", "--server", url, config=tmp_path)
    one_line_error(refused, 3, "not a Cosmictron server")
