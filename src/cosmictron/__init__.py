"""Cosmictron: a database in which the application runs inside the database.

The names below are the public contract of DESIGN.md §2-4; ``tests/test_public_api.py``
pins them.
"""

from cosmictron.datastore.schema import IndexSchema as Index
from cosmictron.durability import DurabilityConfig, PersistenceConfig, PersistenceLayer
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
    ReducerFailed,
    ResourceExhausted,
    SchemaError,
    VerificationFailed,
)
from cosmictron.host import CallOutcome, Database
from cosmictron.module import (
    ReducerContext,
    client_connected,
    client_disconnected,
    field,
    init,
    reducer,
    table,
    visibility_filter,
)
from cosmictron.module import type_ as type
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
    "reducer",
    "table",
    "type",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "visibility_filter",
]
