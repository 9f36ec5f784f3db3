"""Ledger benchmark: the RFC 9162 Merkle tree against plain hash chaining.

    .venv/bin/python bench/ledger.py [--quick] [--out bench/results/ledger.json] [--tmpdir DIR]

``records`` synthetic records of 200 bytes (200,000; ``--quick`` 20,000), hashed in one
process run by:

- ``peer chain``: the hashlib-only baseline, ``h = sha256(h || record)`` per record: the
  least any per-record integrity scheme costs (the commit log's hash chain today);
- ``append``: ``MerkleTree.append`` one record at a time (leaf hash, the subtree hashes
  it completes, the in-memory store), as the commit log will feed it;
- ``extend``: ``MerkleTree.extend`` over all records at once (rebuilding a store);
- ``append (file store)``: ``append`` into a ``FileHashStore`` in ``--tmpdir``;
- ``verify tree``: what ``verify`` does with the tree: stream every record through a
  ``Frontier`` and compare the root with a checkpoint every 1,000 records (goal
  >= 200k records/s, issue 13);
- ``verify inclusion`` / ``verify consistency``: proofs checked per second at the full
  size, for random leaves and random older sizes (each proof is ~log2(records) hashes);
- ``prove inclusion``: proofs produced per second from the stored hashes.

And the wired ledger, in-process reducer calls (one-row inserts, ``development``
profile: no fsync, so the ledger's own cost is what differs), interleaved runs:

- ``tx off`` (the peer of this part): ``signing = "off"``: records still carry origin,
  time and algorithm, hash-chained, no tree, nothing signed;
- ``tx checkpoint``: the Merkle tree fed and a signed checkpoint every 1,000 records
  (goal: at most 10 % slower than ``tx off``);
- ``tx event``: every record signed with Ed25519 as well;
- ``verify log``: ``cosmictron.ledger.verify`` over the per-event-signed log (every
  signature checked), and over the checkpointed one (records/s);
- ``commit-thread CPU``: the calling thread's CPU time per call in each mode (median of
  the runs), beside the wall rates: on a loaded machine wall time swings by tens of
  percent between runs while this moves by a few, but it does not see work moved to
  the ledger's thread (the side file's fsync) or time spent waiting.

Each rate is the best of three runs. Prints a table with each rate's ratio to the peer
chain and writes JSON; nothing is asserted. See bench/README.md, "Ledger".
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import statistics
import sys
import time
from collections.abc import Callable
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

from cosmictron.ledger.merkle import (  # noqa: E402
    FileHashStore,
    Frontier,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

VERIFY_GOAL = 200_000
CHECKPOINT_EVERY = 1000
CHECKPOINT_COST_GOAL = 0.10
SIGNING_MODES = ("off", "checkpoint", "event")

MODULE = """
from cosmictron import table, reducer, ReducerContext, field

@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@reducer
def add(ctx: ReducerContext, text: str) -> None:
    Item.insert(Item(text=text))
"""


@dataclasses.dataclass(frozen=True)
class Settings:
    records: int
    record_bytes: int = 200
    proofs: int = 20_000
    repeats: int = 3


def best_rate(count: int, work: Callable[[], Any], repeats: int) -> float:
    """``count / seconds`` of the fastest of ``repeats`` runs of ``work``."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return count / best


def peer_chain(records: list[bytes]) -> bytes:
    sha256 = hashlib.sha256
    h = bytes(32)
    for record in records:
        h = sha256(h + record).digest()
    return h


def append_all(records: list[bytes], tree: MerkleTree) -> None:
    for record in records:
        tree.append(record)


def verify_tree(records: list[bytes], checkpoints: dict[int, bytes]) -> None:
    frontier = Frontier()
    append = frontier.append
    for n, record in enumerate(records, start=1):
        append(leaf_hash(record))
        if n % CHECKPOINT_EVERY == 0 and frontier.root() != checkpoints[n]:
            raise AssertionError(f"root mismatch at {n}")


def database_rate(parent: str, signing: str, count: int, run: int) -> tuple[float, Path]:
    """Reducer calls per second into a new database with the ledger in ``signing`` mode."""
    rate, directory, _ = database_run(parent, signing, count, run)
    return rate, directory


def database_run(parent: str, signing: str, count: int, run: int) -> tuple[float, Path, float]:
    """``database_rate``, and the calling thread's CPU µs per call (``time.thread_time``):
    what the commit path costs, steadier than wall time on a loaded machine, and blind to
    work moved to other threads (the ledger's side-file fsync) and to waiting."""
    from cosmictron import Database, DurabilityConfig

    directory = Path(parent) / f"db-{signing}-{run}"
    module = Path(parent) / "app.py"
    module.write_text(MODULE)
    fields = {**vars(DurabilityConfig.from_profile("development")), "signing": signing}
    db = Database.open(directory, module=str(module), durability=DurabilityConfig(**fields))
    call = db.call
    cpu_started = time.thread_time()
    started = time.perf_counter()
    for _ in range(count):
        call("add", "x")
    took = time.perf_counter() - started
    cpu_us = (time.thread_time() - cpu_started) / count * 1e6
    db.close()
    return count / took, directory, cpu_us


def database_rates(
    parent: str, count: int, repeats: int
) -> tuple[dict[str, float], dict[str, Path]]:
    """Best tx/s per signing mode, the modes' runs interleaved so load drifts hit all."""
    best = dict.fromkeys(SIGNING_MODES, 0.0)
    logs: dict[str, Path] = {}
    for run in range(repeats):
        for signing in SIGNING_MODES:
            rate, directory, cpu_us = database_run(parent, signing, count, run)
            best[signing] = max(best[signing], rate)
            CPU_US.setdefault(signing, []).append(cpu_us)
            logs[signing] = directory
    return best, logs


CPU_US: dict[str, list[float]] = {}
"""Each run's commit-thread CPU µs per call, by signing mode (``database_run``)."""


def verify_rate(directory: Path, repeats: int) -> tuple[float, int]:
    from cosmictron.ledger import verify

    result = verify(directory)
    if not result.ok:
        raise AssertionError(f"the benchmark's log does not verify: {result.lines()}")
    return best_rate(result.records, lambda: verify(directory), repeats), result.records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", "ledger.json", argv, quick_help="20,000 records, seconds")
    started = time.perf_counter()
    settings = Settings(records=20_000 if args.quick else 200_000)
    if args.quick:
        settings = dataclasses.replace(settings, proofs=2_000)
    rng = random.Random(13)
    records = [rng.randbytes(settings.record_bytes) for _ in range(settings.records)]
    n, repeats = settings.records, settings.repeats
    rates: dict[str, float] = {}
    with temp_parent(args.tmpdir, "cosmictron-bench-ledger-") as parent:
        machine = machine_info(parent)
        rates["peer_chain"] = best_rate(n, lambda: peer_chain(records), repeats)
        rates["append"] = best_rate(n, lambda: append_all(records, MerkleTree()), repeats)
        rates["extend"] = best_rate(n, lambda: MerkleTree().extend(records), repeats)

        def append_file() -> None:
            path = Path(parent) / "tree.hashes"
            path.unlink(missing_ok=True)
            with FileHashStore(path) as store:
                append_all(records, MerkleTree(store))

        rates["append_file"] = best_rate(n, append_file, repeats)
        tree = MerkleTree()
        tree.extend(records)
        checkpoints = {s: tree.root(s) for s in range(CHECKPOINT_EVERY, n + 1, CHECKPOINT_EVERY)}
        rates["verify_tree"] = best_rate(n, lambda: verify_tree(records, checkpoints), repeats)

        indexes = [rng.randrange(n) for _ in range(settings.proofs)]
        root = tree.root()
        inclusion = [(tree.leaf(i), i, tree.inclusion_proof(i)) for i in indexes]

        def check_inclusion() -> None:
            for leaf, i, proof in inclusion:
                verify_inclusion(leaf, i, n, proof, root)

        olds = [rng.randrange(1, n) for _ in range(settings.proofs)]
        consistency = [(m, tree.root(m), tree.consistency_proof(m)) for m in olds]

        def check_consistency() -> None:
            for m, old_root, proof in consistency:
                verify_consistency(m, n, old_root, root, proof)

        def prove() -> None:
            for i in indexes:
                tree.inclusion_proof(i)

        proofs = settings.proofs
        rates["verify_inclusion"] = best_rate(proofs, check_inclusion, repeats)
        rates["verify_consistency"] = best_rate(proofs, check_consistency, repeats)
        rates["prove_inclusion"] = best_rate(proofs, prove, repeats)
        proof_hashes = sum(len(p) for _, _, p in inclusion) / len(inclusion)
        transactions = 2_000 if args.quick else 20_000
        tx_rates, logs = database_rates(parent, transactions, repeats)
        verify_event, verified_records = verify_rate(logs["event"], repeats)
        verify_checkpoint, _ = verify_rate(logs["checkpoint"], repeats)

    peer = rates["peer_chain"]
    labels = {
        "peer_chain": ("peer chain (sha256 per record)", "records/s"),
        "append": ("append", "records/s"),
        "extend": ("extend", "records/s"),
        "append_file": ("append (file store)", "records/s"),
        "verify_tree": ("verify tree vs checkpoints", "records/s"),
        "verify_inclusion": ("verify inclusion", "proofs/s"),
        "verify_consistency": ("verify consistency", "proofs/s"),
        "prove_inclusion": ("prove inclusion", "proofs/s"),
    }
    rows = []
    results: dict[str, Any] = {}
    for key, (label, unit) in labels.items():
        goal = VERIFY_GOAL if key == "verify_tree" else None
        met = "-" if goal is None else ("met" if rates[key] >= goal else "MISSED")
        ratio = rates[key] / peer
        goal_text = "-" if goal is None else fmt(goal)
        rows.append([label, fmt(rates[key]), unit, f"{ratio:.2f}", goal_text, met])
        results[key] = {"rate": rates[key], "unit": unit, "over_peer_chain": ratio, "goal": goal}
    results["inclusion_proof_hashes_mean"] = proof_hashes
    print(f"ledger: {n:,} records of {settings.record_bytes} bytes")
    print(text_table(["metric", "rate", "unit", "/ peer chain", "goal", ""], rows, left=(0, 2, 5)))
    off = tx_rates["off"]
    db_rows = []
    for signing in SIGNING_MODES:
        ratio = tx_rates[signing] / off
        goal_text, met = "-", "-"
        if signing == "checkpoint":
            goal_text = f">= {1 - CHECKPOINT_COST_GOAL:.2f}"
            met = "met" if ratio >= 1 - CHECKPOINT_COST_GOAL else "MISSED"
        per_tx_us = (1 / tx_rates[signing] - 1 / off) * 1e6
        db_rows.append(
            [
                f"tx {signing}",
                fmt(tx_rates[signing]),
                "tx/s",
                f"{ratio:.2f}",
                f"{per_tx_us:+.1f}",
                goal_text,
                met,
            ]
        )
        cpu_us = statistics.median(CPU_US[signing])
        cpu_off = statistics.median(CPU_US["off"])
        results[f"tx_{signing}"] = {
            "rate": tx_rates[signing],
            "unit": "tx/s",
            "over_tx_off": ratio,
            "extra_us_per_tx": per_tx_us,
            "goal": None if signing != "checkpoint" else 1 - CHECKPOINT_COST_GOAL,
            "commit_thread_cpu_us": cpu_us,
            "commit_thread_cpu_over_off": cpu_us / cpu_off,
        }
    for key, rate in (
        ("verify_log_event", verify_event),
        ("verify_log_checkpoint", verify_checkpoint),
    ):
        db_rows.append([key.replace("_", " "), fmt(rate), "records/s", "-", "-", "-", "-"])
        results[key] = {"rate": rate, "unit": "records/s", "records": verified_records}
    print(f"ledger wired: {transactions:,} one-row reducer calls per mode, best of {repeats}")
    cpu_line = ", ".join(
        f"{signing} {results[f'tx_{signing}']['commit_thread_cpu_us']:.2f}"
        f" ({results[f'tx_{signing}']['commit_thread_cpu_over_off']:.3f} x off)"
        for signing in SIGNING_MODES
    )
    print(f"commit-thread CPU µs per call (median of runs): {cpu_line}")
    print(
        text_table(
            ["metric", "rate", "unit", "/ tx off", "µs/tx extra", "goal", ""],
            db_rows,
            left=(0, 2, 6),
        )
    )
    print(run_took(started, args.mode))
    write_results(args.out, "ledger", args.mode, settings, machine, started, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
