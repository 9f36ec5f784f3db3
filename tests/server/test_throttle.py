"""The token buckets and the settings behind the server's rate limits and budgets.

The HTTP and WebSocket behaviour is in test_query_budgets.py over a real server; here
the arithmetic: refill at the rate, bursts, the bucket cap, and bad settings.
"""

from __future__ import annotations

import time

import pytest

from cosmictron import limits
from cosmictron.errors import ConfigError, QueryTooCostly, RateLimited
from cosmictron.server.throttle import ServerLimits, Throttle, retry_after_header


def throttle(**values: str) -> Throttle:
    return Throttle(ServerLimits({f"COSMICTRON_{k.upper()}": v for k, v in values.items()}))


def test_a_burst_then_refusal_then_refill_at_the_rate():
    limiter = throttle(rate_queries_per_s="50", rate_queries_burst="2")
    limiter.take("queries", False, "alice")
    limiter.take("queries", False, "alice")
    with pytest.raises(RateLimited) as caught:
        limiter.take("queries", False, "alice")
    assert 0 < caught.value.retry_after_s <= 1 / 50
    assert caught.value.http_status == 429 and caught.value.code == "rate_limited"
    limiter.take("queries", False, "bob")  # another identity, another bucket
    limiter.take("calls", False, "alice")  # another kind, another bucket
    time.sleep(caught.value.retry_after_s + 0.01)
    limiter.take("queries", False, "alice")


def test_anonymous_callers_use_the_anonymous_limits():
    limiter = throttle(rate_anonymous_calls_burst="1", rate_anonymous_calls_per_s="0")
    limiter.take("calls", True, "127.0.0.1")
    with pytest.raises(RateLimited, match="address 127.0.0.1.*send a token") as caught:
        limiter.take("calls", True, "127.0.0.1")
    assert retry_after_header(caught.value.retry_after_s) == "3600"  # rate 0: never
    limiter.take("calls", False, "127.0.0.1")  # the identity limits are separate


def test_past_rate_buckets_max_the_least_recently_used_bucket_is_forgotten():
    limiter = throttle(rate_buckets_max="2", rate_queries_burst="1", rate_queries_per_s="0")
    limiter.take("queries", False, "a")
    limiter.take("queries", False, "b")
    limiter.take("queries", False, "c")  # forgets "a"
    limiter.take("queries", False, "a")  # a fresh, full bucket
    with pytest.raises(RateLimited):
        limiter.take("queries", False, "c")


def test_an_allowance_spends_from_the_callers_one_shared_bucket():
    """A connection's held bucket (``Throttle.allowance``) is the caller's bucket: its
    other connections and its HTTP requests draw on the same tokens, and the refusal
    is the one ``take`` gives."""
    limiter = throttle(rate_queries_per_s="50", rate_queries_burst="3")
    first = limiter.allowance("queries", False, "alice")
    second = limiter.allowance("queries", False, "alice")
    first.take()
    limiter.take("queries", False, "alice")
    second.take()
    for spend in (first.take, second.take, lambda: limiter.take("queries", False, "alice")):
        with pytest.raises(RateLimited, match="too many queries from identity alice") as caught:
            spend()
        assert 0 < caught.value.retry_after_s <= 1 / 50
    limiter.allowance("queries", False, "bob").take()  # another identity, another bucket
    limiter.allowance("calls", False, "alice").take()  # another kind, another bucket
    time.sleep(caught.value.retry_after_s + 0.01)
    second.take()  # refilled at the rate, as for ``take``
    with pytest.raises(RateLimited):
        first.take()


def test_an_anonymous_allowance_uses_the_anonymous_limits():
    limiter = throttle(rate_anonymous_calls_burst="1", rate_anonymous_calls_per_s="0")
    held = limiter.allowance("calls", True, "127.0.0.1")
    held.take()
    with pytest.raises(RateLimited, match="address 127.0.0.1.*send a token") as caught:
        held.take()
    assert retry_after_header(caught.value.retry_after_s) == "3600"


def test_an_allowance_whose_bucket_was_forgotten_starts_full_as_take_would():
    limiter = throttle(rate_buckets_max="1", rate_queries_burst="1", rate_queries_per_s="0")
    held = limiter.allowance("queries", False, "a")
    held.take()
    with pytest.raises(RateLimited):
        held.take()
    limiter.take("queries", False, "b")  # forgets "a"
    held.take()  # a fresh, full bucket, the one ``take`` now finds too
    with pytest.raises(RateLimited):
        limiter.take("queries", False, "a")


def test_the_budgets_follow_the_caller_and_the_environment():
    settings = ServerLimits({"COSMICTRON_QUERY_ANONYMOUS_TIME_S_MAX": "0.5"})
    anonymous = settings.query_budget(True)
    assert anonymous.time_s == 0.5
    assert anonymous.rows_max == limits.query_anonymous_rows_max
    assert anonymous.rows_examined_max == limits.query_anonymous_rows_examined_max
    named = settings.query_budget(False)
    assert named.time_s == limits.query_time_s_max
    assert named.rows_examined_max == limits.query_rows_examined_max


@pytest.mark.parametrize("value", ["fast", "-1"])
def test_a_bad_setting_is_a_config_error_naming_the_variable(value):
    with pytest.raises(ConfigError, match="COSMICTRON_RATE_CALLS_PER_S"):
        ServerLimits({"COSMICTRON_RATE_CALLS_PER_S": value})


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert retry_after_header(0.001) == "1"
    assert retry_after_header(2.2) == "3"


def test_the_anonymous_budget_the_server_builds_stops_a_costly_query(open_db):
    db = open_db(
        """
        @table(name="item", public=True)
        class Item:
            id: int = field(primary_key=True)
            v: int = 0

        @reducer
        def seed(ctx: ReducerContext, n: int) -> None:
            for i in range(n):
                Item.insert(Item(id=i, v=i))
        """
    )
    db.call("seed", 500)
    settings = ServerLimits({"COSMICTRON_QUERY_ANONYMOUS_ROWS_EXAMINED_MAX": "10000"})
    query = "SELECT COUNT(*) FROM item a, item b WHERE a.v + b.v = -1"
    with pytest.raises(QueryTooCostly, match="query_anonymous_rows_examined_max"):
        db.sql(query, budget=settings.query_budget(True))
    assert db.sql(query, budget=settings.query_budget(False)).rows == [(0,)]
