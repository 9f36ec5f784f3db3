"""JSON replies: strict (no ``NaN``/``Infinity``), and large ones encoded off the event loop.

``json_response`` is aiohttp's with ``bounded_json.dumps``, so no reply carries a bare
``Infinity`` that strict parsers refuse whole. ``encoded_response`` takes a body that was
already encoded on a database thread (SQL results) or encodes it on a worker thread when
it may be large (a reducer's return value), so no single reply holds the event loop, and
every other database with it, for longer than a small encode.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

from cosmictron import bounded_json, limits

json_response = partial(web.json_response, dumps=bounded_json.dumps)
"""``web.json_response`` that writes strict JSON (``NotFinite`` instead of ``Infinity``)."""

JSON_TYPE = "application/json"

SHOWS_TRACEBACK = "cosmictron.shows_traceback"
"""Request key a handler sets to True when the caller may see the frames of the module's
code in an error (the database's owner calling a reducer, the deployer of a module);
``app.errors_as_json`` reads it (``errors.error_document``)."""


def encoded_response(text: str, status: int = 200) -> web.Response:
    """A reply whose JSON text is made already."""
    return web.Response(text=text, status=status, content_type=JSON_TYPE)


def small(value: Any) -> bool:
    """Whether ``value`` is surely cheap to encode: a scalar or a short string."""
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str | bytes):
        return len(value) <= limits.json_inline_bytes_max // 2
    return False


async def json_reply(build: Callable[[], Any], payload: Any, status: int = 200) -> web.Response:
    """What ``build()`` returns, as a strict JSON reply; built and encoded on a worker
    thread unless ``payload`` (the part whose size a caller controls) is ``small``."""
    if small(payload):
        return json_response(build(), status=status)
    text = await asyncio.to_thread(lambda: bounded_json.dumps(build()))
    return encoded_response(text, status)


def stream_write_stall_s_max() -> float:
    """``limits.stream_write_stall_s_max``, or ``COSMICTRON_STREAM_WRITE_STALL_S_MAX``."""
    text = os.environ.get("COSMICTRON_STREAM_WRITE_STALL_S_MAX")
    return float(text) if text else limits.stream_write_stall_s_max


async def write_or_close(
    request: web.Request, response: web.StreamResponse, data: bytes, stall_s: float
) -> None:
    """Write ``data`` to a streamed reply, waiting for the client to read it (aiohttp's
    ``write`` waits for the socket buffer to drain), but no longer than ``stall_s``:
    a client that stops reading is disconnected and what was held for it is freed.

    Raises:
        ConnectionResetError: the client stalled past ``stall_s`` (or went away).
    """
    try:
        await asyncio.wait_for(response.write(data), stall_s)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError(
            f"the client read nothing for {stall_s} s (limits.stream_write_stall_s_max)"
        ) from None
