"""The Python module API: ``@table``, ``field``, ``@reducer``, lifecycle decorators.

Decorators only *mark* things; nothing is registered globally. Loading a module
(``module/python.py``) scans its namespace for marked classes and functions, resolves
annotations into column types, and builds the ``ModuleSchema``. That keeps two databases
running the same module independent, and lets a module include another's tables (the
agent layer) just by importing them.

Inside a reducer, the class-level form ``AgentMessage.insert(row)`` finds the running
transaction through ``CURRENT_DB``, a context variable the host sets for each call.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import functools
import inspect
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, dataclass_transform

from cosmictron import limits
from cosmictron.datastore.schema import IndexSchema
from cosmictron.datastore.types import REQUIRED
from cosmictron.errors import InvalidRequest, SchemaError
from cosmictron.values import ConnectionId, Identity, Timestamp

T = TypeVar("T")

Index = IndexSchema
"""``Index(name, columns, kind="btree", unique=False)`` for ``@table(indexes=[...])``."""

CLASS_LEVEL_METHODS = ("insert", "delete", "iter", "count")
"""Names a table class gains; a column may not use them."""

HANDLE_METHODS = (*CLASS_LEVEL_METHODS, "accessor")
"""The public methods of a table handle (``ctx.db.<table>``): an index may not use them,
since ``handle.<index>`` would find the method instead."""

CURRENT_DB: contextvars.ContextVar[Any] = contextvars.ContextVar("cosmictron_current_db")


@dataclass(frozen=True)
class FieldSpec:
    """What ``field(...)`` returns; ``@table`` reads it and puts the default in its place."""

    primary_key: bool = False
    unique: bool = False
    auto_inc: bool = False
    index: str | None = None
    default: Any = REQUIRED


def field(
    *,
    primary_key: bool = False,
    unique: bool = False,
    auto_inc: bool = False,
    index: str | None = None,
    default: Any = REQUIRED,
) -> Any:
    """Declare a column's constraints. ``auto_inc`` columns default to 0, meaning "assign"."""
    if auto_inc and default is REQUIRED:
        default = 0
    return FieldSpec(primary_key, unique, auto_inc, index, default)


@dataclass(frozen=True)
class TableDeclaration:
    """What ``@table`` recorded; resolved into a ``TableSchema`` when the module loads."""

    name: str
    public: bool
    event: bool
    scheduled: str | None
    indexes: tuple[IndexSchema, ...]
    primary_key: tuple[str, ...]
    fields: dict[str, FieldSpec]


@dataclass_transform(field_specifiers=(field,))
def table(
    cls: type | None = None,
    *,
    name: str | None = None,
    public: bool = False,
    event: bool = False,
    scheduled: str | None = None,
    indexes: Sequence[IndexSchema] = (),
    primary_key: Sequence[str] = (),
) -> Any:
    """Make a class a table. Its annotated attributes are the columns, in order."""

    def wrap(cls: type) -> type:
        specs: dict[str, FieldSpec] = {}
        for column in inspect.get_annotations(cls):
            if column in CLASS_LEVEL_METHODS:
                raise SchemaError(
                    f"table class {cls.__name__}: a column cannot be named {column!r} "
                    f"({', '.join(CLASS_LEVEL_METHODS)} are table methods)"
                )
            value = cls.__dict__.get(column, REQUIRED)
            spec = value if isinstance(value, FieldSpec) else FieldSpec(default=value)
            specs[column] = spec
            setattr(cls, column, _dataclass_default(spec.default))
        made: Any = dataclasses.dataclass(cls)
        made.__cosmictron_table__ = TableDeclaration(
            name=name or _snake_case(cls.__name__),
            public=public,
            event=event,
            scheduled=scheduled,
            indexes=tuple(indexes),
            primary_key=tuple(primary_key),
            fields=specs,
        )
        for method in CLASS_LEVEL_METHODS:
            setattr(made, method, classmethod(_class_level(method)))
        return made

    return wrap if cls is None else wrap(cls)


@dataclass(frozen=True)
class VisibilityFilter:
    """A row-level security rule: which rows of one table a non-owner may read.

    ``sql`` is ``SELECT * FROM <table> WHERE <condition>``, where the condition may use
    ``:sender`` (the reading client's identity). Assign it to a module global; the
    module loader collects every one. The host checks the SQL when the module loads.
    See docs/guide/row-level-security.md for how several filters combine.
    """

    sql: str


def visibility_filter(sql: str) -> VisibilityFilter:
    """Declare that non-owners see only the rows of a table that ``sql`` selects.

    ``sql`` is ``SELECT * FROM t WHERE ...`` or, joining other tables (read through
    their own filters), ``SELECT t.* FROM t JOIN u ON u.x = t.x ... WHERE ...``; it is
    checked when the module loads (docs/guide/row-level-security.md).
    """
    if not isinstance(sql, str) or not sql.strip():
        raise SchemaError("visibility_filter needs a SQL SELECT as a string")
    return VisibilityFilter(sql)


@dataclass_transform(field_specifiers=(field,))
def type_(cls: type[T]) -> type[T]:
    """Make a class usable as a nested column type (``@cosmictron.type``)."""
    made = dataclasses.dataclass(cls)
    made.__cosmictron_type__ = True  # type: ignore[attr-defined]
    return made


def reducer(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Make a function a reducer: a transaction clients can call.

    Called from another reducer, it joins the caller's transaction; if it raises, its own
    writes are undone (a savepoint) before the exception reaches the caller.
    """
    return _mark(fn, "reducer", name)


def init(fn: Callable[..., Any]) -> Any:
    """Run once, in the database's first transaction, when the database is created."""
    return _mark(fn, "init", None)


def client_connected(fn: Callable[..., Any]) -> Any:
    """Run when a client connects; raising refuses the connection."""
    return _mark(fn, "client_connected", None)


def client_disconnected(fn: Callable[..., Any]) -> Any:
    """Run when a client disconnects."""
    return _mark(fn, "client_disconnected", None)


def procedure(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    timeout_s: float = limits.procedure_timeout_s_default,
) -> Any:
    """Make a function a procedure: callable like a reducer, but free to do I/O.

    A procedure runs outside any transaction, on the database's procedure threads, and
    changes data only through ``ctx.with_tx(fn)`` (see ``ProcedureContext``). Its caller
    gets ``ProcedureTimedOut`` after ``timeout_s`` seconds. Reducers cannot call it: a
    reducer must do no I/O. See docs/guide/scheduling-and-procedures.md.
    """
    if not timeout_s > 0:
        raise SchemaError(f"@procedure(timeout_s=...) must be positive, got {timeout_s!r}")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise InvalidRequest(
                f"procedure {marked_name!r} cannot be called from a reducer (reducers do no "
                f"I/O); call it through Database.call"
            )

        marked_name = name or fn.__name__
        wrapped: Any = refuse
        wrapped.__cosmictron_reducer__ = ("procedure", marked_name)
        wrapped.__cosmictron_function__ = fn
        wrapped.__cosmictron_timeout_s__ = float(timeout_s)
        return wrapped

    return wrap if fn is None else wrap(fn)


class ProcedureContext:
    """What a procedure receives first: the caller, and ``with_tx`` to change data.

    There is no ``db`` here on purpose: between transactions a procedure may wait on the
    network for seconds, and it must not hold the writer lock meanwhile. ``timestamp``
    is when the call started; each transaction has its own (``tx_ctx.timestamp``).
    """

    __slots__ = ("_run_tx", "connection_id", "identity", "procedure", "sender", "timestamp")

    def __init__(
        self,
        procedure: str,
        sender: Identity,
        connection_id: ConnectionId | None,
        identity: Identity,
        timestamp: Timestamp,
        run_tx: Callable[[Callable[[ReducerContext], Any]], Any],
    ) -> None:
        self.procedure = procedure
        self.sender = sender
        self.connection_id = connection_id
        self.identity = identity
        self.timestamp = timestamp
        self._run_tx = run_tx

    def with_tx(self, fn: Callable[[ReducerContext], T]) -> T:
        """Run ``fn(tx_ctx)`` as one transaction and return its value once committed.

        ``tx_ctx`` is a ``ReducerContext`` (``db``, ``sender``, ``timestamp``, ``rng``).
        ``fn`` runs exactly once, under the writer lock; if it raises, everything it did
        is rolled back and the error (``ReducerFailed``) propagates here. Nothing retries
        it for you: keep ``fn`` free of I/O and side effects (do the I/O before, pass the
        results in), and calling ``with_tx`` again after a failure is always safe. The
        transaction is logged as ``<procedure>/with_tx``, so replay needs no I/O.

        Raises:
            ReducerFailed: ``fn`` raised; nothing it did was kept.
            ProcedureTimedOut: the call already passed its timeout; nothing ran.
        """
        value: T = self._run_tx(fn)
        return value

    def __repr__(self) -> str:
        return f"ProcedureContext({self.procedure!r}, sender={self.sender!r})"


class ReducerContext:
    """What a reducer receives first: the database, the caller, and fixed call facts.

    ``timestamp`` is fixed for the whole call, and ``rng`` is a ``random.Random`` seeded
    from the transaction, so a reducer's outcome is a function of its inputs and state.
    """

    __slots__ = (
        "_rng",
        "_seed",
        "_timestamp",
        "_timestamp_us",
        "connection_id",
        "db",
        "identity",
        "sender",
    )

    def __init__(
        self,
        db: Any,
        sender: Identity,
        connection_id: ConnectionId | None,
        timestamp_us: int,
        identity: Identity,
        seed: int,
    ) -> None:
        self.db = db
        self.sender = sender
        self.connection_id = connection_id
        self.identity = identity
        self._timestamp_us = timestamp_us
        self._timestamp: Timestamp | None = None
        self._seed = seed
        self._rng: random.Random | None = None

    @property
    def timestamp(self) -> Timestamp:
        """When the transaction runs; the same value for the whole call."""
        if self._timestamp is None:
            self._timestamp = Timestamp(self._timestamp_us)
        return self._timestamp

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng

    def call_remote(self, database: str, reducer: str, *args: Any) -> int:
        """Call ``reducer`` in another database, exactly once, after this transaction commits.

        The call is recorded in this transaction (an outbox entry): if the transaction
        rolls back, it never happens. After the commit, the server's relay (embedded: a
        ``cosmictron.host.RemoteRelay``) applies it in ``database`` as this database's
        owner, together with a mark that makes any redelivery a no-op, so it takes effect
        once across crashes. It runs later, in its own transaction: this reducer gets no
        return value from it, only the call's sequence number (counting up from 1 per
        calling database). A call whose target keeps failing is given up after
        ``limits.remote_call_attempts_max`` attempts; ``Database.remote_calls()`` and the
        module log show its error. ``args`` are plain values (as an HTTP call's JSON).
        See docs/guide/modules-and-reducers.md and docs/design/remote-calls.md.

        Raises:
            InvalidRequest: a bad name, an argument that is not a plain value, or more
                than ``limits.remote_calls_per_tx_max`` calls in one transaction.
        """
        db = CURRENT_DB.get(None)
        if db is None:
            raise InvalidRequest("call_remote works only inside a running reducer")
        seq: int = db.stage_remote_call(database, reducer, args)
        return seq

    def __repr__(self) -> str:
        return f"ReducerContext(sender={self.sender!r}, timestamp={self.timestamp})"


# -- helpers ------------------------------------------------------------------------


def _mark(fn: Callable[..., Any] | None, kind: str, name: str | None) -> Any:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def nested_call(ctx: ReducerContext, *args: Any, **kwargs: Any) -> Any:
            db = CURRENT_DB.get(None)
            if db is None:
                raise InvalidRequest(
                    f"reducer {wrapped.__name__!r} runs inside a transaction; "
                    f"call it through Database.call"
                )
            return db.call_nested(wrapped.__cosmictron_reducer__[1], fn, ctx, args, kwargs)

        wrapped: Any = nested_call
        wrapped.__cosmictron_reducer__ = (kind, name or fn.__name__)
        wrapped.__cosmictron_function__ = fn
        return wrapped

    return wrap if fn is None else wrap(fn)


def _class_level(method: str) -> Callable[..., Any]:
    def call(cls: type, *args: Any) -> Any:
        db = CURRENT_DB.get(None)
        if db is None:
            raise InvalidRequest(
                f"{cls.__name__}.{method}() works only inside a reducer, "
                f"where a transaction is running"
            )
        handle = db.handle_for_class(cls)
        return getattr(handle, method)(*args)

    call.__name__ = method
    return call


def _dataclass_default(default: Any) -> Any:
    """Unhashable defaults (lists, nested types) get a fresh copy per row, not a shared one."""
    if type(default).__hash__ is None:
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default))
    return default


def _snake_case(name: str) -> str:
    out: list[str] = []
    for position, char in enumerate(name):
        if char.isupper() and position and not name[position - 1].isupper():
            out.append("_")
        out.append(char.lower())
    return "".join(out)


def iter_marked(namespace: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Tables, reducers and visibility filters among a module's globals, in order."""
    seen: set[int] = set()
    for key, value in namespace.items():
        if id(value) in seen:
            continue
        if isinstance(value, type) and hasattr(value, "__cosmictron_table__"):
            seen.add(id(value))
            yield "table", value
        elif callable(value) and hasattr(value, "__cosmictron_reducer__"):
            seen.add(id(value))
            yield "reducer", value
        elif isinstance(value, VisibilityFilter):
            seen.add(id(value))
            yield "visibility", value
        del key
