"""Sandboxed guest modules (WASM now, JavaScript next) behind one engine interface.

A guest runs in an *engine* (``GuestEngine``: wasmtime, later V8 or QuickJS) that knows
how to move bytes in and out of the guest and nothing about Cosmictron. This module is
the host side of the ABI (``abi.py``, docs/reference/module-abi.md), and it is the same
for every engine: it turns the guest's description into a ``LoadedModule`` (the shape a
Python module loads into, so the host, the log, subscriptions and hot-swap never know the
module's language), and it runs each reducer call as

1. one *call frame* into the guest (the reducer's position, its arguments in wire form,
   the sender, connection, timestamp, database identity and RNG seed);
2. any number of *operation batches* from the guest (``HostSession.ops``), each applied
   through the very table handles a Python reducer uses (``ctx.db.<table>``), so checks,
   auto_inc, event tables and rollback are the same code;
3. one *result frame* back, carrying the return value and the writes the guest still had
   buffered, applied before the transaction commits.

Failures are the reducer's: a guest error, a trap, fuel or memory running out, or an ABI
violation raises ``ReducerFailed`` and the host rolls the transaction back as for a
Python reducer that raised. An engine discards an instance that trapped.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

from cosmictron import limits
from cosmictron.datastore.types import ColumnType
from cosmictron.errors import CosmictronError, ReducerFailed, SchemaError
from cosmictron.module import abi
from cosmictron.module.api import CURRENT_DB, ReducerContext
from cosmictron.module.bindings import ReducerBinding, RowBinding
from cosmictron.module.python import LoadedModule


@dataclass(frozen=True)
class GuestLimits:
    """What one reducer call of a guest may use (``limits.py`` holds the defaults)."""

    fuel: int = field(
        default_factory=lambda: limits.from_environment(
            "COSMICTRON_GUEST_CALL_FUEL_MAX", limits.guest_call_fuel_max
        )
    )
    memory_bytes: int = field(
        default_factory=lambda: limits.from_environment(
            "COSMICTRON_GUEST_MEMORY_BYTES_MAX", limits.guest_memory_bytes_max
        )
    )


class HostCalls(Protocol):
    """What an engine hands the guest's host-function import: one batch in, results out."""

    def ops(self, request: bytes) -> bytes: ...


class GuestFault(Exception):
    """The guest stopped abnormally in its engine: a trap, fuel or memory exhausted, an
    ABI violation. ``kind`` is one of ``trap``, ``fuel``, ``memory``, ``abi``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@runtime_checkable
class GuestEngine(Protocol):
    """One loaded guest in one engine: the whole interface the host layer needs.

    An engine compiles (and may cache) the module when it is made, and keeps one instance
    that it reuses across calls; it must discard that instance after a fault, because a
    trapped guest's memory and globals are in an unknown state. Calls are serialised by
    the database's writer lock; the engine adds its own lock all the same.
    """

    kind: str
    """The engine's name in schemas, logs and benchmarks: ``wasmtime``, ``v8``, …"""

    def describe(self) -> bytes:
        """The guest's description document (msgpack, abi.parse_description)."""
        ...

    def call(self, reducer: str, frame: bytes, host: HostCalls) -> bytes:
        """Run one call frame for ``reducer``; return the guest's result frame.

        The guest's host-function calls go to ``host.ops`` and must be executed in order,
        synchronously. Exceptions ``host.ops`` raises (other than guest-visible errors,
        which it returns) abort the call: the engine re-raises them after the guest has
        been stopped.

        Raises:
            GuestFault: the guest trapped, ran out of fuel or memory, or broke the ABI.
        """
        ...

    def close(self) -> None: ...


EngineFactory = Callable[[bytes, str, GuestLimits], GuestEngine]
"""How a language plugs in: (module bytes, file name, limits) -> a loaded engine."""


class _TableCodec:
    """Wire rows <-> the row objects the table handles take and return."""

    __slots__ = ("_decoders", "_encoders", "_get", "name", "row_class", "width")

    def __init__(self, table: abi.GuestTable) -> None:
        self.name = table.schema.name
        self.row_class = table.row_class
        self.width = len(table.types)
        names = table.schema.column_names
        getter = attrgetter(*names)
        self._get: Callable[[Any], tuple[Any, ...]] = (
            getter if len(names) > 1 else (lambda obj: (getter(obj),))
        )
        self._decoders: list[Callable[[Any], Any]] | None = None
        self._encoders: list[Callable[[Any], Any]] | None = None
        if not table.plain:
            self._decoders = [_python_of(t) for t in table.types]
            self._encoders = [_wire_of(t) for t in table.types]

    def to_object(self, wire: Any) -> Any:
        if not isinstance(wire, list | tuple) or len(wire) != self.width:
            raise abi.GuestError(
                f"a row of table {self.name!r} has {self.width} columns, "
                f"the guest sent {_shape(wire)}"
            )
        if self._decoders is None:
            return self.row_class(*wire)
        try:
            values = [decode(v) for decode, v in zip(self._decoders, wire, strict=True)]
        except Exception as exc:
            raise abi.GuestError(f"a row of table {self.name!r}: {exc}") from None
        return self.row_class(*values)

    def to_wire(self, obj: Any) -> list[Any]:
        values = self._get(obj)
        if self._encoders is None:
            return list(values)
        return [encode(v) for encode, v in zip(self._encoders, values, strict=True)]


def _python_of(column_type: ColumnType) -> Callable[[Any], Any]:
    decode, to_python = column_type.decode, column_type.to_python
    return lambda wire: to_python(decode(wire))


def _wire_of(column_type: ColumnType) -> Callable[[Any], Any]:
    check, encode = column_type.check, column_type.encode
    return lambda value: encode(check(value))


def _shape(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"{len(value)} values"
    return f"a {type(value).__name__}"


class GuestRuntime:
    """One loaded guest module: its engine, its tables' codecs, its reducers."""

    def __init__(self, engine: GuestEngine, schema: abi.GuestSchema) -> None:
        self.engine = engine
        self.schema = schema
        self.codecs = [_TableCodec(table) for table in schema.tables]

        self.by_name = {codec.name: codec for codec in self.codecs}

    def codec(self, table: Any) -> _TableCodec:
        """A table named by its position in the description or by its name."""
        if type(table) is int and 0 <= table < len(self.codecs):
            return self.codecs[table]
        found = self.by_name.get(table) if isinstance(table, str) else None
        if found is None:
            raise abi.GuestError(f"the guest named table {table!r}, which it did not describe")
        return found


class HostSession:
    """The host functions for one reducer call, bound to its ``ReducerContext``."""

    __slots__ = ("ctx", "failure", "failure_kind", "runtime")

    def __init__(self, runtime: GuestRuntime, ctx: ReducerContext) -> None:
        self.runtime = runtime
        self.ctx = ctx
        self.failure: str | None = None
        self.failure_kind: str | None = None

    def ops(self, request: bytes) -> bytes:
        """Apply one batch; the results, or the first error a reducer may handle."""
        batch = abi.unpack(request, "operation batch")
        if not isinstance(batch, list):
            raise abi.GuestError("an operation batch is a list of operations")
        return abi.pack(self.apply(batch))

    def apply(self, batch: list[Any]) -> list[Any]:
        results: list[Any] = []
        for position, op in enumerate(batch):
            try:
                results.append(self.one(op))
            except CosmictronError as exc:
                return [abi.STATUS_FAILED, results, position, str(exc), type(exc).__name__]
        return [abi.STATUS_OK, results]

    def one(self, op: Any) -> Any:
        if not isinstance(op, list) or not op or type(op[0]) is not int:
            raise abi.GuestError(f"an operation is a list starting with its code, got {op!r:.80}")
        code = op[0]
        if code not in abi.OP_NAMES:
            raise abi.GuestError(f"unknown operation code {code!r} (module-abi.md, operations)")
        try:
            if code == abi.OP_LOG:
                return self._log(op[1], op[2])
            if code == abi.OP_RANDOM:
                count = op[1]
                if type(count) is not int or not 0 <= count <= limits.guest_random_values_max:
                    raise abi.GuestError(f"random: count {count!r} is not in [0, limit]")
                rng = self.ctx.rng
                return [rng.getrandbits(64) for _ in range(count)]
            if code == abi.OP_FAIL:
                self.failure = str(op[1])[: limits.guest_message_bytes_max]
                self.failure_kind = str(op[2]) if len(op) > 2 else "panic"
                return None
            codec = self.runtime.codec(op[1])
            handle = getattr(self.ctx.db, codec.name)
            if code == abi.OP_INSERT:
                return codec.to_wire(handle.insert(codec.to_object(op[2])))
            if code == abi.OP_DELETE_ROW:
                return handle.delete(codec.to_object(op[2]))
            if code == abi.OP_ITER:
                return [codec.to_wire(row) for row in handle.iter()]
            if code == abi.OP_COUNT:
                return handle.count()
            accessor = self._accessor(handle, codec, op[2])
            if code == abi.OP_UPDATE:
                return codec.to_wire(accessor.update(codec.to_object(op[3])))
            if code == abi.OP_FIND:
                found = accessor.find(self._key(accessor, op[3]))
                return None if found is None else codec.to_wire(found)
            if code == abi.OP_DELETE_BY_KEY:
                return accessor.delete(self._key(accessor, op[3]))
            if code == abi.OP_FILTER:
                rows = accessor.filter(self._key(accessor, op[3], partial=True))
                return [codec.to_wire(row) for row in rows]
            if code == abi.OP_RANGE:
                start = None if op[3] is None else self._key(accessor, op[3], partial=True)
                stop = None if op[4] is None else self._key(accessor, op[4], partial=True)
                rows = accessor.filter(start=start, stop=stop, inclusive=bool(op[5]))
                return [codec.to_wire(row) for row in rows]
        except (IndexError, TypeError) as exc:
            name = abi.OP_NAMES.get(code, code)
            raise abi.GuestError(f"operation {name} is malformed: {exc}") from None
        raise abi.GuestError(f"unknown operation code {code!r} (module-abi.md, operations)")

    def _accessor(self, handle: Any, codec: _TableCodec, name: Any) -> Any:
        if not isinstance(name, str):
            raise abi.GuestError(f"table {codec.name!r}: an index is named by a string")
        try:
            return handle.accessor(name)
        except AttributeError as exc:
            raise abi.GuestError(str(exc)) from None

    def _key(self, accessor: Any, wire: Any, partial: bool = False) -> Any:
        columns = accessor._columns
        if len(columns) == 1:
            return _decode(columns[0].type, wire)
        if (
            not isinstance(wire, list)
            or len(wire) > len(columns)
            or (not partial and len(wire) != len(columns))
        ):
            names = ", ".join(c.name for c in columns)
            raise abi.GuestError(f"this key has columns ({names}); send a list of them")
        return tuple(_decode(c.type, v) for c, v in zip(columns, wire, strict=False))

    def _log(self, level: Any, message: Any) -> None:
        if type(level) is not int or not 0 <= level < len(abi.LOG_LEVELS):
            raise abi.GuestError(f"log level {level!r} is not an index into {abi.LOG_LEVELS}")
        database = CURRENT_DB.get(None)
        if database is not None:
            text = str(message)[: limits.guest_message_bytes_max]
            database.log.append(abi.LOG_LEVELS[level], text, database.current_reducer)


def _decode(column_type: ColumnType, wire: Any) -> Any:
    try:
        return column_type.to_python(column_type.decode(wire))
    except Exception as exc:
        raise abi.GuestError(f"a key value: {exc}") from None


class GuestReducer:
    """The function a guest reducer's ``ReducerBinding`` calls: one trip into the guest."""

    def __init__(self, runtime: GuestRuntime, position: int, name: str) -> None:
        self.runtime = runtime
        self.position = position
        self.name = name
        self.__name__ = name
        binding_schema = runtime.schema.reducers[position]
        self._encoders = [_wire_of(p.type) for p in binding_schema.params]
        returns = binding_schema.return_type
        self._returns = None if returns is None else _python_of(returns)

    def __call__(self, ctx: ReducerContext, *values: Any) -> Any:
        args = [encode(v) for encode, v in zip(self._encoders, values, strict=True)]
        connection = ctx.connection_id
        frame = abi.pack(
            [
                self.position,
                args,
                ctx.sender.data,
                None if connection is None else connection.value.to_bytes(16, "big"),
                ctx.timestamp.micros_since_epoch,
                ctx.identity.data,
                ctx._seed & 0xFFFF_FFFF_FFFF_FFFF,
            ]
        )
        session = HostSession(self.runtime, ctx)
        try:
            result = self.runtime.engine.call(self.name, frame, session)
            document = abi.unpack(result, "result frame")
            if not isinstance(document, list) or len(document) < 2:
                raise abi.GuestError("a result frame is [status, value or message, operations]")
            status, payload = document[0], document[1]
            pending = document[2] if len(document) > 2 else []
            if not isinstance(pending, list):
                raise abi.GuestError("a result frame's operations are a list")
            if status == abi.STATUS_OK:
                for op in pending:  # an error here is the reducer's, as in Python
                    session.one(op)
                if self._returns is None:
                    return None
                try:
                    return self._returns(payload)
                except Exception as exc:
                    raise abi.GuestError(f"the return value: {exc}") from None
            session.apply([op for op in pending if isinstance(op, list) and op[:1] == [abi.OP_LOG]])
            kind = str(document[3]) if len(document) > 3 else "ReducerError"
            if kind in _HOST_ERRORS:  # a host error the guest let through: its own words
                raise ReducerFailed(self.name, str(payload), kind)
            raise ReducerFailed(self.name, f"{kind}: {payload}", kind)
        except GuestFault as fault:
            raise self._fault(fault, session) from None
        except abi.GuestError as exc:
            raise ReducerFailed(
                self.name, f"the guest broke the module ABI: {exc}", "GuestAbiError"
            ) from None

    def _fault(self, fault: GuestFault, session: HostSession) -> CosmictronError:
        """The error a stopped guest's call fails with. A guest that stopped on purpose
        (the SDK's ``fail_with`` reports its error before the trap) fails as a reducer
        that raised that error; a panic or a failed allocation says so."""
        kind, said = session.failure_kind, session.failure
        if fault.kind == "trap" and said is not None and kind not in (None, *_GUEST_FAULTS):
            assert kind is not None
            if kind in _HOST_ERRORS:  # a buffered write the host refused: its own words
                return ReducerFailed(self.name, said, kind)
            return ReducerFailed(self.name, f"{kind}: {said}", kind)
        cause = _FAULT_KINDS[fault.kind]
        if fault.kind == "trap" and kind == "out_of_memory":
            cause = _FAULT_KINDS["memory"]
        detail = f" (the guest said: {said})" if said else ""
        engine = self.runtime.engine.kind
        return ReducerFailed(self.name, f"the {engine} guest {fault}{detail}", cause)


_GUEST_FAULTS = ("panic", "out_of_memory")
_HOST_ERRORS = frozenset(
    {"CosmictronError", "InvalidRequest", "Conflict", "NotFound", "ResourceExhausted"}
)

_FAULT_KINDS = {
    "trap": "GuestTrap",
    "fuel": "GuestOutOfFuel",
    "memory": "GuestOutOfMemory",
    "abi": "GuestAbiError",
}


def load_guest(engine: GuestEngine, source: bytes, filename: str) -> LoadedModule:
    """Describe a loaded engine's guest and build the ``LoadedModule`` the host runs.

    Raises:
        SchemaError: the guest does not describe itself, or describes an invalid schema.
    """
    try:
        described = abi.unpack(engine.describe(), "description")
    except (GuestFault, abi.GuestError) as exc:
        engine.close()
        raise SchemaError(f"module {filename} failed to describe itself: {exc}") from None
    try:
        schema = abi.parse_description(described)
    except SchemaError as exc:
        engine.close()
        raise SchemaError(f"module {filename}: {exc}") from None
    runtime = GuestRuntime(engine, schema)
    rows = {t.schema.name: RowBinding(t.row_class, t.schema) for t in schema.tables}
    reducers: dict[str, ReducerBinding] = {}
    lifecycle: dict[str, ReducerBinding] = {}
    for position, reducer in enumerate(schema.reducers):
        binding = ReducerBinding(reducer, GuestReducer(runtime, position, reducer.name))
        if reducer.kind == "reducer":
            reducers[reducer.name] = binding
        else:
            lifecycle[reducer.kind] = binding
    namespace = types.ModuleType(f"cosmictron_guest_{engine.kind}")
    namespace.__file__ = filename
    namespace.__cosmictron_runtime__ = runtime  # type: ignore[attr-defined]
    return LoadedModule(
        schema=schema.schema,
        rows=rows,
        table_by_class={t.row_class: t.schema.name for t in schema.tables},
        reducers=reducers,
        lifecycle=lifecycle,
        source=source,
        filename=filename,
        namespace=namespace,
    )
