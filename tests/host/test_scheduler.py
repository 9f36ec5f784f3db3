"""Scheduled reducers, driven by a ``ManualClock``: nothing here sleeps.

Each test opens a database on a manual clock, inserts schedule rows through reducers,
moves the clock and waits until the scheduler is idle (``wait_scheduler_idle``), then
counts the runs, which the scheduled reducer records in a ``run`` table with its
``ctx.timestamp``. Restarts reopen the same directory with the same clock; the crash
test kills a child process (``schedule_crash_writer.py``) with SIGKILL right after a run
committed. The rules under test are in docs/guide/scheduling-and-procedures.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cosmictron import Database, DurabilityConfig, PersistenceConfig, PersistenceLayer, SchemaError
from cosmictron.host.scheduler import SCHEDULE_FAILED
from cosmictron.testing import ManualClock
from tests.conftest import FAST

SECOND_US = 1_000_000

MODULE = """
@table(scheduled="tick")
class TickSchedule:
    id: int = field(primary_key=True, auto_inc=True)
    scheduled_at: ScheduleAt = field(default=ScheduleAt.interval(10))
    label: str = ""

@table(public=True)
class Run:
    n: int = field(primary_key=True, auto_inc=True)
    schedule_id: int = 0
    at_us: int = 0
    label: str = ""

@table
class Switch:
    id: int = field(primary_key=True)
    fail: bool = False

@reducer
def tick(ctx: ReducerContext, row: TickSchedule) -> None:
    switch = ctx.db.switch.id.find(0)
    if switch is not None and switch.fail:
        raise RuntimeError("tick was told to fail")
    ctx.db.run.insert(Run(schedule_id=row.id, at_us=ctx.timestamp.micros_since_epoch,
                          label=row.label + VERSION))

@reducer
def every(ctx: ReducerContext, seconds: float, label: str = "") -> int:
    return ctx.db.tick_schedule.insert(
        TickSchedule(scheduled_at=ScheduleAt.interval(seconds), label=label)).id

@reducer
def once_at(ctx: ReducerContext, at_us: int, label: str = "") -> int:
    return ctx.db.tick_schedule.insert(
        TickSchedule(scheduled_at=ScheduleAt.at(Timestamp(at_us)), label=label)).id

@reducer
def cancel(ctx: ReducerContext, schedule_id: int) -> bool:
    return ctx.db.tick_schedule.id.delete(schedule_id)

@reducer
def set_failing(ctx: ReducerContext, fail: bool) -> None:
    ctx.db.switch.id.delete(0)
    ctx.db.switch.insert(Switch(id=0, fail=fail))
"""

V1 = 'VERSION = ""\n' + MODULE
V2 = 'VERSION = "+v2"\n' + MODULE


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def scheduled(open_db: Callable[..., Database], clock: ManualClock) -> Callable[..., Database]:
    def make(source: str | None = V1, **options: Any) -> Database:
        return open_db(source, clock=clock, **options)

    return make


def runs(db: Database) -> list[tuple[int, int, str]]:
    """(schedule id, timestamp relative to the clock's start in s, label), in run order."""
    start = ManualClock().now_us()
    return [
        (r.schedule_id, (r.at_us - start) / SECOND_US, r.label)
        for r in sorted(db.rows("run"), key=lambda r: r.n)
    ]


def step(db: Database, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    assert db.wait_scheduler_idle(10), "the scheduler did not settle"


def records(path: Path) -> list[Any]:
    """Every transaction record of a closed database, in order."""
    layer = PersistenceLayer(PersistenceConfig(data_dir=str(path)), FAST)
    try:
        return list(layer.recover().records)
    finally:
        layer.close()


def test_an_interval_runs_once_per_interval_at_its_due_times(scheduled, clock):
    db = scheduled()
    schedule_id = db.call("every", 10.0)
    step(db, clock, 9.999)
    assert runs(db) == []  # the first run is one interval after the insert
    for _ in range(3):
        step(db, clock, 0.001)
        step(db, clock, 9.999)
    assert runs(db) == [(schedule_id, 10.0, ""), (schedule_id, 20.0, ""), (schedule_id, 30.0, "")]


def test_runs_missed_by_a_late_scheduler_are_coalesced_into_one(scheduled, clock):
    db = scheduled()
    db.call("every", 10.0)
    step(db, clock, 35)  # due at 10, 20 and 30: one run, at 35
    step(db, clock, 4.9)
    assert [r[1] for r in runs(db)] == [35.0]
    step(db, clock, 0.1)  # the grid is kept: next at 40
    assert [r[1] for r in runs(db)] == [35.0, 40.0]


def test_two_schedules_run_in_due_order(scheduled, clock):
    db = scheduled()
    slow = db.call("every", 3.0, "slow")  # due at 3, 6
    clock.advance(0.5)  # (two inserts at one clock time would be 1 µs apart)
    fast = db.call("every", 2.0, "fast")  # due at 2.5, 4.5
    step(db, clock, 2)
    step(db, clock, 0.5)
    step(db, clock, 1.5)
    assert [(r[0], r[1]) for r in runs(db)] == [(fast, 2.5), (slow, 3.0), (fast, 4.5)]


def test_a_one_shot_runs_once_and_its_row_goes_in_the_same_transaction(scheduled, clock, tmp_path):
    db = scheduled()
    schedule_id = db.call("once_at", clock.now_us() + 5 * SECOND_US, "once")
    step(db, clock, 5)
    step(db, clock, 100)
    assert runs(db) == [(schedule_id, 5.0, "once")]
    assert db.rows("tick_schedule") == []
    db.close()
    run_record = [r for r in records(tmp_path / "data") if r.body[3] == "tick"]
    assert len(run_record) == 1
    changed = {
        name: (len(inserts), len(deletes)) for name, inserts, deletes in run_record[0].body[5]
    }
    assert changed == {"run": (1, 0), "tick_schedule": (0, 1)}


def test_a_one_shot_in_the_past_runs_at_once(scheduled, clock):
    db = scheduled()
    db.call("once_at", clock.now_us() - 60 * SECOND_US)
    assert db.wait_scheduler_idle(10)
    assert [round(r[1], 3) for r in runs(db)] == [0.0]  # 1 µs after the insert


def test_deleting_the_row_cancels_the_schedule(scheduled, clock):
    db = scheduled()
    repeating = db.call("every", 10.0)
    once = db.call("once_at", clock.now_us() + 15 * SECOND_US)
    step(db, clock, 10)
    assert db.call("cancel", repeating) and db.call("cancel", once)
    step(db, clock, 100)
    assert [r[1] for r in runs(db)] == [10.0]


def test_a_failing_run_is_logged_and_the_interval_goes_on(scheduled, clock, tmp_path):
    db = scheduled()
    db.call("every", 10.0)
    db.call("set_failing", True)
    step(db, clock, 10)
    assert runs(db) == []
    errors = [line for line in db.logs(level="ERROR") if line.get("reducer") == "tick"]
    assert errors and "tick was told to fail" in errors[-1]["message"]
    db.call("set_failing", False)
    step(db, clock, 10)
    assert [r[1] for r in runs(db)] == [20.0]
    db.close()
    failed = [r.body for r in records(tmp_path / "data") if r.body[3] == SCHEDULE_FAILED]
    assert len(failed) == 1 and failed[0][4][:2] == ["tick_schedule", "tick"]


def test_a_failing_one_shot_is_removed(scheduled, clock):
    db = scheduled()
    db.call("set_failing", True)
    db.call("once_at", clock.now_us() + SECOND_US)
    step(db, clock, 1)
    assert db.rows("tick_schedule") == [] and runs(db) == []


def test_a_restart_neither_repeats_nor_loses_a_run(scheduled, clock, tmp_path):
    db = scheduled()
    db.call("every", 10.0)
    step(db, clock, 10)
    step(db, clock, 10)
    db.close()
    db = scheduled(None)  # same clock time: both runs are in the log, nothing is due
    assert db.wait_scheduler_idle(10)
    assert [r[1] for r in runs(db)] == [10.0, 20.0]
    db.close()
    clock.advance(35)  # down from 20 to 55: due at 30, 40 and 50 -> one run at startup
    db = scheduled(None)
    assert db.wait_scheduler_idle(10)
    assert [r[1] for r in runs(db)] == [10.0, 20.0, 55.0]
    step(db, clock, 5)
    assert [r[1] for r in runs(db)] == [10.0, 20.0, 55.0, 60.0]


def test_a_one_shot_due_while_down_runs_once_at_startup(scheduled, clock):
    db = scheduled()
    db.call("once_at", clock.now_us() + 5 * SECOND_US)
    db.close()
    clock.advance(60)
    db = scheduled(None)
    assert db.wait_scheduler_idle(10)
    db.close()
    db = scheduled(None)
    assert db.wait_scheduler_idle(10)
    assert [r[1] for r in runs(db)] == [60.0]


def test_schedules_survive_a_snapshot(scheduled, clock):
    db = scheduled()
    db.call("every", 10.0)
    step(db, clock, 10)
    db.snapshot()
    db.close()
    db = scheduled(None)
    step(db, clock, 5)
    step(db, clock, 5)
    assert [r[1] for r in runs(db)] == [10.0, 20.0]


def test_a_hot_swap_keeps_schedules_without_repeats_or_losses(scheduled, clock, write_module):
    db = scheduled()
    db.call("every", 10.0, "a")
    step(db, clock, 10)
    step(db, clock, 5)
    db.update_module(write_module(V2))
    step(db, clock, 5)
    step(db, clock, 10)
    expected = [(10.0, "a"), (20.0, "a+v2"), (30.0, "a+v2")]
    assert [(r[1], r[2]) for r in runs(db)] == expected
    db.close()
    db = scheduled(None)  # replay crosses the module record: same book, nothing due
    step(db, clock, 0)
    assert [(r[1], r[2]) for r in runs(db)] == expected


def test_a_scheduled_reducer_must_take_the_row(write_module):
    from cosmictron.module import load_module

    source = MODULE.replace("row: TickSchedule", "row: int")
    with pytest.raises(SchemaError, match="must take \\(ctx, row\\)"):
        load_module(write_module('VERSION = ""\n' + source))


def test_a_sigkill_right_after_a_run_does_not_repeat_it(tmp_path, write_module):
    """The child runs one interval, prints, and waits to be killed; the run is logged."""
    data = tmp_path / "data"
    module = write_module(V1)
    writer = Path(__file__).with_name("schedule_crash_writer.py")
    child = subprocess.Popen(
        [sys.executable, str(writer), str(data), str(module)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ran 1"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()
    # The child's clock stood at start + 10 s when it was killed; reopen at that time.
    clock = ManualClock()
    clock.advance(10)
    durability = DurabilityConfig.from_profile("production")
    with Database.open(data, clock=clock, durability=durability) as db:
        assert db.wait_scheduler_idle(10)
        assert [r[1] for r in runs(db)] == [10.0]
        step(db, clock, 10)
        assert [r[1] for r in runs(db)] == [10.0, 20.0]
