"""The fsync policies on a real disk: group commit, periodic syncs, and failed fsyncs.

The fsync failure is injected by monkeypatching ``os.fdatasync``/``os.fsync`` in that
test only; everything else syncs for real.
"""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from cosmictron.durability import TX_RECORD_KIND, PersistenceLayer
from cosmictron.errors import DurabilityError, InternalError

from .conftest import OpenLayer, recover_all

THREAD_COUNT = 16
APPENDS_PER_THREAD = 50


def test_group_commit_shares_syncs_between_concurrent_callers(open_layer: OpenLayer) -> None:
    layer = open_layer(fsync_policy="always")
    recover_all(layer)
    writer_lock = threading.Lock()  # stands in for the host's single-writer lock
    start = threading.Barrier(THREAD_COUNT)
    errors: list[BaseException] = []

    def call_reducers() -> None:
        try:
            start.wait()
            for n in range(APPENDS_PER_THREAD):
                with writer_lock:
                    offset = layer.append(TX_RECORD_KIND, n)
                layer.wait_durable(offset)
                assert layer.durable_offset >= offset
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call_reducers) for _ in range(THREAD_COUNT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    statistics = layer.statistics()
    assert statistics.appends == THREAD_COUNT * APPENDS_PER_THREAD
    assert 0 < statistics.syncs < statistics.appends
    assert statistics.durable_offset == statistics.appends
    assert statistics.last_sync_latency_s > 0


def test_always_waits_for_a_sync(open_layer: OpenLayer) -> None:
    layer = open_layer(fsync_policy="always")
    recover_all(layer)
    offset = layer.append(TX_RECORD_KIND, "x")
    assert layer.durable_offset == offset - 1
    layer.wait_durable(offset)
    assert layer.durable_offset == offset
    assert layer.statistics().syncs == 1


def test_periodic_syncs_in_the_background(open_layer: OpenLayer) -> None:
    layer = open_layer(fsync_policy="periodic", fsync_interval_ms=5)
    recover_all(layer)
    offset = layer.append(TX_RECORD_KIND, "x")
    layer.wait_durable(offset)  # returns at once; the thread syncs later
    deadline = time.monotonic() + 10
    while layer.durable_offset < offset and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    assert layer.durable_offset == offset
    assert layer.statistics().syncs >= 1


def test_never_does_not_sync_until_close(open_layer: OpenLayer, data_dir: str) -> None:
    layer = open_layer(fsync_policy="never")
    recover_all(layer)
    offset = layer.append(TX_RECORD_KIND, "x")
    layer.wait_durable(offset)
    assert layer.statistics().syncs == 0
    layer.close()
    assert [record.body for record in recover_all(open_layer())] == ["x"]


@pytest.mark.parametrize("sync_method", ["fsync", "fdatasync"])
def test_failed_fsync_fails_the_layer_for_good(
    open_layer: OpenLayer, monkeypatch: pytest.MonkeyPatch, sync_method: str
) -> None:
    layer = open_layer(fsync_policy="always", sync_method=sync_method)
    recover_all(layer)
    layer.wait_durable(layer.append(TX_RECORD_KIND, "synced"))
    calls = []

    def failing_sync(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, sync_method, failing_sync)
    offset = layer.append(TX_RECORD_KIND, "lost")
    with pytest.raises(DurabilityError, match="refuses further writes"):
        layer.wait_durable(offset)
    monkeypatch.undo()  # the disk "recovers": the layer must still refuse
    with pytest.raises(DurabilityError):
        layer.append(TX_RECORD_KIND, "after")
    with pytest.raises(DurabilityError):
        layer.wait_durable(offset)
    assert len(calls) == 1  # never retried
    assert layer.statistics().failed
    layer.close()  # releases the lock without syncing again


def test_fsync_failure_in_the_periodic_thread_fails_appends(
    open_layer: OpenLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer: PersistenceLayer = open_layer(fsync_policy="periodic", fsync_interval_ms=1)
    recover_all(layer)
    monkeypatch.setattr(os, "fdatasync", _raise_eio)
    layer.append(TX_RECORD_KIND, "x")
    deadline = time.monotonic() + 10
    while not layer.statistics().failed and time.monotonic() < deadline:
        threading.Event().wait(0.002)
    with pytest.raises(DurabilityError):
        layer.append(TX_RECORD_KIND, "y")


def _raise_eio(fd: int) -> None:
    raise OSError(errno.EIO, "Input/output error")


def test_waiting_for_an_offset_not_yet_appended_is_a_bug(open_layer: OpenLayer) -> None:
    layer = open_layer(fsync_policy="always")
    recover_all(layer)
    layer.append(TX_RECORD_KIND, "x")
    with pytest.raises(InternalError, match="not yet appended"):
        layer.wait_durable(5)


@pytest.mark.parametrize("sync_fails", [False, True], ids=["synced", "failed"])
def test_every_caller_parked_behind_a_sync_is_woken(
    open_layer: OpenLayer, monkeypatch: pytest.MonkeyPatch, sync_fails: bool
) -> None:
    """Callers covered by one sync are woken one by one, each waking the next
    (``SyncCoordinator._wake_next``): all of them return (or, after a failed sync,
    raise), the last as surely as the first."""
    layer = open_layer(fsync_policy="always")
    recover_all(layer)
    coordinator = layer._sync
    parked = 12
    outcomes: list[str] = []
    outcome_lock = threading.Lock()
    syncs_before = layer.statistics().syncs

    def wait(offset: int) -> None:
        try:
            layer.wait_durable(offset)
            result = "durable" if layer.durable_offset >= offset else "early"
        except DurabilityError:
            result = "failed"
        with outcome_lock:
            outcomes.append(result)

    with coordinator.exclusive():  # holds the token: every waiter below parks
        offsets = [layer.append(TX_RECORD_KIND, n) for n in range(parked)]
        threads = [threading.Thread(target=wait, args=(offset,)) for offset in offsets]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(coordinator._waiters) < parked and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(coordinator._waiters) == parked
        if sync_fails:

            def failing_sync(fd: int) -> None:
                raise OSError(errno.EIO, "Input/output error")

            monkeypatch.setattr(os, coordinator.sync_method, failing_sync)
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(outcomes) == ["failed" if sync_fails else "durable"] * parked
    assert not coordinator._relay
    monkeypatch.undo()
    if not sync_fails:
        assert layer.statistics().syncs == syncs_before + 1  # the first waiter led one sync for all
