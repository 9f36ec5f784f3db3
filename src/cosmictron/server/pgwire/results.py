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
    return [
        TEXT_ENCODERS.get(oid, pgtypes.text_of) if fmt == 0 else pgtypes.encoder(oid, True)
        for oid, fmt in zip(oids, formats, strict=True)
    ]


Writer = Callable[[Sequence[tuple[Any, ...]], Any], None]

_BY_TYPES: dict[tuple[tuple[int, ...], tuple[int, ...]], Writer] = {}


def writer_for(oids: tuple[int, ...], formats: tuple[int, ...]) -> Writer:
    """``row_writer`` for columns of these OIDs in these formats, found by the OIDs: a
    prepared statement's Execute does not choose encoders again."""
    key = (oids, formats)
    found = _BY_TYPES.get(key)
    if found is None:
        found = row_writer(tuple(encoders(oids, formats)))
        if len(_BY_TYPES) >= _WRITERS_MAX:
            _BY_TYPES.clear()
        _BY_TYPES[key] = found
    return found


def sent_formats(requested: tuple[int, ...], oids: tuple[int, ...]) -> tuple[int, ...]:
    """The format each column is sent in: Bind's result formats (``result_formats``),
    with text for a type that has no binary form here (described so).

    Raises:
        ValueError: as ``result_formats``.
    """
    key = (requested, oids)
    found = _SENT.get(key)
    if found is None:
        formats = result_formats(requested, len(oids))
        found = tuple(
            f if f == 0 or pgtypes.has_binary(o) else 0 for f, o in zip(formats, oids, strict=True)
        )
        if len(_SENT) >= _WRITERS_MAX:
            _SENT.clear()
        _SENT[key] = found
    return found


_SENT: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = {}


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


def data_rows(rows: Sequence[tuple[Any, ...]], encode: Sequence[Encoder] | Writer) -> bytes:
    """The DataRow messages of ``rows``, concatenated (through ``row_writer``, or the
    writer given)."""
    out: list[bytes] = []
    write = encode if callable(encode) else row_writer(tuple(encode))
    write(rows, out.append)
    return b"".join(out)


_WRITERS: dict[tuple[Encoder, ...], Writer] = {}
_WRITERS_MAX = 256


def row_writer(encode: tuple[Encoder, ...]) -> Writer:
    """A function appending the DataRow of each row, written out for this list of column
    encoders: one unrolled statement per column instead of a loop over them, and the
    common encoders (``str.encode``, ``int`` to text, fixed-width binary) inlined. It is
    the hot loop of a scan: about 3x faster than the generic loop it replaces."""
    found = _WRITERS.get(encode)
    if found is not None:
        return found
    width = len(encode)
    names = ", ".join(f"v{i}" for i in range(width)) + ("," if width == 1 else "")
    lines = [
        "def write(rows, append):",
        "    for row in rows:",
        f"        {names} = row",
    ]
    scope: dict[str, Any] = {"pack_i": _LENGTH, "head": struct.Struct("!ih").pack, "NULL": _NULL}
    for i, function in enumerate(encode):
        scope[f"e{i}"] = function
        inline = _INLINE.get(function)
        lines.append(f"        if v{i} is None:")
        lines.append(f"            p{i} = NULL")
        lines.append("        else:")
        if inline is not None and inline[1] is not None:  # fixed width: known length
            scope[f"pre{i}"] = inline[1]
            lines.append(f"            p{i} = pre{i} + {inline[0].format(v=f'v{i}', f=f'e{i}')}")
        else:
            expression = inline[0] if inline is not None else "{f}({v})"
            lines.append(f"            b{i} = {expression.format(v=f'v{i}', f=f'e{i}')}")
            lines.append(f"            p{i} = pack_i(len(b{i})) + b{i}")
    body = " + ".join(f"p{i}" for i in range(width)) if width else "b''"
    lines.append(f"        body = {body}")
    lines.append(f"        append(b'D' + head(len(body) + 6, {width}) + body)")
    exec(compile("\n".join(lines), "<pgwire row writer>", "exec"), scope)
    writer = scope["write"]
    if len(_WRITERS) >= _WRITERS_MAX:
        _WRITERS.clear()
    _WRITERS[encode] = writer
    return writer


def _text_int(value: Any) -> bytes:
    return str(value).encode()


def _text_float(value: Any) -> bytes:
    return pgtypes.text_of(value)


def _text_str(value: Any) -> bytes:
    return value.encode() if type(value) is str else pgtypes.text_of(value)


_INLINE: dict[Encoder, tuple[str, bytes | None]] = {}
"""Encoders written inline by ``row_writer``: the expression, and for a fixed-width
binary form the 4-byte length prefix that goes before it."""


def _setup_inline() -> None:
    binary = pgtypes.BINARY_ENCODERS
    for oid, width in (
        (pgtypes.INT8, 8),
        (pgtypes.INT4, 4),
        (pgtypes.INT2, 2),
        (pgtypes.FLOAT8, 8),
        (pgtypes.FLOAT4, 4),
    ):
        _INLINE[binary[oid]] = ("{f}({v})", _LENGTH(width))
    _INLINE[binary[pgtypes.BOOL]] = ("(b'\\x01' if {v} else b'\\x00')", _LENGTH(1))
    _INLINE[_text_int] = ("str({v}).encode()", None)
    _INLINE[_text_float] = ("(repr({v}).encode() if {v} - {v} == 0 else {f}({v}))", None)
    _INLINE[_text_str] = ("({v}.encode() if type({v}) is str else {f}({v}))", None)


_setup_inline()

TEXT_ENCODERS: dict[int, Encoder] = {
    pgtypes.INT2: _text_int,
    pgtypes.INT4: _text_int,
    pgtypes.INT8: _text_int,
    pgtypes.NUMERIC: _text_int,
    pgtypes.OID: _text_int,
    pgtypes.FLOAT4: _text_float,
    pgtypes.FLOAT8: _text_float,
    pgtypes.TEXT: _text_str,
    pgtypes.NAME: _text_str,
    pgtypes.VARCHAR: _text_str,
}
"""Text encoders faster than ``pgtypes.text_of`` for the types whose values are always
of one Python type (a numeric column holds ints: the wide integer columns)."""


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
