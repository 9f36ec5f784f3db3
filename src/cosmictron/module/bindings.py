"""Bindings between a module's Python objects and the datastore's canonical rows.

``RowBinding`` turns an instance of a table class into a checked canonical tuple and back;
``ReducerBinding`` checks a call's arguments against the reducer's signature before any
transaction starts. Both are built once per module load, so the hot path is a few
precomputed function calls per value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from cosmictron.datastore.checker import compile_checker
from cosmictron.datastore.schema import ReducerSchema, TableSchema
from cosmictron.datastore.types import REQUIRED, ColumnType, OptionalType, TypeMismatch
from cosmictron.errors import InvalidRequest


class RowBinding:
    """One table class <-> the canonical rows of one table."""

    __slots__ = (
        "_check_values",
        "_checks",
        "_converters",
        "_get_values",
        "auto_inc_positions",
        "objects_plain",
        "python_class",
        "row_checker",
        "schema",
        "values_of",
    )

    def __init__(self, python_class: type, schema: TableSchema) -> None:
        self.python_class = python_class
        self.schema = schema
        names = schema.column_names
        getter = attrgetter(*names)
        self._get_values = getter if len(names) > 1 else (lambda obj: (getter(obj),))
        self._checks = [column.type.check for column in schema.columns]
        self._check_values = compile_checker([column.type for column in schema.columns])
        plain = not any(_converts(column.type) for column in schema.columns)
        self._converters: list[Callable[[Any], Any]] | None = (
            None if plain else [column.type.to_python for column in schema.columns]
        )
        self.auto_inc_positions = [p for p, c in enumerate(schema.columns) if c.auto_inc]
        # The parts of ``to_row`` and ``to_object`` as plain attributes, so the write
        # handles (host/handles.py) run them without a Python frame per call
        # (docs/design/hot-path.md, "Third round").
        self.row_checker: Callable[[Sequence[Any]], tuple[Any, ...]] = self._check_values
        """The compiled function behind ``check_values``: mapping it over a body saves
        one Python frame per row against mapping the bound method. Raises
        ``TypeMismatch`` without naming the column (``to_row`` names it)."""
        self.values_of: Callable[[Any], tuple[Any, ...]] = self._get_values
        """An instance's column values in column order (no checks)."""
        self.objects_plain = plain
        """True when ``to_object(row)`` is ``python_class(*row)`` (no column converts)."""

    def to_row(self, obj: Any) -> tuple[Any, ...]:
        """Check an instance and return its canonical tuple.

        Raises:
            InvalidRequest: not an instance of the table class, a required column is
                missing, or a value has the wrong type or range; names table and column.
        """
        if type(obj) is not self.python_class:
            raise InvalidRequest(
                f"table {self.schema.name!r} stores {self.python_class.__name__} rows, "
                f"got {type(obj).__name__}"
            )
        values = self._get_values(obj)
        try:
            return self._check_values(values)
        except TypeMismatch:
            self._raise_precise(values)
            raise

    def check_values(self, values: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
        """The canonical tuple of exactly one value per column; raises without naming the
        column (``values_to_row`` does, more slowly). Bulk loads try this first."""
        return self._check_values(values)

    def values_to_row(self, values: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
        """Check raw column values (bulk loads, SQL) and return the canonical tuple."""
        if len(values) != len(self._checks):
            raise InvalidRequest(
                f"table {self.schema.name!r} has {len(self._checks)} columns, "
                f"got {len(values)} values"
            )
        try:
            return self._check_values(values)
        except TypeMismatch:
            self._raise_precise(values)
            raise

    def values_from_mapping(self, mapping: dict[str, Any]) -> list[Any]:
        """Column values from a dict by name; missing columns take their defaults."""
        unknown = set(mapping) - set(self.schema.column_names)
        if unknown:
            raise InvalidRequest(f"table {self.schema.name!r} has no column {sorted(unknown)[0]!r}")
        return [mapping.get(column.name, column.default) for column in self.schema.columns]

    def to_object(self, row: tuple[Any, ...]) -> Any:
        if self._converters is None:
            return self.python_class(*row)
        return self.python_class(
            *[convert(value) for convert, value in zip(self._converters, row)]  # noqa: B905
        )

    def _raise_precise(self, values: Any) -> None:
        for column, value in zip(self.schema.columns, values, strict=True):
            if value is REQUIRED:
                raise InvalidRequest(
                    f"table {self.schema.name!r} column {column.name!r} ({column.type.name}) "
                    f"is required but was not given"
                )
            try:
                column.type.check(value)
            except TypeMismatch as exc:
                raise InvalidRequest(
                    f"table {self.schema.name!r} column {column.name!r}: {exc}"
                ) from None


_UNDECLARED = object()


class ReducerBinding:
    """A reducer's function and the checks its arguments must pass."""

    __slots__ = (
        "_check_values",
        "_checks",
        "_converters",
        "_encoders",
        "_names",
        "_plain",
        "check_arguments",
        "function",
        "plain_arity",
        "returns_none",
        "schema",
    )

    def __init__(self, schema: ReducerSchema, function: Callable[..., Any]) -> None:
        self.schema = schema
        self.function = function
        declared = getattr(function, "__annotations__", {}).get("return", _UNDECLARED)
        self.returns_none = declared in (None, "None", type(None))
        self._names = [param.name for param in schema.params]
        self._checks = [param.type.check for param in schema.params]
        self._converters = [param.type.to_python for param in schema.params]
        self._encoders = [param.type.encode for param in schema.params]
        self._check_values = compile_checker([param.type for param in schema.params])
        self._plain = not any(
            _converts(param.type) or not param.type.plain for param in schema.params
        )
        # ``bind``'s common case as plain attributes, so ``Database.call`` runs it without
        # a Python frame (docs/design/hot-path.md, "Seventh round"): with exactly
        # ``plain_arity`` positional arguments and no keywords, ``check_arguments(args)``
        # is both forms ``bind`` returns, or raises ``TypeMismatch`` (then ``bind`` names
        # the argument). -1 when the arguments have a separate wire form.
        self.plain_arity = len(schema.params) if self._plain else -1
        self.check_arguments: Callable[[Sequence[Any]], tuple[Any, ...]] = self._check_values

    def bind(
        self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        """Check arguments; return them as Python values and in wire form (for the log).

        Raises:
            InvalidRequest: wrong count, unknown or repeated name, wrong type or range.
        """
        params = self.schema.params
        if self._plain and not kwargs and len(args) == len(params):
            try:
                checked = self._check_values(args)
            except TypeMismatch:
                pass  # the general path below names the argument
            else:
                return checked, checked
        if len(args) > len(params):
            raise InvalidRequest(
                f"reducer {self.schema.name!r} takes {self._signature()}, "
                f"got {len(args)} positional arguments"
            )
        values = list(args)
        if kwargs or len(values) < len(params):
            for param in params[len(values) :]:
                if param.name in kwargs:
                    values.append(kwargs[param.name])
                elif param.default is not REQUIRED:
                    values.append(param.default)
                else:
                    raise InvalidRequest(
                        f"reducer {self.schema.name!r} takes {self._signature()}; "
                        f"argument {param.name!r} is missing"
                    )
            unknown = set(kwargs) - set(self._names[len(args) :])
            if unknown:
                raise InvalidRequest(
                    f"reducer {self.schema.name!r} takes {self._signature()}; "
                    f"unexpected or repeated argument {sorted(unknown)[0]!r}"
                )
        python_values = []
        wire_values = []
        checks = zip(params, self._checks, self._converters, self._encoders, values)  # noqa: B905
        for param, check, convert, encode, value in checks:
            try:
                canonical = check(value)
            except TypeMismatch as exc:
                raise InvalidRequest(
                    f"reducer {self.schema.name!r} argument {param.name!r}: {exc}"
                ) from None
            python_values.append(convert(canonical))
            wire_values.append(encode(canonical))
        return python_values, wire_values

    def _signature(self) -> str:
        shown = ", ".join(f"{p.name}: {p.type.name}" for p in self.schema.params)
        count = len(self.schema.params)
        return f"{count} argument{'s' if count != 1 else ''} ({shown})"


class ProcedureBinding(ReducerBinding):
    """A procedure: checked like a reducer's arguments, plus its timeout."""

    __slots__ = ("timeout_s",)

    def __init__(
        self, schema: ReducerSchema, function: Callable[..., Any], timeout_s: float
    ) -> None:
        super().__init__(schema, function)
        self.timeout_s = timeout_s


def _converts(column_type: ColumnType) -> bool:
    """Whether the Python form differs from the canonical one (enums, lists, nested)."""
    if isinstance(column_type, OptionalType):
        return _converts(column_type.inner)
    return type(column_type).to_python is not ColumnType.to_python
