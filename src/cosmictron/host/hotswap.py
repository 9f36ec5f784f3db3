"""Hot-swap: replacing the running module, and replaying a module record.

``update_module`` plans the migration (``datastore.migration``), builds the new tables
beside the old ones, appends a module record and only then installs them; see
``docs/design/hot-swap.md`` for the record, the order of steps and why.
``replay_module_change`` turns a module record back into a module and a migrated
datastore on replay. Both live here so that the one format a module record has is
written and read in one module.

``update_module`` is a function over the ``DatabaseCore`` (``Database.update_module``
delegates to it) rather than a method, for the reason given in ``transactions.py``: the
state it swaps is the core's, and the façade stays a list of what it offers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import Datastore
from cosmictron.datastore.migration import (
    MigrationPlan,
    SchemaChanges,
    plan_migration,
    reset_datastore,
    stage_migration,
)
from cosmictron.durability import MODULE_RECORD_KIND
from cosmictron.errors import CosmictronError, SchemaError
from cosmictron.host.core import DatabaseCore
from cosmictron.host.directory import load_new_module, save_genesis, store_module
from cosmictron.host.records import ModuleChange, module_body
from cosmictron.host.transactions import check_can_write, next_timestamp_us, run_init
from cosmictron.module import LoadedModule, load_source

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MigrationReport(SchemaChanges):
    """What ``Database.update_module`` did (the plan's changes, as carried out).

    ``tx_offset`` is the offset of the module record: the first offset under the new
    module.
    """

    tx_offset: int
    cleared: bool

    @classmethod
    def from_plan(cls, plan: MigrationPlan, offset: int, cleared: bool) -> MigrationReport:
        return cls(tx_offset=offset, cleared=cleared, **plan.changes())

    def describe(self) -> dict[str, Any]:
        """A JSON-able form (the server's deploy reply).

        >>> MigrationReport(tx_offset=7, cleared=False, tables_added=("tag",)).describe()[
        ...     "tables_added"
        ... ]
        ['tag']
        """
        lists = {name: list(names) for name, names in self.changes().items()}
        return {"tx_offset": self.tx_offset, "cleared": self.cleared, **lists}


def update_module(
    core: DatabaseCore, module: Any, clear: bool, filename: str | None
) -> MigrationReport:
    """``Database.update_module``: swap the module under the writer lock, then wait."""
    loaded = load_new_module(module, filename)  # runs module code: outside the lock
    with core.lock:
        check_can_write(core, "update_module")
        refusal = core.persistence.commit_refusal  # strict anchoring is overdue
        if refusal is not None:  # a deploy is a log record too: refused like a commit
            raise type(refusal)(f"deploy refused: {refusal}")
        plan = plan_migration(core.module.schema, loaded.schema)
        staged = None if clear else stage_migration(core.datastore, plan)
        save_genesis(core.path, core.module)
        now_us = next_timestamp_us(core)
        body = module_body(now_us, core.owner, loaded.source, loaded.filename, loaded.schema, clear)
        offset = core.persistence.append(MODULE_RECORD_KIND, body)
        # The record is written: from here on, nothing may fail half-way.
        if staged is None:
            reset_datastore(core.datastore, loaded.schema)
            core.imports.clear()
            core.subscriptions.end_all(
                "the module was updated with clear: every row was deleted; subscribe again"
            )
        else:
            staged.commit()
        core.install(loaded)
        core.book.reconcile(core.datastore, now_us)  # as replay does, at this record
        core.scheduler.wake()
        core.offset = offset
        core.last_timestamp_us = now_us
        core.memory.reset(core.datastore)
        core.subscriptions.schema_changed(loaded.schema)
        core.log.append("INFO", f"module updated at offset {offset} ({loaded.filename})")
        try:
            store_module(core.path, loaded)
        except OSError:
            # The log holds the update and wins on open; the files are a convenience.
            logger.exception("could not store the updated module in %s", core.path)
        if clear:
            run_init(core)
    core.persistence.wait_durable(offset)
    return MigrationReport.from_plan(plan, offset, clear)


def replay_module_change(
    datastore: Datastore, current: LoadedModule, change: ModuleChange, offset: int
) -> LoadedModule:
    """Apply a module record found at ``offset`` during replay; return the new module.

    The recorded source is loaded again and must still declare the tables it declared
    when it was deployed: the records after this one were encoded with those tables.

    Raises:
        SchemaError: the recorded source no longer loads, declares other tables, or
            (which the deploy ruled out) cannot migrate the replayed data.
    """
    where = f"the module recorded at offset {offset} ({change.filename})"
    try:
        loaded = load_source(change.source, change.filename)
    except CosmictronError as exc:
        raise SchemaError(f"{where} no longer loads: {exc}") from exc
    if not _declares_recorded_tables(loaded, change.schema["tables"]):
        raise SchemaError(
            f"{where} now declares different tables than when it was deployed, so the "
            f"records after it cannot be read"
        )
    if change.clear:
        reset_datastore(datastore, loaded.schema)
    else:
        stage_migration(datastore, plan_migration(current.schema, loaded.schema)).commit()
    return loaded


def _declares_recorded_tables(loaded: LoadedModule, recorded: Any) -> bool:
    """Whether ``loaded`` declares the tables a module record recorded, so that the
    records after it read as they were written.

    Tables added since are empty then (no record names them), as after a migration.
    Indexes may differ (they are built from the rows, never read from the log) unless
    a unique one is new (the rows might break it). A reserved agent table may have
    grown (``TableSchema.older_widths``): it matches if the recorded columns are its
    first ones, at a width it lists.
    """
    recorded = _normalised(recorded)
    declared = {table.name: table for table in loaded.schema.tables}
    for then in recorded:
        table = declared.get(then["name"])
        if table is None:
            return False
        now = _normalised(table.describe())
        if now == then:
            continue
        width = len(then["columns"])
        columns_read = now["columns"] == then["columns"] or (
            width in table.older_widths and now["columns"][:width] == then["columns"]
        )
        rest = _without_layout(now)
        new_unique = [i for i in now["indexes"] if i["unique"] and i not in then["indexes"]]
        if not columns_read or new_unique or rest != _without_layout(then):
            return False
    return True


def _without_layout(described: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in described.items() if k not in ("columns", "indexes")}


def _normalised(value: Any) -> Any:
    """``value`` as JSON would give it back (msgpack turns tuples into lists, too)."""
    return json.loads(json.dumps(value))
