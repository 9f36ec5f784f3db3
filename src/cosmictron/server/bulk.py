"""``POST /v1/database/{name}/bulk_insert/{table}``: many rows in one transaction.

The body is CSV with a header row (``text/csv``) or one JSON object per line
(``application/x-ndjson``). It is never held whole: a database thread reads it from the
event loop in chunks (``BodyStream``), parses it incrementally, and converts each chunk
of rows column by column (``cells.py``); only the converted rows are kept. All rows then
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
import csv
import io
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from cosmictron import bounded_json, limits, names
from cosmictron.datastore.schema import TableSchema
from cosmictron.datastore.types import REQUIRED, ColumnType
from cosmictron.errors import Conflict, InvalidRequest, TooLarge
from cosmictron.host.memory import collector_paused
from cosmictron.server.bodies import BodyStream
from cosmictron.server.cells import CellError, cell_reader, read_column
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.replies import json_response
from cosmictron.server.routes import caller_of, hosted, require_owner
from cosmictron.server.wire import json_to_python

CHUNK_ROWS = 65_536
"""Rows parsed and converted at a time: large enough that per-chunk costs vanish."""

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
    text = io.TextIOWrapper(
        io.BufferedReader(stream, BODY_READ_BYTES), encoding="utf-8-sig", newline=""
    )
    try:
        with collector_paused():
            lines = bounded_lines(text, line_bytes_max())
            parsed = parse_csv(lines, schema) if is_csv else parse_ndjson(lines, schema)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the body is not UTF-8 text: {exc.reason}") from None
    try:
        return db.bulk_insert_once(table, parsed.rows, key)
    except (InvalidRequest, Conflict) as exc:
        row_index = getattr(exc, "row_index", None)
        if row_index is None:
            raise
        line = parsed.line_of(row_index)
        raise type(exc)(f"line {line}: {getattr(exc, 'reason', exc)}") from None


@dataclass
class Parsed:
    """Converted rows (declaration order) and where each came from in the body."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    # (first row index, first line, line of each row or None when consecutive)
    spans: list[tuple[int, int, list[int] | None]] = field(default_factory=list)

    def add(self, rows: list[tuple[Any, ...]], first_line: int, lines: list[int] | None) -> None:
        self.spans.append((len(self.rows), first_line, lines))
        self.rows.extend(rows)

    def line_of(self, row_index: int) -> int:
        for start, first_line, lines in reversed(self.spans):
            if row_index >= start:
                offset = row_index - start
                return lines[offset] if lines is not None else first_line + offset
        raise AssertionError(f"row {row_index} is in no span")


@dataclass(frozen=True)
class ColumnPlan:
    """How the body's fields map onto the table's columns, built once per request."""

    schema: TableSchema
    positions: list[int | None]  # per table column: its field position, None: default
    defaults: list[Any]

    @classmethod
    def for_names(cls, schema: TableSchema, names: list[str], where: str) -> ColumnPlan:
        """Check ``names`` (a CSV header) against the table.

        Raises:
            InvalidRequest: an unknown or repeated name, or a missing column that has no
                default.
        """
        known = schema.column_names
        for name in names:
            if name not in known:
                raise InvalidRequest(
                    f"{where}: table {schema.name!r} has no column {name!r} "
                    f"(columns: {', '.join(known)})"
                )
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InvalidRequest(f"{where}: column {repeated[0]!r} appears twice")
        positions: list[int | None] = []
        defaults: list[Any] = []
        for column in schema.columns:
            if column.name in names:
                positions.append(names.index(column.name))
                defaults.append(None)
                continue
            if column.default is REQUIRED and not column.auto_inc:
                raise InvalidRequest(
                    f"{where}: column {column.name!r} of table {schema.name!r} is missing "
                    f"and has no default"
                )
            positions.append(None)
            defaults.append(0 if column.default is REQUIRED else column.default)
        return cls(schema, positions, defaults)


def parse_csv(text: Any, schema: TableSchema) -> Parsed:
    """Read a CSV body: a header of column names, then rows, converted chunk by chunk."""
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidRequest("the body is empty: send a header row of column names, then rows")
        plan = ColumnPlan.for_names(schema, [name.strip() for name in header], "line 1 (header)")
        width = len(header)
        readers = [cell_reader(column.type) for column in schema.columns]
        convert = row_converter(plan, readers)
        parsed = Parsed()
        while True:
            first_line = reader.line_num + 1
            chunk = list(itertools.islice(reader, CHUNK_ROWS))
            if not chunk:
                return parsed
            lines = None
            if reader.line_num - first_line + 1 != len(chunk):  # a field spans lines
                lines = _row_lines(chunk, first_line)
            _check_widths(chunk, width, first_line, lines)
            try:
                parsed.add(list(map(convert, chunk)), first_line, lines)
                continue
            except (ValueError, TypeError, KeyError, InvalidRequest, OverflowError):
                pass  # a bad cell: the column-wise pass below finds and names it
            fields = list(zip(*chunk, strict=True))
            columns: list[Any] = []
            for column, position, default, read in zip(
                schema.columns, plan.positions, plan.defaults, readers, strict=True
            ):
                if position is None:
                    columns.append(itertools.repeat(default, len(chunk)))
                    continue
                try:
                    columns.append(read_column(fields[position], read, column.type.name))
                except CellError as exc:
                    line = _line(first_line, lines, exc.row_index)
                    raise InvalidRequest(f"line {line}, column {column.name!r}: {exc}") from None
            parsed.add(list(zip(*columns)), first_line, lines)  # noqa: B905 - equal lengths
    except csv.Error as exc:
        raise InvalidRequest(f"line {reader.line_num}: not valid CSV: {exc}") from None


def row_converter(plan: ColumnPlan, readers: list[Any]) -> Any:
    """One function turning a CSV row (a list of cells) into a table row, made once.

    Generated like the datastore's row checkers: converting row by row in one call per
    row avoids transposing every chunk to columns and back, which was a quarter of the
    time of a 1M-row load. It raises on the first bad cell without saying which;
    ``parse_csv`` then converts that chunk column by column to name it.
    """
    names: dict[str, Any] = {}
    parts = []
    for number, (position, default, read) in enumerate(
        zip(plan.positions, plan.defaults, readers, strict=True)
    ):
        if position is None:
            names[f"_default{number}"] = default
            parts.append(f"_default{number}")
        elif read is None:
            parts.append(f"r[{position}]")
        else:
            names[f"_read{number}"] = read
            parts.append(f"_read{number}(r[{position}])")
    arguments = "".join(f", {name}={name}" for name in names)
    source = f"def convert(r{arguments}):\n    return ({', '.join(parts)},)\n"
    namespace: dict[str, Any] = dict(names)
    exec(compile(source, "<bulk row converter>", "exec"), namespace)
    return namespace["convert"]


def _row_lines(chunk: list[list[str]], first_line: int) -> list[int]:
    """The line each row starts on, when some field holds a line break."""
    lines = []
    line = first_line
    for row in chunk:
        lines.append(line)
        line += 1 + sum(value.count("\n") for value in row)
    return lines


def _line(first_line: int, lines: list[int] | None, row_index: int) -> int:
    return lines[row_index] if lines is not None else first_line + row_index


def _check_widths(chunk: list[list[str]], width: int, first_line: int, lines: Any) -> None:
    if set(map(len, chunk)) == {width}:  # the common case, at C speed
        return
    for row_index, row in enumerate(chunk):
        if len(row) != width:
            raise InvalidRequest(
                f"line {_line(first_line, lines, row_index)}: expected {width} fields "
                f"(as the header), got {len(row)}"
            )


def parse_ndjson(text: Any, schema: TableSchema) -> Parsed:
    """Read an NDJSON body: one object per line keyed by column name; blank lines skipped."""
    parsed = Parsed()
    names = set(schema.column_names)
    converters = [_json_converter(column.type) for column in schema.columns]
    first_line = 1
    while True:
        lines = list(itertools.islice(text, CHUNK_ROWS))
        if not lines:
            if not parsed.rows:
                raise InvalidRequest("the body is empty: send one JSON object per line")
            return parsed
        consumed = len(lines)
        numbers = None
        if not all(line.strip() for line in lines):
            numbers = [first_line + i for i, line in enumerate(lines) if line.strip()]
            lines = [line for line in lines if line.strip()]
        objects = _decode_lines(lines, first_line, numbers)
        if set().union(*map(dict.keys, objects)) - names:
            _raise_unknown(objects, names, schema, first_line, numbers)
        columns = []
        for column, convert in zip(schema.columns, converters, strict=True):
            default = 0 if column.default is REQUIRED and column.auto_inc else column.default
            values = [item.get(column.name, default) for item in objects]
            if convert is not None:
                try:
                    values = list(map(convert, values))
                except (ValueError, TypeError, KeyError):
                    _raise_bad_value(values, column.name, column.type, first_line, numbers)
            columns.append(values)
        parsed.add(list(zip(*columns)), first_line, numbers)  # noqa: B905 - equal lengths
        first_line += consumed


def _decode_lines(lines: list[str], first_line: int, numbers: list[int] | None) -> list[Any]:
    _check_depths(lines, first_line, numbers)
    try:
        objects = list(map(json.loads, lines))
    except ValueError:
        for row_index, line in enumerate(lines):
            try:
                json.loads(line)
            except ValueError as exc:
                where = _line(first_line, numbers, row_index)
                raise InvalidRequest(f"line {where}: not valid JSON: {exc}") from None
        raise AssertionError("a chunk failed to decode but no line of it fails") from None
    for row_index, item in enumerate(objects):
        if type(item) is not dict:
            where = _line(first_line, numbers, row_index)
            raise InvalidRequest(
                f"line {where}: expected a JSON object keyed by column name, "
                f"got {type(item).__name__}"
            )
    return objects


def _check_depths(lines: list[str], first_line: int, numbers: list[int] | None) -> None:
    """Refuse (400, ``too_deep``) the first line nested past ``limits.json_depth_max``.

    The chunk is cleared at C speed when even its most bracketed lines could not be too
    deep; only otherwise is each line measured (``bounded_json``).
    """
    limit = limits.json_depth_max
    most = max(map(str.count, lines, itertools.repeat("{")), default=0)
    most += max(map(str.count, lines, itertools.repeat("[")), default=0)
    if most <= limit:
        return
    for row_index, line in enumerate(lines):
        bounded_json.check_depth(line, f"line {_line(first_line, numbers, row_index)}", limit)


def _json_converter(column_type: ColumnType) -> Any:
    """None for types whose JSON value is what the checker takes (numbers, text, enums)."""
    if cell_reader(column_type) in (None, int, float):
        return None
    return lambda value: json_to_python(value, column_type)


def _raise_bad_value(
    values: list[Any], name: str, column_type: ColumnType, first_line: int, numbers: Any
) -> None:
    for row_index, value in enumerate(values):
        try:
            json_to_python(value, column_type)
        except (ValueError, TypeError, KeyError):
            shown = json.dumps(value)
            raise InvalidRequest(
                f"line {_line(first_line, numbers, row_index)}, column {name!r}: "
                f"expected {column_type.name}, got {shown}"
            ) from None
    raise AssertionError("a column failed to convert but no value of it fails")


def _raise_unknown(
    objects: list[Any], names: set[str], schema: TableSchema, first_line: int, numbers: Any
) -> None:
    for row_index, item in enumerate(objects):
        extra = sorted(set(item) - names)
        if extra:
            raise InvalidRequest(
                f"line {_line(first_line, numbers, row_index)}: table {schema.name!r} has no "
                f"column {extra[0]!r} (columns: {', '.join(schema.column_names)})"
            )
