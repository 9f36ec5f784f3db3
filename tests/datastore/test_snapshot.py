"""Copy-on-write snapshots: a view taken with ``Datastore.snapshot`` never changes.

Each test takes a view, writes to the live table in every way a transaction can (insert,
batch insert, delete, replace, rollback, clear), and checks that the view still holds
exactly the rows and index entries it had, while the live table's invariants hold. A
seeded random run covers sequences of writes with views taken between them.
"""

import random

from cosmictron.datastore import (
    ColumnSchema,
    Datastore,
    IndexSchema,
    ModuleSchema,
    TableSchema,
    Transaction,
)
from cosmictron.datastore import types as t

PERSON = TableSchema(
    name="person",
    columns=(
        ColumnSchema("id", t.I64),
        ColumnSchema("email", t.STR),
        ColumnSchema("city", t.STR),
    ),
    primary_key=("id",),
    indexes=(
        IndexSchema("email", ("email",), "hash", unique=True),
        IndexSchema("city", ("city",), "btree"),
    ),
)
OTHER = TableSchema(name="other", columns=(ColumnSchema("n", t.I64),), primary_key=("n",))


def make_store() -> Datastore:
    store = Datastore(ModuleSchema(tables=(PERSON, OTHER), reducers=()))
    tx = Transaction()
    for i in range(20):
        tx.insert(store.tables["person"], (i, f"{i}@x", ["Oslo", "Rome", "Lima"][i % 3]))
    return store


def image(store: Datastore, name: str) -> tuple[object, ...]:
    """Everything a reader can see of a table: rows, index lookups, orders and ranges."""
    table = store.tables[name]
    city = table.index_named("city")
    email = table.index_named("email")
    assert city is not None and email is not None
    return (
        dict(table.rows),
        {c: sorted(city.row_keys(c)) for c in ("Oslo", "Rome", "Lima", "Kyiv")},
        {e: sorted(email.row_keys(e)) for e in [f"{i}@x" for i in range(30)]},
        list(city.ordered_keys()),
        list(table.ordered_primary().range_row_keys(3, 12)),
    )


def test_a_view_keeps_its_rows_and_indexes_through_every_kind_of_write():
    store = make_store()
    person = store.tables["person"]
    person.index_named("city").ordered_keys()  # built before: the copy must copy it
    view = store.snapshot(["person"])
    before = image(view, "person")
    tx = Transaction()
    tx.insert(person, (100, "100@x", "Oslo"))
    tx.insert_batch(person, [(101, "101@x", "Kyiv"), (102, "102@x", "Rome")])
    tx.delete(person, 0)
    tx.delete(person, 3)  # Oslo: a non-unique key whose set the view shares
    tx.replace(person, 1, (1, "new@x", "Lima"))
    assert image(view, "person") == before
    second = store.snapshot(["person"])
    second_image = image(second, "person")
    tx.rollback()
    assert image(view, "person") == before
    assert image(second, "person") == second_image
    assert image(store, "person") == before  # the rollback restored the live table
    person.check_invariants()
    person.clear()
    assert image(view, "person") == before
    person.check_invariants()


def test_a_view_holds_only_the_tables_named_and_costs_the_others_nothing():
    store = make_store()
    view = store.snapshot(["person", "no_such_table"])
    assert set(view.tables) == {"person"}
    other = store.tables["other"]
    rows_before = other.rows
    Transaction().insert(other, (1,))
    assert other.rows is rows_before  # never shared, so never copied
    person = store.tables["person"]
    rows_before = person.rows
    Transaction().insert(person, (500, "500@x", "Oslo"))
    assert person.rows is not rows_before  # shared: copied on the first write
    assert view.tables["person"].rows is rows_before
    copied = person.rows
    Transaction().insert(person, (501, "501@x", "Oslo"))
    assert person.rows is copied  # copied once per view, not per write


def test_random_writes_between_views_never_change_a_view():
    rng = random.Random(20261206)
    store = make_store()
    person = store.tables["person"]
    views = []
    for step in range(400):
        if step % 25 == 0:
            view = store.snapshot(["person"])
            views.append((view, image(view, "person")))
        tx = Transaction()
        key = rng.randrange(60)
        city = rng.choice(["Oslo", "Rome", "Lima", "Kyiv"])
        if key in person.rows:
            if rng.random() < 0.5:
                tx.delete(person, key)
            else:
                tx.replace(person, key, (key, f"{key}@x", city))
        else:
            tx.insert(person, (key, f"{key}@x", city))
        if rng.random() < 0.2:
            tx.rollback()
        if rng.random() < 0.1:
            person.index_named("city").ordered_keys()
    person.check_invariants()
    for view, seen in views:
        assert image(view, "person") == seen
