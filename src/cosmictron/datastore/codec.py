"""Row codecs: canonical row tuples to the msgpack-able lists the log and snapshots hold.

A table whose columns are all ``plain`` (64-bit integers, floats, bools, text, bytes and
optionals of those) is written as-is, so the common case does no per-value work.

Rows are stored positionally, so a stored row must have as many values as the table has
columns. One that has not was written when the table was declared differently: the
module's source is stored, but code it imports (a library of tables, or
``cosmictron.agents``) can declare other columns since. Such a row is refused with a
``SchemaError`` naming the table and the columns, instead of being read wrongly, except
for a width the table lists in ``TableSchema.older_widths`` (the reserved agent tables):
those rows are read with the defaults of the columns appended since, as a migration
(``datastore.migration``) would have given them.
"""

from __future__ import annotations

from typing import Any

from cosmictron.datastore.schema import TableSchema
from cosmictron.errors import SchemaError


class RowCodec:
    __slots__ = ("_decoders", "_encoders", "_grown", "_schema", "plain", "width")

    def __init__(self, schema: TableSchema) -> None:
        types = [column.type for column in schema.columns]
        self._schema = schema
        self.width = len(types)
        self._encoders = [column_type.encode for column_type in types]
        self._decoders = [column_type.decode for column_type in types]
        self._grown = {
            width: tuple(column.type.check(column.default) for column in schema.columns[width:])
            for width in schema.older_widths
        }
        # A table whose old rows are widened cannot hand stored rows back as they are.
        self.plain = all(column_type.plain for column_type in types) and not self._grown

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
        if len(wire) != self.width:
            return self._widen(wire)
        return tuple(decode(value) for decode, value in zip(self._decoders, wire, strict=True))

    def decode_many(self, wires: list[Any]) -> list[tuple[Any, ...]]:
        if self.plain:
            # Every row of one record or snapshot was written under one declaration.
            if wires and len(wires[0]) != self.width:
                raise self.width_error(len(wires[0]))
            return list(map(tuple, wires))
        return [self.decode(wire) for wire in wires]

    def check_width(self, wire: list[Any]) -> None:
        """Raise ``width_error`` if ``wire`` is not a row of this table as declared now
        (for readers that take plain rows as they are)."""
        if len(wire) != self.width:
            raise self.width_error(len(wire))

    def _widen(self, wire: list[Any]) -> tuple[Any, ...]:
        grown = self._grown.get(len(wire))
        if grown is None:
            raise self.width_error(len(wire))
        decoded = tuple(decode(value) for decode, value in zip(self._decoders, wire, strict=False))
        return decoded + grown

    def width_error(self, stored: int) -> SchemaError:
        """The error for a stored row of ``stored`` values: names the table and columns."""
        schema = self._schema
        names = [column.name for column in schema.columns]
        if stored < len(names):
            change = f"the module now declares {', '.join(map(repr, names[stored:]))} after them"
        else:
            change = f"the module now declares {stored - len(names)} fewer"
        return SchemaError(
            f"table {schema.name!r}: its stored rows have {stored} columns but the module "
            f"declares {len(names)} ({', '.join(names)}); {change}. The data was written "
            f"when the table was declared differently (the stored module imports code that "
            f"changed since). To migrate, open it with the code that wrote it and deploy "
            f"with Database.update_module a module that declares this table itself: the "
            f"stored columns, then new ones at the end with defaults, then take a "
            f"snapshot (docs/guide/updating-modules.md)"
        )
