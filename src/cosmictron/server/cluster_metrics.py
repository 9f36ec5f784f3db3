"""``/metrics``' cluster-mode series (issue 19): replication lag, append latency, failovers.

Added to the exposition only when the server runs with ``--cluster``; docs/reference/
http.md lists them. Per database, as the other per-database series, so the same scope
applies (``server/metrics.scope_of``): the operator and the scrape token see every
database of the cluster, an owner the databases it owns that this node hosts.

- ``cosmictron_cluster_stream_offset``: the last offset of the database's stream, the
  commit log as JetStream has it (read at scrape time, ``cluster.metrics.stream_positions``);
- ``cosmictron_cluster_replication_lag_records``: that minus the offset this node has
  applied, for the databases it hosts (0 on a leader once its appends are acknowledged);
- ``cosmictron_cluster_leader``: 1 where this node leads the database;
- ``cosmictron_cluster_append_seconds``: histogram, publish to JetStream ack per record;
- ``cosmictron_cluster_takeovers_total{kind}``: leases this node took over (``expired``:
  a failover; ``handover``: a planned one);
- ``cosmictron_cluster_handovers_total``: databases this node handed over;
- ``cosmictron_cluster_lease_renewals_failed_total{reason}``: ``lost`` (another node
  holds the lease now) or ``error`` (JetStream did not answer).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from cosmictron.cluster.metrics import CLUSTER_METRICS
from cosmictron.server.registry import DatabaseRegistry


class Exposition(Protocol):
    """``server.metrics.Exposition``, as far as these series use it (named here so that
    ``metrics.py`` imports this module and not the other way round)."""

    def add(
        self, name: str, kind: str, help_text: str, labels: dict[str, str], value: float
    ) -> None: ...

    def add_histogram(
        self,
        name: str,
        help_text: str,
        labels: dict[str, str],
        buckets: list[int],
        total: float,
        count: int,
    ) -> None: ...


def cluster_series(
    out: Exposition,
    registry: DatabaseRegistry,
    positions: dict[str, int],
    visible: Collection[str] | None,
) -> None:
    """Add the cluster series of every database in ``positions`` (or hosted here) that
    the caller may see (``visible``; None: all)."""
    cluster = registry.cluster
    if cluster is None:
        return
    hosted = set(registry.names())
    names = sorted(set(positions) | hosted)
    if visible is not None:
        names = [name for name in names if name in visible]
    for name in names:
        labels = {"database": name}
        last = positions.get(name)
        if last is not None:
            out.add(
                "cosmictron_cluster_stream_offset",
                "gauge",
                "The last offset of the database's replicated log (its JetStream stream).",
                labels,
                last,
            )
            if name in hosted:
                applied = registry.get(name).db.tx_offset
                out.add(
                    "cosmictron_cluster_replication_lag_records",
                    "gauge",
                    "Records of the stream this node has not applied yet.",
                    labels,
                    max(0, last - applied),
                )
        out.add(
            "cosmictron_cluster_leader",
            "gauge",
            "1 where this node leads the database, else 0.",
            labels,
            1 if cluster.leads(name) else 0,
        )
        histogram = CLUSTER_METRICS.snapshot_append(name)
        if histogram is not None:
            out.add_histogram(
                "cosmictron_cluster_append_seconds",
                "From publishing a record to JetStream's acknowledgement (stored on a quorum).",
                labels,
                histogram.buckets,
                histogram.total,
                histogram.count,
            )
        for kind in ("expired", "handover"):
            out.add(
                "cosmictron_cluster_takeovers_total",
                "counter",
                "Leases this node took over: expired (a failover) or handed to it (planned).",
                {**labels, "kind": kind},
                CLUSTER_METRICS.takeovers[(name, kind)],
            )
        out.add(
            "cosmictron_cluster_handovers_total",
            "counter",
            "Planned stepdowns: this node handed the database to the node placement chose.",
            labels,
            CLUSTER_METRICS.handovers[name],
        )
        for reason in ("lost", "error"):
            out.add(
                "cosmictron_cluster_lease_renewals_failed_total",
                "counter",
                "Lease renewals refused (lost: another node holds it) or not made (error).",
                {**labels, "reason": reason},
                CLUSTER_METRICS.renewals_failed[(name, reason)],
            )
