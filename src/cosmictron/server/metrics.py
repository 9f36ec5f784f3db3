"""``GET /metrics``: the server's state in the Prometheus text format (version 0.0.4).

Everything is read at scrape time from counters the layers already keep (reducer tallies
in ``host/metrics.py``, the commit log's sync counters, subscription counts), so
serving metrics costs the hot paths nothing extra. Rates (transactions/s, calls/s) are
the scraper's job: ``rate(cosmictron_transactions_total[1m])``. Each series carries a
``database`` label; docs/reference/http.md lists them.

Who sees what (``scope_of``): per-database series count private tables and rows that
visibility filters hide from most readers, so they go only to the operator, to a
scraper holding the *scrape token* (``DATA_DIR/server/metrics.token``, made on first
start, mode 0600; Prometheus sends it with ``authorization: {credentials_file: ...}``),
and to a database's owner for the databases it owns. Anyone else, anonymous included,
gets the server-wide series only: how many databases and connections, nothing about
any database's contents or traffic.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Collection, Iterable
from pathlib import Path

from aiohttp import web

from cosmictron.cluster.stream_positions import stream_positions
from cosmictron.host.metrics import BUCKETS_S
from cosmictron.server.auth import ANONYMOUS
from cosmictron.server.cluster_metrics import cluster_series
from cosmictron.server.connection_caps import GUARD, ConnectionGuard
from cosmictron.server.registry import DatabaseRegistry, HostedDatabase
from cosmictron.server.rights import write_secret_durably
from cosmictron.server.routes import REGISTRY, RIGHTS, caller_of
from cosmictron.server.websocket import CLIENTS
from cosmictron.server.websocket_client import WebSocketClient

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SCRAPE_TOKEN_FILE = "metrics.token"
SCRAPE_TOKEN = web.AppKey("metrics_scrape_token", str)


def load_or_create_scrape_token(directory: Path) -> str:
    """The scrape token in ``directory/metrics.token``, made (0600) on first start."""
    path = directory / SCRAPE_TOKEN_FILE
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_secret_durably(path, (token + "\n").encode())
    return token


class Exposition:
    """Collects samples grouped by metric name, each with its HELP and TYPE once."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self, name: str, kind: str, help_text: str, labels: dict[str, str], value: float
    ) -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        family[2].append(f"{name}{_labels(labels)} {_number(value)}")

    def add_histogram(
        self,
        name: str,
        help_text: str,
        labels: dict[str, str],
        buckets: list[int],
        total: float,
        count: int,
    ) -> None:
        family = self._families.setdefault(name, ("histogram", help_text, []))
        cumulative = 0
        for bound, in_bucket in zip([*BUCKETS_S, float("inf")], buckets, strict=True):
            cumulative += in_bucket
            le = "+Inf" if bound == float("inf") else _number(bound)
            family[2].append(f"{name}_bucket{_labels({**labels, 'le': le})} {cumulative}")
        family[2].append(f"{name}_sum{_labels(labels)} {_number(total)}")
        family[2].append(f"{name}_count{_labels(labels)} {count}")

    def text(self) -> str:
        lines = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def render(
    registry: DatabaseRegistry,
    clients: Iterable[WebSocketClient] = (),
    visible: Collection[str] | None = None,
    guard: ConnectionGuard | None = None,
    cluster_positions: dict[str, int] | None = None,
) -> str:
    """The exposition: server-wide series, then per-database series of the databases in
    ``visible`` (None: every database); in cluster mode, the cluster's series
    (``cluster_metrics.py``) with each stream's last offset in ``cluster_positions``."""
    out = Exposition()
    names = registry.names()
    out.add("cosmictron_databases", "gauge", "Databases this server hosts.", {}, len(names))
    if guard is not None:
        _connections(out, guard)
    if visible is not None:
        names = [name for name in names if name in visible]
    by_database: dict[str, list[WebSocketClient]] = {name: [] for name in names}
    for client in clients:
        if not client.closed and client.hosted.name in by_database:
            by_database[client.hosted.name].append(client)
    for name in names:
        _database(out, registry.get(name))
        _clients(out, name, by_database[name])
    if registry.cluster is not None:
        cluster_series(out, registry, cluster_positions or {}, visible)
    return out.text()


def _connections(out: Exposition, guard: ConnectionGuard) -> None:
    """Server-wide connection series (server/connections.py); no database in them."""
    out.add("cosmictron_connections_open", "gauge", "Open client connections.", {}, guard.open)
    out.add(
        "cosmictron_connections_max",
        "gauge",
        "Connections the server accepts in all (limits.connections_max, sized from "
        "RLIMIT_NOFILE); 0 when unbounded.",
        {},
        guard.total_max or 0,
    )
    out.add(
        "cosmictron_connections_refused_total",
        "counter",
        "Connections refused over a cap (503 too_many_connections).",
        {},
        guard.refused_total,
    )
    out.add(
        "cosmictron_requests_timed_out_total",
        "counter",
        "Requests whose head or body arrived too slowly (408 request_timeout).",
        {},
        guard.timed_out,
    )


def _clients(out: Exposition, name: str, clients: list[WebSocketClient]) -> None:
    labels = {"database": name}
    depths = [client.queue_depth for client in clients]
    out.add(
        "cosmictron_connected_clients", "gauge", "Open WebSocket sessions.", labels, len(clients)
    )
    out.add(
        "cosmictron_client_queue_messages",
        "gauge",
        "Messages queued for WebSocket clients, summed over the database's sessions.",
        labels,
        sum(depths),
    )
    out.add(
        "cosmictron_client_queue_messages_max",
        "gauge",
        "The longest single client queue (past limits.client_queue_messages_max the client "
        "is disconnected).",
        labels,
        max(depths, default=0),
    )


def _database(out: Exposition, hosted: HostedDatabase) -> None:
    db = hosted.db
    labels = {"database": hosted.name}
    stats = db.statistics()
    log = db.persistence_statistics()
    subs = db.subscription_statistics()
    out.add(
        "cosmictron_transactions_total",
        "counter",
        "Committed transactions (the log offset); rate() gives transactions/s.",
        labels,
        stats.tx_offset,
    )
    out.add(
        "cosmictron_durable_offset",
        "gauge",
        "The newest transaction on disk under the fsync policy.",
        labels,
        stats.durable_offset,
    )
    out.add("cosmictron_rows", "gauge", "Rows in all tables.", labels, stats.row_count)
    out.add(
        "cosmictron_memory_bytes",
        "gauge",
        "Estimated bytes held by the tables.",
        labels,
        stats.estimated_bytes,
    )
    out.add("cosmictron_fsync_total", "counter", "Commit log syncs.", labels, log.syncs)
    out.add(
        "cosmictron_fsync_seconds_total",
        "counter",
        "Time spent in commit log syncs; divide by cosmictron_fsync_total for the mean.",
        labels,
        log.sync_seconds_total,
    )
    out.add(
        "cosmictron_fsync_last_seconds",
        "gauge",
        "Latency of the latest sync.",
        labels,
        log.last_sync_latency_s,
    )
    out.add(
        "cosmictron_log_bytes_written_total",
        "counter",
        "Bytes appended to the commit log.",
        labels,
        log.bytes_written,
    )
    out.add(
        "cosmictron_subscriptions",
        "gauge",
        "Active subscriptions.",
        labels,
        subs["subscriptions"],
    )
    out.add(
        "cosmictron_subscription_maintenance_seconds_total",
        "counter",
        "Time commits spent computing and delivering subscription updates.",
        labels,
        subs["maintenance_seconds"],
    )
    out.add(
        "cosmictron_subscription_queries",
        "gauge",
        "Distinct live queries maintained (identical queries count once).",
        labels,
        subs["queries"],
    )
    _anchoring(out, hosted, labels)
    for reducer, tally in sorted(db.reducer_metrics.snapshot().items()):
        reducer_labels = {**labels, "reducer": reducer}
        out.add(
            "cosmictron_reducer_calls_total",
            "counter",
            "Reducer calls, failed ones included.",
            reducer_labels,
            tally.calls,
        )
        out.add(
            "cosmictron_reducer_errors_total",
            "counter",
            "Reducer calls that failed (rolled back).",
            reducer_labels,
            tally.errors,
        )
        out.add_histogram(
            "cosmictron_reducer_duration_seconds",
            "From the call to its result being durable.",
            reducer_labels,
            tally.buckets,
            tally.seconds_total,
            tally.calls,
        )


def _anchoring(out: Exposition, hosted: HostedDatabase, labels: dict[str, str]) -> None:
    """RFC 3161 anchoring's series, for a database that anchors (durability/anchorer.py)."""
    anchorer = hosted.db.core.persistence.anchorer
    if anchorer is None:
        return
    seconds, records = anchorer.lag()
    out.add(
        "cosmictron_anchor_lag_seconds",
        "gauge",
        "Age of the oldest record no RFC 3161 anchor covers (0: every record is anchored).",
        labels,
        seconds,
    )
    out.add(
        "cosmictron_anchor_lag_records",
        "gauge",
        "Records from the oldest one no RFC 3161 anchor covers to the end of the log.",
        labels,
        records,
    )
    stats = anchorer.stats
    out.add(
        "cosmictron_anchors_total",
        "counter",
        "Anchor records written (one per TSA token).",
        labels,
        stats.anchors_written,
    )
    for reason, count in (("unavailable", stats.tsa_unavailable), ("invalid", stats.tsa_invalid)):
        out.add(
            "cosmictron_anchor_failures_total",
            "counter",
            "TSA requests that gave no anchor: unreachable, or a token that does not check.",
            {**labels, "reason": reason},
            count,
        )
    out.add(
        "cosmictron_anchor_overdue",
        "gauge",
        "1 while strict anchoring refuses commits (anchor_max_lag_ms passed), else 0.",
        labels,
        1 if anchorer.refusing else 0,
    )


def _stream_positions(registry: DatabaseRegistry) -> dict[str, int]:
    """Each cluster database's stream end (every database of the catalogue, or the hosted
    ones when the catalogue does not answer)."""
    cluster = registry.cluster
    assert cluster is not None
    try:
        names = sorted(cluster.catalogue())
    except Exception:  # no quorum: the hosted databases still get their figures if any
        names = registry.names()
    return stream_positions(cluster.connection, names)


def scope_of(request: web.Request) -> set[str] | None:
    """The databases whose series the caller may see; None for every database.

    The scrape token and the operator see all; an identity sees the databases it owns;
    anonymous callers none (server-wide series only).

    Raises:
        Unauthenticated: a token that is neither the scrape token nor a valid one (401).
    """
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scrape_token = request.app.get(SCRAPE_TOKEN)
    if (
        scrape_token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(value.strip().encode(), scrape_token.encode())
    ):
        return None
    caller = caller_of(request)
    if caller == ANONYMOUS:
        return set()
    if caller == request.app[RIGHTS].operator:
        return None
    registry = request.app[REGISTRY]
    return {name for name in registry.names() if registry.get(name).db.owner == caller}


async def metrics(request: web.Request) -> web.Response:
    visible = scope_of(request)
    clients: set[WebSocketClient] = request.app.get(CLIENTS, set())
    guard = request.app.get(GUARD)
    registry = request.app[REGISTRY]
    positions = None
    if registry.cluster is not None:  # JetStream requests: off the event loop
        positions = await asyncio.to_thread(_stream_positions, registry)
    text = render(registry, clients, visible, guard, positions)
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})
