"""Row codecs: canonical row tuples to the msgpack-able lists the log and snapshots hold.

A table whose columns are all ``plain`` (64-bit integers, floats, bools, text, bytes and
optionals of those) is written as-is, so the common case does no per-value work.
"""

from __future__ import annotations

from typing import Any

from cosmictron.datastore.schema import TableSchema


class RowCodec:
    __slots__ = ("_decoders", "_encoders", "plain")

    def __init__(self, schema: TableSchema) -> None:
        types = [column.type for column in schema.columns]
        self.plain = all(column_type.plain for column_type in types)
        self._encoders = [column_type.encode for column_type in types]
        self._decoders = [column_type.decode for column_type in types]

    def encode(self, row: tuple[Any, ...]) -> Any:
        if self.plain:
            return row
        return [encode(value) for encode, value in zip(self._encoders, row, strict=True)]

    def encode_many(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        if self.plain:
            return rows
        return [self.encode(row) for row in rows]

    def decode(self, wire: list[Any]) -> tuple[Any, ...]:
        if self.plain:
            return tuple(wire)
        return tuple(decode(value) for decode, value in zip(self._decoders, wire, strict=True))

    def decode_many(self, wires: list[Any]) -> list[tuple[Any, ...]]:
        if self.plain:
            return list(map(tuple, wires))
        return [self.decode(wire) for wire in wires]
