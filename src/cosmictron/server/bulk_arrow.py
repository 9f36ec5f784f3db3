"""The columnar CSV path of a bulk load: plain CSV parsed and converted by ``pyarrow``.

``pyarrow`` is an optional extra (``pip install 'cosmictron[fast-csv]'``). Without it,
or for any body this path does not take, ``bulk_rows.parse_csv`` reads the body exactly
as before, so both paths give the same rows and the same errors. With it, a 1M-row
load spends about a quarter of the CPU on parsing and converting
(docs/benchmarks.md, "Bulk load through the server").

Only what is trivially the same under both readers goes through ``pyarrow``:

- the table columns named in the header are integers, ``f64`` or ``str`` (others have
  cell readers of their own), and the header is plain;
- the body is cut into segments of whole lines (``SEGMENT_BYTES``); a segment is taken
  only if it holds no quote and no carriage return, so every line is its fields split
  at commas, which both readers agree on; no line can be longer than the line limit;
- every cell converts (``int``: digits with an optional sign; ``f64``: any float text
  ``float()`` also reads) and every value passes the column's check (integers in
  range, floats finite), checked column-wise at C speed; strings are the cells as is.

The first segment that is not so (a quote, an empty line, a bad cell, a wrong field
count, bytes that are not UTF-8, a value out of range) is handed, with the rest of the
body, to ``bulk_rows.parse_csv`` at its line number: from there on the body is read as
before, and any error names its line and column as before.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import itertools
import os
from typing import Any

from cosmictron.datastore.schema import TableSchema
from cosmictron.datastore.types import F64, STR, ColumnType, IntType, TypeMismatch
from cosmictron.server.bulk_rows import ColumnPlan, Parsed, parse_csv

ENABLED = (
    importlib.util.find_spec("pyarrow") is not None  # the optional extra [fast-csv]
    and os.environ.get("COSMICTRON_FAST_CSV", "1") != "0"
)
"""Whether CSV bodies try the columnar path: with ``pyarrow`` installed, unless the
server was started with ``COSMICTRON_FAST_CSV=0`` (to compare the paths; tests also
turn it off to run the fallback)."""

SEGMENT_BYTES = 4 * 1024 * 1024
"""Bytes of whole lines parsed at a time: large enough that per-segment costs vanish."""

_BOM = b"\xef\xbb\xbf"


@functools.cache
def _arrow() -> Any:
    """``pyarrow`` with its ``csv`` and ``compute`` modules, imported on the first body
    that takes the columnar path: importing them (and numpy) costs about 0.3 s of CPU,
    which every server start paid, most of them never to read a large CSV body."""
    import pyarrow
    import pyarrow.compute
    import pyarrow.csv

    return pyarrow


class _Rest(io.RawIOBase):
    """``prefix`` followed by the rest of ``reader``: the part of the body not yet parsed."""

    def __init__(self, prefix: bytes, reader: Any) -> None:
        self._prefix = memoryview(prefix)
        self._reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        data = self._reader.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _plain_type(column_type: ColumnType) -> bool:
    return column_type is STR or column_type is F64 or isinstance(column_type, IntType)


def parse_csv_body(body: Any, schema: TableSchema, line_limit: int, read_lines: Any) -> Parsed:
    """Parse a CSV body from ``body`` (a binary file), columnar where it can.

    ``read_lines(text_file)`` turns the text of a handed-over remainder into lines
    (``bulk.bounded_lines`` with the line limit), as the fallback path reads them.
    """
    reader = io.BufferedReader(body, SEGMENT_BYTES)
    if not ENABLED or line_limit < 2 * SEGMENT_BYTES:
        return _hand_over(b"", reader, schema, read_lines, None, 0, None)
    first = reader.read(SEGMENT_BYTES)
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    end = first.find(b"\n")
    header_bytes = first[:end]
    if end < 0 or b'"' in header_bytes or b"\r" in header_bytes:
        return _hand_over(first, reader, schema, read_lines, None, 0, None)
    try:
        names = [name.strip() for name in header_bytes.decode().split(",")]
    except UnicodeDecodeError:
        return _hand_over(first, reader, schema, read_lines, None, 0, None)
    plan = ColumnPlan.for_names(schema, names, "line 1 (header)")
    if not all(
        _plain_type(column.type)
        for column, position in zip(schema.columns, plan.positions, strict=True)
        if position is not None
    ):
        return _hand_over(first, reader, schema, read_lines, None, 0, None)
    parsed = Parsed(checked=True)
    pending = first[end + 1 :]
    line = 2  # the line the next segment starts on
    while True:
        data = reader.read(SEGMENT_BYTES)
        pending += data
        if not pending:
            return parsed
        cut = len(pending) if not data else pending.rfind(b"\n") + 1
        segment = pending[:cut]
        if cut == 0 or not _columnar(segment, schema, plan, names, parsed, line):
            return _hand_over(pending, reader, schema, read_lines, plan, line - 1, parsed)
        line += segment.count(b"\n")
        pending = pending[cut:]


def _columnar(
    segment: bytes,
    schema: TableSchema,
    plan: ColumnPlan,
    names: list[str],
    parsed: Parsed,
    line: int,
) -> bool:
    """Add the rows of ``segment`` to ``parsed`` and return True, or add nothing and
    return False when it is not plain (see the module docstring)."""
    if b'"' in segment or b"\r" in segment or b"\n\n" in segment or segment.startswith(b"\n"):
        return False
    pyarrow = _arrow()
    try:
        table = pyarrow.csv.read_csv(
            pyarrow.py_buffer(segment),
            read_options=pyarrow.csv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(segment) + 1
            ),
            parse_options=pyarrow.csv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pyarrow.csv.ConvertOptions(
                column_types=dict.fromkeys(names, pyarrow.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        count = table.num_rows
        columns: list[Any] = []
        for column, position, default in zip(
            schema.columns, plan.positions, plan.defaults, strict=True
        ):
            if position is None:
                columns.append(itertools.repeat(column.type.check(default), count))
                continue
            cells = table.column(position)
            if column.type is STR:
                columns.append(cells.to_pylist())
                continue
            if column.type is F64:
                values = pyarrow.compute.cast(cells, pyarrow.float64())
                if count and not pyarrow.compute.all(pyarrow.compute.is_finite(values)).as_py():
                    return False
                columns.append(values.to_pylist())
                continue
            kind = column.type
            assert isinstance(kind, IntType)
            values = pyarrow.compute.cast(cells, pyarrow.int64())
            if count:
                low_high = pyarrow.compute.min_max(values)
                if low_high["min"].as_py() < kind.low or low_high["max"].as_py() > kind.high:
                    return False
            columns.append(values.to_pylist())
    except (pyarrow.ArrowException, ValueError, TypeError, TypeMismatch):
        return False  # the row-wise reader finds and names what is wrong
    parsed.add(list(zip(*columns)), line, None)  # noqa: B905 - equal lengths
    return True


def _hand_over(
    prefix: bytes,
    reader: Any,
    schema: TableSchema,
    read_lines: Any,
    plan: ColumnPlan | None,
    lines_before: int,
    parsed: Parsed | None,
) -> Parsed:
    """Parse ``prefix`` and the rest of ``reader`` row-wise (``bulk_rows.parse_csv``)."""
    encoding = "utf-8-sig" if plan is None else "utf-8"
    text = io.TextIOWrapper(
        io.BufferedReader(_Rest(prefix, reader), SEGMENT_BYTES), encoding=encoding, newline=""
    )
    return parse_csv(read_lines(text), schema, plan, lines_before, parsed)
