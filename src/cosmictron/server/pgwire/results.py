"""Rows as DataRow messages, encoded a batch at a time.

A result's rows are encoded by per-column functions chosen once from the column's
OID and format, and written in batches of ``BATCH_ROWS``: the session awaits the
socket's drain between batches, so a slow reader holds back the encoding (back
pressure) instead of the server buffering a whole result as bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from cosmictron.server.pgwire import pgtypes

BATCH_ROWS = 2000
"""Rows encoded between two waits for the socket to drain."""

_HEADER = struct.Struct("!cih").pack
_LENGTH = struct.Struct("!i").pack
_NULL = b"\xff\xff\xff\xff"

Encoder = Callable[[Any], bytes]


def encoders(oids: Sequence[int], formats: Sequence[int]) -> list[Encoder]:
    return [pgtypes.encoder(oid, fmt == 1) for oid, fmt in zip(oids, formats, strict=True)]


def result_formats(requested: Sequence[int], count: int) -> list[int]:
    """Bind's result format codes, spread as the protocol says: none means all text,
    one applies to every column, else one per column."""
    if not requested:
        return [0] * count
    if len(requested) == 1:
        return [requested[0]] * count
    if len(requested) != count:
        raise ValueError(f"{len(requested)} result formats for {count} columns")
    return list(requested)


def data_rows(rows: Sequence[tuple[Any, ...]], encode: Sequence[Encoder]) -> bytes:
    """The DataRow messages of ``rows``, concatenated."""
    width = len(encode)
    out: list[bytes] = []
    append = out.append
    if width == 1:
        (only,) = encode
        for (value,) in rows:
            if value is None:
                append(b"D\x00\x00\x00\x0a\x00\x01\xff\xff\xff\xff")
            else:
                data = only(value)
                append(_HEADER(b"D", 10 + len(data), 1) + _LENGTH(len(data)) + data)
        return b"".join(out)
    for row in rows:
        parts = []
        size = 6
        for value, function in zip(row, encode, strict=True):
            if value is None:
                parts.append(_NULL)
                size += 4
            else:
                data = function(value)
                parts.append(_LENGTH(len(data)))
                parts.append(data)
                size += 4 + len(data)
        append(_HEADER(b"D", size, width))
        append(b"".join(parts))
    return b"".join(out)


def copy_lines(rows: Sequence[tuple[Any, ...]], csv: bool, delimiter: str) -> bytes:
    """Rows in COPY's text format (tab-separated, ``\\N`` for NULL, backslash escapes)
    or CSV (quoted where needed, empty unquoted field for NULL)."""
    out = []
    for row in rows:
        fields = []
        for value in row:
            if value is None:
                fields.append("" if csv else "\\N")
                continue
            text = pgtypes.text_of(value).decode()
            if csv:
                if any(c in text for c in (delimiter, '"', "\n", "\r")) or text == "":
                    text = '"' + text.replace('"', '""') + '"'
            else:
                text = (
                    text.replace("\\", "\\\\")
                    .replace("\t", "\\t")
                    .replace("\n", "\\n")
                    .replace("\r", "\\r")
                )
                if delimiter != "\t":
                    text = text.replace(delimiter, "\\" + delimiter)
            fields.append(text)
        out.append(delimiter.join(fields) + "\n")
    return "".join(out).encode()
