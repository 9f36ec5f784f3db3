"""Which SQL a cluster node forwards to the leader (``server/forwarding.writes``).

A read is served by the node's replica; anything else goes to the leader. A write taken
for a read would be refused by the replica (it applies the leader's log only), never
applied, so the rule errs towards forwarding: only text that starts as a read stays.
"""

from __future__ import annotations

import pytest

from cosmictron.server.forwarding import writes


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM item",
        "  select id from item where id = 1",
        "(SELECT 1) UNION (SELECT 2)",
        "WITH t AS (SELECT 1) SELECT * FROM t",
        "VALUES (1), (2)",
        "EXPLAIN SELECT * FROM item",
        "-- the items\nSELECT * FROM item",
        "/* a comment\n over lines */ SELECT 1",
    ],
)
def test_reads_are_served_where_they_arrive(text: str) -> None:
    assert not writes(text)


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO item (id) VALUES (1)",
        "update item set id = 2",
        "DELETE FROM item",
        "CREATE VIEW v AS SELECT * FROM item",
        "DROP VIEW v",
        "selectx FROM item",
        "-- SELECT\nDELETE FROM item",
        "",
    ],
)
def test_everything_else_is_forwarded(text: str) -> None:
    assert writes(text)
