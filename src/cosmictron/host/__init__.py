"""The host: a Database runs a module's reducers in transactions over the datastore.

Owns: the single writer, reducer calls (arguments checked before the transaction,
rollback on any exception, savepoints for nested calls), commit into the durability
layer, recovery on open, module logs, table handles. Imports: ``module``,
``datastore``, ``durability`` and root modules. Guarantees: a call that returns has
committed, and under ``always`` its record is on disk; a call that raises left nothing
but a log line.

Inside, imports run one way: ``core.py`` (``DatabaseCore``, the state) at the bottom,
then the commit path (``transactions.py``), the operations over the core, ``recovery.py``,
and ``Database`` (``database.py``), the façade, which only this file imports; restoring a
backup (``backup.py``) sits above it. docs/design/architecture.md draws the picture.
"""

from cosmictron.host.database import CallOutcome, Database, DatabaseStatistics
from cosmictron.host.handles import IndexHandle, TableHandle, UniqueHandle
from cosmictron.host.hotswap import MigrationReport
from cosmictron.host.remote_relay import LocalTransport, RemoteRelay

__all__ = [
    "CallOutcome",
    "Database",
    "DatabaseStatistics",
    "IndexHandle",
    "LocalTransport",
    "MigrationReport",
    "RemoteRelay",
    "TableHandle",
    "UniqueHandle",
]
