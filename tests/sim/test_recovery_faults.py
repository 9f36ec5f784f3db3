"""Faults during recovery and during a snapshot write, at every storage call (issue 10).

Each case builds the same disk from its seed (``FaultyStorage``): a synced log of
``ACKED`` acknowledged records over several segments, snapshots (so pruning runs), a
half-written next frame that was never synced, and a snapshot ``.tmp`` an interrupted
write left; then a power cut fixes what survived. On that disk one procedure runs with
one planned fault (``PlannedFaults``) at call N, for every N the procedure makes and for
both faults: the call fails with the ``OSError`` a failing disk gives (``EIO`` on reads,
syncs and renames, ``ENOSPC`` on writes), or the power is lost right before it.

The rule after each case (never both silent and wrong): the procedure either succeeded
and holds every acknowledged record, or refused with an error whose message names the
fault; and after one more power cut, a fault-free recovery returns every acknowledged
record (those before the case and any the case acknowledged) byte for byte, with a valid
snapshot or none. The procedures are: open and recover, then append, sync and close
(the LazyFS-style loss of unsynced writes comes from each power cut); and one snapshot
write (``SnapshotDirectory.write``: temp, sync, rename, directory sync, pruning).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from cosmictron.durability import (
    TX_RECORD_KIND,
    DurabilityConfig,
    PersistenceConfig,
    PersistenceLayer,
    Snapshot,
)
from cosmictron.durability.record import encode_frame, encode_payload
from cosmictron.durability.segment import list_segments
from cosmictron.durability.snapshot import SnapshotDirectory, snapshot_path
from cosmictron.errors import CosmictronError
from cosmictron.testing import FaultyStorage, PlannedFaults, PowerLoss

DATA_DIR = "/faults/data"
Procedure = Callable[[Any, dict[int, dict[str, Any]]], None]
ACKED = 24
CONFIG = DurabilityConfig(fsync_policy="always", segment_bytes_max=1024)
CI_SEEDS = range(20)
SOAK_SEEDS = range(100, 300)
FAULTS = ("error", "crash")


def body(n: int) -> dict[str, Any]:
    return {"n": n, "pad": "r" * (n * 7 % 90)}


def snapshot_state(through: int) -> dict[str, Any]:
    return {"through": through, "rows": [body(n) for n in range(1, through + 1)]}


@dataclasses.dataclass
class Disk:
    """A seeded disk and what a correct recovery of it must return."""

    storage: FaultyStorage
    acked: dict[int, dict[str, Any]]
    """Every acknowledged offset and its body."""


def build_disk(seed: int) -> Disk:
    storage = FaultyStorage(seed, reorder_writes=seed % 2 == 0)
    layer = PersistenceLayer(PersistenceConfig(DATA_DIR), CONFIG, storage=storage)
    list(layer.recover().records)
    for n in range(1, ACKED + 1):
        layer.wait_durable(layer.append(TX_RECORD_KIND, body(n)))
        if n in (8, 16):
            layer.request_snapshot(lambda n=n: snapshot_state(n))
            layer.wait_snapshots()
    last_hash = layer.last_hash
    layer.close()
    # The next frame, written but never synced, and an interrupted snapshot's temp.
    _, last_segment = list_segments(storage, f"{DATA_DIR}/log")[-1]
    handle = storage.open_append(last_segment)
    storage.write(
        handle, encode_frame(encode_payload(TX_RECORD_KIND, ACKED + 1, last_hash, body(0)))
    )
    storage.close(handle)
    handle = storage.open_overwrite(snapshot_path(f"{DATA_DIR}/snapshots", ACKED) + ".tmp")
    storage.write(handle, b"CTSNAP\x00\x01 half of a snapshot")
    storage.close(handle)
    storage.crash()
    return Disk(storage, {n: body(n) for n in range(1, ACKED + 1)})


def open_recover_append_close(storage: Any, acked: dict[int, dict[str, Any]]) -> None:
    """The procedure a restart runs; appends one record and acknowledges it."""
    layer = PersistenceLayer(PersistenceConfig(DATA_DIR), CONFIG, storage=storage)
    try:
        recovery = layer.recover()
        replayed = {record.offset: record.body for record in recovery.records}
        assert all(replayed[o] == b for o, b in acked.items() if o in replayed)
        offset = layer.append(TX_RECORD_KIND, body(1000))
        layer.wait_durable(offset)
        acked[offset] = body(1000)
    finally:
        layer.close()


def write_one_snapshot(storage: Any, acked: dict[int, dict[str, Any]]) -> None:
    """The snapshot thread's write, at the last acknowledged offset."""
    reader = PersistenceLayer(PersistenceConfig(DATA_DIR), CONFIG, storage=storage.inner)
    recovery = reader.recover()
    list(recovery.records)
    offset, last_hash = recovery.last_offset, reader.last_hash
    reader.close()
    SnapshotDirectory(storage, f"{DATA_DIR}/snapshots").write(
        Snapshot(offset, last_hash, snapshot_state(offset))
    )


def check_everything_acknowledged_survives(disk: Disk, where: str, crash: bool = True) -> None:
    if crash:
        disk.storage.crash()
    layer = PersistenceLayer(PersistenceConfig(DATA_DIR), CONFIG, storage=disk.storage)
    recovery = layer.recover()
    records = list(recovery.records)
    start = 0
    if recovery.snapshot is not None:
        start = recovery.snapshot.offset
        assert recovery.snapshot.state == snapshot_state(start), f"{where}: snapshot state"
    replayed = {record.offset: record.body for record in records}
    assert sorted(replayed) == list(range(start + 1, start + len(replayed) + 1)), where
    for offset, acked_body in disk.acked.items():
        if offset > start:
            assert replayed.get(offset) == acked_body, f"{where}: acknowledged {offset} lost"
    assert not [n for n in disk.storage.list_directory(f"{DATA_DIR}/snapshots") if "tmp" in n]
    layer.close()


def run_case(seed: int, procedure: Procedure, at: int, fault: str) -> str:
    """Run one case and check its rule; returns the outcome, for the tallies."""
    disk = build_disk(seed)
    planned = PlannedFaults(disk.storage, at=at, fault=fault)
    where = f"seed={seed} {procedure.__name__} call {at} {fault}"
    outcome = "succeeded"
    try:
        procedure(planned, disk.acked)
    except PowerLoss:
        outcome = "power lost"
    except (OSError, CosmictronError) as exc:
        outcome = "refused"
        text = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
        assert "planned" in text, f"{where}: refused without naming the fault: {exc!r}"
    where = f"{where} ({outcome}, at {planned.hit})"
    if outcome != "power lost":
        # The same process opens again at once: nothing may still hold the lock.
        check_everything_acknowledged_survives(disk, where + " then reopened", crash=False)
    check_everything_acknowledged_survives(disk, where)
    return outcome


def calls_made(seed: int, procedure: Procedure) -> int:
    disk = build_disk(seed)
    counter = PlannedFaults(disk.storage)
    procedure(counter, disk.acked)
    check_everything_acknowledged_survives(disk, f"seed={seed} {procedure.__name__} no fault")
    return counter.calls


PROCEDURES: list[Procedure] = [open_recover_append_close, write_one_snapshot]


def run_matrix(seeds: range, procedure: Procedure) -> dict:
    tally: dict[str, int] = {}
    for seed in seeds:
        for at in range(calls_made(seed, procedure)):
            for fault in FAULTS:
                outcome = run_case(seed, procedure, at, fault)
                tally[outcome] = tally.get(outcome, 0) + 1
    return tally


@pytest.mark.parametrize("procedure", PROCEDURES, ids=lambda p: p.__name__)
def test_every_storage_call_of_recovery_and_snapshots_may_fail(
    procedure: Procedure,
) -> None:
    tally = run_matrix(CI_SEEDS, procedure)
    assert tally.get("refused", 0) and tally.get("power lost", 0), tally


@pytest.mark.soak
@pytest.mark.parametrize("procedure", PROCEDURES, ids=lambda p: p.__name__)
def test_every_storage_call_of_recovery_and_snapshots_may_fail_soak(
    procedure: Procedure,
) -> None:
    run_matrix(SOAK_SEEDS, procedure)
