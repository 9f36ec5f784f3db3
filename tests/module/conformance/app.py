"""The conformance module in Python; guest/rust/examples/conformance is its Rust twin.

Both declare the same tables, types and reducers in the same order and must behave the
same: tests/module/conformance/test_conformance.py runs one scenario against each and
compares schemas, results, logs and subscription updates. Change one, change the other.
"""

import dataclasses
import enum
import logging
from typing import Optional

import cosmictron
from cosmictron import (
    Identity,
    ReducerContext,
    ScheduleAt,
    TimeDuration,
    Timestamp,
    Vector,
    client_connected,
    client_disconnected,
    f32,
    field,
    i16,
    i128,
    init,
    reducer,
    table,
    u8,
    u32,
    u64,
    u128,
)

log = logging.getLogger(__name__)


class ReducerError(Exception):
    """What the reducers raise; the Rust twin's errors have this kind by default."""


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


@cosmictron.type
class Point:
    x: int
    y: int


@table(name="sample", public=True)
class Sample:
    id: int = field(primary_key=True, auto_inc=True)
    name: str = field(unique=True)
    small: u8 = 0
    level: i16 = field(index="btree", default=0)
    qty: u32 = field(index="hash", default=0)
    big: i128 = 0
    huge: u128 = 0
    ratio: f32 = 0.0
    score: float = 0.0
    flag: bool = False
    data: bytes = b""
    who: Identity = field(default=Identity(bytes(32)))
    at: Timestamp = field(default=Timestamp(0))
    span: TimeDuration = field(default=TimeDuration(0))
    note: Optional[str] = None  # noqa: UP045 (the column-type docs spell it so)
    tags: list[int] = field(default=())
    color: Color = Color.RED
    point: Point = field(default=Point(0, 0))
    embedding: Vector[3] = field(default=(0.0, 0.0, 0.0))


@table(name="account", public=True)
class Account:
    name: str = field(primary_key=True)
    balance: int = 0


@table(name="audit_event", public=True, event=True)
class AuditEvent:
    id: int = field(primary_key=True, auto_inc=True)
    message: str = ""


@table(name="tick", scheduled="on_tick")
class Tick:
    id: int = field(primary_key=True, auto_inc=True)
    scheduled_at: ScheduleAt = field(default=ScheduleAt.interval(1))
    label: str = ""


@reducer
def store(
    ctx: ReducerContext,
    name: str,
    small: u8,
    level: i16,
    qty: u32,
    big: i128,
    huge: u128,
    ratio: f32,
    score: float,
    flag: bool,
    data: bytes,
    who: Identity,
    at: Timestamp,
    span: TimeDuration,
    note: Optional[str],  # noqa: UP045
    tags: list[int],
    color: Color,
    point: Point,
    embedding: Vector[3],
) -> int:
    row = Sample.insert(
        Sample(
            name=name,
            small=small,
            level=level,
            qty=qty,
            big=big,
            huge=huge,
            ratio=ratio,
            score=score,
            flag=flag,
            data=data,
            who=who,
            at=at,
            span=span,
            note=note,
            tags=tags,
            color=color,
            point=point,
            embedding=embedding,
        )
    )
    log.info("stored %s as %d", name, row.id)
    return row.id


@reducer
def rename(ctx: ReducerContext, old: str, new: str) -> bool:
    row = ctx.db.sample.name.find(old)
    if row is None:
        return False
    ctx.db.sample.id.update(dataclasses.replace(row, name=new))
    return True


@reducer
def remove(ctx: ReducerContext, name: str) -> bool:
    return ctx.db.sample.name.delete(name)


@reducer
def levels(ctx: ReducerContext, low: i16, high: i16) -> list[str]:
    rows = ctx.db.sample.level.filter(start=low, stop=high, inclusive=True)
    return [row.name for row in rows]


@reducer
def count_of(ctx: ReducerContext, qty: u32) -> int:
    return len(ctx.db.sample.qty.filter(qty))


@reducer
def total(ctx: ReducerContext) -> int:
    return ctx.db.sample.count() + len(list(ctx.db.account.iter()))


@reducer
def transfer(ctx: ReducerContext, source: str, target: str, amount: int) -> int:
    src = ctx.db.account.name.find(source)
    dst = ctx.db.account.name.find(target)
    if src is None or dst is None:
        raise ReducerError(f"no such account: {source if src is None else target}")
    ctx.db.account.name.update(Account(name=source, balance=src.balance - amount))
    ctx.db.account.name.update(Account(name=target, balance=dst.balance + amount))
    after = ctx.db.account.name.find(source)
    assert after is not None
    if after.balance < 0:
        log.warning("refused: %s would owe %d", source, -after.balance)
        raise ReducerError(f"insufficient funds: {source} has {src.balance}")
    AuditEvent.insert(AuditEvent(message=f"moved {amount} from {source} to {target}"))
    return after.balance


@reducer
def duplicate(ctx: ReducerContext, name: str) -> None:
    ctx.db.account.insert(Account(name=name, balance=1))


@reducer
def schedule(ctx: ReducerContext, label: str) -> None:
    Tick.insert(Tick(scheduled_at=ScheduleAt.at(ctx.timestamp), label=label))


@reducer
def on_tick(ctx: ReducerContext, row: Tick) -> None:
    AuditEvent.insert(AuditEvent(message=f"tick {row.label}"))


@reducer
def roll(ctx: ReducerContext) -> u64:
    return ctx.rng.getrandbits(64)


@reducer
def whoami(ctx: ReducerContext) -> Identity:
    return ctx.sender


@reducer
def now(ctx: ReducerContext) -> Timestamp:
    return ctx.timestamp


@init
def on_init(ctx: ReducerContext) -> None:
    ctx.db.account.insert(Account(name="alice", balance=100))
    ctx.db.account.insert(Account(name="bob", balance=0))
    log.info("initialised")


@client_connected
def on_connect(ctx: ReducerContext) -> None:
    AuditEvent.insert(AuditEvent(message="connected"))


@client_disconnected
def on_disconnect(ctx: ReducerContext) -> None:
    AuditEvent.insert(AuditEvent(message="disconnected"))
