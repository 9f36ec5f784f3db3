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
from dataclasses import dataclass

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


@dataclass
class _Bucket:
    tokens: float
    updated: float


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
        rates = self._rates.get((kind, anonymous))
        if rates is None:  # read once per kind: the settings do not change
            who = "anonymous_" if anonymous else ""
            rates = (
                self.settings[f"rate_{who}{kind}_per_s"],
                self.settings[f"rate_{who}{kind}_burst"],
            )
            self._rates[(kind, anonymous)] = rates
        rate, burst = rates
        retry_after_s = self._spend(kind, anonymous, key, rate, burst)
        if retry_after_s is None:
            return
        who = "anonymous_" if anonymous else ""
        whom = f"address {key}" if anonymous else f"identity {key}"
        setting = f"limits.rate_{who}{kind}_per_s / rate_{who}{kind}_burst"
        hint = "; send a token for the larger per-identity limit" if anonymous else ""
        raise RateLimited(
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
        retry_after_s = self._spend(IDENTITIES, True, address, rate, burst)
        if retry_after_s is None:
            return
        raise RateLimited(
            f"too many identities created from address {address}: at most {rate:g} per "
            f"second (bursts of {burst:g}), set by limits.rate_identities_per_s / "
            "rate_identities_burst (server env COSMICTRON_RATE_IDENTITIES_PER_S); reuse the "
            f"token you have; retry after {retry_after_s:.3f} s",
            retry_after_s,
        )

    def _spend(
        self, kind: str, anonymous: bool, key: str, rate: float, burst: float
    ) -> float | None:
        """Take one token from the bucket of ``(kind, anonymous, key)``; None when there
        was one, else the seconds until there will be."""
        buckets = self._buckets[kind]
        now = time.monotonic()
        bucket = buckets.get((anonymous, key))
        if bucket is None:
            bucket = buckets[(anonymous, key)] = _Bucket(float(burst), now)
            while len(buckets) > self.settings["rate_buckets_max"]:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end((anonymous, key))
            tokens = bucket.tokens + (now - bucket.updated) * rate
            bucket.tokens = tokens if tokens < burst else float(burst)  # (no min(): per query)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return math.inf if rate <= 0 else (1.0 - bucket.tokens) / rate


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
