"""Recovery: bring an opened database to its last committed state, and adopt a module.

``open_core`` (what ``Database.open`` calls first) builds an empty ``DatabaseCore`` under
the module it starts from, then calls ``recover`` (load the newest snapshot, replay every
record after it, switching module at each module record) and, if it was given a module,
``adopt``; it returns the core, and ``Database.open`` wraps it and calls ``start``
(``@init`` on a new database, then the scheduler thread). Two steps because a reducer's
code reaches its ``Database`` through ``CURRENT_DB``: the façade must exist before
``@init`` runs, and this module must not import it. The steps and the rules for
trusting a snapshot or a record are in docs/design/architecture.md, "Opening and
recovery"; the record bodies in ``records.py``; module records in ``hotswap.py``.

Functions over the core rather than its methods: replay fills exactly the state the
commit path later advances (offset, last timestamp, schedule book, import keys), and
runs once, before any other thread can see the core, so it needs no lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cosmictron.datastore import differences
from cosmictron.datastore.migration import reset_datastore
from cosmictron.durability import (
    MODULE_RECORD_KIND,
    TX_RECORD_KIND,
    DurabilityConfig,
    PersistenceConfig,
    PersistenceLayer,
)
from cosmictron.durability.durable_point import Replicator
from cosmictron.errors import NotFound, SchemaError
from cosmictron.host.clock import Clock, SystemClock
from cosmictron.host.core import DatabaseCore
from cosmictron.host.directory import identities, load_new_module, store_module, stored_module
from cosmictron.host.hotswap import replay_module_change, update_module
from cosmictron.host.memory import collector_paused
from cosmictron.host.records import (
    BULK_INSERT,
    REPLAY_COMPILED,
    ReplayOverlay,
    apply_record_body,
    load_snapshot_state,
    read_module_body,
    record_remote,
    record_schedule,
    snapshot_module,
    snapshot_schedules,
)
from cosmictron.host.scheduled_runs import next_scheduled_us, run_due
from cosmictron.host.transactions import run_init
from cosmictron.host.views import VIEW_REDUCER
from cosmictron.ledger.record_format import LEDGER_KINDS
from cosmictron.module import LoadedModule, load_source
from cosmictron.values import Identity

_APART = frozenset({BULK_INSERT, VIEW_REDUCER})
"""Reducer names whose records replay applies alone, not through the overlay."""


def open_core(
    directory: Path,
    module: Any,
    durability: DurabilityConfig | None,
    owner: Identity | None,
    clock: Clock | None,
    replicator: Replicator | None = None,
    replica: bool = False,
) -> DatabaseCore:
    """``Database.open``'s first half: settings, lock, module, replay, adoption.

    Returns a core at its last committed state, not yet running anything: the caller
    wraps it in its ``Database`` (which reducers see through ``CURRENT_DB``), then calls
    ``start``. If this raises, the data directory is released.
    """
    if module is None and not (directory / "module" / "module.py").exists():
        raise NotFound(f"{str(directory)!r} holds no database yet; give a module to create one")
    if durability is None:
        config_file = directory / "config.toml"
        durability = DurabilityConfig.resolve(
            environ=os.environ, config_file=config_file if config_file.exists() else None
        )
    explicit = load_new_module(module) if module is not None else None
    persistence = PersistenceLayer(
        PersistenceConfig(data_dir=str(directory)),
        durability,
        replicator=replicator,
        replica=replica,
    )
    try:
        base = stored_module(directory, explicit)
        assert base is not None, "checked above: a module was given or one is stored"
        identity, owner = identities(directory, owner)
        core = DatabaseCore(
            directory,
            base,
            persistence,
            durability,
            identity,
            owner,
            clock or SystemClock(),
            next_scheduled_us,
            run_due,
        )
        recover(core)
        if explicit is not None:
            adopt(core, explicit)
        store_module(directory, core.module)
    except BaseException:
        persistence.close()
        raise
    return core


def start(core: DatabaseCore) -> None:
    """``Database.open``'s second half: ``@init`` on a new database, then the scheduler.

    If ``@init`` fails, the data directory is released and the error propagates.
    """
    assert core.current_db is not None, "wrap the core in its Database first"
    try:
        if core.offset == 0:
            run_init(core)
        core.persistence.start_anchoring(core.lock)  # RFC 3161, on its own thread
    except BaseException:
        core.persistence.close()
        raise
    core.scheduler.start()


def recover(core: DatabaseCore) -> None:
    """Replay the log into ``core``, with the garbage collector paused (see memory.py)."""
    with collector_paused():
        _replay(core)


def _replay(core: DatabaseCore) -> None:
    """Load the newest snapshot, then apply every record after it, in order.

    The replay starts under the module the snapshot was taken under (or the first
    module), and a module record switches module and tables at its offset, so each
    record is decoded with the tables it was written with.
    """
    recovery = core.persistence.recover()
    datastore = core.datastore
    module = core.module
    book = core.book
    if recovery.snapshot is not None:
        taken_under = snapshot_module(recovery.snapshot.state)
        if taken_under is not None and taken_under[0] != module.source:
            module = load_source(*taken_under)
            reset_datastore(datastore, module.schema)
            book.use_schema(module.schema)
        load_snapshot_state(datastore, recovery.snapshot.state)
        book.apply(book.decode(datastore, snapshot_schedules(recovery.snapshot.state)))
        if isinstance(recovery.snapshot.state, dict):
            core.imports.load(recovery.snapshot.state.get("imports"))
            core.sql_views.load(recovery.snapshot.state.get("views"))
            core.remote.load(recovery.snapshot.state.get("remote"))
        core.offset = recovery.snapshot.offset
        core.last_snapshot_offset = recovery.snapshot.offset
    overlay = ReplayOverlay(datastore)
    add = overlay.add
    take = overlay.take if REPLAY_COMPILED else None
    for batch in recovery.batches:
        last = None
        position, count = 0, len(batch)
        while position < count:
            if take is not None:  # the run of plain transactions from here, in C
                position, taken = take(batch, position, LEDGER_KINDS, _APART)
                if taken is not None:
                    last = taken
                if position == count:
                    break
            record = batch[position]
            position += 1
            if record.kind in LEDGER_KINDS:
                continue  # keys, checkpoints, anchors: the ledger's, nothing to apply
            last = record
            body = record.body
            # The common record, a plain transaction, goes to the overlay; whatever
            # reads the tables or other host state flushes it and is applied alone.
            if record.kind == TX_RECORD_KIND and len(body) == 7 and body[3] not in _APART:
                add(body)
                continue
            overlay.flush()
            if record.kind == TX_RECORD_KIND:
                apply_record_body(datastore, body)
                schedule = record_schedule(body)
                if schedule:
                    book.apply(book.decode(datastore, schedule))
                remote = record_remote(body)
                if remote:
                    core.remote.apply(remote, record.offset)
                if body[3] == BULK_INSERT:
                    core.imports.observe(body[4], record.offset)
                elif body[3] == VIEW_REDUCER:
                    core.sql_views.replayed(body[4][0])
            elif record.kind == MODULE_RECORD_KIND:
                change = read_module_body(body)
                module = replay_module_change(datastore, module, change, record.offset)
                book.use_schema(module.schema)
                book.reconcile(datastore, change.timestamp_us)
                if change.clear:
                    core.imports.clear()
        if last is not None:
            # Both kinds of body start with the timestamp.
            core.last_timestamp_us = last.body[0]
            core.offset = last.offset
    overlay.flush()
    recovery.release_snapshot()  # freed here, while the collector is still paused
    if module is not core.module:
        core.install(module)
        core.subscriptions.schema_changed(module.schema)
    # Only a log from before scheduling existed leaves rows without an entry.
    book.reconcile(datastore, core.clock.now_us())
    core.memory.reset(datastore)


def adopt(core: DatabaseCore, explicit: LoadedModule) -> None:
    """Run the module ``open`` was given, after replay: it must fit the stored tables.

    The same source is only rebound (the caller's classes must be the table classes).
    Different source with the same tables is a module update without migration,
    recorded like any other so that replay and ``open(path)`` find it.

    Raises:
        SchemaError: its tables differ from the stored ones.
    """
    if explicit.source == core.module.source or core.offset == 0:
        if core.offset == 0:  # nothing was written under the stored module
            reset_datastore(core.datastore, explicit.schema)
            core.subscriptions.schema_changed(explicit.schema)
        core.install(explicit)
        return
    problems = differences(core.module.schema, explicit.schema)
    if problems:
        raise SchemaError(
            f"the module does not match the data in {str(core.path)!r}: "
            f"{'; '.join(problems)} (use Database.update_module to migrate the data)"
        )
    update_module(core, explicit, False, None)
