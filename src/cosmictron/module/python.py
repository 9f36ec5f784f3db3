"""Loading a Python module: source file or module object -> schema and bindings.

The loaded module's source is kept (``LoadedModule.source``) so the host can store it in
the data directory and reopen the database later without being told where the module
lives. Loading from source executes it under a private module name, registered in
``sys.modules`` because dataclasses and ``typing.get_type_hints`` look classes up there.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import types
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmictron.datastore.schema import (
    ColumnSchema,
    IndexSchema,
    ModuleSchema,
    ParamSchema,
    ReducerSchema,
    TableSchema,
)
from cosmictron.datastore.types import REQUIRED, SCHEDULE_AT
from cosmictron.errors import SchemaError, attach_traceback
from cosmictron.module.annotations import column_type_for, resolved_hints
from cosmictron.module.api import (
    HANDLE_METHODS,
    ProcedureContext,
    ReducerContext,
    TableDeclaration,
    iter_marked,
)
from cosmictron.module.bindings import ProcedureBinding, ReducerBinding, RowBinding
from cosmictron.module.declarations import pointing_at
from cosmictron.module.tracebacks import load_traceback

_LIFECYCLE_KINDS = ("init", "client_connected", "client_disconnected")


@dataclass
class LoadedModule:
    schema: ModuleSchema
    rows: dict[str, RowBinding]
    table_by_class: dict[type, str]
    reducers: dict[str, ReducerBinding]
    lifecycle: dict[str, ReducerBinding]
    source: bytes
    filename: str
    namespace: types.ModuleType = field(repr=False)
    procedures: dict[str, ProcedureBinding] = field(default_factory=dict)


def load_module(module: str | os.PathLike[str] | types.ModuleType) -> LoadedModule:
    """Load a module given as a path to a ``.py`` file or as an imported module object.

    Raises:
        SchemaError: the module cannot be read or imported, or declares an invalid schema.
    """
    if isinstance(module, types.ModuleType):
        filename = getattr(module, "__file__", None)
        try:
            source = Path(filename).read_bytes() if filename else inspect.getsource(module).encode()
        except (OSError, TypeError) as exc:
            raise SchemaError(f"cannot read the source of module {module.__name__}: {exc}") from exc
        return build_module(module, source, filename or module.__name__)
    path = Path(module)
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"cannot read module {str(path)!r}: {exc.strerror}") from None
    return load_source(source, str(path))


def load_source(source: bytes, filename: str) -> LoadedModule:
    """Execute module source under a private name and build it.

    ``filename`` is what tracebacks and load errors show: the name the user gave the
    file (a server is told it by the deploying client), not where a copy of it lies.
    """
    digest = hashlib.sha256(source).hexdigest()[:16]
    name = f"cosmictron_module_{digest}"
    namespace = types.ModuleType(name)
    namespace.__file__ = filename
    sys.modules[name] = namespace
    try:
        code = compile(source, filename, "exec")
        exec(code, namespace.__dict__)
    except SchemaError as exc:  # a decorator refused a declaration: point at it
        sys.modules.pop(name, None)
        if exc.traceback is None:
            attach_traceback(exc, load_traceback(exc, filename, source))
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        failure = SchemaError(f"module {filename} failed to load: {type(exc).__name__}: {exc}")
        raise attach_traceback(failure, load_traceback(exc, filename, source)) from exc
    return build_module(namespace, source, filename)


def build_module(namespace: types.ModuleType, source: bytes, filename: str) -> LoadedModule:
    """Scan a module's globals for tables and reducers and resolve their schema.

    A mistake found here, after the module ran, points at the declaration's line
    (``module/declarations.py``).
    """

    def at(declared: object, column: str | None = None) -> AbstractContextManager[None]:
        target = getattr(declared, "__cosmictron_function__", declared)
        return pointing_at(target, namespace.__name__, filename, source, column)

    table_classes: list[type] = []
    reducer_functions: list[Any] = []
    filters: list[str] = []
    for kind, value in iter_marked(vars(namespace)):
        if kind == "table":
            table_classes.append(value)
        elif kind == "visibility":
            filters.append(value.sql)
        else:
            reducer_functions.append(value)

    tables = []
    for cls in table_classes:
        with at(cls):
            tables.append(_table_schema(cls, functools.partial(at, cls)))
    rows = {
        schema.name: RowBinding(cls, schema)
        for cls, schema in zip(table_classes, tables, strict=True)
    }
    reducers: dict[str, ReducerBinding] = {}
    lifecycle: dict[str, ReducerBinding] = {}
    procedures: dict[str, ProcedureBinding] = {}
    for function in reducer_functions:
        kind, name = function.__cosmictron_reducer__
        with at(function):
            if kind == "procedure":
                procedures[name] = ProcedureBinding(
                    _reducer_schema(function, kind, name),
                    function.__cosmictron_function__,
                    function.__cosmictron_timeout_s__,
                )
                continue
            binding = ReducerBinding(
                _reducer_schema(function, kind, name), function.__cosmictron_function__
            )
            if kind == "reducer":
                reducers[name] = binding
            elif kind in lifecycle:
                raise SchemaError(f"module declares two @{kind} reducers")
            else:
                lifecycle[kind] = binding
    schema = ModuleSchema(
        tables=tuple(tables),
        reducers=tuple(
            b.schema for b in [*reducers.values(), *lifecycle.values(), *procedures.values()]
        ),
        visibility_filters=tuple(filters),
    )
    for cls, table_schema in zip(table_classes, tables, strict=True):
        with at(cls):
            _check_scheduled(table_schema, reducers)
    return LoadedModule(
        schema=schema,
        rows=rows,
        table_by_class={
            cls: schema.name for cls, schema in zip(table_classes, tables, strict=True)
        },
        reducers=reducers,
        lifecycle=lifecycle,
        source=source,
        filename=filename,
        namespace=namespace,
        procedures=procedures,
    )


def _table_schema(
    cls: type, at_column: Callable[[str], AbstractContextManager[None]] | None = None
) -> TableSchema:
    """A table's schema; a column's mistake is raised inside ``at_column(name)``, which
    points the error at the column's line."""
    declaration: TableDeclaration = cls.__cosmictron_table__  # type: ignore[attr-defined]
    hints = resolved_hints(cls)
    columns = []
    primary_key = list(declaration.primary_key)
    indexes = list(declaration.indexes)
    for name, spec in declaration.fields.items():
        with at_column(name) if at_column else nullcontext():
            where = f"table {declaration.name!r} column {name!r}"
            column_type = column_type_for(hints[name], where)
            if spec.auto_inc and not hasattr(column_type, "bits"):
                raise SchemaError(
                    f"{where}: auto_inc needs an integer column, not {column_type.name}"
                )
            if spec.default is not REQUIRED:
                try:
                    column_type.check(spec.default)
                except Exception as exc:
                    raise SchemaError(
                        f"{where}: default {spec.default!r} is invalid: {exc}"
                    ) from None
            columns.append(ColumnSchema(name, column_type, spec.default, spec.auto_inc))
            if spec.primary_key:
                if declaration.primary_key:
                    raise SchemaError(
                        f"{where}: primary key declared both on the column and on @table"
                    )
                primary_key.append(name)
            elif spec.unique:
                indexes.append(IndexSchema(name, (name,), spec.index or "btree", unique=True))
            elif spec.index is not None:
                indexes.append(IndexSchema(name, (name,), spec.index))
    keyed = [primary_key[0]] if len(primary_key) == 1 else []
    for index_name in keyed + [index.name for index in indexes]:
        if index_name in HANDLE_METHODS:
            raise SchemaError(
                f"table {declaration.name!r}: an index or key column cannot be named "
                f"{index_name!r} (ctx.db.{declaration.name}.{index_name} is the table "
                f"handle's method; "
                f"{', '.join(HANDLE_METHODS)} are taken)"
            )
    if len([c for c in declaration.fields.values() if c.primary_key]) > 1:
        raise SchemaError(
            f"table {declaration.name!r} marks several columns primary_key; "
            f"declare a composite key with @table(primary_key=(...))"
        )
    return TableSchema(
        name=declaration.name,
        columns=tuple(columns),
        primary_key=tuple(primary_key),
        indexes=tuple(indexes),
        public=declaration.public,
        event=declaration.event,
        scheduled=declaration.scheduled,
        # Set only by the reserved agent tables (agents/tables.py): see TableSchema.
        older_widths=tuple(getattr(cls, "__cosmictron_older_widths__", ())),
    )


def _reducer_schema(function: Any, kind: str, name: str) -> ReducerSchema:
    target = function.__cosmictron_function__
    signature = inspect.signature(target)
    hints = resolved_hints(target)
    parameters = list(signature.parameters.values())
    context = ProcedureContext if kind == "procedure" else ReducerContext
    if not parameters:
        raise SchemaError(f"{kind} {name!r} must take a {context.__name__} as its first argument")
    first = hints.get(parameters[0].name)
    if first is not None and first is not context:
        raise SchemaError(f"{kind} {name!r}: the first argument is the {context.__name__}")
    params = []
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SchemaError(f"reducer {name!r}: *args and **kwargs are not supported")
        if parameter.name not in hints:
            raise SchemaError(
                f"reducer {name!r}: argument {parameter.name!r} needs a type annotation"
            )
        column_type = column_type_for(
            hints[parameter.name], f"reducer {name!r} argument {parameter.name!r}"
        )
        default = REQUIRED if parameter.default is parameter.empty else parameter.default
        params.append(ParamSchema(parameter.name, column_type, default))
    if kind in _LIFECYCLE_KINDS and params:
        raise SchemaError(f"@{kind} reducer {name!r} takes only the ReducerContext")
    returns = hints.get("return")
    return_type = None
    if returns is not None and returns is not type(None):
        return_type = column_type_for(returns, f"reducer {name!r} return value")
    return ReducerSchema(name, tuple(params), return_type, kind)


def _check_scheduled(table_schema: TableSchema, reducers: dict[str, ReducerBinding]) -> None:
    if table_schema.scheduled is None:
        return
    if table_schema.scheduled not in reducers:
        raise SchemaError(
            f"table {table_schema.name!r} is scheduled to run reducer "
            f"{table_schema.scheduled!r}, which the module does not declare"
        )
    columns = {c.name: c for c in table_schema.columns}
    if "scheduled_at" not in columns or columns["scheduled_at"].type is not SCHEDULE_AT:
        raise SchemaError(
            f"scheduled table {table_schema.name!r} needs a column 'scheduled_at: ScheduleAt'"
        )
    # The scheduler calls the reducer with the row as its one argument (as SpacetimeDB).
    params = reducers[table_schema.scheduled].schema.params
    row_type: Any = getattr(params[0].type, "python_class", None) if params else None
    if len(params) != 1 or getattr(row_type, "__cosmictron_table__", None) is None:
        raise SchemaError(
            f"reducer {table_schema.scheduled!r} runs the scheduled table "
            f"{table_schema.name!r}: it must take (ctx, row) with the row annotated as "
            f"the table's class"
        )
    if row_type.__cosmictron_table__.name != table_schema.name:
        raise SchemaError(
            f"reducer {table_schema.scheduled!r} takes a {row_type.__name__} row, but it "
            f"runs the scheduled table {table_schema.name!r}"
        )
