"""The backup and restore routes: they move archive files; ``host/backup.py`` does the work.

``GET /v1/database/{name}/backup`` (owner only) writes a verified backup to a temporary
file on the database's threads, then sends it; the archive is taken while calls go on.
``PUT /v1/database/{name}/restore[?to_offset=N | ?to_time=RFC3339]`` streams the upload
to a temporary file (so it is not bound by the JSON request size limit), then creates
the database from it, owned by the caller; an existing name is refused. An archive
carries module source, so restoring needs the right to deploy, checked before anything
is read or written (``rights.py``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from cosmictron.errors import InvalidRequest
from cosmictron.host.backup import backup_to_file
from cosmictron.server.registry import check_name
from cosmictron.server.routes import REGISTRY, RIGHTS, caller_of, hosted, require_owner
from cosmictron.values import Timestamp

CHUNK_BYTES = 1 << 20
ARCHIVE_TYPE = "application/x-tar"


async def backup(request: web.Request) -> web.StreamResponse:
    """Send a consistent, verified backup archive of the database."""
    caller = caller_of(request)
    database = hosted(request)
    require_owner(database, caller, "back it up")
    scratch = _scratch_directory(request)
    try:
        path = scratch / f"{database.name}.backup"
        manifest = await database.run(backup_to_file, database.db, path)
        response = web.StreamResponse(
            headers={
                "Content-Type": ARCHIVE_TYPE,
                "Content-Disposition": f'attachment; filename="{database.name}.backup"',
                "X-Cosmictron-Cut-Offset": str(manifest.cut_offset),
            }
        )
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with open(path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
    scratch = _scratch_directory(request)
    try:
        archive = scratch / "upload.backup"
        with open(archive, "wb") as file:
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                await asyncio.to_thread(file.write, chunk)
        database, report = await asyncio.to_thread(
            registry.restore, name, archive, caller, to_offset, to_time
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return web.json_response({"database": database.name, **report.describe()}, status=201)


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


def _scratch_directory(request: web.Request) -> Path:
    uploads = request.app[REGISTRY].root / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=uploads))
