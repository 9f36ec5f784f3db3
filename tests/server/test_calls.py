"""A database's call thread (``server/calls.py``) when batches queue behind a sync.

With more calls in flight than one batch takes and a slow disk, the call thread hands a
batch's sync to its second thread and runs the next batch meanwhile. Every call must
still be answered only once its transaction is durable, in the order the calls were
submitted, and a failed sync must fail every call it did not cover. Real database, real
disk; the disk is made slow (a sleep after the real ``fdatasync``) or failing (``EIO``)
by patching ``os.fdatasync`` in the test.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cosmictron
from cosmictron import DurabilityConfig
from cosmictron.errors import DurabilityError
from cosmictron.server.calls import BATCH_CALLS_MAX, CallWorker
from cosmictron.values import Identity

MODULE = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="entry")
class Entry:
    n: int = field(primary_key=True)

@reducer
def put(ctx: ReducerContext, n: int) -> int:
    ctx.db.entry.insert(Entry(n=n))
    return n
"""

CALLS = 3 * BATCH_CALLS_MAX + 50


def open_db(tmp_path: Path) -> cosmictron.Database:
    module = tmp_path / "module.py"
    module.write_text(MODULE)
    return cosmictron.Database.open(
        tmp_path / "db", module=str(module), durability=DurabilityConfig.from_profile("production")
    )


async def submit_all(worker: CallWorker, db: cosmictron.Database, first: int = 0) -> list[Any]:
    """Submit ``CALLS`` calls at once (keys ``first`` on); return, in the order answered,
    (n, offset or error, the durable offset when answered)."""
    answered: list[Any] = []
    done = asyncio.get_running_loop().create_future()
    caller = Identity.random()

    def then(n: int, outcome: Any, error: BaseException | None) -> None:
        answered.append((n, error if error is not None else outcome.tx_offset, db.durable_offset))
        if len(answered) == CALLS and not done.done():
            done.set_result(None)

    for n in range(first, first + CALLS):
        worker.submit_then("put", [n], {}, caller, None, lambda o, e, n=n: then(n, o, e))
    await asyncio.wait_for(done, 120)
    return answered


def run_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *syncs: Callable[[int], None]
) -> tuple[list[list[Any]], int, int]:
    """Submit ``CALLS`` calls once per sync in ``syncs``, each wave with that sync as the
    disk's ``fdatasync`` (after the open) and only once the wave before is answered;
    return what ``submit_all`` gives for each wave, the batches the second thread waited
    for, and the durable offset at the end."""
    db = open_db(tmp_path)
    worker = CallWorker(db, "test")
    try:
        waves = []
        for wave, sync in enumerate(syncs):
            monkeypatch.setattr(os, "fdatasync", sync)
            waves.append(asyncio.run(submit_all(worker, db, wave * CALLS)))
        return waves, worker.overlapped_batches, db.durable_offset
    finally:
        worker.close()
        monkeypatch.undo()
        db.close()


def test_queued_batches_are_answered_in_order_and_only_once_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sync = os.fdatasync

    def slow_sync(fd: int) -> None:
        real_sync(fd)
        time.sleep(0.005)  # a slow disk: batches queue behind the sync

    (answered,), overlapped, _ = run_calls(tmp_path, monkeypatch, slow_sync)
    assert [n for n, _, _ in answered] == list(range(CALLS))  # the order submitted
    offsets = [offset for _, offset, _ in answered]
    assert all(isinstance(offset, int) for offset in offsets), offsets
    assert offsets == sorted(offsets) and len(set(offsets)) == CALLS
    assert all(offset <= durable for _, offset, durable in answered)  # never early
    assert overlapped >= 1  # the second thread waited for at least one batch's sync


def test_a_failed_sync_fails_every_call_it_did_not_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One wave of calls on a slow disk that works, then one on a disk that fails. (Within
    # one wave the call thread may write every batch before the first sync starts, and
    # that sync then covers them all: the second wave is what makes failures certain.)
    real_sync = os.fdatasync

    def slow_sync(fd: int) -> None:
        real_sync(fd)
        time.sleep(0.005)

    def failing_sync(fd: int) -> None:
        time.sleep(0.005)
        raise OSError(errno.EIO, "Input/output error")

    (first, second), overlapped, durable = run_calls(tmp_path, monkeypatch, slow_sync, failing_sync)
    succeeded = [offset for _, offset, _ in first]
    assert all(isinstance(offset, int) for offset in succeeded), succeeded
    assert durable == max(succeeded)  # no success the working disk did not cover
    failed = [error for _, error, _ in second]
    assert all(isinstance(error, DurabilityError) for error in failed), failed
    assert [n for n, _, _ in second] == list(range(CALLS, 2 * CALLS))  # once each, in order
    assert overlapped >= 1  # failures reached batches the second thread waited for too
