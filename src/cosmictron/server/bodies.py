"""Request bodies read within their route's byte limit, and decoded within bounds.

aiohttp reads a whole body up to ``client_max_size`` (64 MiB, ``app.REQUEST_BYTES_MAX``)
for every route. The JSON routes (calls, SQL) take much less: ``read_limited`` refuses a
declared ``Content-Length`` over the limit before reading a byte, and a chunked body as
soon as it passes it (413, ``too_large``). ``json_body`` then decodes it with the one
bounded decoder (``cosmictron.bounded_json``): not UTF-8, not JSON or nested past
``limits.json_depth_max`` is a 400 naming what was wrong, never a 500.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cosmictron import bounded_json, limits
from cosmictron.errors import TooLarge

BODY = "the request body"


def json_body_bytes_max() -> int:
    """``limits.json_body_bytes_max``, or ``COSMICTRON_JSON_BODY_BYTES_MAX`` when set."""
    return limits.from_environment("COSMICTRON_JSON_BODY_BYTES_MAX", limits.json_body_bytes_max)


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


async def text_body(request: web.Request) -> str:
    """The body as UTF-8 text within ``json_body_bytes_max`` (400 if not UTF-8)."""
    data = await read_limited(request, json_body_bytes_max())
    return bounded_json.decode_utf8(data, BODY)


async def json_body(request: web.Request) -> Any:
    """The body as one JSON value within the byte and depth limits; None when empty."""
    text = await text_body(request)
    if not text.strip():
        return None
    return bounded_json.loads(text, BODY)
