"""Where one server call's wall time goes: timestamps along the path of a real server.

``bench/server_trace.py`` runs the server with ``TRACED_MAIN`` as its launcher: before the
CLI builds the app, it wraps the functions a reducer call passes through so that each
records ``(point, perf_counter_ns)`` in one list, and at shutdown the list is written to a
JSON file. The load is one client, closed loop (one call in flight), so the points of one
call are consecutive and never interleave with another call's; ``segments`` cuts the
list at each ``bytes_in`` point and turns consecutive points into named durations.

The points, in path order (a point missing from a call is skipped, not invented):

``bytes_in``        the TCP connection's bytes arrive (``TcpConnection.received``)
``handler_in``      the route's handler runs (HTTP: ``routes.call``; WS: ``handle``)
``auth_done``       HTTP only: the token was verified (``caller_of`` returned)
``parsed``          WS: the frame is a request object (``protocol.parse`` returned)
``submitted``       the call is queued for the database's call thread
``thread_in``       the call thread took the batch (``CallWorker._run_batch``)
``reducer_in`` / ``reducer_out``    ``Database.execute_reducer`` (reducer + commit)
``durable_in`` / ``durable_out``    ``Database.wait_durable`` (the fsync wait)
``resolved``        back on the event loop (``calls._resolve``)
``reply_in``        the reply is being written (WS: ``FrameWriter.write``; ``write_now``
                    when the thread that waited for the sync wrote it, then before
                    ``resolved``, which is left out; or aiohttp's
                    ``send_str``/``send_bytes`` when it cannot be used; HTTP:
                    ``StreamResponse.prepare``)
``reply_out``       the write returned

Wrapping costs a little per point (about 1 µs each, measured in the run with no-op
points); the breakdown states it.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

TRACED_MAIN = """
import json, sys, time, functools
ns = time.perf_counter_ns
MARKS = []
mark = MARKS.append
def around(owner, name, before, after):
    original = getattr(owner, name, None)
    if original is None:  # an older or newer layout: that point is simply not recorded
        return
    if hasattr(original, '__code__') and original.__code__.co_flags & 0x80:  # coroutine
        @functools.wraps(original)
        async def wrapped(*a, **k):
            if before: mark((before, ns()))
            try:
                return await original(*a, **k)
            finally:
                if after: mark((after, ns()))
    else:
        @functools.wraps(original)
        def wrapped(*a, **k):
            if before: mark((before, ns()))
            try:
                return original(*a, **k)
            finally:
                if after: mark((after, ns()))
    setattr(owner, name, wrapped)
from cosmictron.server import connection_deadlines, routes, protocol, calls, websocket_client
from cosmictron.server import frames_out
from cosmictron.host import Database
from aiohttp import web
around(connection_deadlines.TcpConnection, 'received', 'bytes_in', None)
around(routes, 'call', 'handler_in', None)
around(routes, 'caller_of', None, 'auth_done')
around(websocket_client.WebSocketClient, 'handle', 'handler_in', None)
around(websocket_client, 'parse', None, 'parsed')
around(calls.CallWorker, 'submit', None, 'submitted')
around(calls.CallWorker, 'submit_then', None, 'submitted')
around(calls.CallWorker, '_run_batch', 'thread_in', None)
around(Database, 'execute_reducer', 'reducer_in', 'reducer_out')
around(Database, 'wait_durable', 'durable_in', 'durable_out')
around(calls, '_resolve', 'resolved', None)
around(frames_out.FrameWriter, 'write', 'reply_in', 'reply_out')
write_now = getattr(frames_out.FrameWriter, 'write_now', None)
if write_now is not None:
    def traced_write_now(self, message, original=write_now):
        started = ns()
        written = original(self, message)
        if written:  # else the reply goes the loop's way, traced there
            mark(('reply_in', started)); mark(('reply_out', ns()))
        return written
    frames_out.FrameWriter.write_now = traced_write_now
around(web.WebSocketResponse, 'send_str', 'reply_in', 'reply_out')
around(web.WebSocketResponse, 'send_bytes', 'reply_in', 'reply_out')
around(web.StreamResponse, 'prepare', 'reply_in', None)
around(web.StreamResponse, 'write_eof', None, 'reply_out')
around(web.Response, 'write_eof', None, 'reply_out')
from cosmictron.server import app as server_app
for i, route in enumerate(server_app.ROUTES):
    if getattr(route, 'handler', None) is getattr(routes.call, '__wrapped__', None):
        server_app.ROUTES[i] = web.RouteDef(route.method, route.path, routes.call, route.kwargs)
try:
    main()
finally:
    with open({out!r}, 'w') as f:
        json.dump(MARKS, f)
"""

ORDER = (
    "bytes_in",
    "handler_in",
    "auth_done",
    "parsed",
    "submitted",
    "thread_in",
    "reducer_in",
    "reducer_out",
    "durable_in",
    "durable_out",
    "resolved",
    "reply_in",
    "reply_out",
)

LABELS = {
    ("bytes_in", "handler_in"): "read + frame/HTTP parse + dispatch to handler",
    ("handler_in", "auth_done"): "auth (token verified)",
    ("auth_done", "submitted"): "body read + JSON decode + args convert + queue",
    ("handler_in", "parsed"): "JSON decode + protocol objects",
    ("parsed", "submitted"): "reducer lookup + args convert + queue",
    ("submitted", "thread_in"): "hop: loop -> call thread (wake-up)",
    ("thread_in", "reducer_in"): "call thread: batch set-up",
    ("reducer_in", "reducer_out"): "reducer + commit (execute_reducer)",
    ("reducer_out", "durable_in"): "between commit and sync wait",
    ("durable_in", "durable_out"): "fsync wait (wait_durable)",
    ("durable_out", "resolved"): "hop: call thread -> loop (wake-up)",
    ("resolved", "reply_in"): "result -> reply built, queued, sender woken",
    ("durable_out", "reply_in"): "reply built off the loop (FrameWriter.write_now)",
    ("reply_in", "reply_out"): "reply write",
}


def segments(marks: list[tuple[str, int]]) -> list[dict[str, float]]:
    """Per call: the duration (µs) between each pair of consecutive points seen."""
    calls: list[list[tuple[str, int]]] = []
    for point, t in marks:
        if point == "bytes_in":
            if not calls or any(p == "reply_out" for p, _ in calls[-1]):
                calls.append([])
            # A later bytes_in of the same call (TCP split) keeps the first.
            if calls[-1] and calls[-1][0][0] == "bytes_in":
                continue
        if not calls:
            continue
        calls[-1].append((point, t))
    out = []
    for call in calls:
        firsts: dict[str, int] = {}
        for point, t in call:
            firsts.setdefault(point, t)
        if "reply_out" not in firsts or "reducer_in" not in firsts or "bytes_in" not in firsts:
            continue
        if firsts.get("resolved", 0) > firsts["reply_out"]:
            del firsts["resolved"]  # written off the loop (``write_now``): the hop came after
        seen = [p for p in ORDER if p in firsts]
        row = {}
        for a, b in itertools.pairwise(seen):
            row[f"{a}->{b}"] = (firsts[b] - firsts[a]) / 1000
        row["total"] = (firsts["reply_out"] - firsts["bytes_in"]) / 1000
        row["start_ns"] = firsts["bytes_in"]
        out.append(row)
    return out


def summary(rows: list[dict[str, float]]) -> list[tuple[str, float, float]]:
    """(segment, median µs, mean µs) for every segment present in most calls."""
    keys: list[str] = []
    for row in rows:
        for key in row:
            if key not in keys and key != "start_ns":
                keys.append(key)
    result = []
    for key in keys:
        values = [row[key] for row in rows if key in row]
        if len(values) < len(rows) // 2:
            continue
        result.append((key, statistics.median(values), statistics.fmean(values)))
    return result


def label(key: str) -> str:
    a, _, b = key.partition("->")
    return LABELS.get((a, b), key)


def table(rows: list[dict[str, float]]) -> list[tuple[str, str, str, str]]:
    return [(key, label(key), f"{med:.1f}", f"{mean:.1f}") for key, med, mean in summary(rows)]


def client_rtt(values: list[float]) -> dict[str, Any]:
    return {"median_us": statistics.median(values), "mean_us": statistics.fmean(values)}
