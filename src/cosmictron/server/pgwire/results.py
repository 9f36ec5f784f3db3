"""Rows as DataRow messages, encoded a batch at a time.

A result's rows are encoded by per-column functions chosen once from the column's
OID and format, and written in batches of ``BATCH_ROWS``: the session awaits the
socket's drain between batches, so a slow reader holds back the encoding (back
pressure) instead of the server buffering a whole result as bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from cosmictron.server.pgwire import pgtypes

BATCH_ROWS = 2000
"""Rows encoded between two waits for the socket to drain."""

_HEADER = struct.Struct("!cih").pack
_LENGTH = struct.Struct("!i").pack
_COUNT = struct.Struct("!h").pack
_NULL = b"\xff\xff\xff\xff"

Encoder = Callable[[Any], bytes]


def encoders(oids: Sequence[int], formats: Sequence[int]) -> list[Encoder]:
    return [
        TEXT_ENCODERS.get(oid, pgtypes.text_of) if fmt == 0 else pgtypes.encoder(oid, True)
        for oid, fmt in zip(oids, formats, strict=True)
    ]


Writer = Callable[[Sequence[tuple[Any, ...]]], bytes]
"""Rows to their DataRow messages, concatenated."""

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
    write = encode if callable(encode) else row_writer(tuple(encode))
    return write(rows)


_WRITERS: dict[tuple[Encoder, ...], Writer] = {}
_WRITERS_MAX = 256

_LENGTHS_MAX = 4096
_LENGTHS = tuple(_LENGTH(n).decode("latin-1") for n in range(_LENGTHS_MAX))
"""4-byte big-endian lengths as latin-1 strings (one character per byte)."""


def _length_text(n: int) -> str:
    return _LENGTH(n).decode("latin-1")


def row_writer(encode: tuple[Encoder, ...]) -> Writer:
    """A function turning a batch of rows into their DataRow messages, generated for
    this list of column encoders: one unrolled statement per column instead of a loop
    over them, the common encoders inlined. It is the hot loop of a scan, so it is
    written two ways:

    - no fixed-width binary column (text results, psycopg's default): each value
      becomes a ``str`` whose characters are its bytes (ASCII text as it is, anything
      else through ``latin-1``), a row is one f-string with the lengths taken from a
      table of 4-character strings, and a batch is encoded once
      (``str.encode("latin-1")``): no per-value ``encode`` or ``struct`` call;
    - with fixed-width binary columns (integers, floats, bool: asyncpg, psycopg
      binary): the lengths and fixed-width values between two variable-width values
      are packed by one precompiled ``struct`` call. A row with NULL in a fixed-width
      column takes the per-column path (``_row_function``).
    """
    found = _WRITERS.get(encode)
    if found is not None:
        return found
    writer: Writer
    if _compiled_rows is not None:
        writer = partial(
            _compiled_rows, kinds=bytes(_KINDS.get(e, ord("o")) for e in encode), encoders=encode
        )
    elif any(e in _FIXED for e in encode):
        writer = _packed_writer(encode)
    else:
        writer = _text_writer(encode)
    if len(_WRITERS) >= _WRITERS_MAX:
        _WRITERS.clear()
    _WRITERS[encode] = writer
    return writer


def _unpack_line(width: int) -> str:
    if width == 0:
        return ""
    names = ", ".join(f"v{i}" for i in range(width)) + ("," if width == 1 else "")
    return f"        {names} = row"


def _text_writer(encode: tuple[Encoder, ...]) -> Writer:
    width = len(encode)
    scope: dict[str, Any] = {
        "L": _LENGTHS,
        "LMAX": _LENGTHS_MAX,
        "lenstr": _length_text,
        "NULL": _NULL.decode("latin-1"),
        "COUNT": _COUNT(width).decode("latin-1"),
    }
    lines = [
        "def write(rows):",
        "    out = []",
        "    append = out.append",
        "    for row in rows:",
        _unpack_line(width),
    ]
    for i, function in enumerate(encode):
        scope[f"e{i}"] = function
        expression = _AS_TEXT.get(function, "{f}({v}).decode('latin-1')")
        lines += [
            f"        if v{i} is None:",
            f"            s{i} = ''",
            f"            n{i} = 0",
            f"            h{i} = NULL",
            "        else:",
            f"            s{i} = {expression.format(v=f'v{i}', f=f'e{i}')}",
            f"            n{i} = len(s{i})",
            f"            h{i} = L[n{i}] if n{i} < LMAX else lenstr(n{i})",
        ]
    total = " + ".join([str(6 + 4 * width), *(f"n{i}" for i in range(width))])
    lines.append(f"        t = {total}")
    fields = "".join(f"{{h{i}}}{{s{i}}}" for i in range(width))
    lines.append(f'        append(f"D{{L[t] if t < LMAX else lenstr(t)}}{{COUNT}}{fields}")')
    lines.append("    return ''.join(out).encode('latin-1')")
    return _compile([line for line in lines if line], scope)


def _packed_writer(encode: tuple[Encoder, ...]) -> Writer:
    width = len(encode)
    scope: dict[str, Any] = {"slow": _row_function(encode), "COUNT": width}
    lines = [
        "def write(rows):",
        "    out = []",
        "    append = out.append",
        "    for row in rows:",
        _unpack_line(width),
    ]
    fixed = [i for i, e in enumerate(encode) if e in _FIXED]
    lines.append("        if " + " or ".join(f"v{i} is None" for i in fixed) + ":")
    lines.append("            append(slow(row))")
    lines.append("            continue")
    constant = 6
    segments: list[str] = []
    formats, arguments = ["c", "i", "h"], ["b'D'", "t", "COUNT"]
    for i, function in enumerate(encode):
        scope[f"e{i}"] = function
        if function in _FIXED:
            code, size = _FIXED[function]
            constant += 4 + size
            formats += ["i", code]
            arguments += [str(size), f"v{i}"]
            continue
        constant += 4
        expression = _INLINE.get(function, ("{f}({v})", None))[0]
        lines += [
            f"        if v{i} is None:",
            f"            b{i} = b''",
            f"            n{i} = -1",
            "        else:",
            f"            b{i} = {expression.format(v=f'v{i}', f=f'e{i}')}",
            f"            n{i} = len(b{i})",
        ]
        formats.append("i")
        arguments.append(f"n{i}")
        scope[f"pack{len(segments)}"] = struct.Struct("!" + "".join(formats)).pack
        segments.append(f"pack{len(segments)}({', '.join(arguments)})")
        segments.append(f"b{i}")
        formats, arguments = [], []
    if formats:
        scope[f"pack{len(segments)}"] = struct.Struct("!" + "".join(formats)).pack
        segments.append(f"pack{len(segments)}({', '.join(arguments)})")
    variable = [i for i in range(width) if i not in fixed]
    total = " + ".join([str(constant), *(f"len(b{i})" for i in variable)])
    lines.append(f"        t = {total}")
    lines.append(f"        append({' + '.join(segments)})")
    lines.append("    return b''.join(out)")
    return _compile([line for line in lines if line], scope)


def _compile(lines: list[str], scope: dict[str, Any]) -> Any:
    exec(compile("\n".join(lines), "<pgwire row writer>", "exec"), scope)
    return scope["write"]


def _row_function(encode: tuple[Encoder, ...]) -> Callable[[tuple[Any, ...]], bytes]:
    """One row's DataRow, column by column (each value or NULL with its own length)."""
    width = len(encode)
    lines = ["def write(row):", _unpack_line(width).replace("        ", "    ", 1)]
    scope: dict[str, Any] = {"pack_i": _LENGTH, "head": struct.Struct("!ih").pack, "NULL": _NULL}
    for i, function in enumerate(encode):
        scope[f"e{i}"] = function
        inline = _INLINE.get(function)
        lines.append(f"    if v{i} is None:")
        lines.append(f"        p{i} = NULL")
        lines.append("    else:")
        if inline is not None and inline[1] is not None:  # fixed width: known length
            scope[f"pre{i}"] = inline[1]
            lines.append(f"        p{i} = pre{i} + {inline[0].format(v=f'v{i}', f=f'e{i}')}")
        else:
            expression = inline[0] if inline is not None else "{f}({v})"
            lines.append(f"        b{i} = {expression.format(v=f'v{i}', f=f'e{i}')}")
            lines.append(f"        p{i} = pack_i(len(b{i})) + b{i}")
    body = " + ".join(f"p{i}" for i in range(width)) if width else "b''"
    lines.append(f"    body = {body}")
    lines.append(f"    return b'D' + head(len(body) + 6, {width}) + body")
    return _compile([line for line in lines if line], scope)


def _text_int(value: Any) -> bytes:
    return str(value).encode()


def _text_float(value: Any) -> bytes:
    return pgtypes.text_of(value)


def _text_str(value: Any) -> bytes:
    return value.encode() if type(value) is str else pgtypes.text_of(value)


_INLINE: dict[Encoder, tuple[str, bytes | None]] = {}
"""Encoders written inline (bytes): the expression, and for a fixed-width binary form
the 4-byte length prefix that goes before it."""

_FIXED: dict[Encoder, tuple[str, int]] = {}
"""Fixed-width binary encoders: their ``struct`` code and width."""

_AS_TEXT: dict[Encoder, str] = {}
"""Encoders written inline by the text writer, as expressions giving a ``str`` whose
characters are the value's bytes (``latin-1``); others are ``f(v).decode('latin-1')``."""


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
    for oid, code in (
        (pgtypes.INT8, "q"),
        (pgtypes.INT4, "i"),
        (pgtypes.INT2, "h"),
        (pgtypes.FLOAT8, "d"),
        (pgtypes.FLOAT4, "f"),
        (pgtypes.BOOL, "?"),
    ):
        _FIXED[binary[oid]] = (code, struct.calcsize("!" + code))
    _AS_TEXT[_text_int] = "str({v})"
    _AS_TEXT[_text_float] = "(repr({v}) if {v} - {v} == 0 else {f}({v}).decode('latin-1'))"
    _AS_TEXT[_text_str] = (
        "({v} if type({v}) is str and {v}.isascii() else {f}({v}).decode('latin-1'))"
    )
    _AS_TEXT[pgtypes.text_of] = (
        "('t' if {v} is True else 'f' if {v} is False else {f}({v}).decode('latin-1'))"
    )


_setup_inline()

_KINDS: dict[Encoder, int] = {
    _text_int: ord("i"),
    _text_float: ord("f"),
    _text_str: ord("s"),
    pgtypes.text_of: ord("B"),
    pgtypes.BINARY_ENCODERS[pgtypes.INT8]: ord("q"),
    pgtypes.BINARY_ENCODERS[pgtypes.INT4]: ord("l"),
    pgtypes.BINARY_ENCODERS[pgtypes.INT2]: ord("h"),
    pgtypes.BINARY_ENCODERS[pgtypes.FLOAT8]: ord("d"),
    pgtypes.BINARY_ENCODERS[pgtypes.BOOL]: ord("?"),
    # Text's binary form is its UTF-8, as in the text format.
    pgtypes.BINARY_ENCODERS[pgtypes.TEXT]: ord("s"),
}
"""The compiled writer's fast path for each encoder (``_rows.pyx``); any other encoder
is called for each value."""

_compiled_rows: Callable[..., bytes] | None = None
"""The compiled DataRow writer (``_rows.pyx``), or None: not built, or
``COSMICTRON_PURE`` set (the generated Python writers below are used)."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.server.pgwire._rows import data_rows as _compiled_rows
    except ImportError:  # built without a compiler: the pure writers serve
        pass
COMPILED = _compiled_rows is not None

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
