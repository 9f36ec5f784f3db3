"""Event-table retention: keep the newest N rows / N days of an event table in memory.

An event table only grows (rows are inserted, never updated or deleted by reducers), so a
database that logs every agent message would hold all of them in memory forever.
``DurabilityConfig.event_retention`` bounds that per table; the rows beyond the bound are
deleted by the host's own transaction, recorded in the log under the reducer name
:data:`RETENTION` with the policies as its arguments. Being an ordinary logged
transaction, replay reproduces it exactly (no clock is read on replay), snapshots taken
after it no longer hold the pruned rows, and the compliance ledger keeps every record:
the rows' inserts and the pruning stay leaves of the Merkle tree, provable after the
segments that hold them are archived (``durability/log_archive.py``).

- ``keep_rows``: the newest N rows stay, in insertion order (the table's own order,
  which replay and snapshots keep).
- ``keep_days``: rows whose ``time_column`` (a ``Timestamp`` column; default the
  table's first one) is more than D days before the pruning transaction's time go.

Pruning runs at every snapshot (``snapshot_interval_tx``) and on
``Database.prune_events()``; subscribers see the pruned rows as deletes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cosmictron.datastore import Datastore, Transaction
from cosmictron.datastore.types import TIMESTAMP
from cosmictron.errors import ConfigError
from cosmictron.host.transactions import next_timestamp_us, run_transaction

if TYPE_CHECKING:
    from cosmictron.host.core import DatabaseCore

RETENTION = "__retention__"
"""The reducer name recorded for a pruning transaction; its args are the policies."""

DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class TablePolicy:
    """One event table's bound: ``keep_rows`` and/or ``keep_days`` on ``time_position``."""

    table: str
    keep_rows: int | None
    keep_days: int | None
    time_position: int | None

    def describe(self) -> list[Any]:
        return [self.table, self.keep_rows, self.keep_days]


def policies(
    datastore: Datastore, config: Mapping[str, Mapping[str, Any]] | None
) -> list[TablePolicy]:
    """Check ``event_retention`` against the schema: each name an event table, each
    ``keep_days`` with a ``Timestamp`` column.

    Raises:
        ConfigError: naming the table and what is wrong.
    """
    if not config:
        return []
    found = []
    for name, policy in config.items():
        table = datastore.tables.get(name)
        if table is None:
            known = ", ".join(sorted(t for t, v in datastore.tables.items() if v.schema.event))
            raise ConfigError(
                f"event_retention names table {name!r}, which does not exist "
                f"(event tables: {known or 'none'})"
            )
        schema = table.schema
        if not schema.event:
            raise ConfigError(
                f"event_retention names table {name!r}, which is not an event table: only "
                "append-only tables are pruned (delete rows of others in a reducer)"
            )
        position = None
        keep_days = policy.get("keep_days")
        if keep_days is not None:
            column = policy.get("time_column")
            timestamps = [c.name for c in schema.columns if c.type is TIMESTAMP]
            if column is None:
                if not timestamps:
                    raise ConfigError(
                        f"event_retention.{name}.keep_days needs a Timestamp column; "
                        f"table {name!r} has none (use keep_rows)"
                    )
                column = timestamps[0]
            elif column not in timestamps:
                raise ConfigError(
                    f"event_retention.{name}.time_column {column!r} is not a Timestamp "
                    f"column of {name!r} (Timestamp columns: {', '.join(timestamps) or 'none'})"
                )
            position = schema.column_index(column)
        found.append(TablePolicy(name, policy.get("keep_rows"), keep_days, position))
    return found


def doomed_keys(
    datastore: Datastore, found: list[TablePolicy], now_us: int
) -> dict[str, list[Any]]:
    """The keys of the rows over each table's bound at ``now_us`` (oldest first)."""
    doomed_by_table: dict[str, list[Any]] = {}
    for policy in found:
        rows = datastore.tables[policy.table].rows
        doomed: dict[Any, None] = {}
        if policy.keep_rows is not None and len(rows) > policy.keep_rows:
            excess = len(rows) - policy.keep_rows
            for key in rows:
                if not excess:
                    break
                doomed[key] = None
                excess -= 1
        if policy.time_position is not None and policy.keep_days is not None:
            cutoff = now_us - policy.keep_days * DAY_US
            position = policy.time_position
            for key, row in rows.items():
                if row[position].micros_since_epoch < cutoff:
                    doomed[key] = None
        if doomed:
            doomed_by_table[policy.table] = list(doomed)
    return doomed_by_table


def prune_events(core: DatabaseCore) -> dict[str, int]:
    """Delete the rows beyond each policy in one logged transaction; rows pruned by table.

    Nothing is logged when nothing is over its bound. The caller may hold the writer
    lock (it is re-entrant); it must not be inside a reducer.
    """
    found = policies(core.datastore, core.durability.event_retention)
    if not found or core.retention_running:
        return {}
    with core.lock:
        doomed = doomed_keys(core.datastore, found, next_timestamp_us(core))
        if not doomed:
            return {}

        def prune(tx: Transaction, datastore: Datastore) -> dict[str, int]:
            for name, keys in doomed.items():
                table = datastore.tables[name]
                for key in keys:
                    tx.delete(table, key)
            return {name: len(keys) for name, keys in doomed.items()}

        core.retention_running = True
        try:
            counts, _ = run_transaction(
                core, RETENTION, prune, lambda _counts: [p.describe() for p in found]
            )
        finally:
            core.retention_running = False
    return counts


__all__ = ["RETENTION", "TablePolicy", "doomed_keys", "policies", "prune_events"]
