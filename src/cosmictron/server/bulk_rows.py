"""A bulk load's body as rows: CSV or NDJSON parsed and converted chunk by chunk.

``parse_csv`` and ``parse_ndjson`` read lines (``bulk.bounded_lines``), check the names
against the table once (``ColumnPlan``), and convert ``CHUNK_ROWS`` rows at a time
column by column (``cells.py``), keeping only the converted rows and where each came
from (``Parsed.line_of``), so an error names its line and, when it is one cell, its
column. Runs on a database thread, never on the event loop (``bulk.py``).
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from cosmictron import bounded_json, limits
from cosmictron.datastore.checker import check_expression
from cosmictron.datastore.schema import TableSchema
from cosmictron.datastore.types import REQUIRED, ColumnType, TypeMismatch
from cosmictron.errors import InvalidRequest
from cosmictron.server.cells import CellError, cell_reader, read_column
from cosmictron.server.wire import json_to_python

CHUNK_ROWS = 65_536
"""Rows parsed and converted at a time: large enough that per-chunk costs vanish."""


@dataclass
class Parsed:
    """Converted rows (declaration order) and where each came from in the body."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    # (first row index, first line, line of each row or None when consecutive)
    spans: list[tuple[int, int, list[int] | None]] = field(default_factory=list)
    checked: bool = False
    """Every row was checked against the schema while it was converted (the CSV fast
    path): the host may skip its own check (``Database.bulk_insert_once(checked_for=)``)."""

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


def parse_csv(
    text: Any,
    schema: TableSchema,
    plan: ColumnPlan | None = None,
    lines_before: int = 0,
    parsed: Parsed | None = None,
) -> Parsed:
    """Read a CSV body: a header of column names, then rows, converted chunk by chunk.

    ``bulk_arrow`` hands over the rest of a body it read in part: then ``plan`` is the
    header's, ``lines_before`` the lines already read and ``parsed`` their rows.
    """
    reader = csv.reader(text, strict=True)
    try:
        if plan is None:
            header = next(reader, None)
            if header is None:
                raise InvalidRequest(
                    "the body is empty: send a header row of column names, then rows"
                )
            names = [name.strip() for name in header]
            plan = ColumnPlan.for_names(schema, names, "line 1 (header)")
        width = sum(position is not None for position in plan.positions)
        readers = [cell_reader(column.type) for column in schema.columns]
        convert = row_converter(plan, readers)
        if parsed is None:
            parsed = Parsed(checked=True)
        while True:
            first_line = lines_before + reader.line_num + 1
            chunk = list(itertools.islice(reader, CHUNK_ROWS))
            if not chunk:
                return parsed
            lines = None
            if lines_before + reader.line_num - first_line + 1 != len(chunk):  # a field spans lines
                lines = _row_lines(chunk, first_line)
            _check_widths(chunk, width, first_line, lines)
            try:
                parsed.add(list(map(convert, chunk)), first_line, lines)
                continue
            except (ValueError, TypeError, KeyError, InvalidRequest, OverflowError, TypeMismatch):
                pass  # a bad cell: the column-wise pass below finds and names it
            # This chunk's rows are converted but not checked: the host checks them and
            # names the row (``bulk.py`` maps it to its line).
            parsed.checked = False
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
        line = lines_before + reader.line_num
        raise InvalidRequest(f"line {line}: not valid CSV: {exc}") from None


def row_converter(plan: ColumnPlan, readers: list[Any]) -> Any:
    """One function turning a CSV row (a list of cells) into a checked table row, made once.

    Generated like the datastore's row checkers: converting row by row in one call per
    row avoids transposing every chunk to columns and back, which was a quarter of the
    time of a 1M-row load. Each value is also checked against its column in the same
    function, with the very expressions the table's compiled checker uses
    (``checker.check_expression``), so the result is what ``check_values(convert(row))``
    gives and the host need not map its checker over the body again (one Python call per
    row less). It raises on the first bad cell without saying which; ``parse_csv`` then
    converts that chunk column by column to name it.
    """
    names: dict[str, Any] = {}
    reads = []
    for number, (column, position, default, read) in enumerate(
        zip(plan.schema.columns, plan.positions, plan.defaults, readers, strict=True)
    ):
        if position is None:
            names[f"_default{number}"] = default
            value = f"_default{number}"
        elif read is None:
            value = f"r[{position}]"
        else:
            names[f"_read{number}"] = read
            value = f"_read{number}(r[{position}])"
        names[f"_check{number}"] = column.type.check
        reads.append(f"    v{number} = {value}\n")
    checks = [
        check_expression(column.type, f"v{number}", f"_check{number}(v{number})")
        for number, column in enumerate(plan.schema.columns)
    ]
    arguments = "".join(f", {name}={name}" for name in names)
    source = f"def convert(r{arguments}):\n{''.join(reads)}    return ({', '.join(checks)},)\n"
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
