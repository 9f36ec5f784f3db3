"""Placement of many databases over many cluster nodes, simulated (issue 19 part 7).

docs/design/cluster.md proposes the rule: each database's three copies (leader and two
replicas) go to the nodes with the highest rendezvous score ``hash(database, node)``,
skipping a node whose load would pass ``(1 + epsilon)`` times the mean (bounded loads);
the leader is the first of the three with room to lead (its leaders' load under the
same cap), else the first. This script places N databases over M nodes by
that rule and by two peers measured in the same run, and reports:

- the load per node (leaders and all copies, weighted by each database's load, drawn
  from a heavy-tailed distribution with a fixed seed): max, p99 and min over the mean;
- movement when one node joins and when one leaves: the fraction of databases whose
  leader moves and of copies that move, next to the minimum any rule must move
  (1/(M+1) on a join; the departing node's share on a leave);
- what the cluster carries at that size: streams per server, lease traffic in the KV.

Peers: plain rendezvous (no cap: the least movement, the worst balance) and ``hash mod
M`` (the naive rule: moves almost everything on any change). Only the standard library.

    python bench/cluster_placement.py            # 10,000 databases over 100 nodes
    python bench/cluster_placement.py --quick    # 1,000 over 20
"""

from __future__ import annotations

import hashlib
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine_info, parse_args, run_took, text_table, write_results

COPIES = 3
EPSILON = 0.25
LEASE_RENEW_S = 2.0
"""A leader renews its lease a few times per lease (issue 19: 10 s failover budget)."""

Placement = dict[str, list[str]]
"""Database name -> its nodes, leader first."""


@dataclass(frozen=True)
class Settings:
    databases: int
    nodes: int
    copies: int
    epsilon: float
    seed: int
    lease_renew_s: float


def score(database: str, node: str) -> int:
    digest = hashlib.blake2b(f"{database}\0{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(
    databases: Sequence[str], weights: dict[str, float], nodes: Sequence[str], cap: float | None
) -> Placement:
    """Top-``COPIES`` nodes by score; with ``cap``, skip nodes whose load would pass it.

    Databases are placed heaviest first (a deterministic order every node computes the
    same way from the placement record's inputs), which keeps the capped rule close to
    the uncapped one for the many light databases.
    """
    total = sum(weights[d] for d in databases) * COPIES
    limit = None if cap is None else (1 + cap) * total / len(nodes)
    leader_limit = None if cap is None else (1 + cap) * total / COPIES / len(nodes)
    load = dict.fromkeys(nodes, 0.0)
    leading = dict.fromkeys(nodes, 0.0)
    placed: Placement = {}
    for database in sorted(databases, key=lambda d: (-weights[d], d)):
        ranked = sorted(nodes, key=lambda n: score(database, n), reverse=True)
        chosen = []
        for node in ranked:
            if limit is not None and load[node] + weights[database] > limit:
                continue
            chosen.append(node)
            if len(chosen) == COPIES:
                break
        for node in ranked:  # every node is full: fall back to the plain order
            if len(chosen) == COPIES:
                break
            if node not in chosen:
                chosen.append(node)
        if leader_limit is not None:  # lead on the first copy with room to lead
            for i, node in enumerate(chosen):
                if leading[node] + weights[database] <= leader_limit:
                    chosen.insert(0, chosen.pop(i))
                    break
        for node in chosen:
            load[node] += weights[database]
        leading[chosen[0]] += weights[database]
        placed[database] = chosen
    return placed


def modulo(
    databases: Sequence[str], weights: dict[str, float], nodes: Sequence[str], cap: float | None
) -> Placement:
    placed: Placement = {}
    for database in databases:
        first = score(database, "") % len(nodes)
        placed[database] = [nodes[(first + i) % len(nodes)] for i in range(COPIES)]
    return placed


def loads(
    placement: Placement, weights: dict[str, float], nodes: Sequence[str], leaders_only: bool
) -> dict[str, float]:
    load = dict.fromkeys(nodes, 0.0)
    for database, chosen in placement.items():
        for node in chosen[:1] if leaders_only else chosen:
            load[node] += weights[database]
    mean = statistics.fmean(load.values())
    ordered = sorted(load.values())
    return {
        "max_over_mean": ordered[-1] / mean,
        "p99_over_mean": ordered[int(0.99 * (len(ordered) - 1))] / mean,
        "min_over_mean": ordered[0] / mean,
        "stdev_over_mean": statistics.pstdev(ordered) / mean,
    }


def movement(before: Placement, after: Placement) -> dict[str, float]:
    leaders = sum(1 for d in before if before[d][0] != after[d][0])
    copies = sum(len(set(before[d]) - set(after[d])) for d in before)
    return {
        "leaders_moved": leaders / len(before),
        "copies_moved": copies / (COPIES * len(before)),
    }


def measure(
    rule: Callable[..., Placement],
    cap: float | None,
    databases: list[str],
    weights: dict[str, float],
    nodes: list[str],
) -> dict[str, object]:
    placed = rule(databases, weights, nodes, cap)
    joined_nodes = [*nodes, f"node-{len(nodes)}"]
    joined = rule(databases, weights, joined_nodes, cap)
    left_nodes = nodes[1:]
    left = rule(databases, weights, left_nodes, cap)
    on_departed = sum(1 for d in placed if nodes[0] in placed[d]) / len(placed)
    return {
        "leaders": loads(placed, weights, nodes, True),
        "copies": loads(placed, weights, nodes, False),
        "join": movement(placed, joined),
        "leave": movement(placed, left),
        "leave_minimum_copies_moved": on_departed / COPIES,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", "cluster_placement.json", argv)
    started = time.perf_counter()
    quick = args.mode == "quick"
    settings = Settings(
        databases=1_000 if quick else 10_000,
        nodes=20 if quick else 100,
        copies=COPIES,
        epsilon=EPSILON,
        seed=19,
        lease_renew_s=LEASE_RENEW_S,
    )
    rng = random.Random(settings.seed)
    databases = [f"db-{i:05d}" for i in range(settings.databases)]
    # Heavy-tailed loads: most databases are small, a few are busy (Pareto, alpha 1.5).
    weights = {d: rng.paretovariate(1.5) for d in databases}
    nodes = [f"node-{i}" for i in range(settings.nodes)]
    results = {
        "rendezvous_capped": measure(rendezvous, EPSILON, databases, weights, nodes),
        "rendezvous": measure(rendezvous, None, databases, weights, nodes),
        "modulo": measure(modulo, None, databases, weights, nodes),
    }
    scale = {
        "streams_per_server": settings.databases * COPIES / settings.nodes,
        "lease_cas_per_s": settings.databases / LEASE_RENEW_S,
        "join_minimum_moved": 1 / (settings.nodes + 1),
    }
    rows = []
    for name, figures in results.items():
        leaders, copies = figures["leaders"], figures["copies"]
        join, leave = figures["join"], figures["leave"]
        assert isinstance(leaders, dict) and isinstance(copies, dict)
        assert isinstance(join, dict) and isinstance(leave, dict)
        rows.append(
            [
                name,
                fmt(copies["max_over_mean"]),
                fmt(copies["p99_over_mean"]),
                fmt(leaders["max_over_mean"]),
                fmt(100 * join["copies_moved"]),
                fmt(100 * join["leaders_moved"]),
                fmt(100 * leave["copies_moved"]),
            ]
        )
    print(
        f"{settings.databases} databases x {COPIES} copies over {settings.nodes} nodes "
        f"(Pareto 1.5 loads, seed {settings.seed}, cap {1 + EPSILON:.2f} x mean)"
    )
    print(
        text_table(
            [
                "rule",
                "copies max/mean",
                "p99/mean",
                "leaders max/mean",
                "join: copies moved %",
                "leaders moved %",
                "leave: copies moved %",
            ],
            rows,
        )
    )
    capped, plain = results["rendezvous_capped"], results["rendezvous"]
    assert isinstance(capped["copies"], dict) and isinstance(plain["copies"], dict)
    ratio = capped["copies"]["max_over_mean"] / plain["copies"]["max_over_mean"]
    print(
        f"ratio: capped/plain rendezvous max load {ratio:.2f}; "
        f"minimum a join must move {100 * scale['join_minimum_moved']:.2f} %; "
        f"{scale['streams_per_server']:.0f} R3 streams per server; "
        f"{scale['lease_cas_per_s']:.0f} lease CAS/s"
    )
    print(run_took(started, args.mode))
    write_results(
        args.out,
        "cluster_placement",
        args.mode,
        settings,
        machine_info(args.tmpdir or "-"),
        started,
        results,
        scale=scale,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
