"""Deterministic simulation of the commit log on a disk that crashes (STYLE.md).

Each run draws steps from ``random.Random(seed)``: append, wait_durable, tick (a sync),
snapshot, crash-and-reopen and clean reopen. It runs the real ``PersistenceLayer`` on a
``FaultyStorage(seed)`` (writes that fail with ``ENOSPC`` part-way and syncs that fail
are injected too) beside a model: the bodies appended, their hashes, and ``must_survive``,
the highest offset that no crash may take away:

- under ``always``: every offset whose ``wait_durable`` returned (an append alone is not
  acknowledged: its frame waits in user space for the group-commit leader), and anything
  the layer reports as ``durable_offset``, which is its promise;
- under ``periodic`` and ``never``: every offset appended before a sync the test saw
  finish (a tick, a snapshot, a clean close) or the layer reports as synced.

After every step the layer must agree with the model (next offset, last hash, a durable
offset that only grows). After every reopen, replay must yield a prefix of what was
appended: contiguous offsets, an unbroken hash chain, each record byte-identical to the
one appended (so a torn or corrupt record is never returned), a snapshot that matches the
model, at least ``must_survive`` records, and an append that continues the chain.

A failure names the seed and step; ``pytest tests/sim --seed N`` replays it exactly.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest

from cosmictron.durability import (
    TX_RECORD_KIND,
    DurabilityConfig,
    PersistenceConfig,
    PersistenceLayer,
)
from cosmictron.errors import CorruptLog, DurabilityError
from cosmictron.ledger import GENESIS_HASH
from cosmictron.testing import CrashReport, FaultyStorage

POLICIES = ("always", "periodic", "never")
CI_SEEDS = range(50)
SOAK_SEEDS = range(1000, 4000)
STEPS_PER_RUN = 200
DATA_DIR = "/sim/data"
NO_TIMER_MS = 3_600_000
"""The periodic thread's interval: an hour, so it never fires and ``tick`` steps stand in."""

STEP_WEIGHTS = {
    "append": 45,
    "wait_durable": 15,
    "tick": 8,
    "snapshot": 4,
    "crash": 6,
    "reopen": 2,
}


class SimulationFailed(AssertionError):
    """An invariant broke; the message says where and how to replay it."""


class Simulation:
    """One seeded run of one policy: the real layer, the faulty disk and the model."""

    def __init__(self, seed: int, policy: str, reorder_writes: bool) -> None:
        self.seed, self.policy, self.reorder_writes = seed, policy, reorder_writes
        self.random = random.Random(seed)
        self.storage = FaultyStorage(
            seed, write_failure=0.01, sync_failure=0.005, reorder_writes=reorder_writes
        )
        self.durability = DurabilityConfig(
            fsync_policy=policy,
            fsync_interval_ms=NO_TIMER_MS,
            segment_bytes_max=self.random.choice([256, 1024, 4096, 1 << 20]),
        )
        self.bodies: list[Any] = []
        self.hashes: list[bytes] = []
        self.must_survive = 0
        self.durable_offset_seen = 0
        self.failed = False
        self.step = 0
        self.history: list[str] = []
        self.layer = self._open()

    # -- driving -----------------------------------------------------------------------

    def run(self, steps: int) -> None:
        names, weights = list(STEP_WEIGHTS), list(STEP_WEIGHTS.values())
        for self.step in range(1, steps + 1):
            name = "crash" if self.failed else self.random.choices(names, weights)[0]
            self.history.append(name)
            getattr(self, f"do_{name}")()
            self.check_layer()
        self.do_reopen()

    def do_append(self) -> None:
        body = self._body()
        try:
            offset = self.layer.append(TX_RECORD_KIND, body)
        except DurabilityError:
            self._after_failed_write()
            return
        self.expect(offset == len(self.bodies) + 1, f"append returned offset {offset}")
        self.bodies.append(body)
        self.hashes.append(self.layer.last_hash)

    def do_wait_durable(self) -> None:
        if not self.bodies:
            return
        offset = len(self.bodies)
        try:
            self.layer.wait_durable(offset)
        except DurabilityError:
            self.failed = True
            return
        if self.policy == "always":
            self.must_survive = max(self.must_survive, offset)

    def do_tick(self) -> None:
        try:
            self.layer.sync_now()
        except DurabilityError:
            self.failed = True
            return
        self.must_survive = len(self.bodies)

    def do_snapshot(self) -> None:
        offset = len(self.bodies)
        state = self._state(offset)
        written_before = self.layer.statistics().snapshot_count
        self.expect(self.layer.request_snapshot(lambda: state), "a snapshot request was skipped")
        self.layer.wait_snapshots()
        statistics = self.layer.statistics()
        if statistics.failed:
            self.failed = True
        elif statistics.snapshot_count > written_before:
            self.must_survive = max(self.must_survive, offset)

    def do_crash(self) -> None:
        report = self.storage.crash()
        self.history[-1] = f"crash {report_text(report)}"
        with contextlib.suppress(DurabilityError, OSError):
            self.layer.close()  # the old process is gone: its handles are dead
        self.layer = self._open()

    def do_reopen(self) -> None:
        # A failed layer closes without syncing (nor raising again), and a final sync
        # that fails makes this a restart that may lose what was not yet synced.
        was_failed = self.failed or self.layer.statistics().failed
        try:
            self.layer.close()
        except DurabilityError:
            was_failed = True
        if not was_failed:
            self.must_survive = len(self.bodies)
        self.layer = self._open()

    def _after_failed_write(self) -> None:
        """A failed append either cut itself off (the log goes on) or failed the layer."""
        if self.layer.statistics().failed:
            self.failed = True
        self.expect(
            self.layer.next_offset == len(self.bodies) + 1, "a failed append took an offset"
        )

    # -- checking ----------------------------------------------------------------------

    def _open(self) -> PersistenceLayer:
        """Open and recover, with faults off: the checks are about what is on the disk."""
        self.storage.faults_enabled = False
        try:
            layer = PersistenceLayer(
                PersistenceConfig(DATA_DIR), self.durability, storage=self.storage
            )
            recovery = layer.recover()
            records = list(recovery.records)
        except DurabilityError as exc:
            raise self.failure(f"recovery failed: {exc!r}") from exc
        finally:
            self.storage.faults_enabled = True
        self.check_recovery(recovery.snapshot, records)
        self.failed = False
        self.durable_offset_seen = layer.durable_offset
        return layer

    def check_recovery(self, snapshot: Any, records: list[Any]) -> None:
        start = 0
        previous_hash = GENESIS_HASH
        if snapshot is not None:
            start = snapshot.offset
            self.expect(start <= len(self.bodies), f"snapshot at {start} is past the log")
            self.expect(snapshot.state == self._state(start), "snapshot state is not the model's")
            if start:
                previous_hash = self.hashes[start - 1]
                self.expect(snapshot.last_hash == previous_hash, "snapshot last_hash is wrong")
        for expected_offset, record in enumerate(records, start + 1):
            self.expect(record.offset == expected_offset, f"record {record.offset} out of order")
            self.expect(expected_offset <= len(self.bodies), f"record {expected_offset} invented")
            self.expect(record.prev_hash == previous_hash, f"chain broken at {expected_offset}")
            self.expect(
                record.hash == self.hashes[expected_offset - 1]
                and record.body == self.bodies[expected_offset - 1],
                f"record {expected_offset} is not the one appended (torn or corrupt)",
            )
            previous_hash = record.hash
        last = start + len(records)
        self.expect(
            last >= self.must_survive,
            f"recovered through offset {last}, but offset {self.must_survive} was durable",
        )
        del self.bodies[last:], self.hashes[last:]
        self.must_survive = last  # everything recovered was synced by recovery itself

    def check_layer(self) -> None:
        """After every step: the layer's position and promises agree with the model."""
        layer = self.layer
        if self.failed:
            return
        self.expect(layer.next_offset == len(self.bodies) + 1, "next_offset drifted")
        last_hash = self.hashes[-1] if self.hashes else GENESIS_HASH
        self.expect(layer.last_hash == last_hash, "last_hash drifted")
        durable = layer.durable_offset
        self.expect(durable >= self.durable_offset_seen, "durable_offset went backwards")
        self.expect(durable <= len(self.bodies), "durable_offset is past the last append")
        self.durable_offset_seen = durable
        if self.policy != "never":  # under never, durable_offset is only "written"
            self.must_survive = max(self.must_survive, durable)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise self.failure(message)

    def failure(self, message: str) -> SimulationFailed:
        recent = ", ".join(self.history[-8:])
        return SimulationFailed(
            f"seed={self.seed} policy={self.policy} reorder_writes={self.reorder_writes} "
            f"step={self.step}: {message}\n"
            f"  recent steps: {recent}\n"
            f"  replay: pytest tests/sim --seed {self.seed} -k {self.policy}"
        )

    def close(self) -> None:
        with contextlib.suppress(DurabilityError, OSError):
            self.layer.close()

    # -- values ------------------------------------------------------------------------

    def _body(self) -> Any:
        size = self.random.choice([0, 1, 10, 60, 300])
        return {"step": self.step, "pad": self.random.randbytes(size)}

    def _state(self, offset: int) -> dict[str, Any]:
        """The state a snapshot at ``offset`` holds: small, and a function of the model."""
        return {"offset": offset, "last": self.bodies[offset - 1] if offset else None}


def report_text(report: CrashReport) -> str:
    return (
        f"(writes applied {report.writes_applied}, dropped {report.writes_dropped}, "
        f"torn {report.writes_torn}, garbled {report.writes_garbled}; names kept "
        f"{report.names_kept}, lost {report.names_lost})"
    )


def simulate(seed: int, policy: str, reorder_writes: bool, steps: int = STEPS_PER_RUN) -> None:
    simulation = Simulation(seed, policy, reorder_writes)
    try:
        simulation.run(steps)
    finally:
        simulation.close()


def seeds(chosen_seed: int | None, default: range) -> list[int]:
    return [chosen_seed] if chosen_seed is not None else list(default)


@pytest.mark.parametrize("policy", POLICIES)
def test_commitlog_survives_crashes(policy: str, chosen_seed: int | None) -> None:
    """An ordered disk: a crash keeps a prefix of each file's unsynced writes, one torn."""
    for seed in seeds(chosen_seed, CI_SEEDS):
        simulate(seed, policy, reorder_writes=False)


@pytest.mark.parametrize("policy", POLICIES)
def test_commitlog_survives_reordered_writeback(policy: str, chosen_seed: int | None) -> None:
    """test6.c's disk: each unsynced write is applied, dropped or torn on its own.

    A later unsynced write may survive an earlier lost one; its frame's ``durable``
    watermark shows it vouches for nothing the damage touched, so recovery cuts there.
    """
    for seed in seeds(chosen_seed, CI_SEEDS):
        simulate(seed, policy, reorder_writes=True)


@pytest.mark.soak
@pytest.mark.parametrize("reorder_writes", [False, True])
@pytest.mark.parametrize("policy", POLICIES)
def test_commitlog_survives_crashes_soak(
    policy: str, reorder_writes: bool, chosen_seed: int | None
) -> None:
    for seed in seeds(chosen_seed, SOAK_SEEDS):
        simulate(seed, policy, reorder_writes)


def write_synced_log(seed: int, segment_bytes_max: int) -> tuple[FaultyStorage, list[bytes]]:
    """Append 30 records under ``always`` and sync them; return the disk and their hashes."""
    storage = FaultyStorage(seed)
    config = DurabilityConfig(fsync_policy="always", segment_bytes_max=segment_bytes_max)
    hashes = []
    with PersistenceLayer(PersistenceConfig(DATA_DIR), config, storage=storage) as layer:
        list(layer.recover().records)
        for n in range(30):
            layer.append(TX_RECORD_KIND, {"n": n, "pad": bytes(n)})
            hashes.append(layer.last_hash)
        layer.wait_durable(30)
    return storage, hashes


def recover_hashes(storage: FaultyStorage, read_corruption: float) -> list[bytes]:
    storage.read_corruption = read_corruption
    config = DurabilityConfig(fsync_policy="always", segment_bytes_max=1 << 20)
    try:
        with PersistenceLayer(PersistenceConfig(DATA_DIR), config, storage=storage) as layer:
            return [record.hash for record in layer.recover().records]
    finally:
        storage.read_corruption = 0.0


@pytest.mark.parametrize("segment_bytes_max", [1024, 1 << 20])
def test_a_flipped_byte_on_read_is_never_replayed(
    segment_bytes_max: int, chosen_seed: int | None
) -> None:
    """``bitflip.rs``: recovery reads a synced log with one byte flipped per file read.

    Recovery must refuse with ``CorruptLog`` or return a prefix of exactly what was
    appended; it never returns a damaged record.
    """
    refused = 0
    for seed in seeds(chosen_seed, CI_SEEDS):
        storage, appended = write_synced_log(seed, segment_bytes_max)
        try:
            hashes = recover_hashes(storage, read_corruption=1.0)
        except CorruptLog:
            refused += 1
        else:
            assert hashes == appended[: len(hashes)], f"seed={seed}: a damaged record replayed"
    assert chosen_seed is not None or refused, "no flip was ever noticed"


def test_a_transient_flip_in_the_last_frame_loses_no_durable_record() -> None:
    """Seed 51 flips a byte on read in the last frame, which looks like a torn tail.

    Recovery reads the segment a second time before cutting anything; the reads differ,
    so it refuses instead of truncating, and a clean read later returns every record.
    """
    storage, appended = write_synced_log(51, 1 << 20)
    with pytest.raises(CorruptLog, match="read differently twice"):
        recover_hashes(storage, read_corruption=1.0)
    assert recover_hashes(storage, read_corruption=0.0) == appended
