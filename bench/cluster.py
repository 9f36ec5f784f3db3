"""Cluster benchmark: a three-node cluster next to one node, failover, replica lag (issue 19).

    .venv/bin/python bench/cluster.py [--quick] [--out FILE.json] [--tmpdir DIR]

Everything runs on this machine, on loopback: three ``nats-server`` (the ``cluster``
extra; JetStream file storage, ``sync_interval: always``), three Cosmictron nodes
(``cosmictron-cli start --cluster … --node-id …``) and, as the peer measured in the same
run, one single-node server. Both host the same module (``server_bench/workload.py``: one
insert per call) and are driven by the same load generator (``server.py --client``, its
own process, WebSocket JSON calls). Each figure:

- **calls/s**, closed loop (one call in flight per client; 1 and 16 clients) and
  pipelined (16 clients x 16 in flight), against the single node (``--profile
  production``: a call is answered once fsynced) and the cluster's leader (``--profile
  balanced`` locally; a call is answered once JetStream stored its record on a quorum),
  alternating slices so that drift hits both; prints cluster/single ratios;
- **failover**: SIGKILL of the leader, then the time until a call succeeds on another
  node (the lease TTL, catch-up, the epoch record); and a **planned** hand-over (SIGTERM
  of the leader: a node that leaves hands its databases over), the same clock. The killed
  node is restarted after each trial;
- **replica lag**, measured on the followers themselves: a closed-loop writer calls the
  leader; after each reply (``tx_offset`` N) it reads from a follower (the two in turn)
  and records how many offsets that follower's ``Cosmictron-Applied-Offset`` was behind
  N, and the time from the reply until a follower read that includes N answered (the
  first read, when the follower had applied N, else one that waits for it with
  ``Cosmictron-Min-Offset: N``; either way one HTTP round trip is in it). Beside it, the
  stream's own floor: a JetStream consumer on another connection records when it
  receives each offset (negative: before the caller had its answer).

Prints tables and ratios; writes JSON (bench/common.py). Timings on a shared machine are
noisy: label them loaded unless the machine was quiet.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from cluster_setup import nats_connection, nats_servers  # noqa: E402
from common import (  # noqa: E402
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)
from figures import distribution, ratio  # noqa: E402

NODES = ["a", "b", "c"]
DATABASE = "bench"
SHAPES = {"closed 1": (1, 1), "closed 16": (16, 1), "pipelined 16x16": (16, 16)}
FAILOVER_LIMIT_S = 180.0
FAILOVER_DATABASES = [DATABASE, "fresh"]
"""``bench`` has the throughput runs' records in its stream; ``fresh`` only a few, so its
failover is the protocol's cost (TTL, fencing) without a long catch-up."""


@dataclass(frozen=True)
class Settings:
    rounds: int
    warmup_s: float
    slice_s: float
    failover_trials: int
    lag_calls: int
    single_profile: str = "production"
    cluster_profile: str = "balanced"


def deploy(nodes: Any, node_id: str, source: bytes, name: str = DATABASE) -> None:
    from cosmictron.testing.cluster_nodes import http_json

    status, body = http_json(
        nodes.url(node_id), "PUT", f"/v1/database/{name}", None,
        nodes.operator_token(node_id), timeout=120, raw=source,
    )  # fmt: skip
    if status not in (200, 201):
        raise SystemExit(f"deploy on {node_id} failed: {status} {body}")


def leader_of(nodes: Any, database: str = DATABASE) -> str:
    """The node leading ``database`` now, as ``GET /v1/cluster`` on any live node says."""
    from cosmictron.testing.cluster_nodes import http_json

    for node_id in NODES:
        if not nodes.nodes[node_id].alive():
            continue
        try:
            status, body = http_json(nodes.url(node_id), "GET", "/v1/cluster", timeout=10)
        except OSError:
            continue
        if status == 200:
            for entry in body["databases"]:
                if entry["name"] == database and entry["leader"]:
                    return str(entry["leader"])
    raise RuntimeError("no node reports a leader")


def throughput(
    single: Any, cluster: Any, rounds: int, warmup: float, seconds: float
) -> dict[str, Any]:
    """Calls/s of each shape on both, alternating slices (order flipping each round)."""
    from server_bench.measure import combine, run_client
    from server_bench.workload import JSON_PROTOCOL

    results: dict[str, Any] = {"single": {}, "cluster": {}}
    for label, (clients, depth) in SHAPES.items():
        slices: dict[str, list[dict[str, Any]]] = {"single": [], "cluster": []}
        for round_index in range(rounds):
            order = ["single", "cluster"] if round_index % 2 == 0 else ["cluster", "single"]
            for way in order:
                nodes = single if way == "single" else cluster
                node_id = "s" if way == "single" else leader_of(cluster)
                url = nodes.url(node_id).replace("http://", "ws://")
                spec = {
                    "kind": "cosmictron",
                    "ws_url": f"{url}/v1/database/{DATABASE}/subscribe",
                    "clients": clients,
                    "depth": depth,
                    "warmup": warmup,
                    "seconds": seconds,
                    "protocol": JSON_PROTOCOL,
                }
                process = nodes.nodes[node_id].process
                print(f"[bench] {label} on {way} ...", file=sys.stderr)
                slices[way].append(
                    run_client(spec, lambda p=process: [p.pid], warmup + seconds + 120)
                )
        for way in ("single", "cluster"):
            results[way][label] = combine(slices[way], clients, depth)
    return results


def first_success_after(
    client: Any, database: str, survivors: list[str], started: float, limit: float
) -> float | None:
    """Seconds from ``started`` until a call of ``database`` succeeds on a survivor;
    None when none did within ``limit`` (reported as such, not an error: a new leader
    without the stream's records fetches them one by one first)."""
    n = 0
    while time.monotonic() - started < limit:
        for node_id in survivors:
            n += 1
            answer = client.request(
                node_id, "POST", f"/v1/database/{database}/call/add_task", [f"failover {n}", 1]
            )
            if answer.outcome == "ok":
                return time.monotonic() - started
        time.sleep(0.02)
    return None


def stream_records(nats_urls: list[str], database: str) -> int:
    """The records in ``database``'s stream: what a new leader without them must fetch."""
    from cosmictron.cluster.catchup import stream_last_offset

    with nats_connection(nats_urls, "bench-info") as connection:
        return stream_last_offset(connection, database)


def failovers(cluster: Any, client: Any, nats_urls: list[str], trials: int) -> dict[str, Any]:
    """Per database and kind (``sigkill``, ``planned``): seconds from the fault to the
    first call that succeeds elsewhere, and the stream's length at the fault."""
    out: dict[str, Any] = {
        database: {"sigkill": [], "planned": [], "stream_records": []}
        for database in FAILOVER_DATABASES
    }
    for trial in range(trials):
        for kind in ("sigkill", "planned"):
            for database in FAILOVER_DATABASES:
                leader = leader_of(cluster, database)
                survivors = [n for n in NODES if n != leader]
                out[database]["stream_records"].append(stream_records(nats_urls, database))
                print(f"[bench] {kind} of {leader}, leader of {database} (trial {trial + 1}) ...",
                      file=sys.stderr)  # fmt: skip
                started = time.monotonic()
                if kind == "sigkill":
                    cluster.kill(leader)
                else:
                    stopper = threading.Thread(target=cluster.stop, args=(leader,))
                    stopper.start()
                took = first_success_after(client, database, survivors, started, FAILOVER_LIMIT_S)
                out[database][kind].append(took)
                if kind == "planned":
                    stopper.join()
                cluster.start(leader)
                time.sleep(3.0)  # the restarted node's first lease rounds
    return out


def follower_read(url: str, min_offset: int | None) -> tuple[int, bool]:
    """A SQL read on a follower: ``(its Cosmictron-Applied-Offset, stale)``."""
    import urllib.request

    request = urllib.request.Request(
        f"{url}/v1/database/{DATABASE}/sql",
        data=b"SELECT COUNT(*) FROM task",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    if min_offset is not None:
        request.add_header("Cosmictron-Min-Offset", str(min_offset))
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        applied = int(response.headers["Cosmictron-Applied-Offset"])
        return applied, response.headers.get("Cosmictron-Stale") == "true"


def replica_lag(cluster: Any, client: Any, nats_urls: list[str], calls: int) -> dict[str, Any]:
    """Followers' offsets behind and time to visible per reply, and the stream's own lag."""
    from cosmictron.cluster.jetstream_log import log_subject

    received: dict[int, float] = {}
    replied: dict[int, float] = {}
    behind: list[float] = []
    visible_ms: list[float] = []
    stale = 0
    leader = leader_of(cluster)
    followers = [cluster.url(n) for n in NODES if n != leader]
    with nats_connection(nats_urls, "bench-tail") as connection:

        async def tail() -> Any:
            from nats.js.api import DeliverPolicy

            async def on_message(msg: Any) -> None:
                received[int(msg.metadata.sequence.stream)] = time.perf_counter()

            return await connection.js.subscribe(
                log_subject(DATABASE), cb=on_message, ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
            )  # fmt: skip

        subscription = connection.run(tail(), 30.0)
        time.sleep(0.5)
        for n in range(calls):
            answer = client.request(
                leader, "POST", f"/v1/database/{DATABASE}/call/add_task", [f"lag {n}", 1]
            )
            if answer.outcome != "ok":
                continue
            offset = int(answer.body["tx_offset"])
            at = replied[offset] = time.perf_counter()
            url = followers[n % len(followers)]
            applied, _ = follower_read(url, None)
            behind.append(float(max(0, offset - applied)))
            if applied < offset:
                applied, was_stale = follower_read(url, offset)
                stale += was_stale
            visible_ms.append((time.perf_counter() - at) * 1000)
        time.sleep(1.0)
        connection.run(subscription.unsubscribe(), 10.0)
    lags = [(received[o] - t) * 1000 for o, t in replied.items() if o in received]
    return {
        "calls": len(replied),
        "followers_offsets_behind": distribution(behind),
        "followers_applied_at_reply": sum(1 for b in behind if b == 0) / max(1, len(behind)),
        "follower_visible_ms": distribution(visible_ms),
        "follower_reads_stale": stale,
        "tail_missing": sum(1 for o in replied if o not in received),
        "tail_lag_ms": distribution(lags),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", "cluster.json", argv)
    from server_bench.workload import MODULE_SOURCE

    from cosmictron.testing.cluster_nodes import ClusterNodes, LeaderClient, http_json

    quick = args.mode == "quick"
    settings = Settings(
        rounds=2,
        warmup_s=1.0 if quick else 2.0,
        slice_s=2.0 if quick else 4.0,
        failover_trials=1,
        lag_calls=200 if quick else 1000,
    )
    started = time.perf_counter()
    with temp_parent(args.tmpdir, "cosmictron-bench-cluster-") as parent:
        machine = machine_info(parent)
        root = Path(parent)
        with nats_servers(root) as nats:
            single = ClusterNodes(root / "single", "", ["s"], ("--profile", "production"))
            cluster = ClusterNodes(root / "cluster", nats.url, NODES, ("--profile", "balanced"))
            try:
                single.start_all()
                cluster.start_all()
                deploy(single, "s", MODULE_SOURCE.encode())
                deploy(cluster, "a", MODULE_SOURCE.encode())
                deploy(cluster, "a", MODULE_SOURCE.encode(), "fresh")
                tokens = {}
                for node_id in NODES:
                    _, body = http_json(cluster.url(node_id), "POST", "/v1/identity", timeout=30)
                    tokens[node_id] = body["token"]
                client = LeaderClient(cluster, tokens, timeout=2.0, rng=random.Random(19))
                rates = throughput(
                    single, cluster, settings.rounds, settings.warmup_s, settings.slice_s
                )
                lag = replica_lag(cluster, client, nats.urls, settings.lag_calls)
                failover = failovers(cluster, client, nats.urls, settings.failover_trials)
            finally:
                cluster.stop_all()
                single.stop_all()
    results = {"calls_per_s": rates, "failover_s": failover, "replica_lag": lag}
    summary = [
        {
            "key": f"cluster_over_single_{label.replace(' ', '_')}",
            "ratio": ratio(
                rates["cluster"][label]["calls_per_s"], rates["single"][label]["calls_per_s"]
            ),
        }
        for label in SHAPES
    ]
    rows = [
        [
            label,
            f"{rates['single'][label]['calls_per_s']:.0f}",
            f"{rates['cluster'][label]['calls_per_s']:.0f}",
            f"{item['ratio']:.2f}x" if item["ratio"] is not None else "-",
            f"{rates['cluster'][label]['latency_ms']['p50'] or 0:.1f}",
            f"{rates['cluster'][label]['latency_ms']['p99'] or 0:.1f}",
        ]
        for label, item in zip(SHAPES, summary, strict=True)
    ]
    print("reducer calls/s over WebSocket: one node (fsync always) vs three-node cluster (R3)")
    print(
        text_table(
            ["shape", "single", "cluster", "cluster/single", "cluster p50 ms", "cluster p99 ms"],
            rows,
        )
    )
    for database, figures in failover.items():
        for kind in ("sigkill", "planned"):
            shown = ", ".join(
                f"{t:.2f} s" if t is not None else f"> {FAILOVER_LIMIT_S:.0f} s"
                for t in figures[kind]
            )
            print(
                f"failover of {database} ({max(figures['stream_records'])} records in its "
                f"stream), {kind}: {shown}"
            )
    tail = lag["tail_lag_ms"]
    behind, visible = lag["followers_offsets_behind"], lag["follower_visible_ms"]
    print(
        f"replica lag, {lag['calls']} calls: a follower read right after the reply had "
        f"applied it in {lag['followers_applied_at_reply']:.0%} of calls (offsets behind "
        f"p50 {behind['p50']:.0f}, p99 {behind['p99']:.0f}, max {behind['max']:.0f}); "
        f"reply -> a follower read includes it: p50 {visible['p50']:.2f} ms, "
        f"p99 {visible['p99']:.2f} ms ({lag['follower_reads_stale']} stale); "
        f"the stream's own (reply -> a JetStream tail has it): p50 {tail['p50']:.2f} ms, "
        f"p99 {tail['p99']:.2f} ms"
    )
    print(run_took(started, args.mode))
    write_results(
        args.out, "cluster", args.mode, settings, machine, started, results, summary=summary
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
