"""The load generator's HTTP calls: ``POST /v1/database/bench/call/add_task``, keep-alive.

Each client is one aiohttp session with a bearer token (the same token on every request,
as a real HTTP client sends it). Closed loop: one request in flight per client, over one
kept-alive connection. "Pipelined": ``depth`` requests in flight per client, each on its
own kept-alive connection of the client's pool (HTTP/1.1 has no usable pipelining), so
16 clients 16 deep hold 256 connections.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .load import Tally, summarize, window_markers


async def http_worker(
    session: Any, url: str, index: int, tally: Tally, lane: int, depth: int
) -> None:
    """One request at a time until the window ends (``depth`` of these run per client)."""
    clock = time.perf_counter
    n = lane
    while True:
        body = f'["task {index}-{n}",{n % 100}]'.encode()
        sent = clock()
        async with session.post(url, data=body) as reply:
            text = await reply.read()
            ok = reply.status == 200
        now = clock()
        tally.complete(sent, now, ok, None if ok else text.decode(errors="replace")[:200])
        n += depth
        if now >= tally.end:
            return


async def http_load(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    depth = spec["depth"]
    headers = {"Authorization": f"Bearer {spec['token']}", "Content-Type": "application/json"}
    sessions = [
        aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(limit=depth, force_close=False)
        )
        for _ in range(spec["clients"])
    ]
    url = spec["http_url"]
    try:
        start = time.perf_counter() + spec["warmup"]
        end = start + spec["seconds"]
        tallies = [Tally(start, end) for _ in sessions]
        marker = asyncio.create_task(window_markers(start, end))
        await asyncio.gather(
            *(
                http_worker(session, url, i, tally, lane, depth)
                for i, (session, tally) in enumerate(zip(sessions, tallies, strict=True))
                for lane in range(depth)
            )
        )
        client_cpu = await marker
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    return summarize(tallies, spec["seconds"], client_cpu)
