"""``GET /v1/database/{name}/logs``: the module's log as NDJSON, optionally followed.

Owner only (logs can carry anything a module chose to print). ``num_lines`` (default
100) newest lines at or above ``level`` (DEBUG, INFO, WARNING, ERROR, CRITICAL; default
everything) are sent first, one JSON object per line (``ts_us``, ``level``,
``message``, ``reducer``); with ``follow=true`` the response stays open and each new line
is sent as it is logged, until the client goes away or the server stops. A follower
that cannot keep up loses lines, never slows a reducer: past
``limits.log_follow_queue_lines_max`` queued lines one ``{"dropped": n}`` line says how
many were skipped.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

from aiohttp import web

from cosmictron import limits
from cosmictron.errors import InvalidRequest
from cosmictron.host.logs import LEVELS, LogLine, level_rank
from cosmictron.server.routes import caller_of, hosted, require_owner

CONTENT_TYPE = "application/x-ndjson"


FOLLOWERS: weakref.WeakSet[asyncio.Queue[LogLine | None]] = weakref.WeakSet()
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
    return (json.dumps(item, ensure_ascii=False) + "\n").encode()


async def logs(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    database = hosted(request)
    require_owner(database, caller, "read its logs")
    num_lines, level, follow = _options(request)
    floor = level_rank(level) if level is not None else 0
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    await response.prepare(request)
    queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    dropped = 0

    def on_line(line: LogLine) -> None:  # in the logging thread: hand off only
        nonlocal dropped
        if level_rank(line.level) < floor:
            return
        if queue.qsize() >= limits.log_follow_queue_lines_max:
            dropped += 1
            return
        loop.call_soon_threadsafe(queue.put_nowait, line)

    stop = database.db.log.follow(on_line) if follow else None
    try:
        for line in database.db.log.lines(num_lines, level):
            await response.write(_encode(line.as_dict()))
        if stop is not None:
            FOLLOWERS.add(queue)
        while stop is not None:
            item = await queue.get()
            if item is None:  # the server is shutting down
                break
            if dropped:
                await response.write(_encode({"dropped": dropped}))
                dropped = 0
            await response.write(_encode(item.as_dict()))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        FOLLOWERS.discard(queue)
        if stop is not None:
            stop()
    await response.write_eof()
    return response
