"""Subscription benchmark: maintenance cost per transaction, and join delta vs re-evaluation.

    .venv/bin/python bench/subscriptions.py [--quick] [--out bench/results/subscriptions.json]
        [--tmpdir DIR]

One database (``development`` profile: fsync never, so only maintenance is measured)
with two tables, ``author(id pk, name, region)`` and ``post(id pk, author_id btree,
topic, score)``, both holding ``rows`` rows (100,000; ``--quick`` 5,000). The workload
is one reducer call per transaction inserting one ``post`` row whose author cycles
through all authors. Its cost (µs per transaction, time-bounded loops) is measured:

- ``baseline``: with no subscriptions;
- ``same_1`` / ``same_100`` / ``same_1000``: with 1, 100 or 1000 subscribers of the
  same join query ``JOIN_SQL`` (region ``'eu'``);
- ``param_100`` / ``param_1000``: with 100 or 1000 subscriptions to ``PARAM_SQL``, each
  with a different ``:r`` (distinct regions);
- ``feed_1000``: 1000 subscriptions to ``FEED_SQL`` (one author's posts), each with a
  different ``:a``: queries that differ in a constant on the changed table itself;
- ``rls_1000``: 1000 clients (non-owners) each subscribed to ``SELECT * FROM post``
  under the visibility filter ``owner = :sender``: row-level security per client;
- ``semi_counted`` / ``semi_reevaluated``: one subscription to the posts of the 'eu'
  authors written as a semi-join, ``SEMI_SQL`` (``author_id IN (SELECT id FROM author
  WHERE region = 'eu')``, kept by counting per key), and the same query with a
  ``LIMIT`` inside that changes nothing but sends it to re-evaluation
  (``SEMI_REEVALUATED_SQL``): the price of re-running a query per transaction.

Maintenance is the time the commit path spends in the subscription manager (computing
deltas and calling the subscribers' callbacks), measured inside it
(``Database.subscription_statistics``), per transaction. A scenario's total minus the
baseline measured next to it is kept in the JSON too, but at a few µs it is mostly noise.
Finally the join delta (``same_1`` maintenance) is set against ``db.sql(JOIN_SQL)`` evaluating the
join from scratch on the full tables. Prints a table and writes JSON; no target is
asserted. See bench/README.md, "Subscriptions".
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    fmt,
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

import cosmictron  # noqa: E402
from cosmictron import DurabilityConfig  # noqa: E402

MODULE_SOURCE = '''\
"""Written by bench/subscriptions.py: authors and their posts."""

from cosmictron import Identity, ReducerContext, field, reducer, table, visibility_filter


@table(name="author", public=True)
class Author:
    id: int = field(primary_key=True)
    name: str = ""
    region: str = field(default="", index="hash")


@table(name="post", public=True)
class Post:
    id: int = field(primary_key=True)
    author_id: int = field(default=0, index="btree")
    topic: str = ""
    score: int = 0
    owner: Identity = field(default=Identity.zero(), index="hash")


OWN_POSTS = visibility_filter("SELECT * FROM post WHERE owner = :sender")


@reducer
def insert_post(
    ctx: ReducerContext, id: int, author_id: int, topic: str, score: int, owner: Identity
) -> None:
    ctx.db.post.insert(Post(id=id, author_id=author_id, topic=topic, score=score, owner=owner))
'''

# Written author first: that order evaluates from the region index (initial rows and
# db.sql about 1 ms at 100k rows); POST_FIRST_SQL is the same join in the other order,
# which the planner evaluates by scanning post (timed too, as a second full figure).
JOIN_SQL = (
    "SELECT post.* FROM author JOIN post ON post.author_id = author.id WHERE author.region = 'eu'"
)
PARAM_SQL = (
    "SELECT post.* FROM author JOIN post ON post.author_id = author.id WHERE author.region = :r"
)
FEED_SQL = "SELECT * FROM post WHERE author_id = :a"
SEMI_SQL = "SELECT * FROM post WHERE author_id IN (SELECT id FROM author WHERE region = 'eu')"
SEMI_REEVALUATED_SQL = (
    "SELECT * FROM post WHERE author_id IN "
    "(SELECT id FROM author WHERE region = 'eu' LIMIT 1000000000)"
)
RLS_SQL = "SELECT * FROM post"
POST_FIRST_SQL = (
    "SELECT post.* FROM post JOIN author ON post.author_id = author.id WHERE author.region = 'eu'"
)

# 1000 regions, 'eu' first: author i is in REGIONS[i % 1000], so each region holds
# rows/1000 authors, and the 1000 parameterised queries name 1000 distinct regions.
REGIONS = ["eu", *(f"r{i:03d}" for i in range(1, 1000))]
TOPICS = [f"topic-{i:02d}" for i in range(50)]
NAMES = [f"author-{i:04d}" for i in range(1024)]
CLIENTS = [cosmictron.Identity(i.to_bytes(32, "big")) for i in range(1, 1001)]


@dataclasses.dataclass(frozen=True)
class Settings:
    seconds: float  # per scenario (and per adjacent baseline)
    rounds: int  # slices per scenario
    rows: int  # rows in each table
    full_evals: int  # db.sql(JOIN_SQL) runs timed (best and mean reported)

    @property
    def slice_seconds(self) -> float:
        return self.seconds / self.rounds


FULL = Settings(seconds=2.4, rounds=3, rows=100_000, full_evals=5)
QUICK = Settings(seconds=0.2, rounds=2, rows=5_000, full_evals=3)
SMOKE = Settings(seconds=0.05, rounds=1, rows=500, full_evals=1)
"""``--smoke``: every scenario once, briefly (the test suite's run; figures meaningless)."""

Subscribe = tuple[str, dict[str, Any] | None, Any]  # sql, params, sender (None: owner)

# (key, description, subscriptions)
SCENARIOS: list[tuple[str, str, list[Subscribe]]] = [
    ("same_1", "1 subscription, join query", [(JOIN_SQL, None, None)]),
    ("same_100", "100 subscribers, same join query", [(JOIN_SQL, None, None)] * 100),
    ("same_1000", "1000 subscribers, same join query", [(JOIN_SQL, None, None)] * 1000),
    (
        "param_100",
        "100 different parameterised join queries",
        [(PARAM_SQL, {"r": r}, None) for r in REGIONS[:100]],
    ),
    (
        "param_1000",
        "1000 different parameterised join queries",
        [(PARAM_SQL, {"r": r}, None) for r in REGIONS[:1000]],
    ),
    (
        "feed_1000",
        "1000 different author feeds (author_id = :a)",
        [(FEED_SQL, {"a": a}, None) for a in range(1000)],
    ),
    (
        "rls_1000",
        "1000 clients, SELECT * under a visibility filter",
        [(RLS_SQL, None, client) for client in CLIENTS],
    ),
    ("semi_counted", "1 semi-join (IN subquery), counted", [(SEMI_SQL, None, None)]),
    (
        "semi_reevaluated",
        "the same semi-join, re-evaluated",
        [(SEMI_REEVALUATED_SQL, None, None)],
    ),
]


class Bench:
    def __init__(self, parent: str, rows: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="cosmictron-subs-", dir=parent)
        module = Path(self.dir) / "subs_module.py"
        module.write_text(MODULE_SOURCE)
        self.rows = rows
        self.db = cosmictron.Database.open(
            str(Path(self.dir) / "db"),
            module=str(module),
            durability=DurabilityConfig.from_profile("development"),
        )
        self.db.bulk_insert(
            "author", [(i, NAMES[i & 1023], REGIONS[i % 1000]) for i in range(rows)]
        )
        self.db.bulk_insert("post", [self.post_values(i) for i in range(rows)])
        self.next_id = rows
        self.updates = 0

    def post_values(self, i: int) -> tuple[int, int, str, int, Any]:
        # author (i * 7919) % rows: every author in turn, not in id order.
        return (i, (i * 7919) % self.rows, TOPICS[i % 50], i % 1000, CLIENTS[i % 1000])

    def on_update(self, update: Any) -> None:
        self.updates += 1

    def insert_loop(self, seconds: float) -> tuple[int, float]:
        """Insert posts one per transaction for ``seconds``; return (count, elapsed)."""
        gc.collect()
        call = self.db.call
        values = self.post_values
        i = self.next_id
        clock = time.perf_counter
        start = clock()
        deadline = start + seconds
        while clock() < deadline:
            call("insert_post", *values(i))
            i += 1
        elapsed = clock() - start
        done = i - self.next_id
        self.next_id = i
        return done, elapsed

    def per_tx_us(self, seconds: float, rounds: int) -> float:
        done = 0
        spent = 0.0
        for _ in range(rounds):
            n, t = self.insert_loop(seconds / rounds)
            done += n
            spent += t
        return spent / done * 1e6

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(settings: Settings, parent: str) -> dict[str, Any]:
    bench = Bench(parent, settings.rows)
    try:
        results: dict[str, Any] = {}
        baselines: list[float] = []
        before = bench.per_tx_us(settings.seconds, settings.rounds)
        baselines.append(before)
        for key, label, subs in SCENARIOS:
            expected = len(list(bench.db.sql(JOIN_SQL)))
            started = time.perf_counter()
            handles = [
                bench.db.subscribe([sql], on_update=bench.on_update, params=params, sender=sender)
                for sql, params, sender in subs
            ]
            subscribe_seconds = time.perf_counter() - started
            distinct = bench.db.core.subscriptions.query_count
            initial = handles[0].initial["tables"]
            if key == "same_1" and len(initial[0]["rows"] if initial else []) != expected:
                raise AssertionError("subscription's initial rows differ from db.sql's")
            bench.updates = 0
            start_id = bench.next_id
            spent_before = bench.db.subscription_statistics()["maintenance_seconds"]
            total = bench.per_tx_us(settings.seconds, settings.rounds)
            transactions = bench.next_id - start_id
            spent = bench.db.subscription_statistics()["maintenance_seconds"] - spent_before
            updates = bench.updates
            for handle in handles:
                handle.unsubscribe()
            after = bench.per_tx_us(settings.seconds, settings.rounds)
            baselines.append(after)
            baseline = (before + after) / 2
            results[key] = {
                "label": label,
                "subscriptions": len(handles),
                "distinct_queries": distinct,
                "total_us_per_tx": total,
                "baseline_us_per_tx": baseline,
                # Timed inside the commit listener, where the work is done: the
                # difference with the baseline is too noisy at a few µs.
                "maintenance_us_per_tx": spent / transactions * 1e6 if transactions else None,
                "total_minus_baseline_us_per_tx": total - baseline,
                "transactions": transactions,
                "updates_delivered": updates,
                "updates_per_tx": updates / transactions if transactions else None,
                "subscribe_seconds": subscribe_seconds,
            }
            before = after
        results["baseline"] = {
            "label": "no subscriptions",
            "us_per_tx": sum(baselines) / len(baselines),
            "slices_us_per_tx": baselines,
        }
        # Full re-evaluation: the same join from scratch on the full tables.
        times: dict[str, list[float]] = {JOIN_SQL: [], POST_FIRST_SQL: []}
        got = 0
        for _ in range(settings.full_evals):
            for sql, spent in times.items():
                gc.collect()
                t = time.perf_counter()
                got = len(list(bench.db.sql(sql)))
                spent.append(time.perf_counter() - t)
        post_first = times[POST_FIRST_SQL]
        times_ = times[JOIN_SQL]
        delta = results["same_1"]["maintenance_us_per_tx"]
        full_us = min(times_) * 1e6
        results["join_delta_vs_full"] = {
            "rows_per_table": settings.rows,
            "post_rows_at_eval": bench.next_id,
            "result_rows": got,
            "delta_us_per_tx": delta,
            "full_eval_us_best": full_us,
            "full_eval_us_mean": sum(times_) / len(times_) * 1e6,
            "full_over_delta": full_us / delta if delta > 0 else None,
            "full_eval_post_first_us_best": min(post_first) * 1e6,
            "full_post_first_over_delta": min(post_first) * 1e6 / delta if delta > 0 else None,
        }
        counted = results["semi_counted"]["maintenance_us_per_tx"]
        reevaluated = results["semi_reevaluated"]["maintenance_us_per_tx"]
        results["semijoin_counted_vs_reevaluated"] = {
            "counted_us_per_tx": counted,
            "reevaluated_us_per_tx": reevaluated,
            "reevaluated_over_counted": reevaluated / counted if counted else None,
        }
        return results
    finally:
        bench.close()


def table_text(results: dict[str, Any]) -> str:
    header = ("scenario", "subs", "total µs/tx", "maintenance µs/tx", "updates/tx")
    base = results["baseline"]["us_per_tx"]
    lines = [("no subscriptions (baseline)", "0", fmt(base), "-", "-")]
    for key, _, _ in SCENARIOS:
        r = results[key]
        lines.append(
            (
                r["label"],
                str(r["subscriptions"]),
                fmt(r["total_us_per_tx"]),
                fmt(r["maintenance_us_per_tx"]),
                f"{r['updates_per_tx']:.3f}",
            )
        )
    out = [text_table(header, lines)]
    j = results["join_delta_vs_full"]
    ratio = "n/a" if j["full_over_delta"] is None else f"{j['full_over_delta']:,.0f}x"
    out.append("")
    out.append(
        f"join delta vs full re-evaluation ({j['rows_per_table']:,} authors, "
        f"{j['post_rows_at_eval']:,} posts): "
        f"delta {fmt(j['delta_us_per_tx'])} µs/tx, db.sql full join "
        f"{fmt(j['full_eval_us_best'])} µs (best of runs, {j['result_rows']:,} rows); "
        f"full / delta = {ratio}"
    )
    if j["full_post_first_over_delta"] is not None:
        out.append(
            f"same join written post first (scans post): "
            f"{fmt(j['full_eval_post_first_us_best'])} µs; "
            f"full / delta = {j['full_post_first_over_delta']:,.0f}x"
        )
    semi = results["semijoin_counted_vs_reevaluated"]
    if semi["reevaluated_over_counted"] is not None:
        out.append(
            f"semi-join counted {fmt(semi['counted_us_per_tx'])} µs/tx vs re-evaluated "
            f"{fmt(semi['reevaluated_us_per_tx'])} µs/tx: "
            f"re-evaluated / counted = {semi['reevaluated_over_counted']:,.0f}x"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "subscriptions.json", argv)
    settings = SMOKE if args.smoke else QUICK if args.quick else FULL
    started = time.perf_counter()
    with temp_parent(args.tmpdir, "cosmictron-bench-subs-") as parent:
        results = measure(settings, parent)
        machine = machine_info(parent)
    print(table_text(results))
    print(f"\n{run_took(started, args.mode)}")
    queries = {
        "join": JOIN_SQL,
        "parameterised": PARAM_SQL,
        "feed": FEED_SQL,
        "row_level_security": RLS_SQL,
        "post_first": POST_FIRST_SQL,
        "semijoin": SEMI_SQL,
        "semijoin_reevaluated": SEMI_REEVALUATED_SQL,
    }
    write_results(
        args.out, "subscriptions", args.mode, settings, machine, started, results, queries=queries
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
