"""Hot-swap: what a module update did, and how a module record is applied on replay.

``Database.update_module`` plans the migration (``datastore.migration``), builds the new
tables beside the old ones, appends a module record and only then installs them; see
``docs/design/hot-swap.md`` for the record, the order of steps and why. This module
holds the pieces that need no ``Database``: the report, and turning a module record
back into a module and a migrated datastore.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import Datastore
from cosmictron.datastore.migration import (
    MigrationPlan,
    plan_migration,
    reset_datastore,
    stage_migration,
)
from cosmictron.errors import CosmictronError, SchemaError
from cosmictron.host.records import ModuleChange
from cosmictron.module import LoadedModule, load_source


@dataclass(frozen=True)
class MigrationReport:
    """What ``Database.update_module`` did; names are ``table`` or ``table.member``.

    ``tx_offset`` is the offset of the module record: the first offset under the new
    module.
    """

    tx_offset: int
    cleared: bool
    tables_added: tuple[str, ...] = ()
    tables_changed: tuple[str, ...] = ()
    columns_added: tuple[str, ...] = ()
    indexes_added: tuple[str, ...] = ()
    indexes_removed: tuple[str, ...] = ()
    reducers_added: tuple[str, ...] = ()
    reducers_removed: tuple[str, ...] = ()
    reducers_changed: tuple[str, ...] = ()

    @classmethod
    def from_plan(cls, plan: MigrationPlan, offset: int, cleared: bool) -> MigrationReport:
        return cls(
            tx_offset=offset,
            cleared=cleared,
            tables_added=plan.tables_added,
            tables_changed=plan.tables_changed,
            columns_added=plan.columns_added,
            indexes_added=plan.indexes_added,
            indexes_removed=plan.indexes_removed,
            reducers_added=plan.reducers_added,
            reducers_removed=plan.reducers_removed,
            reducers_changed=plan.reducers_changed,
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able form (the server's deploy reply).

        >>> MigrationReport(7, False, tables_added=("tag",)).describe()["tables_added"]
        ['tag']
        """
        return {
            "tx_offset": self.tx_offset,
            "cleared": self.cleared,
            "tables_added": list(self.tables_added),
            "tables_changed": list(self.tables_changed),
            "columns_added": list(self.columns_added),
            "indexes_added": list(self.indexes_added),
            "indexes_removed": list(self.indexes_removed),
            "reducers_added": list(self.reducers_added),
            "reducers_removed": list(self.reducers_removed),
            "reducers_changed": list(self.reducers_changed),
        }


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
    described = [table.describe() for table in loaded.schema.tables]
    if _normalised(described) != _normalised(change.schema["tables"]):
        raise SchemaError(
            f"{where} now declares different tables than when it was deployed, so the "
            f"records after it cannot be read"
        )
    if change.clear:
        reset_datastore(datastore, loaded.schema)
    else:
        stage_migration(datastore, plan_migration(current.schema, loaded.schema)).commit()
    return loaded


def _normalised(value: Any) -> Any:
    """``value`` as JSON would give it back (msgpack turns tuples into lists, too)."""
    return json.loads(json.dumps(value))
