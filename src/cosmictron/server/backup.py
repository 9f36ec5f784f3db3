"""The backup and restore routes: they move archive files; ``host/backup.py`` does the work.

``GET /v1/database/{name}/backup`` (owner only) writes the archive straight to the
response from a database thread, at the client's pace, with no temporary file; it is
taken while calls go on. The client verifies it (``cosmictron-cli backup`` does).
``PUT /v1/database/{name}/restore[?to_offset=N | ?to_time=RFC3339]`` extracts the upload
as it arrives (``registry.restore``: each member hashed as it is written to a staging
directory, a garbage upload refused at its first tar header, every checksum checked
before the database is created), owned by the caller; an existing name is refused.
The upload is bounded by ``limits.restore_upload_bytes_max``: a larger declared
``Content-Length`` is refused before reading, a chunked upload as soon as it passes it.
An archive carries module source, so restoring needs the right to deploy, checked before
anything is read or written (``rights.py``).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable

from aiohttp import web

from cosmictron import limits
from cosmictron.errors import InvalidRequest
from cosmictron.host.backup import write_backup
from cosmictron.server import replies
from cosmictron.server.bodies import BodyStream, refuse_declared_length
from cosmictron.server.registry import HostedDatabase, check_name
from cosmictron.server.replies import json_response
from cosmictron.server.routes import REGISTRY, RIGHTS, caller_of, hosted, require_owner
from cosmictron.values import Timestamp

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
ARCHIVE_TYPE = "application/x-tar"


async def backup(request: web.Request) -> web.StreamResponse:
    """Send a consistent backup archive of the database, written straight to the response.

    A database thread fixes the cut; the headers (with the cut's offset) go out then, and
    the same thread writes the archive through ``ResponseSink`` at the client's pace. The
    length is not known ahead (chunked). A failure after the headers went out cannot be
    an error reply: the connection is closed without the final chunk, so the client sees
    a truncated download (and the archive's own checksums would refuse it).
    """
    caller = caller_of(request)
    database = hosted(request)
    require_owner(database, caller, "back it up")
    loop = asyncio.get_running_loop()
    response = web.StreamResponse(
        headers={
            "Content-Type": ARCHIVE_TYPE,
            "Content-Disposition": f'attachment; filename="{database.name}.backup"',
        }
    )
    sink = ResponseSink(response, loop)

    def send_headers(cut_offset: int) -> None:  # on the database thread
        response.headers["X-Cosmictron-Cut-Offset"] = str(cut_offset)
        asyncio.run_coroutine_threadsafe(response.prepare(request), loop).result()

    try:
        await database.run(_write_to, database, sink, send_headers)
    except ConnectionError:
        return response  # the client went away
    except TimeoutError:  # the client read nothing for stream_write_stall_s_max: cut it
        if request.transport is not None:
            request.transport.abort()
        return response
    except Exception:
        if not response.prepared:
            raise  # nothing was sent: the usual error reply
        logger.exception("backup of %r failed after its headers were sent", database.name)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def _write_to(database: HostedDatabase, sink: ResponseSink, on_cut: Callable[[int], None]) -> None:
    write_backup(database.db, sink, on_cut)  # type: ignore[arg-type]  # write-only is enough
    sink.flush()


class ResponseSink:
    """A write-only file on a database thread that sends what is written to the response.

    Writes gather into chunks of ``CHUNK_BYTES``; each full chunk is handed to the event
    loop and the thread waits until it is written (``StreamResponse.write`` waits for
    the socket to drain), so memory stays at about one chunk however slow the client. A
    client that reads nothing for ``limits.stream_write_stall_s_max`` fails the write
    (``TimeoutError``): the backup stops, its thread is freed and the connection closed.
    """

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop
        self._stall_s = replies.stream_write_stall_s_max()
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= CHUNK_BYTES:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending, self._size = [], 0
        write = asyncio.wait_for(self._response.write(chunk), self._stall_s)
        asyncio.run_coroutine_threadsafe(write, self._loop).result()


async def restore(request: web.Request) -> web.Response:
    """Create a database from an uploaded backup archive; the caller owns it."""
    caller = caller_of(request)
    name = request.match_info["name"]
    # An archive carries module source: the same right as a deploy, checked before the
    # upload is read or any file created.
    request.app[RIGHTS].require_deploy(caller, f"restore an archive as database {name!r}")
    check_name(name)
    to_offset, to_time = _restore_point(request)
    registry = request.app[REGISTRY]
    limit = restore_upload_bytes_max()
    refuse_declared_length(request, limit)
    upload = io.BufferedReader(
        BodyStream(request.content, asyncio.get_running_loop(), limit), CHUNK_BYTES
    )
    database, report = await asyncio.to_thread(
        registry.restore, name, upload, caller, to_offset, to_time
    )
    return json_response({"database": database.name, **report.describe()}, status=201)


def restore_upload_bytes_max() -> int:
    """``limits.restore_upload_bytes_max``, or ``COSMICTRON_RESTORE_UPLOAD_BYTES_MAX``."""
    return limits.from_environment(
        "COSMICTRON_RESTORE_UPLOAD_BYTES_MAX", limits.restore_upload_bytes_max
    )


def _restore_point(request: web.Request) -> tuple[int | None, Timestamp | None]:
    offset_text = request.query.get("to_offset")
    time_text = request.query.get("to_time")
    if offset_text is not None and time_text is not None:
        raise InvalidRequest("give to_offset or to_time, not both")
    to_offset = to_time = None
    if offset_text is not None:
        if not offset_text.isdigit():
            raise InvalidRequest(
                f"to_offset must be a transaction offset (0, 1, …), not {offset_text!r}"
            )
        to_offset = int(offset_text)
    if time_text is not None:
        to_time = parse_time(time_text)
    return to_offset, to_time


def parse_time(text: str) -> Timestamp:
    """An RFC 3339 time with its zone (``2026-03-02T12:00:00Z``).

    Raises:
        InvalidRequest: not such a time.
    """
    try:
        return Timestamp.parse(text)
    except (ValueError, TypeError):
        raise InvalidRequest(
            f"{text!r} is not an RFC 3339 time with a zone, such as 2026-03-02T12:00:00Z"
        ) from None
