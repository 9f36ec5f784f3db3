"""``POST /v1/database/{name}/bulk_insert/{table}``: many rows in one transaction.

The body is CSV with a header row (``text/csv``) or one JSON object per line
(``application/x-ndjson``). It is never held whole: a database thread reads it from the
event loop in chunks (``BodyStream``), parses it incrementally, and converts each chunk
of rows column by column (``bulk_rows.py``, ``cells.py``); only the converted rows are
kept. Plain CSV goes through ``pyarrow`` when the ``[fast-csv]`` extra is installed
(``bulk_arrow.py``), with the same rows and errors. All rows then
go to ``Database.bulk_insert_once`` in one transaction: all of them, or none.

Errors name the first bad line (1 is the CSV header) and, when it is one cell, the
column: ``line 5012, column 'price': expected i64, got 'abc'``. Line numbers count
physical lines, so a quoted CSV field spanning lines is counted the way an editor does.

An ``Idempotency-Key`` header makes the load apply at most once per table and key (see
``host/imports.py``); a repeat replies ``"already_applied": true`` with the earlier
load's offset and row count.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from functools import partial
from typing import Any

from aiohttp import web

from cosmictron import limits, names
from cosmictron.errors import Conflict, InvalidRequest, TooLarge
from cosmictron.host.memory import collector_paused
from cosmictron.server.bodies import BodyStream
from cosmictron.server.bulk_arrow import parse_csv_body
from cosmictron.server.bulk_rows import parse_ndjson
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.replies import json_response
from cosmictron.server.routes import caller_of, hosted, require_owner

BODY_READ_BYTES = 1024 * 1024
"""Read-buffer size between the network and the parser."""

CSV_TYPES = ("text/csv",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


def line_bytes_max() -> int:
    """``limits.bulk_line_bytes_max``, or ``COSMICTRON_BULK_LINE_BYTES_MAX`` when set."""
    return limits.from_environment("COSMICTRON_BULK_LINE_BYTES_MAX", limits.bulk_line_bytes_max)


def bounded_lines(text: Any, limit: int) -> Iterator[str]:
    """The lines of ``text`` (a text file), each read no further than ``limit`` characters.

    Without this a line is read whole, however long: a body of one endless line would be
    held in memory up to the body limit (1 GiB). A line (with its line break) over
    ``limit`` UTF-8 bytes is refused naming it; only lines over a quarter of the limit
    are encoded to count their bytes, since a character takes at most four.

    Raises:
        TooLarge: a line is longer than ``limit`` bytes (413, naming the line).
    """
    quarter = limit // 4
    for number, line in enumerate(iter(partial(text.readline, limit + 1), ""), start=1):
        if len(line) > quarter and (len(line) > limit or len(line.encode()) > limit):
            raise TooLarge(
                f"line {number} is longer than {limit} bytes (limits.bulk_line_bytes_max); "
                f"it was read no further"
            )
        yield line


def body_bytes_max() -> int:
    """The route's body limit: ``limits.bulk_insert_body_bytes_max`` or its override."""
    override = os.environ.get("COSMICTRON_BULK_INSERT_BODY_BYTES_MAX")
    return int(override) if override else limits.bulk_insert_body_bytes_max


async def bulk_insert(request: web.Request) -> web.Response:
    caller = caller_of(request)
    database = hosted(request)
    require_owner(database, caller, "bulk insert")
    table = names.check_table(request.match_info["table"])
    database.db.table(table)  # 404 naming the tables
    kind = request.content_type
    if kind not in CSV_TYPES + NDJSON_TYPES:
        raise InvalidRequest(
            f"send the rows as text/csv (with a header row) or application/x-ndjson, not {kind!r}"
        )
    limit = body_bytes_max()
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body has {request.content_length} bytes; the limit is {limit}")
    key = request.headers.get("Idempotency-Key") or None
    stream = BodyStream(request.content, asyncio.get_running_loop(), limit)
    outcome = await database.run(_load, database, table, kind in CSV_TYPES, stream, key)
    reply: dict[str, Any] = {
        "table": table,
        "rows_inserted": outcome.row_count,
        "tx_offset": outcome.tx_offset,
    }
    if key is not None:
        reply["already_applied"] = outcome.already_applied
    return json_response(reply)


def _load(
    database: HostedDatabase, table: str, is_csv: bool, stream: BodyStream, key: str | None
) -> Any:
    """Parse and convert the body (no lock held), then insert it in one transaction."""
    db = database.db
    schema = db.schema.table(table)
    assert schema is not None, "checked by the route"
    line_limit = line_bytes_max()
    try:
        with collector_paused():
            if is_csv:
                parsed = parse_csv_body(
                    stream, schema, line_limit, lambda text: bounded_lines(text, line_limit)
                )
            else:
                text = io.TextIOWrapper(
                    io.BufferedReader(stream, BODY_READ_BYTES), encoding="utf-8-sig", newline=""
                )
                parsed = parse_ndjson(bounded_lines(text, line_limit), schema)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the body is not UTF-8 text: {exc.reason}") from None
    try:
        checked_for = schema if parsed.checked else None
        return db.bulk_insert_once(table, parsed.rows, key, checked_for=checked_for)
    except (InvalidRequest, Conflict) as exc:
        row_index = getattr(exc, "row_index", None)
        if row_index is None:
            raise
        line = parsed.line_of(row_index)
        raise type(exc)(f"line {line}: {getattr(exc, 'reason', exc)}") from None
