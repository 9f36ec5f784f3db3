"""Cosmictron: a database in which the application runs inside the database.

The names below are the public contract of DESIGN.md §2-4; ``tests/test_public_api.py``
pins them.

The errors and value types are imported here at once; every other name is imported on
first use (PEP 562 ``__getattr__``), because ``Database`` alone pulls in the host, the
query engine, the durability layer and the WASM and JS runtimes, about a third of a
second of CPU that every ``cosmictron-cli`` process and every process importing one
submodule (``cosmictron.client``, ``cosmictron.values``) would otherwise pay whether it
uses them or not (``cosmictron.lazy``). ``from cosmictron import Database`` and
``cosmictron.Database`` work as before; type checkers read the ``TYPE_CHECKING`` imports,
which ``tests/test_public_api.py`` checks against the names ``__getattr__`` imports.
"""

import typing

from cosmictron.errors import (
    ConfigError,
    Conflict,
    CorruptLog,
    CosmictronError,
    DatabaseInUse,
    DurabilityError,
    InternalError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProcedureTimedOut,
    ReducerFailed,
    ResourceExhausted,
    SchemaError,
    VerificationFailed,
)
from cosmictron.lazy import lazy_exports as _lazy_exports
from cosmictron.values import (
    ConnectionId,
    Identity,
    ScheduleAt,
    TimeDuration,
    Timestamp,
    Vector,
    f32,
    f64,
    i8,
    i16,
    i32,
    i64,
    i128,
    u8,
    u16,
    u32,
    u64,
    u128,
)

if typing.TYPE_CHECKING:  # what type checkers see of the names __getattr__ imports
    from cosmictron.datastore.schema import IndexSchema as Index
    from cosmictron.durability import DurabilityConfig, PersistenceConfig, PersistenceLayer
    from cosmictron.host import CallOutcome, Database
    from cosmictron.host.backup import restore, verify_backup
    from cosmictron.module import (
        ProcedureContext,
        ReducerContext,
        client_connected,
        client_disconnected,
        field,
        init,
        procedure,
        reducer,
        table,
        visibility_filter,
    )
    from cosmictron.module import type_ as type

_LAZY = {  # public name: the module defining it (see cosmictron.lazy)
    "Index": "cosmictron.datastore.schema:IndexSchema",
    "DurabilityConfig": "cosmictron.durability",
    "PersistenceConfig": "cosmictron.durability",
    "PersistenceLayer": "cosmictron.durability",
    "CallOutcome": "cosmictron.host",
    "Database": "cosmictron.host",
    "restore": "cosmictron.host.backup",  # beside Database.backup (issue 16)
    "verify_backup": "cosmictron.host.backup",
    "ProcedureContext": "cosmictron.module",
    "ReducerContext": "cosmictron.module",
    "client_connected": "cosmictron.module",
    "client_disconnected": "cosmictron.module",
    "field": "cosmictron.module",
    "init": "cosmictron.module",
    "procedure": "cosmictron.module",
    "reducer": "cosmictron.module",
    "table": "cosmictron.module",
    "type": "cosmictron.module:type_",
    "visibility_filter": "cosmictron.module",
}
__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)

__version__ = "0.8.0"

__all__ = [
    "CallOutcome",
    "ConfigError",
    "Conflict",
    "ConnectionId",
    "CorruptLog",
    "CosmictronError",
    "Database",
    "DatabaseInUse",
    "DurabilityConfig",
    "DurabilityError",
    "Identity",
    "Index",
    "InternalError",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "PersistenceConfig",
    "PersistenceLayer",
    "ProcedureContext",
    "ProcedureTimedOut",
    "ReducerContext",
    "ReducerFailed",
    "ResourceExhausted",
    "ScheduleAt",
    "SchemaError",
    "TimeDuration",
    "Timestamp",
    "Vector",
    "VerificationFailed",
    "__version__",
    "client_connected",
    "client_disconnected",
    "f32",
    "f64",
    "field",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "init",
    "procedure",
    "reducer",
    "restore",
    "table",
    "type",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "verify_backup",
    "visibility_filter",
]
