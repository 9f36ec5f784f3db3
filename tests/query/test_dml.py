"""INSERT, UPDATE and DELETE through ``db.sql``: each one transaction, logged and replayed.

Every test runs on a real database on disk; reopening it replays the commit log, so a
statement that was not logged as a transaction would vanish there.
"""

from __future__ import annotations

import pytest

from cosmictron import Identity, Timestamp
from cosmictron.errors import Conflict, InvalidRequest, PermissionDenied, SqlError
from tests.query.shop import SHOP


@pytest.fixture
def shop(open_db):
    return open_db(SHOP)


def test_insert_is_one_transaction_and_assigns_auto_inc(shop):
    before = shop.tx_offset
    result = shop.sql("INSERT INTO customer (name, age) VALUES ('ann', 30), ('bob', NULL)")
    assert result.rows_affected == 2
    assert result.tx_offset == before + 1 == shop.tx_offset
    assert result.columns == () and len(result) == 0
    rows = shop.sql("SELECT id, name, age, status FROM customer ORDER BY id").rows
    assert [row[:3] for row in rows] == [(1, "ann", 30), (2, "bob", None)]
    assert rows[0][3].name == "ACTIVE"  # the column default, as an enum member


def test_insert_without_a_column_list_and_explicit_zero_id(shop):
    shop.sql("INSERT INTO label VALUES (7, 'red')")
    shop.sql("INSERT INTO orders VALUES (0, 1, 2.5, 3, 'x')")
    assert shop.sql("SELECT * FROM label").rows == [(7, "red")]
    assert shop.sql("SELECT id, amount FROM orders").rows == [(1, 2.5)]


def test_statements_are_replayed_after_reopening(open_db, tmp_path, shop):
    shop.sql("INSERT INTO customer (name, age) VALUES ('ann', 30), ('bob', 40), ('cy', 50)")
    shop.sql("UPDATE customer SET age = age + 1 WHERE age >= 40")
    shop.sql("DELETE FROM customer WHERE name = 'ann'")
    shop.close()
    reopened = open_db(path=tmp_path / "data")
    rows = reopened.sql("SELECT name, age FROM customer ORDER BY name").rows
    assert rows == [("bob", 41), ("cy", 51)]
    reopened.sql("INSERT INTO customer (name) VALUES ('dee')")
    assert reopened.sql("SELECT id FROM customer WHERE name = 'dee'").rows == [(4,)]


def test_the_record_names_the_sql_pseudo_reducer(shop):
    seen = []
    shop.add_commit_listener(lambda offset, timestamp, changes: seen.append(changes))
    shop.sql("INSERT INTO label VALUES (:id, :name)", {"id": 1, "name": "x"})
    assert len(seen) == 1 and seen[0][0].inserts == [(1, "x")]


def test_a_conflict_changes_nothing(shop):
    shop.sql("INSERT INTO label VALUES (1, 'red')")
    offset = shop.tx_offset
    with pytest.raises(Conflict):
        shop.sql("INSERT INTO label VALUES (2, 'blue'), (3, 'red')")
    with pytest.raises(Conflict):
        shop.sql("INSERT INTO label VALUES (1, 'green')")
    shop.sql("INSERT INTO label VALUES (2, 'blue')")
    with pytest.raises(Conflict):
        shop.sql("UPDATE label SET name = 'red' WHERE id = 2")
    assert shop.tx_offset == offset + 1
    assert shop.sql("SELECT * FROM label ORDER BY id").rows == [(1, "red"), (2, "blue")]
    shop.check_invariants()


def test_update_of_the_primary_key_moves_rows(shop):
    shop.sql("INSERT INTO label VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    result = shop.sql("UPDATE label SET id = id + 1")
    assert result.rows_affected == 3
    assert shop.sql("SELECT * FROM label ORDER BY id").rows == [(2, "a"), (3, "b"), (4, "c")]
    shop.check_invariants()


def test_update_checks_types_and_names_the_column(shop):
    shop.sql("INSERT INTO orders (customer_id, qty) VALUES (1, 2)")
    with pytest.raises(InvalidRequest, match="qty"):
        shop.sql("UPDATE orders SET qty = qty * 1.5")
    with pytest.raises(SqlError, match="type mismatch"):
        shop.sql("UPDATE orders SET qty = 'many'")
    with pytest.raises(InvalidRequest, match="customer_id"):
        shop.sql("INSERT INTO orders (customer_id) VALUES (NULL)")
    assert shop.sql("SELECT qty FROM orders").rows == [(2,)]


def test_event_tables_take_inserts_only(shop):
    shop.sql("INSERT INTO event_log (text) VALUES ('started')")
    with pytest.raises(InvalidRequest, match="append-only"):
        shop.sql("UPDATE event_log SET text = 'x'")
    with pytest.raises(InvalidRequest, match="append-only"):
        shop.sql("DELETE FROM event_log")
    assert shop.sql("SELECT text FROM event_log").rows == [("started",)]


def test_identity_and_timestamp_literals(shop):
    owner = Identity(bytes(range(32)))
    shop.sql(
        "INSERT INTO customer (name, owner, joined, status) "
        "VALUES ('ann', :owner, '2026-01-02T03:04:05Z', 'CLOSED')",
        {"owner": owner},
    )
    hexed = owner.hex()
    for literal in (f"'{hexed}'", f"'0x{hexed}'", f"x'{hexed}'"):
        rows = shop.sql(f"SELECT name, owner, joined, status FROM customer WHERE owner = {literal}")
        assert rows.rows[0][:3] == ("ann", owner, Timestamp.parse("2026-01-02T03:04:05Z"))
        assert rows.rows[0][3].name == "CLOSED"
    later = shop.sql("SELECT name FROM customer WHERE joined > '2026-01-01T00:00:00Z'")
    assert later.rows == [("ann",)]
    with pytest.raises(SqlError, match="Timestamp") as caught:
        shop.sql("SELECT name FROM customer WHERE joined > 'yesterday'")
    assert (caught.value.line, caught.value.column) == (1, 42)
    assert caught.value.text == "'yesterday'"


def test_delete_and_update_count_rows(shop):
    shop.sql("INSERT INTO orders (customer_id, qty) VALUES (1, 1), (1, 2), (2, 3)")
    assert shop.sql("UPDATE orders SET qty = 0 WHERE customer_id = 1").rows_affected == 2
    assert shop.sql("DELETE FROM orders WHERE qty = 0").rows_affected == 2
    assert shop.sql("DELETE FROM orders WHERE qty = 99").rows_affected == 0
    assert shop.sql("SELECT qty FROM orders").rows == [(3,)]


def test_only_the_owner_writes(shop):
    stranger = Identity.random()
    for statement in (
        "INSERT INTO label VALUES (1, 'x')",
        "UPDATE label SET name = 'y'",
        "DELETE FROM label",
    ):
        with pytest.raises(PermissionDenied):
            shop.sql(statement, sender=stranger)
    shop.sql("INSERT INTO label VALUES (1, 'x')", sender=shop.owner)
    assert len(shop.sql("SELECT * FROM label")) == 1
