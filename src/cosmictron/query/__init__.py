"""SQL over the datastore: parse (SQLGlot), plan, optimise, execute.

Owns: turning SQL text into a plan (``parse``; ``parse.prepare`` plans with a slot per
parameter, ``params.bind`` fills the slots, ``cache.STATEMENTS`` keeps prepared
statements for reuse), the optimizer passes (``rules``),
running plans over a ``Datastore`` (``execute``, ``apply_insert``, ``apply_update``,
``apply_delete``) and
``QueryResult``. Imports: only ``cosmictron.datastore`` and the root modules; the host
supplies the lock, the transaction and the permission checks. Guarantees: a query's
result equals SQLite's on the same rows for the supported subset (the oracle tests);
every user error is a ``SqlError`` with a position, or a ``ResourceExhausted`` for the
row limit. See docs/reference/sql.md.
"""

from cosmictron.query.dml import apply_delete, apply_insert, apply_update
from cosmictron.query.execute import execute
from cosmictron.query.parse import parse
from cosmictron.query.result import QueryResult
from cosmictron.query.rules import RULES, optimize
from cosmictron.query.statements import (
    DeleteStatement,
    Explain,
    InsertStatement,
    SelectStatement,
    Statement,
    UpdateStatement,
)

__all__ = [
    "RULES",
    "DeleteStatement",
    "Explain",
    "InsertStatement",
    "QueryResult",
    "SelectStatement",
    "Statement",
    "UpdateStatement",
    "apply_delete",
    "apply_insert",
    "apply_update",
    "execute",
    "optimize",
    "parse",
]
