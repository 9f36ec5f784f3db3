"""The embedded Database: open, reopen, module storage, limits, bulk loads, logs.

Real modules, real data directories; reopening replays the real commit log.
"""

import multiprocessing

import pytest

from cosmictron import (
    Conflict,
    ConnectionId,
    Database,
    DatabaseInUse,
    DurabilityConfig,
    Identity,
    InvalidRequest,
    NotFound,
    ReducerFailed,
    ResourceExhausted,
    ScheduleAt,
    SchemaError,
    TimeDuration,
    Timestamp,
)

from ..conftest import FAST

MODULE = """
class Mood(enum.Enum):
    CALM = 1
    LOUD = 2

@type
class Place:
    name: str
    coords: list[float]

@table(name="thing", public=True)
class Thing:
    id: int = field(primary_key=True, auto_inc=True)
    owner: Identity = field(default=Identity.zero())
    conn: Optional[ConnectionId] = None
    at: Timestamp = field(default=Timestamp(0))
    span: TimeDuration = field(default=TimeDuration(0))
    when: ScheduleAt = field(default=ScheduleAt.interval(1))
    mood: Mood = Mood.CALM
    place: Optional[Place] = None
    big: u128 = 0
    small: i8 = 0
    ratio: f32 = 0.0
    blob: bytes = b""
    vec: Vector[3] = field(default=[0.0, 0.0, 0.0])
    tags: list[str] = field(default=[])
    note: str = field(index="btree", default="")

@table(name="counter")
class Counter:
    name: str = field(primary_key=True)
    value: int = 0

@init
def setup(ctx: ReducerContext) -> None:
    ctx.db.counter.insert(Counter(name="inits", value=1))

@reducer
def add(ctx: ReducerContext, thing: Thing) -> Thing:
    return ctx.db.thing.insert(thing)

@reducer
def remove(ctx: ReducerContext, id: int) -> bool:
    return ctx.db.thing.id.delete(id)

@reducer
def note(ctx: ReducerContext, text: str) -> int:
    return ctx.db.thing.insert(Thing(note=text)).id
"""


def rich_thing(module_thing, mood, place):
    return module_thing(
        owner=Identity.random(),
        conn=ConnectionId(2**100 + 7),
        at=Timestamp.parse("2026-11-26T10:00:00Z"),
        span=TimeDuration.from_seconds(1.5),
        when=ScheduleAt.at(Timestamp(123)),
        mood=mood,
        place=place,
        big=2**127 + 1,
        small=-128,
        ratio=0.1,
        blob=b"\x00\xff",
        vec=[0.5, -1.0, 2.0],
        tags=["x", "y"],
        note="rich",
    )


def snapshot_of(db):
    return sorted(repr(row) for row in db.rows("thing"))


def test_every_column_type_survives_replay_and_snapshots(open_db, tmp_path):
    db = open_db(MODULE, durability=DurabilityConfig(fsync_policy="never", snapshot_interval_tx=3))
    namespace = db.module.namespace
    thing = rich_thing(namespace.Thing, namespace.Mood.LOUD, namespace.Place("home", [1.0, 2.0]))
    stored = db.call("add", thing)
    assert stored.id == 1 and stored.mood is namespace.Mood.LOUD and stored.big == 2**127 + 1
    for number in range(5):
        db.call("note", f"n{number}")
    db.call("remove", 3)
    before = snapshot_of(db)
    db.close()
    assert list((tmp_path / "data" / "snapshots").glob("*.snap")), "a snapshot was written"
    reopened = open_db(durability=FAST)
    assert snapshot_of(reopened) == before
    assert reopened.call("note", "after") == 7, "auto_inc continues after replay"
    reopened.check_invariants()


def test_reopen_uses_the_stored_module_and_init_runs_once(open_db, tmp_path):
    db = open_db(MODULE)
    assert [c.value for c in db.rows("counter")] == [1]
    db.call("note", "hello")
    db.close()
    again = open_db()
    assert [c.value for c in again.rows("counter")] == [1]
    assert [t.note for t in again.rows("thing")] == ["hello"]
    assert again.identity == db.identity and again.owner == db.owner


def test_ids_are_not_reused_after_delete_and_restart(open_db):
    db = open_db(MODULE)
    ids = [db.call("note", str(n)) for n in range(3)]
    db.call("remove", ids[-1])
    db.close()
    assert open_db().call("note", "new") == ids[-1] + 1


def test_opening_an_empty_directory_without_a_module(open_db, tmp_path):
    with pytest.raises(NotFound, match="holds no database yet; give a module to create one"):
        open_db()
    assert not (tmp_path / "data").exists(), "a refused open leaves nothing behind"


def test_an_incompatible_module_is_refused(open_db):
    open_db(MODULE).close()
    changed = MODULE.replace("value: int = 0", "value: str = ''")
    with pytest.raises(SchemaError, match="table 'counter' changed its columns"):
        open_db(changed)
    db = open_db(MODULE + "\n@reducer\ndef extra(ctx: ReducerContext) -> int:\n    return 7\n")
    assert db.call("extra") == 7


def _try_open(path, queue):
    try:
        Database.open(path, durability=FAST)
        queue.put("opened")
    except DatabaseInUse as error:
        queue.put(str(error))


def test_a_second_process_gets_a_clear_in_use_error(open_db, tmp_path):
    open_db(MODULE)
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(
        target=_try_open, args=(str(tmp_path / "data"), queue)
    )
    process.start()
    process.join(60)
    message = queue.get(timeout=5)
    assert "is in use by process" in message
    with pytest.raises(DatabaseInUse):
        Database.open(tmp_path / "data", durability=FAST)


def test_memory_limit_refuses_growth_and_changes_nothing(open_db):
    db = open_db(
        MODULE, durability=DurabilityConfig(fsync_policy="never", memory_limit_bytes=20_000)
    )
    added = 0
    with pytest.raises(ResourceExhausted, match="over its memory limit of 20000 bytes"):
        for number in range(10_000):
            db.call("note", "x" * 100 + str(number))
            added += 1
    assert db.table("thing").count() == added
    offset = db.tx_offset
    with pytest.raises(ResourceExhausted):
        db.call("note", "more")
    assert db.tx_offset == offset
    assert db.call("remove", 1) is True, "shrinking transactions still commit"
    assert db.statistics().estimated_bytes <= 20_000 + 1000


def test_bulk_insert_is_all_or_nothing(open_db):
    db = open_db(MODULE)
    offset = db.bulk_insert("thing", [{"note": f"r{n}"} for n in range(1000)])
    assert offset == db.tx_offset and db.table("thing").count() == 1000
    rows = [{"note": "ok"}, {"note": "ok2"}, {"note": 5}]
    with pytest.raises(InvalidRequest, match=r"row 2: table 'thing' column 'note': expected str"):
        db.bulk_insert("thing", rows)
    with pytest.raises(Conflict, match="row 1: .*primary key id=1"):
        db.bulk_insert("thing", [{"id": 5000}, {"id": 1}])
    with pytest.raises(InvalidRequest, match="has no column 'nope'"):
        db.bulk_insert("thing", [{"nope": 1}])
    with pytest.raises(NotFound, match="no table named 'nope'"):
        db.bulk_insert("nope", [])
    assert db.table("thing").count() == 1000 and db.tx_offset == offset
    db.check_invariants()


def test_logs_are_kept_per_database(open_db, tmp_path, write_module):
    source = MODULE + (
        "\nlog = logging.getLogger(__name__)\n"
        "@reducer\ndef shout(ctx: ReducerContext, text: str) -> None:\n"
        "    log.info('said %s', text)\n"
    )
    first = open_db(source)
    second = open_db(source, path=tmp_path / "other")
    first.call("shout", "one")
    second.call("shout", "two")
    assert [line["message"] for line in first.logs()] == ["said one"]
    assert [(line["message"], line["reducer"]) for line in second.logs()] == [("said two", "shout")]
    with pytest.raises(InvalidRequest):
        first.call("remove", "not an id")  # refused before running: nothing to log
    assert len(first.logs()) == 1
    first.bulk_insert("thing", [{"id": 99}])
    with pytest.raises(ReducerFailed, match="primary key id=99"):
        first.call("add", first.module.namespace.Thing(id=99))
    assert first.logs()[-1]["level"] == "ERROR" and "id=99" in first.logs()[-1]["message"]
    assert len(second.logs()) == 1


def test_closed_database_refuses_calls(open_db):
    db = open_db(MODULE)
    db.close()
    db.close()
    with pytest.raises(InvalidRequest, match="is closed"):
        db.call("note", "x")


def test_context_manager_closes(tmp_path, write_module):
    path = write_module(MODULE)
    with Database.open(tmp_path / "db", path, durability=FAST) as db:
        db.call("note", "x")
    with Database.open(tmp_path / "db", durability=FAST) as db:
        assert db.table("thing").count() == 1


def test_commit_listeners_see_each_commit_in_order_and_cannot_fail_a_call(open_db, caplog):
    db = open_db(MODULE)
    seen = []

    def record(offset, timestamp, changes):
        seen.append((offset, [(c.table.name, len(c.inserts), len(c.deletes)) for c in changes]))

    def broken(offset, timestamp, changes):
        raise RuntimeError("listener bug")

    db.add_commit_listener(record)
    db.add_commit_listener(broken)
    first = db.call("note", "a")
    db.call("remove", first)
    assert seen == [(db.tx_offset - 1, [("thing", 1, 0)]), (db.tx_offset, [("thing", 0, 1)])]
    assert "commit listener" in caplog.text and "listener bug" in caplog.text


def test_live_queries_hear_a_commit_before_the_other_listeners_and_only_while_live(open_db):
    # The commit path skips the subscription manager while no query is live
    # (docs/design/hot-path.md, "Third round"); the order stays: live queries first.
    db = open_db(MODULE)
    events: list[tuple[str, int]] = []
    db.add_commit_listener(lambda offset, timestamp, changes: events.append(("listener", offset)))
    subscription = db.subscribe(
        ["SELECT * FROM thing"], lambda update: events.append(("update", update["tx_offset"]))
    )
    first = db.call("note", "a")
    assert events == [("update", db.tx_offset), ("listener", db.tx_offset)]
    subscription.unsubscribe()
    assert not db.core.subscriptions.live
    events.clear()
    db.call("remove", first)
    assert events == [("listener", db.tx_offset)]
