"""``limits.subscription_reevaluation_rows_max``, crossed: a re-evaluated subscription
whose query grew past the bound ends with an error naming it, and nothing is lost."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from cosmictron import limits
from cosmictron.errors import SubscriptionError
from tests.subscription.conftest import MODULE, Mirror

GROUPED = "SELECT k, COUNT(*) FROM a GROUP BY k"


@pytest.fixture
def db(open_db: Any) -> Any:
    return open_db(MODULE)


def put_many(db: Any, first: int, count: int) -> int:
    ops = [["put", "a", {"id": n, "k": n % 3, "v": n}] for n in range(first, first + count)]
    db.call("batch", json.dumps(ops))
    return int(db.tx_offset)


def test_crossing_the_bound_ends_the_subscription_naming_it_and_loses_nothing(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "subscription_reevaluation_rows_max", 40)
    put_many(db, 1, 10)
    errors: list[SubscriptionError] = []
    other_errors: list[SubscriptionError] = []
    grouped = Mirror()
    sub = db.subscribe([GROUPED], on_update=grouped, on_error=errors.append)
    grouped.start(sub.initial)
    second = db.subscribe([GROUPED], on_update=lambda u: None, on_error=other_errors.append)
    rows = Mirror()
    incremental = db.subscribe(["SELECT * FROM a WHERE v > 5"], on_update=rows)
    rows.start(incremental.initial)

    within = put_many(db, 11, 20)  # 30 rows: one re-evaluation examines them, within 40
    assert not errors
    assert grouped.table(GROUPED) == Counter(db.sql(GROUPED).rows)

    past = put_many(db, 31, 20)  # 50 rows: past the bound
    assert past == within + 1
    assert len(errors) == 1 and len(other_errors) == 1
    message = str(errors[0])
    assert "limits.subscription_reevaluation_rows_max" in message
    assert GROUPED in message and f"offset {past}" in message
    assert errors[0].code == "subscription_error"
    assert not sub.active and not second.active and sub.error is errors[0]
    # Nothing lost: the transaction committed whole, and the incremental subscription
    # reading the same table got its update.
    assert db.sql("SELECT COUNT(*) FROM a").rows == [(50,)]
    assert rows.table("a") == Counter(db.sql("SELECT * FROM a WHERE v > 5").rows)
    assert db.core.subscriptions.query_count == 1  # the re-evaluated query is gone
    # Later transactions reach the surviving subscription and no ended one.
    put_many(db, 51, 1)
    assert len(errors) == 1
    assert rows.table("a") == Counter(db.sql("SELECT * FROM a WHERE v > 5").rows)
    # Raised again, the same query subscribes and is maintained as before.
    monkeypatch.setattr(limits, "subscription_reevaluation_rows_max", 1_000)
    again = Mirror()
    fresh = db.subscribe([GROUPED], on_update=again)
    again.start(fresh.initial)
    put_many(db, 52, 3)
    assert again.table(GROUPED) == Counter(db.sql(GROUPED).rows)
