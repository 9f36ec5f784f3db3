"""Cluster mode: writes that reach a node which does not lead their database go to the leader.

Issue 19, part 3. Every node answers for every database: reads from its own replica
(``cluster/follower.py``), writes by forwarding. The middleware :func:`forward_writes`
picks the writes out by route: reducer and procedure calls, deploys (an update of a
database the catalogue holds; a new one is created, and led, where it is deployed), bulk
inserts, and SQL whose statement writes (:func:`writes`: anything but ``SELECT``,
``WITH``, ``VALUES``, ``EXPLAIN``; a write that slips through is refused by the replica,
never applied). It sends the request to the leader's URL (lease holder, then its
heartbeat in KV) with the caller's ``Authorization`` and body unchanged, and answers with
the leader's status and body unchanged, adding ``Cosmictron-Leader``. A request is
forwarded once: one that arrives forwarded (``Cosmictron-Forwarded-By``) at a node that
does not lead answers ``503 not_leader`` (the lease moved meanwhile; retry).

**Read-your-writes.** A forwarded write that succeeded answers only once this node's
replica has applied the reply's ``tx_offset`` (at most ``APPLY_WAIT_S``), so the caller's
next read *from the same node* sees its write. Any read may also ask for it explicitly:
``Cosmictron-Min-Offset: N`` on a SQL read makes a replica wait (as long) until it has
applied offset ``N``, e.g. the ``tx_offset`` a write got from another node. A reply that
could not wait long enough still answers, with ``Cosmictron-Stale: true``.

Every SQL reply of a cluster node says what it was read at: ``Cosmictron-Applied-Offset``
(the last offset applied here) and ``Cosmictron-Stale`` (``true`` when this replica has
lost touch with the stream for ``follower.STALE_AFTER_S``, or, on the leader, when its
lease renewals and log acknowledgements have not gone through for as long: NATS lost its
quorum, or the node is cut off; the rows are those of the applied offset). WebSocket
clients are told the same by ``Staleness`` messages (``server/staleness.py``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from cosmictron.cluster.follower import Follower
from cosmictron.errors import ClusterUnavailable, CosmictronError, InvalidRequest
from cosmictron.server import bulk, routes
from cosmictron.server.routes import REGISTRY, SQL_QUERY

FORWARDED_BY = "Cosmictron-Forwarded-By"
"""Set on a forwarded request: the node that forwarded it (a request is forwarded once)."""
LEADER = "Cosmictron-Leader"
"""On a forwarded reply: the node that answered it."""
APPLIED_OFFSET = "Cosmictron-Applied-Offset"
"""On a SQL reply (and a forwarded write's): the last offset this node applied."""
STALE = "Cosmictron-Stale"
"""``true`` when the reply may be behind the cluster (see the module doc)."""
MIN_OFFSET = "Cosmictron-Min-Offset"
"""On a SQL read: wait until this node applied this offset (read-your-writes)."""

APPLY_WAIT_S = 5.0
"""How long a reply waits for this node's replica to apply an offset."""

FORWARD_TIMEOUT_S = 15.0
"""The whole forwarded request: a call waits up to 10 s for its ack on the leader; a
leader that stopped (frozen, cut off) answers nothing, and this bounds the wait for it."""

RETRY_AFTER_S = 1.0
"""``Retry-After`` when no node leads the database yet (a failover is under way)."""

_PASSED_HEADERS = ("Authorization", "Content-Type", "Accept", "Content-Encoding")
NOTHING_RAN = "nothing ran"
"""Said by a forwarding refusal that certainly had no effect (the leader was never reached,
or there is none): a client may send the request again without risking a second effect."""

_RETURNED_HEADERS = ("Content-Type", "Retry-After", "Content-Encoding")
_READ = re.compile(
    r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*\(?\s*(select|with|values|explain)\b", re.I | re.S
)
LEADER_CACHE_S = 0.5
"""How long a database's leader, once read from KV, is trusted without reading it again
(two KV reads a forward otherwise). A failover within it costs a forward that the old
leader refuses (``not_leader``, it was forwarded once) or that finds nobody (503): the
caller retries, as after any failover; the entry is dropped on either."""
LEADERS: web.AppKey[dict[str, tuple[float, tuple[str, str]]]] = web.AppKey("leaders", dict)
SESSION: web.AppKey[dict[str, aiohttp.ClientSession]] = web.AppKey("forwarding_session", dict)


def writes(text: str) -> bool:
    """Whether a SQL text is (or may be) a write: anything not starting as a read."""
    return _READ.match(text) is None


def sql_json(sql: routes.SqlBody) -> dict[str, Any]:
    """The JSON body that asks the leader for ``sql`` (``routes.json_sql`` reads it)."""
    if not sql.transaction:
        text, params = sql.statements[0]
        return {"query": text, "params": params}
    statements = [{"query": text, "params": params} for text, params in sql.statements]
    return {"statements": statements, "expect": sql.expect}


def setup(app: web.Application) -> None:
    """The client session forwarded requests share (made on first use, closed with the app)."""
    app[SESSION] = {}
    app[LEADERS] = {}

    async def close(app: web.Application) -> None:
        for session in app[SESSION].values():
            await session.close()

    app.on_cleanup.append(close)


def leader_session(app: web.Application) -> aiohttp.ClientSession:
    """The client session every request to a leader shares (forwarded requests, and the
    reducer calls ``forwarded_calls.py`` sends on a procedure's behalf)."""
    sessions = app[SESSION]
    session = sessions.get("leader")
    if session is None or session.closed:
        session = sessions["leader"] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S), auto_decompress=False
        )
    return session


async def find_leader(app: web.Application, cluster: Any, name: str) -> tuple[str, str] | None:
    """The leader's ``(node id, URL)``, read from KV at most every ``LEADER_CACHE_S``."""
    cache = app[LEADERS]
    cached = cache.get(name)
    now = time.monotonic()
    if cached is not None and now - cached[0] < LEADER_CACHE_S:
        return cached[1]
    leader = await asyncio.to_thread(cluster.leader_url, name)
    if leader is not None:
        cache[name] = (now, leader)
    return leader


def forget_leader(app: web.Application, name: str) -> None:
    """Read ``name``'s leader from KV next time: the cached one did not answer, or
    answered 503 (``not_leader``, ``cluster_unavailable``)."""
    app[LEADERS].pop(name, None)


def _write_kind(request: web.Request) -> str | None:
    """``call``, ``deploy``, ``bulk``, ``sql`` (decided by the statement) or None."""
    handler = request.match_info.route.handler
    if handler is routes.call:
        return "call"
    if handler is routes.deploy:
        return "deploy"
    if handler is bulk.bulk_insert:
        return "bulk"
    if handler is routes.sql:
        return "sql"
    return None


@web.middleware
async def forward_writes(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Serve reads here and send writes to the leader (see the module doc)."""
    registry = request.app[REGISTRY]
    cluster = registry.cluster
    name = request.match_info.get("name")
    if cluster is None or name is None:
        return await handler(request)
    kind = _write_kind(request)
    body: bytes | None = None
    if kind == "sql":
        sql = request[SQL_QUERY] = await routes.sql_request(request)
        if any(writes(text) for text, _ in sql.statements):
            body = json.dumps(sql_json(sql)).encode()
        else:
            kind = None
    if kind is None or cluster.leads(name):
        follower = registry.follower(name)
        if kind is None and follower is not None:
            await _wait_min_offset(request, follower)
        response = await handler(request)
        if routes.sql is request.match_info.route.handler:
            _mark_applied(request, response, registry, name)
        return response
    error: Exception | None = None
    leader: tuple[str, str] | None = None
    try:
        new = kind == "deploy" and not await asyncio.to_thread(cluster.has_database, name)
        if new:
            leader = None
        elif request.headers.get(FORWARDED_BY):
            error = await asyncio.to_thread(cluster.not_leader, name)  # the lease moved
        else:
            leader = await find_leader(request.app, cluster, name)
    except Exception as exc:  # the catalogue or the leases did not answer: no quorum
        raise ClusterUnavailable(
            f"cannot find the leader of {name!r}: the cluster's KV did not answer ({exc!r})",
            RETRY_AFTER_S,
        ) from exc
    if new:
        return await handler(request)  # a new database: created, and led, here
    if error is not None:
        raise error
    if leader is None or leader[1] == cluster.url:
        raise ClusterUnavailable(
            f"database {name!r} has no leader right now (a failover is under way); "
            f"{NOTHING_RAN}; retry",
            RETRY_AFTER_S,
        )
    if body is None:
        body = await request.read()
    response = await _forward(request, leader, body, cluster.node_id, kind == "sql")
    follower = registry.follower(name)
    if follower is not None and 200 <= response.status < 300:
        offset = _tx_offset(response.body)
        if offset is not None:
            caught_up = await asyncio.to_thread(follower.wait_applied, offset, APPLY_WAIT_S)
            response.headers[APPLIED_OFFSET] = str(follower.applied)
            response.headers[STALE] = "false" if caught_up else "true"
    return response


async def _forward(
    request: web.Request, leader: tuple[str, str], body: bytes, node_id: str, as_json: bool
) -> web.Response:
    node, url = leader
    headers = {key: request.headers[key] for key in _PASSED_HEADERS if key in request.headers}
    if as_json:
        headers["Content-Type"] = "application/json"
    headers[FORWARDED_BY] = node_id
    try:
        async with leader_session(request.app).request(
            request.method, url + request.path_qs, data=body, headers=headers
        ) as answer:
            data = await answer.read()
            returned = {k: answer.headers[k] for k in _RETURNED_HEADERS if k in answer.headers}
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _not_answered(request.app, request.match_info["name"], leader, exc) from exc
    if status == 503:  # not_leader or cluster_unavailable: ask KV next time
        forget_leader(request.app, request.match_info["name"])
    response = web.Response(status=status, body=data, headers=returned)
    response.headers[LEADER] = node
    return response


async def post_to_leader(
    app: web.Application, name: str, path: str, token: str, body: bytes
) -> tuple[int, dict[str, Any], str | None]:
    """POST a JSON ``body`` to ``path`` on the leader of ``name``, as the caller whose
    ``token`` it is (the leader checks it: rights are the caller's own, never this
    node's), marked forwarded once; the leader's status, decoded JSON reply and
    ``Retry-After`` (a refusal's hint, kept for the caller's error). Used
    for what arrives by other means than an HTTP request: a WebSocket client's call
    (``forwarded_calls.py``), a PostgreSQL session's DML (``pgwire/leader_writes.py``).

    Raises:
        ClusterUnavailable: no node leads ``name`` now, or the leader could not be
            reached (the message says whether the request may have run); retry.
    """
    cluster = app[REGISTRY].cluster
    assert cluster is not None  # only a cluster node forwards
    try:
        leader = await find_leader(app, cluster, name)
    except Exception as exc:  # the leases did not answer: no quorum
        raise ClusterUnavailable(
            f"cannot find the leader of {name!r}: the cluster's KV did not answer ({exc!r}); "
            f"{NOTHING_RAN}; retry",
            RETRY_AFTER_S,
        ) from exc
    if leader is None or leader[1] == cluster.url:
        raise ClusterUnavailable(
            f"database {name!r} has no leader right now (a failover is under way); "
            f"{NOTHING_RAN}; retry",
            RETRY_AFTER_S,
        )
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        FORWARDED_BY: cluster.node_id,
    }
    try:
        async with leader_session(app).post(leader[1] + path, data=body, headers=headers) as answer:
            status = answer.status
            data = await answer.read()
            retry_after = answer.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _not_answered(app, name, leader, exc) from exc
    if status == 503:  # not_leader or cluster_unavailable: ask KV next time
        forget_leader(app, name)
    try:
        reply = json.loads(data or b"{}")
    except ValueError:
        reply = {}
    return status, reply if isinstance(reply, dict) else {}, retry_after


def _not_answered(
    app: web.Application, name: str, leader: tuple[str, str], exc: BaseException
) -> ClusterUnavailable:
    """The error for a request to the leader that got no answer (the leader is looked up
    again next time): whether it may have run depends on whether it was sent."""
    forget_leader(app, name)
    node, url = leader
    if isinstance(exc, aiohttp.ClientConnectorError):  # no connection: nothing was sent
        return ClusterUnavailable(
            f"the leader of {name!r} ({node} at {url}) cannot be reached "
            f"({exc.os_error!r}): the request was not delivered, {NOTHING_RAN}; retry",
            RETRY_AFTER_S,
        )
    return ClusterUnavailable(  # sent: it may have run
        f"the leader of {name!r} ({node} at {url}) did not answer: {exc!r}; it may have "
        "run: check before you retry",
        RETRY_AFTER_S,
    )


async def applied_here(app: web.Application, name: str, offset: int) -> bool:
    """Wait (at most ``APPLY_WAIT_S``) until this node's replica of ``name`` has applied
    ``offset``, a forwarded write's: the read-your-writes rule. False when it did not."""
    follower = app[REGISTRY].follower(name)
    if follower is None:
        return True
    return await asyncio.to_thread(follower.wait_applied, offset, APPLY_WAIT_S)


class LeaderError(CosmictronError):
    """The leader's refusal of a forwarded request, as it answered it: its code (set on the
    instance), message, traceback and ``Retry-After`` (``retry_after_s``, None without),
    so a WebSocket client's failed call carries the same retry hint as HTTP's 503."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def leader_error(reply: dict[str, Any], status: int, retry_after: str | None = None) -> LeaderError:
    """The leader's error document as an error with its code, message, status and retry
    hint (a PostgreSQL session maps the code to its SQLSTATE, ``pgwire/sqlstate.py``)."""
    found = reply.get("error")
    document: dict[str, Any] = found if isinstance(found, dict) else {}
    error = LeaderError(
        str(document.get("message") or f"the leader answered {status}"), _seconds(retry_after)
    )
    error.code = str(document.get("code") or "internal_error")
    error.http_status = status
    if isinstance(document.get("traceback"), str):
        error.traceback = document["traceback"]
    return error


def _seconds(retry_after: str | None) -> float | None:
    """An HTTP ``Retry-After`` in seconds (None: absent, or a date, which ours never is)."""
    try:
        return float(retry_after) if retry_after is not None else None
    except ValueError:
        return None


def _tx_offset(body: Any) -> int | None:
    if not isinstance(body, bytes) or not body.startswith(b"{"):
        return None
    try:
        offset = json.loads(body).get("tx_offset")
    except ValueError:
        return None
    return offset if isinstance(offset, int) and not isinstance(offset, bool) else None


def _min_offset(request: web.Request) -> int:
    """The request's ``Cosmictron-Min-Offset`` (0 without one)."""
    wanted = request.headers.get(MIN_OFFSET)
    if wanted is None:
        return 0
    try:
        return int(wanted)
    except ValueError:
        raise InvalidRequest(
            f"{MIN_OFFSET} must be an offset (a non-negative integer), not {wanted!r}"
        ) from None


async def _wait_min_offset(request: web.Request, follower: Follower) -> None:
    offset = _min_offset(request)
    if follower.applied < offset:
        await asyncio.to_thread(follower.wait_applied, offset, APPLY_WAIT_S)


def _mark_applied(
    request: web.Request, response: web.StreamResponse, registry: Any, name: str
) -> None:
    follower = registry.follower(name)
    if follower is not None:
        behind = follower.applied < _min_offset(request)
        response.headers[APPLIED_OFFSET] = str(follower.applied)
        response.headers[STALE] = "true" if follower.stale or behind else "false"
        return
    try:
        hosted = registry.get(name)
    except Exception:  # the database went away meanwhile: nothing to say
        return
    response.headers[APPLIED_OFFSET] = str(hosted.db.tx_offset)
    # A leader without word from a quorum (renewals, acks) may be deposed, or stuck.
    response.headers[STALE] = "false" if registry.stale_since(hosted) is None else "true"
