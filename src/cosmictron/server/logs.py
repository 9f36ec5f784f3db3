"""``GET /v1/database/{name}/logs``: the module's log as NDJSON, optionally followed.

Owner only (logs can carry anything a module chose to print). ``num_lines`` (default
100) newest lines at or above ``level`` (DEBUG, INFO, WARNING, ERROR, CRITICAL; default
everything) are sent first, one JSON object per line (``ts_us``, ``level``,
``message``, ``reducer``); with ``follow=true`` the response stays open and each new line
is sent as it is logged, until the client goes away or the server stops. A follower
that cannot keep up loses lines, never slows a reducer: past
``limits.log_follow_queue_lines_max`` queued lines one ``{"dropped": n}`` line says how
many were skipped. Lines are encoded in the logging thread and queued as bytes; a
follower whose queue passes ``limits.log_follow_queue_bytes_max`` bytes, or that reads
nothing for ``limits.stream_write_stall_s_max`` seconds, is disconnected (the chunked
body ends without its final chunk) and its queue freed.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aiohttp import web

from cosmictron import bounded_json, limits
from cosmictron.errors import InvalidRequest
from cosmictron.host.logs import LEVELS, LogLine, level_rank
from cosmictron.server import replies
from cosmictron.server.routes import caller_of, hosted, require_owner

CONTENT_TYPE = "application/x-ndjson"


FOLLOWERS: weakref.WeakSet[asyncio.Queue[bytes | None]] = weakref.WeakSet()
"""The queues of open ``follow`` responses, ended by ``end_followers`` at shutdown."""


async def end_followers(app: web.Application) -> None:
    """An ``on_shutdown`` hook: finish every following response so shutdown is prompt."""
    for queue in list(FOLLOWERS):
        queue.put_nowait(None)


def _options(request: web.Request) -> tuple[int, str | None, bool]:
    text = request.query.get("num_lines", "100")
    try:
        num_lines = int(text)
    except ValueError:
        raise InvalidRequest(f"num_lines must be a whole number, not {text!r}") from None
    if num_lines < 0:
        raise InvalidRequest("num_lines must be 0 or more")
    level = request.query.get("level")
    if level is not None and level.upper() not in LEVELS:
        raise InvalidRequest(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    follow = request.query.get("follow", "false").lower() in ("1", "true", "yes")
    return num_lines, level, follow


def _encode(item: dict[str, Any]) -> bytes:
    return (bounded_json.dumps(item, ensure_ascii=False) + "\n").encode()


def queue_bytes_max() -> int:
    """``limits.log_follow_queue_bytes_max``, or ``COSMICTRON_LOG_FOLLOW_QUEUE_BYTES_MAX``."""
    return limits.from_environment(
        "COSMICTRON_LOG_FOLLOW_QUEUE_BYTES_MAX", limits.log_follow_queue_bytes_max
    )


async def logs(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    database = hosted(request)
    require_owner(database, caller, "read its logs")
    num_lines, level, follow = _options(request)
    floor = level_rank(level) if level is not None else 0
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await response.prepare(request)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    dropped = 0
    queued_bytes = 0
    bytes_max = queue_bytes_max()
    stall_s = replies.stream_write_stall_s_max()
    over_budget = False

    def enqueue(data: bytes) -> None:  # on the loop: the byte count has one writer
        nonlocal queued_bytes, over_budget
        if over_budget:
            return
        if queued_bytes + len(data) > bytes_max:
            over_budget = True
            queue.put_nowait(None)  # wakes the writer, which ends the response
            return
        queued_bytes += len(data)
        queue.put_nowait(data)

    def on_line(line: LogLine) -> None:  # in the logging thread: encode and hand off
        nonlocal dropped
        if level_rank(line.level) < floor:
            return
        if queue.qsize() >= limits.log_follow_queue_lines_max:
            dropped += 1
            return
        loop.call_soon_threadsafe(enqueue, _encode(line.as_dict()))

    stop = database.db.log.follow(on_line) if follow else None
    try:
        for line in database.db.log.lines(num_lines, level):
            await replies.write_or_close(request, response, _encode(line.as_dict()), stall_s)
        if stop is not None:
            FOLLOWERS.add(queue)
        while stop is not None:
            item = await queue.get()
            if item is None:  # the server is shutting down, or the client fell behind
                break
            queued_bytes -= len(item)
            if dropped:
                note = _encode({"dropped": dropped})
                dropped = 0
                await replies.write_or_close(request, response, note, stall_s)
            await replies.write_or_close(request, response, item, stall_s)
    except (ConnectionResetError, asyncio.CancelledError):
        return response
    finally:
        FOLLOWERS.discard(queue)
        if stop is not None:
            stop()
    if over_budget:  # its queue is freed with it; the cut body tells the client
        while not queue.empty():
            queue.get_nowait()
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
