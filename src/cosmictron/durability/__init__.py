"""Durability: the commit log, its fsync policy, snapshots and recovery.

Owns everything under a database's data directory. Imports ``cosmictron.ledger`` (the
hash chain) and root modules only. Guarantees: a transaction reported durable under the
``always`` policy is replayed after any crash; recovery never returns a torn or corrupt
record (it truncates a torn tail and refuses anything else with ``CorruptLog``); replayed
records have contiguous offsets and an unbroken hash chain.

The on-disk format is described where it is defined: ``record.py`` (frames),
``segment.py`` (segments and the recovery rule) and ``snapshot.py``. Every disk access
goes through a ``Storage`` (``storage.py``), so tests can run all of it on a simulated
disk that crashes.
"""

from cosmictron.durability.config import (
    FSYNC_POLICIES,
    PROFILES,
    SYNC_METHODS,
    DurabilityConfig,
    PersistenceConfig,
)
from cosmictron.durability.persistence import PersistenceLayer, PersistenceStatistics
from cosmictron.durability.record import MODULE_RECORD_KIND, TX_RECORD_KIND, Record
from cosmictron.durability.recovery import Recovery
from cosmictron.durability.snapshot import Snapshot
from cosmictron.durability.storage import FileStorage, Storage

__all__ = [
    "FSYNC_POLICIES",
    "MODULE_RECORD_KIND",
    "PROFILES",
    "SYNC_METHODS",
    "TX_RECORD_KIND",
    "DurabilityConfig",
    "FileStorage",
    "PersistenceConfig",
    "PersistenceLayer",
    "PersistenceStatistics",
    "Record",
    "Recovery",
    "Snapshot",
    "Storage",
]
