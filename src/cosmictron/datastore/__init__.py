"""In-memory tables, indexes and transactions.

Owns: the row storage (canonical tuples), indexes, the undo-log transaction, column types
and schema objects. Imports: only ``cosmictron.errors`` and ``cosmictron.values``.
Guarantees: a failed write leaves a table unchanged; ``Transaction.rollback`` restores
every table to its state at the start; ``check_invariants`` holds after any sequence of
committed or rolled-back transactions.
"""

from cosmictron.datastore.codec import RowCodec
from cosmictron.datastore.index import Index
from cosmictron.datastore.schema import (
    ColumnSchema,
    IndexSchema,
    ModuleSchema,
    ParamSchema,
    ReducerSchema,
    TableSchema,
    differences,
)
from cosmictron.datastore.store import Datastore
from cosmictron.datastore.table import Table
from cosmictron.datastore.tx import TableChange, Transaction
from cosmictron.datastore.types import REQUIRED, ColumnType, TypeMismatch

__all__ = [
    "REQUIRED",
    "ColumnSchema",
    "ColumnType",
    "Datastore",
    "Index",
    "IndexSchema",
    "ModuleSchema",
    "ParamSchema",
    "ReducerSchema",
    "RowCodec",
    "Table",
    "TableChange",
    "TableSchema",
    "Transaction",
    "TypeMismatch",
    "differences",
]
