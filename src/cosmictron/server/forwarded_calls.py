"""Cluster mode: a reducer call over a follower's WebSocket runs on the database's leader.

Issue 19. A node that does not lead a database serves its WebSocket clients' reads and
subscriptions from its replica (``cluster/follower.py``); a reducer call there is a write,
so :class:`CallForwarder` sends it to the leader as HTTP forwarding does
(``server/forwarding.py``): ``POST <leader>/v1/database/<name>/call/<reducer>`` with the
client's token (the one its connection authenticated with, or was issued) and its
arguments as JSON, marked ``Cosmictron-Forwarded-By`` (forwarded once). The leader's reply
becomes the client's ``ReducerResult``: its return value (in the JSON form the HTTP
reply gives it) and ``tx_offset``, or its error code and message.

The result is delivered only once this node's replica has applied the call's
``tx_offset`` (at most ``forwarding.APPLY_WAIT_S``), so the client's own subscriptions
get the call's ``TransactionUpdate`` before its result, as on the leader.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from cosmictron.errors import ClusterUnavailable, CosmictronError
from cosmictron.host.transactions import CallOutcome
from cosmictron.server import forwarding
from cosmictron.server.routes import REGISTRY
from cosmictron.values import Timestamp


class CallForwarder:
    """Sends one WebSocket client's reducer calls to its database's leader (module doc).

    Args:
        app: the server's application (its registry, leader cache and client session).
        name: the database the client is connected to.
        token: the client's token, sent as its ``Authorization`` to the leader.
    """

    def __init__(self, app: web.Application, name: str, token: str) -> None:
        self.app = app
        self.name = name
        self.token = token

    def applies(self) -> bool:
        """Whether a call now goes to the leader: this node follows the database."""
        registry = self.app[REGISTRY]
        cluster = registry.cluster
        return (
            cluster is not None
            and not cluster.leads(self.name)
            and registry.follower(self.name) is not None
        )

    async def call(self, reducer: str, args: Any) -> CallOutcome:
        """Run ``reducer(args)`` on the leader; its outcome, once applied here.

        Raises:
            ClusterUnavailable: no leader now, or it did not answer (retry).
            CosmictronError: the leader's refusal, with its code and message.
        """
        registry = self.app[REGISTRY]
        cluster = registry.cluster
        assert cluster is not None  # applies() said so
        try:
            body = json.dumps(args).encode()
        except (TypeError, ValueError) as exc:
            error = CosmictronError(
                f"a call through a follower sends its arguments to the leader as JSON, "
                f"and these are not JSON: {exc}"
            )
            error.code = "invalid_request"
            raise error from None
        try:
            leader = await forwarding._leader(self.app, cluster, self.name)
        except Exception as exc:  # the leases did not answer: no quorum (as HTTP's)
            raise ClusterUnavailable(
                f"cannot find the leader of {self.name!r}: the cluster's KV did not answer "
                f"({exc!r}); {forwarding.NOTHING_RAN}; retry",
                forwarding.RETRY_AFTER_S,
            ) from exc
        if leader is None or leader[1] == cluster.url:
            raise ClusterUnavailable(
                f"database {self.name!r} has no leader right now (a failover is under way); "
                f"{forwarding.NOTHING_RAN}; retry",
                forwarding.RETRY_AFTER_S,
            )
        node, url = leader
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            forwarding.FORWARDED_BY: cluster.node_id,
        }
        path = f"/v1/database/{self.name}/call/{reducer}"
        try:
            async with forwarding._session(self.app).post(
                url + path, data=body, headers=headers
            ) as answer:
                status = answer.status
                data = await answer.read()
                retry_after = answer.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.app[forwarding.LEADERS].pop(self.name, None)
            raise ClusterUnavailable(
                f"the leader of {self.name!r} ({node} at {url}) did not answer: {exc!r}; retry",
                forwarding.RETRY_AFTER_S,
            ) from exc
        reply = _decode(data)
        if status != 200:
            if status == 503:
                self.app[forwarding.LEADERS].pop(self.name, None)
            raise _error(reply, status, node, retry_after)
        offset = int(reply["tx_offset"])
        follower = registry.follower(self.name)
        if follower is not None:
            await asyncio.to_thread(follower.wait_applied, offset, forwarding.APPLY_WAIT_S)
        now_us = int(time.time() * 1_000_000)
        return CallOutcome(reply.get("return_value"), offset, Timestamp(now_us))


def _decode(data: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(data or b"{}")
    except ValueError:
        return {}
    return reply if isinstance(reply, dict) else {}


class LeaderError(CosmictronError):
    """The leader's refusal of a forwarded call, as it answered it: its code (set on the
    instance), message, traceback and ``Retry-After`` (``retry_after_s``, None without)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _error(
    reply: dict[str, Any], status: int, node: str, retry_after: str | None = None
) -> LeaderError:
    """The leader's error document as an error with its code and message, and with its
    ``Retry-After`` as ``retry_after_s`` (a ``cluster_unavailable`` says when to retry)."""
    found = reply.get("error")
    document: dict[str, Any] = found if isinstance(found, dict) else {}
    message = str(document.get("message") or f"the leader {node} answered {status}")
    error = LeaderError(message, _seconds(retry_after))
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
