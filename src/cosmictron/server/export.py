"""``GET /v1/database/{name}/export/{table}?format=csv|ndjson``: a table, streamed.

Why a route of its own rather than ``POST .../sql`` with ``SELECT *``: a SQL reply is one
JSON document capped at ``limits.query_rows_max`` rows, and an export must carry tables
of millions of rows. The rows are copied under the writer lock (a list of references to
immutable tuples: consistent and cheap, as snapshots do), then encoded and sent in
chunks on the database's threads while writers carry on. The reply carries the offset
the copy was taken at in ``X-Cosmictron-Tx-Offset``.

CSV is what ``bulk_insert`` reads back: a header of column names, then one row per line
in the cell forms of ``cells.py``. NDJSON is one JSON object per row in the forms of
``wire.py``. The owner may export any table; anyone else only a public table of a module
without visibility filters (row-level security applies through SQL, not here).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from cosmictron import bounded_json, limits, names
from cosmictron.datastore.schema import TableSchema
from cosmictron.errors import InvalidRequest, PermissionDenied
from cosmictron.server import replies
from cosmictron.server.cells import cell_writer
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.routes import caller_of, hosted
from cosmictron.values import json_form

EXPORT_CHUNK_ROWS = 20_000
"""Rows encoded per write at most; ``limits.export_chunk_bytes_max`` bounds a chunk's
bytes (its row count follows the bytes per row of the chunk before)."""

FIRST_CHUNK_ROWS = 64
"""Rows of the first chunk, which measures the bytes per row (and finds an error before
the 200 is sent)."""

FORMATS = {"csv": "text/csv", "ndjson": "application/x-ndjson"}


async def export(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    database = hosted(request)
    table = names.check_table(request.match_info["table"])
    database.db.table(table)  # 404 naming the tables
    form = request.query.get("format", "csv")
    if form not in FORMATS:
        raise InvalidRequest(f"format is csv or ndjson, not {form!r}")
    schema, rows, offset = await database.run(_copy, database, table)
    if caller != database.db.owner:
        if not schema.public:
            raise PermissionDenied(f"table {table!r} is private: only the owner may export it")
        if database.db.schema.visibility_filters:
            raise PermissionDenied(
                f"database {database.name!r} has visibility filters: only the owner may "
                f"export its tables (others read through SQL, which applies them)"
            )
    encode = _csv_encoder(schema) if form == "csv" else _ndjson_encoder(schema)
    count = min(len(rows), FIRST_CHUNK_ROWS)
    first = await database.run(encode, rows[:count], True)  # errors before 200
    response = web.StreamResponse(
        headers={"Content-Type": FORMATS[form], "X-Cosmictron-Tx-Offset": str(offset)}
    )
    await response.prepare(request)
    stall_s = replies.stream_write_stall_s_max()
    try:
        await replies.write_or_close(request, response, first, stall_s)
        start, size = count, next_chunk_rows(count, len(first))
        while start < len(rows):
            chunk = await database.run(encode, rows[start : start + size], False)
            await replies.write_or_close(request, response, chunk, stall_s)
            start, size = start + size, next_chunk_rows(size, len(chunk))
    except ConnectionResetError:  # the client went away or stalled: cut, rows freed
        return response
    await response.write_eof()
    return response


def next_chunk_rows(rows: int, encoded_bytes: int) -> int:
    """Rows in the next chunk: as many as fill ``limits.export_chunk_bytes_max`` at the
    last chunk's bytes per row, at least 1 and at most ``EXPORT_CHUNK_ROWS``."""
    if encoded_bytes <= 0:
        return EXPORT_CHUNK_ROWS
    fitting = limits.export_chunk_bytes_max * rows // encoded_bytes
    return max(1, min(EXPORT_CHUNK_ROWS, fitting))


def _copy(database: HostedDatabase, table: str) -> tuple[TableSchema, list[Any], int]:
    db = database.db

    def copy(datastore: Any) -> tuple[TableSchema, list[Any], int]:
        stored = datastore.tables[table]
        return stored.schema, list(stored.rows.values()), db.tx_offset

    result: tuple[TableSchema, list[Any], int] = db.read(copy)
    return result


def _csv_encoder(schema: TableSchema) -> Any:
    writers = [cell_writer(column.type, column.name) for column in schema.columns]

    def encode(rows: list[tuple[Any, ...]], header: bool) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(schema.column_names)
        columns = [list(map(write, values)) for write, values in zip(writers, zip(*rows))]  # noqa: B905
        writer.writerows(zip(*columns))  # noqa: B905 - equal lengths
        return out.getvalue().encode()

    return encode


def _ncolumns(schema: TableSchema) -> list[tuple[str, Any]]:
    return [(column.name, column.type) for column in schema.columns]


def _ndjson_encoder(schema: TableSchema) -> Any:
    columns = _ncolumns(schema)

    def encode(rows: list[tuple[Any, ...]], header: bool) -> bytes:
        lines = []
        for row in rows:
            item = {
                name: json_form(column_type.to_python(value))
                for (name, column_type), value in zip(columns, row)  # noqa: B905
            }
            lines.append(bounded_json.dumps(item, separators=(",", ":")))
        return ("\n".join(lines) + "\n").encode() if lines else b""

    return encode
