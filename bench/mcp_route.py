"""MCP benchmark: what a tool call through ``POST .../mcp`` costs over the plain HTTP route.

    .venv/bin/python bench/mcp_route.py [--quick] [--out bench/results/mcp.json] [--tmpdir DIR]

One server (``cosmictron-cli start --profile development``) hosting the quickstart
module. One client, one request at a time, keep-alive, as the operator, in three ways
measured in the same run and alternated in rounds so drift hits all alike:

- ``http``: the peer, ``POST /v1/database/quickstart/sql`` with the statement;
- ``mcp``: the same statement as a ``tools/call`` of ``run_sql``, one JSON-RPC message
  per POST (the stateless route: no handshake), read as a client reads it;
- ``mcp sdk``: the same tool call through the official SDK's client (``mcp.Client``
  pinned to 2026-07-28), what an agent built on the SDK pays.

Prints p50/p99 per way and the ratio of each MCP p50 to the HTTP route's (the price of
the protocol: the SDK's transport, JSON-RPC and pydantic on both sides). Writes JSON
(bench/common.py). Needs the ``mcp`` extra. (Not ``bench/mcp.py``: this directory is on
``sys.path``, and a ``mcp.py`` there would hide the SDK.)
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)
from figures import distribution, ratio  # noqa: E402
from processes import CliServer  # noqa: E402

QUERY = "SELECT title, priority FROM task WHERE id = 1"
MODULE = HERE.parent / "examples" / "quickstart" / "app.py"
WAYS = ("http", "mcp", "mcp sdk")


def http_way(server: CliServer, count: int) -> list[float]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "text/plain"}
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", "/v1/database/quickstart/sql", QUERY, headers)
            reply = connection.getresponse()
            body = json.loads(reply.read())
            times.append((time.perf_counter() - started) * 1000)
            assert reply.status == 200 and body["rows"], body
    finally:
        connection.close()
    return times


def mcp_way(server: CliServer, count: int) -> list[float]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    headers = {
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    times = []
    try:
        for n in range(count):
            message = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {"name": "run_sql", "arguments": {"query": QUERY}},
            }
            started = time.perf_counter()
            connection.request("POST", "/v1/database/quickstart/mcp", json.dumps(message), headers)
            reply = connection.getresponse()
            body = json.loads(reply.read())
            times.append((time.perf_counter() - started) * 1000)
            assert reply.status == 200 and not body["result"]["isError"], body
    finally:
        connection.close()
    return times


def sdk_way(server: CliServer, count: int) -> list[float]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def run() -> list[float]:
        url = server.url + "/v1/database/quickstart/mcp"
        headers = {"Authorization": f"Bearer {server.token}"}
        times = []
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode="2026-07-28", cache=None) as client:
                for _ in range(count):
                    started = time.perf_counter()
                    result = await client.call_tool("run_sql", {"query": QUERY})
                    times.append((time.perf_counter() - started) * 1000)
                    assert not result.is_error, result
        return times

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__ or "", "mcp.json", argv)
    count, rounds = (100, 3) if args.quick else (1000, 5)
    started = time.perf_counter()
    measured: dict[str, list[float]] = {way: [] for way in WAYS}
    runs = {"http": http_way, "mcp": mcp_way, "mcp sdk": sdk_way}
    with temp_parent(args.tmpdir, "cosmictron-bench-mcp-") as parent:
        machine = machine_info(parent)
        server = CliServer(parent, "mcp-", profile="development")
        try:
            server.deploy("quickstart", MODULE.read_bytes())
            for way in WAYS:  # warm up: imports, caches, the session manager
                runs[way](server, 20)
            for _ in range(rounds):
                for way in WAYS:
                    measured[way] += runs[way](server, count)
        finally:
            server.stop()
    results: dict[str, Any] = {way: distribution(measured[way]) for way in WAYS}  # milliseconds
    base = results["http"]["p50"]
    summary = [
        {"key": f"{way.replace(' ', '_')}_p50_over_http", "ratio": ratio(results[way]["p50"], base)}
        for way in WAYS[1:]
    ]
    rows = [
        [
            way,
            f"{results[way]['p50']:.2f}",
            f"{results[way]['p99']:.2f}",
            f"{ratio(results[way]['p50'], base) or 0:.2f}x",
        ]
        for way in WAYS
    ]
    print(f"run_sql ({QUERY!r}), {count} x {rounds} requests per way, one at a time")
    print(text_table(["way", "p50 ms", "p99 ms", "p50 / http"], rows))
    print(run_took(started, args.mode))
    write_results(
        args.out,
        "mcp",
        args.mode,
        {"count": count, "rounds": rounds, "query": QUERY},
        machine,
        started,
        results,
        summary=summary,
    )


if __name__ == "__main__":
    main()
