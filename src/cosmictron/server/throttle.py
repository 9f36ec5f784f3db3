"""Per-caller query budgets and rate limits: no caller may wedge or flood a database.

Two jobs, both decided by who is calling:

* ``query_budget``: the ``QueryBudget`` a caller's SQL queries and subscriptions run
  under. A caller without a token gets the smaller ``limits.query_anonymous_*`` values.
* ``Throttle.take``: a token bucket per caller and kind of request (``calls``,
  ``queries``, ``subscriptions``, ``connections``). A caller with a token is keyed by its
  identity; callers without one are pooled per remote address (an anonymous WebSocket
  client gets a fresh identity per connection, so its identity would bound nothing).
  Past the bucket, ``RateLimited`` (HTTP 429 with ``Retry-After``; on a WebSocket, the
  error reply of that one request, the connection kept).
* ``Throttle.take_identity``: identity creation (``POST /v1/identity``), a bucket per
  remote address (``rate_identities_*``): each identity has buckets of its own, so
  minting identities must be limited where identities cannot be.

Every value comes from ``limits.py``; the server process reads ``COSMICTRON_<NAME>``
(the limit's name in capitals) to override one, once at start (``ServerLimits``). The
buckets live on the event loop, which is the only thread that touches them, so they
need no lock; at most ``rate_buckets_max`` per kind are kept (least recently used out).
The remote address is the TCP peer's: behind a reverse proxy every anonymous caller
shares the proxy's bucket (``X-Forwarded-For`` is not trusted).
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Mapping

from aiohttp import web

from cosmictron import limits
from cosmictron.errors import ConfigError, RateLimited
from cosmictron.query.budget import QueryBudget

KINDS = ("calls", "queries", "subscriptions", "connections")
"""The kinds of request with a rate limit of their own."""

_BUDGET_NAMES = (
    "query_time_s_max",
    "query_rows_examined_max",
    "query_rows_max",
    "query_anonymous_time_s_max",
    "query_anonymous_rows_examined_max",
    "query_anonymous_rows_max",
    # byte budgets of SQL (issue 21, bound-sql)
    "sql_value_bytes_max",
    "sql_anonymous_value_bytes_max",
    "query_result_bytes_max",
    "query_anonymous_result_bytes_max",
    "query_held_bytes_max",
    "query_anonymous_held_bytes_max",
    "sql_params_count_max",
    "sql_params_bytes_max",
)


IDENTITIES = "identities"
"""``POST /v1/identity``: limited per remote address only (the caller has no identity yet),
so minting identities to get fresh per-identity buckets is not free."""


def _rate_names() -> list[str]:
    names = ["rate_buckets_max", "rate_identities_per_s", "rate_identities_burst"]
    for kind in KINDS:
        for who in ("", "anonymous_"):
            names += [f"rate_{who}{kind}_per_s", f"rate_{who}{kind}_burst"]
    return names


class ServerLimits:
    """The budget and rate values this server runs with: ``limits`` overridden by
    ``COSMICTRON_<NAME>`` environment variables."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.values: dict[str, float] = {}
        for name in (*_BUDGET_NAMES, *_rate_names()):
            default = getattr(limits, name)
            text = environ.get(f"COSMICTRON_{name.upper()}")
            if text is None:
                self.values[name] = default
                continue
            try:
                value = type(default)(text)
            except ValueError:
                raise ConfigError(
                    f"COSMICTRON_{name.upper()}={text!r} is not a {type(default).__name__}"
                ) from None
            if value < 0:
                raise ConfigError(f"COSMICTRON_{name.upper()} must not be negative")
            self.values[name] = value

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def query_budget(self, anonymous: bool) -> QueryBudget:
        """The budget of a caller's queries and subscriptions' initial evaluations."""
        if anonymous:
            return QueryBudget(
                time_s=self["query_anonymous_time_s_max"],
                rows_examined_max=int(self["query_anonymous_rows_examined_max"]),
                rows_max=int(self["query_anonymous_rows_max"]),
                origin=(
                    "the budget of callers without a token (limits.query_anonymous_time_s_max"
                    ", query_anonymous_rows_examined_max, query_anonymous_rows_max; the "
                    "server reads COSMICTRON_QUERY_ANONYMOUS_* to change them); send a "
                    "token (POST /v1/identity) for the larger budget"
                ),
                value_bytes_max=int(self["sql_anonymous_value_bytes_max"]),
                result_bytes_max=int(self["query_anonymous_result_bytes_max"]),
                held_bytes_max=int(self["query_anonymous_held_bytes_max"]),
                params_count_max=int(self["sql_params_count_max"]),
                params_bytes_max=int(self["sql_params_bytes_max"]),
                scope="anonymous",
            )
        return QueryBudget(
            time_s=self["query_time_s_max"],
            rows_examined_max=int(self["query_rows_examined_max"]),
            rows_max=int(self["query_rows_max"]),
            origin=(
                "limits.query_time_s_max, query_rows_examined_max, query_rows_max; the "
                "server reads COSMICTRON_QUERY_TIME_S_MAX, COSMICTRON_QUERY_ROWS_EXAMINED_MAX "
                "and COSMICTRON_QUERY_ROWS_MAX to change them"
            ),
            value_bytes_max=int(self["sql_value_bytes_max"]),
            result_bytes_max=int(self["query_result_bytes_max"]),
            held_bytes_max=int(self["query_held_bytes_max"]),
            params_count_max=int(self["sql_params_count_max"]),
            params_bytes_max=int(self["sql_params_bytes_max"]),
            scope="server",
        )


class _Bucket:
    """One caller's tokens of one kind: ``tokens`` as of ``updated`` (monotonic
    seconds), refilled at the rate up to the burst when spent."""

    __slots__ = ("forgotten", "seen", "tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now
        self.seen = now
        """When it was last moved to the recent end of its kind's LRU order."""
        self.forgotten = False
        """Set when it is pushed out past ``rate_buckets_max``: an ``Allowance``
        holding it finds the caller's bucket again (a fresh one, as ``take`` would)."""

    def spend(self, now: float, rate: float, burst: float) -> float | None:
        """Refill up to ``now``, then take one token; None when there was one, else
        the seconds until there will be."""
        tokens = self.tokens + (now - self.updated) * rate
        self.updated = now
        if tokens > burst:  # (no min(): once per request)
            tokens = float(burst)
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return None
        self.tokens = tokens
        return math.inf if rate <= 0 else (1.0 - tokens) / rate


SEEN_EVERY_S = 1.0
"""How often an ``Allowance`` in use moves its bucket to the recent end of the LRU
order: the order is of the last second a caller was seen, not of its last request."""


class Throttle:
    """Token buckets per (kind, caller); ``take`` spends one or raises ``RateLimited``."""

    def __init__(self, settings: ServerLimits) -> None:
        self.settings = settings
        self._buckets: dict[str, OrderedDict[tuple[bool, str], _Bucket]] = {
            kind: OrderedDict() for kind in (*KINDS, IDENTITIES)
        }
        self._rates: dict[tuple[str, bool], tuple[float, float]] = {}
        """(rate per second, burst) of each (kind, anonymous), read from the settings."""

    def take(self, kind: str, anonymous: bool, key: str) -> None:
        """Spend one request of ``kind`` for caller ``key`` (identity hex, or the remote
        address of a caller without a token).

        Raises:
            RateLimited: the caller's bucket is empty; ``retry_after_s`` says when one
                request will be accepted again.
        """
        rate, burst = self.rates(kind, anonymous)
        now = time.monotonic()
        bucket = self.bucket(kind, anonymous, key, now, burst)
        retry_after_s = bucket.spend(now, rate, burst)
        if retry_after_s is not None:
            raise self.refusal(kind, anonymous, key, retry_after_s)

    def allowance(self, kind: str, anonymous: bool, key: str) -> Allowance:
        """A handle on caller ``key``'s bucket of ``kind`` for a connection to keep:
        its ``take`` is ``take(kind, anonymous, key)`` without finding the bucket
        and the rates again on every request (the same bucket, shared with the
        caller's other connections and HTTP requests)."""
        rate, burst = self.rates(kind, anonymous)
        return Allowance(self, kind, anonymous, key, rate, burst)

    def rates(self, kind: str, anonymous: bool) -> tuple[float, float]:
        """(rate per second, burst) of ``kind`` for callers with or without a token."""
        rates = self._rates.get((kind, anonymous))
        if rates is None:  # read once per kind: the settings do not change
            who = "anonymous_" if anonymous else ""
            rates = (
                self.settings[f"rate_{who}{kind}_per_s"],
                self.settings[f"rate_{who}{kind}_burst"],
            )
            self._rates[(kind, anonymous)] = rates
        return rates

    def refusal(self, kind: str, anonymous: bool, key: str, retry_after_s: float) -> RateLimited:
        """The error of a request of ``kind`` past caller ``key``'s bucket."""
        rate, burst = self.rates(kind, anonymous)
        who = "anonymous_" if anonymous else ""
        whom = f"address {key}" if anonymous else f"identity {key}"
        setting = f"limits.rate_{who}{kind}_per_s / rate_{who}{kind}_burst"
        hint = "; send a token for the larger per-identity limit" if anonymous else ""
        return RateLimited(
            f"too many {kind} from {whom}: at most {rate:g} per second (bursts of "
            f"{burst:g}), set by {setting} (server env COSMICTRON_RATE_{who.upper()}"
            f"{kind.upper()}_PER_S){hint}; retry after {retry_after_s:.3f} s",
            retry_after_s,
        )

    def take_identity(self, address: str) -> None:
        """Spend one identity creation for remote ``address``.

        Raises:
            RateLimited: the address created ``rate_identities_burst`` identities and
                more than ``rate_identities_per_s`` per second since.
        """
        rate = self.settings["rate_identities_per_s"]
        burst = self.settings["rate_identities_burst"]
        now = time.monotonic()
        bucket = self.bucket(IDENTITIES, True, address, now, burst)
        retry_after_s = bucket.spend(now, rate, burst)
        if retry_after_s is None:
            return
        raise RateLimited(
            f"too many identities created from address {address}: at most {rate:g} per "
            f"second (bursts of {burst:g}), set by limits.rate_identities_per_s / "
            "rate_identities_burst (server env COSMICTRON_RATE_IDENTITIES_PER_S); reuse the "
            f"token you have; retry after {retry_after_s:.3f} s",
            retry_after_s,
        )

    def bucket(self, kind: str, anonymous: bool, key: str, now: float, burst: float) -> _Bucket:
        """The bucket of ``(kind, anonymous, key)``, made full (``burst``) if there is none, moved
        to the recent end of its kind's LRU order (the oldest past
        ``rate_buckets_max`` are forgotten)."""
        buckets = self._buckets[kind]
        bucket = buckets.get((anonymous, key))
        if bucket is None:
            bucket = buckets[(anonymous, key)] = _Bucket(float(burst), now)
            while len(buckets) > self.settings["rate_buckets_max"]:
                buckets.popitem(last=False)[1].forgotten = True
        else:
            buckets.move_to_end((anonymous, key))
            bucket.seen = now
        return bucket


class Allowance:
    """One caller's bucket of one kind, held by a connection that spends from it on
    every request (a PostgreSQL session's queries, a WebSocket client's requests).

    Why: finding the bucket (a tuple key in an ``OrderedDict``, moved to its end) and
    the rates on every request was most of what a point query's rate check cost.
    Held, the bucket is spent with the same arithmetic and shared as before: the
    caller's other connections and HTTP requests draw on the same tokens, so the
    limits mean what docs/reference/limits.md says. It is moved in the LRU order
    once a second at most (``SEEN_EVERY_S``), and found again if it was forgotten.
    """

    __slots__ = ("anonymous", "burst", "held", "key", "kind", "rate", "throttle")

    def __init__(
        self, throttle: Throttle, kind: str, anonymous: bool, key: str, rate: float, burst: float
    ) -> None:
        self.throttle = throttle
        self.kind = kind
        self.anonymous = anonymous
        self.key = key
        self.rate = rate
        self.burst = float(burst)
        self.held: _Bucket | None = None

    def take(self) -> None:
        """Spend one request, as ``Throttle.take``.

        Raises:
            RateLimited: the caller's bucket is empty.
        """
        now = time.monotonic()
        bucket = self.held
        if bucket is None or bucket.forgotten or now - bucket.seen >= SEEN_EVERY_S:
            bucket = self.held = self.throttle.bucket(
                self.kind, self.anonymous, self.key, now, self.burst
            )
        # ``bucket.spend``'s refill, inline (a call less per request); its refusal.
        tokens = bucket.tokens + (now - bucket.updated) * self.rate
        bucket.updated = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            return
        bucket.tokens = tokens
        retry_after_s = bucket.spend(now, self.rate, self.burst)  # (0 s refilled: no token)
        assert retry_after_s is not None
        raise self.throttle.refusal(self.kind, self.anonymous, self.key, retry_after_s)


THROTTLE = web.AppKey("throttle", Throttle)


def setup(app: web.Application, environ: Mapping[str, str] | None = None) -> Throttle:
    """Read the limits (environment over ``limits.py``) and keep the throttle on the app."""
    throttle = Throttle(ServerLimits(os.environ if environ is None else environ))
    app[THROTTLE] = throttle
    return throttle


def retry_after_header(retry_after_s: float) -> str:
    """``Retry-After`` in whole seconds, at least 1 (HTTP allows no fractions)."""
    if math.isinf(retry_after_s):
        return "3600"
    return str(max(1, math.ceil(retry_after_s)))


def caller_key(request: web.Request, anonymous: bool, identity_hex: str) -> str:
    """What a caller's buckets are keyed by: the remote address without a token."""
    if anonymous:
        return request.remote or "unknown"
    return identity_hex


def throttle_of(request: web.Request) -> Throttle:
    return request.app[THROTTLE]
