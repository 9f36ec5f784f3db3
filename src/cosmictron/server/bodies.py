"""Request bodies read within their route's byte limit, and decoded within bounds.

aiohttp reads a whole body up to ``client_max_size`` (64 MiB, ``app.REQUEST_BYTES_MAX``)
for every route. The JSON routes (calls, SQL) take much less: ``read_limited`` refuses a
declared ``Content-Length`` over the limit before reading a byte, and a chunked body as
soon as it passes it (413, ``too_large``). ``json_body`` then decodes it with the one
bounded decoder (``cosmictron.bounded_json``): not UTF-8, not JSON or nested past
``limits.json_depth_max`` is a 400 naming what was wrong, never a 500. ``BodyStream``
serves the routes whose bodies are too large to hold (bulk loads, restores): a database
thread reads them as a file, pulling chunk by chunk from the event loop within a limit.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import StreamReader, web

from cosmictron import bounded_json, limits
from cosmictron.errors import TooLarge

BODY = "the request body"
T = TypeVar("T")


def call_body_bytes_max() -> int:
    """``limits.call_body_bytes_max``, or ``COSMICTRON_CALL_BODY_BYTES_MAX`` when set."""
    return limits.from_environment("COSMICTRON_CALL_BODY_BYTES_MAX", limits.call_body_bytes_max)


def sql_body_bytes_max() -> int:
    """``limits.sql_body_bytes_max``, or ``COSMICTRON_SQL_BODY_BYTES_MAX`` when set."""
    return limits.from_environment("COSMICTRON_SQL_BODY_BYTES_MAX", limits.sql_body_bytes_max)


def refuse_declared_length(request: web.Request, limit: int) -> None:
    """413 before reading anything when the declared ``Content-Length`` is over ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(
            f"the request body has {request.content_length} bytes; the limit for "
            f"{request.method} {request.path} is {limit} bytes"
        )


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, read no further than ``limit`` bytes.

    Raises:
        TooLarge: the body is (or says it is) longer than ``limit`` (413).
    """
    refuse_declared_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise TooLarge(
                f"the request body is larger than the limit for {request.method} "
                f"{request.path} ({limit} bytes)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def text_body(request: web.Request, limit: int) -> str:
    """The body as UTF-8 text within ``limit`` bytes (400 if not UTF-8)."""
    data = await read_limited(request, limit)
    return bounded_json.decode_utf8(data, BODY)


async def json_body(
    request: web.Request, limit: int, convert: Callable[[Any], T] | None = None
) -> T | Any:
    """The body as one JSON value within ``limit`` bytes and the depth limit (None when
    empty), passed through ``convert`` if given.

    A body over ``limits.json_inline_bytes_max`` is decoded (depth scan, UTF-8, JSON and
    ``convert``) on a worker thread: a 1 MiB body takes tens of milliseconds to decode,
    which on the event loop would stall every database and the health route with it.
    """
    data = await read_limited(request, limit)
    if len(data) <= limits.json_inline_bytes_max:
        return decode_json(data, convert)
    return await asyncio.to_thread(decode_json, data, convert)


def decode_json(data: bytes, convert: Callable[[Any], T] | None = None) -> T | Any:
    """``data`` (UTF-8) as JSON within the depth limit, then ``convert``-ed; None if blank."""
    text = bounded_json.decode_utf8(data, BODY)
    value = bounded_json.loads(text, BODY) if text.strip() else None
    return convert(value) if convert is not None else value


class BodyStream(io.RawIOBase):
    """The request body as a blocking file, read by a database thread from the event loop.

    Each ``readinto`` that finds its buffer empty asks the loop for the next chunk and
    waits for it, so the parser pulls the body at its own pace and nothing buffers more
    than one chunk ahead. Counting bytes here enforces the limit on bodies sent without
    a ``Content-Length`` (chunked).
    """

    def __init__(self, content: StreamReader, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        super().__init__()
        self._content = content
        self._loop = loop
        self._limit = limit
        self._pending = memoryview(b"")
        self.size_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            chunk = asyncio.run_coroutine_threadsafe(self._content.readany(), self._loop).result()
            if not chunk:
                return 0
            self.size_bytes += len(chunk)
            if self.size_bytes > self._limit:
                raise TooLarge(f"the body is larger than the limit ({self._limit} bytes)")
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count
