"""Python annotations to column types.

``int`` is i64 and ``float`` f64, as in SQL engines; the explicit widths are the
``cosmictron.u8`` … ``i128`` markers. A table class may be used as a reducer argument or
return type: it becomes a product type of its columns.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from cosmictron import values
from cosmictron.datastore import types as column_types
from cosmictron.datastore.types import ColumnType
from cosmictron.errors import SchemaError

_BUILTINS: dict[Any, ColumnType] = {
    int: column_types.I64,
    float: column_types.F64,
    bool: column_types.BOOL,
    str: column_types.STR,
    bytes: column_types.BYTES,
    values.Identity: column_types.IDENTITY,
    values.ConnectionId: column_types.CONNECTION_ID,
    values.Timestamp: column_types.TIMESTAMP,
    values.TimeDuration: column_types.TIME_DURATION,
    values.ScheduleAt: column_types.SCHEDULE_AT,
    values.f32: column_types.F32,
    values.f64: column_types.F64,
    **{getattr(values, name): column_type for name, column_type in column_types.INTEGERS.items()},
}


def column_type_for(annotation: Any, where: str) -> ColumnType:
    """Resolve one (already evaluated) annotation; ``where`` names it in errors."""
    found = _BUILTINS.get(annotation)
    if found is not None:
        return found
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in arguments if a is not type(None)]
        if len(others) == 1 and len(arguments) == 2:
            return column_types.OptionalType(column_type_for(others[0], where))
        raise SchemaError(f"{where}: only Optional[T] unions are supported, got {annotation!r}")
    if origin is list and len(arguments) == 1:
        return column_types.ListType(column_type_for(arguments[0], where))
    if isinstance(annotation, type):
        if issubclass(annotation, values.Vector) and annotation.dimension:
            return column_types.VectorType(annotation.dimension)
        if issubclass(annotation, enum.Enum):
            return column_types.EnumType(annotation)
        if dataclasses.is_dataclass(annotation) and (
            hasattr(annotation, "__cosmictron_type__")
            or hasattr(annotation, "__cosmictron_table__")
        ):
            hints = resolved_hints(annotation)
            fields = [
                (f.name, column_type_for(hints[f.name], f"{where}.{f.name}"))
                for f in dataclasses.fields(annotation)
            ]
            return column_types.ProductType(annotation, fields)
    raise SchemaError(
        f"{where}: {annotation!r} is not a column type (use int, float, bool, str, bytes, "
        f"u8…i128, f32, Identity, ConnectionId, Timestamp, TimeDuration, ScheduleAt, "
        f"Optional[T], list[T], Vector[N], an Enum or a @cosmictron.type class)"
    )


def resolved_hints(obj: Any) -> dict[str, Any]:
    """``typing.get_type_hints`` with a SchemaError naming the object when it fails."""
    try:
        return typing.get_type_hints(obj)
    except Exception as exc:
        name = getattr(obj, "__qualname__", repr(obj))
        raise SchemaError(f"cannot resolve the annotations of {name}: {exc}") from exc
