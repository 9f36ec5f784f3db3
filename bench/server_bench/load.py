"""The load generator's core: per-connection tallies, the measured window, WebSocket calls.

Runs in the load-generator process (``server.py --client``), never in the parent's, so
that the client's CPU time is its own and can be read beside the server's. A slice is a
warm-up then a measured window; the window's ends are printed on stdout
(``window-start``, ``window-end``) so the parent samples the server's CPU and counters
at the same moments. Only calls completed inside the window count, and a latency only
when the call was also sent inside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from typing import Any

from .lean_ws import LeanWebSocket, connect_lean
from .workload import JSON_PROTOCOL, call_frame, decode_frame

WS_CLIENT_ENV = "COSMICTRON_BENCH_WS_CLIENT"
"""``aiohttp`` runs the WebSocket loads with aiohttp's client (the benchmark's client
until issue 11's srv7 round); unset or ``lean``, with ``lean_ws.LeanWebSocket``."""


class Tally:
    """One connection's counts inside the measured window ``[start, end]``."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.calls = 0
        self.errors = 0
        self.error: str | None = None
        self.latencies: list[float] = []

    def complete(self, sent: float, now: float, ok: bool, error: str | None = None) -> None:
        if not ok:
            self.errors += 1
            self.error = self.error or error
            return
        if self.start <= now <= self.end:
            self.calls += 1
            if sent >= self.start:
                self.latencies.append(now - sent)


async def window_markers(start: float, end: float) -> float:
    """Tell the parent (on stdout) when the window starts and ends; return client CPU s."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu = time.process_time()
    print("window-start", flush=True)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    print("window-end", flush=True)
    return time.process_time() - cpu


async def cosmictron_worker(
    ws: Any, index: int, tally: Tally, depth: int, protocol: str = JSON_PROTOCOL
) -> None:
    """Keep ``depth`` calls in flight on one WebSocket until the window ends, then drain."""
    import aiohttp

    clock = time.perf_counter
    sent_at: deque[float] = deque()
    binary = protocol != JSON_PROTOCOL
    send = ws.send_bytes if binary else ws.send_str
    expected = aiohttp.WSMsgType.BINARY if binary else aiohttp.WSMsgType.TEXT
    n = 0
    for _ in range(depth):
        sent_at.append(clock())
        await send(call_frame(protocol, index, n))
        n += 1
    while sent_at:
        frame = await ws.receive(timeout=30)
        now = clock()
        if frame.type is not expected:
            raise RuntimeError(f"connection {index} ended: {frame.type} {frame.data!r}")
        result = decode_frame(frame.data).get("ReducerResult")
        if result is None:
            continue
        sent = sent_at.popleft()
        tally.complete(sent, now, result["status"] == "committed", result.get("error"))
        if now < tally.end:
            sent_at.append(clock())
            await send(call_frame(protocol, index, n))
            n += 1


async def lean_worker(
    client: LeanWebSocket, index: int, tally: Tally, depth: int, protocol: str = JSON_PROTOCOL
) -> None:
    """``cosmictron_worker`` on a ``LeanWebSocket``: driven from its ``data_received``
    callback, as ``load_postgres.pg_worker`` drives libpq from ``add_reader``'s."""
    import msgpack

    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    sent_at: deque[float] = deque()
    finished: asyncio.Future[None] = loop.create_future()
    decode = json.loads if protocol == JSON_PROTOCOL else msgpack.unpackb
    send_message = client.send_message
    n = 0

    def send() -> None:
        nonlocal n
        sent_at.append(clock())
        send_message(call_frame(protocol, index, n))
        n += 1

    def on_message(data: str | bytes) -> None:
        now = clock()
        result = decode(data).get("ReducerResult")
        if result is None or finished.done():
            return
        sent = sent_at.popleft()
        tally.complete(sent, now, result["status"] == "committed", result.get("error"))
        if now < tally.end:
            send()
        elif not sent_at:
            finished.set_result(None)

    client.on_message = on_message
    for _ in range(depth):
        send()
    done, _ = await asyncio.wait(
        (finished, client.closed),
        timeout=tally.end - clock() + 30,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if finished not in done:
        raise RuntimeError(f"connection {index} ended or stalled with {len(sent_at)} in flight")


async def connect_ws(session: Any, url: str, protocol: str = JSON_PROTOCOL) -> Any:
    """Open one WebSocket speaking ``protocol`` and read its ``IdentityToken``."""
    ws = await session.ws_connect(url, protocols=(protocol,), max_msg_size=0)
    frame = await ws.receive(timeout=30)
    first = decode_frame(frame.data)
    if "IdentityToken" not in first:
        raise RuntimeError(f"expected IdentityToken first, got {first}")
    return ws


async def cosmictron_load(spec: dict[str, Any]) -> dict[str, Any]:
    if os.environ.get(WS_CLIENT_ENV, "lean") == "aiohttp":
        return await aiohttp_load(spec)
    protocol = spec.get("protocol", JSON_PROTOCOL)
    opened = await asyncio.gather(
        *(connect_lean(spec["ws_url"], protocol) for _ in range(spec["clients"]))
    )
    clients = [client for client, _ in opened]
    for _, first in opened:
        if "IdentityToken" not in decode_frame(first):
            raise RuntimeError(f"expected IdentityToken first, got {first!r}")
    result = await measured_window(spec, clients, lean_worker)
    await asyncio.gather(*(client.close() for client in clients))
    return result


async def aiohttp_load(spec: dict[str, Any]) -> dict[str, Any]:
    """``cosmictron_load`` with aiohttp's WebSocket client (``WS_CLIENT_ENV``)."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        protocol = spec.get("protocol", JSON_PROTOCOL)
        sockets = await asyncio.gather(
            *(connect_ws(session, spec["ws_url"], protocol) for _ in range(spec["clients"]))
        )
        result = await measured_window(spec, sockets, cosmictron_worker)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return result


async def measured_window(
    spec: dict[str, Any], connections: list[Any], worker: Any
) -> dict[str, Any]:
    """Run ``worker(connection, index, tally, depth, protocol)`` on every connection
    through the warm-up and the measured window; the load's figures."""
    protocol = spec.get("protocol", JSON_PROTOCOL)
    start = time.perf_counter() + spec["warmup"]
    end = start + spec["seconds"]
    tallies = [Tally(start, end) for _ in connections]
    marker = asyncio.create_task(window_markers(start, end))
    await asyncio.gather(
        *(
            worker(connection, i, tally, spec["depth"], protocol)
            for i, (connection, tally) in enumerate(zip(connections, tallies, strict=True))
        )
    )
    client_cpu = await marker
    return summarize(tallies, spec["seconds"], client_cpu)


def summarize(tallies: list[Tally], seconds: float, client_cpu: float) -> dict[str, Any]:
    """One load's figures: calls, errors, client CPU and every latency, in ms."""
    latencies = [x for t in tallies for x in t.latencies]
    return {
        "calls": sum(t.calls for t in tallies),
        "errors": sum(t.errors for t in tallies),
        "first_error": next((t.error for t in tallies if t.error), None),
        "seconds": seconds,
        "client_cpu_seconds": client_cpu,
        "latencies_ms": [x * 1000 for x in latencies],
    }
