"""Cluster catch-up benchmark: copying a stream of N records into an empty node (issue 19).

    .venv/bin/python bench/cluster_catchup.py [--quick] [--out FILE.json] [--tmpdir DIR]

A failover's longest term after the lease TTL is the new leader's catch-up: it copies the
stream's records past its local log into it (``cluster/catchup.py``). This builds a real
log of N one-row transactions on one node (a recording replicator keeps each record's
bytes), publishes the records to ``LOG_<db>`` on three ``nats-server`` (R3, file storage),
then times ``catch_up`` into an empty directory two ways, alternating A/B:

- ``per record``: the peer, one JetStream direct get per sequence (the old fetch);
- ``batched``: the ordered consumer ``catch_up`` uses now.

Both then append each record through the chain check. Prints seconds and the ratio;
writes JSON (bench/common.py). Needs the ``cluster`` extra.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from cluster_setup import item_module, nats_connection, nats_servers  # noqa: E402
from common import (  # noqa: E402
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

WAYS = ("per record", "batched")


class RecordingReplicator:
    """Keeps every record's bytes and acknowledges at once (builds the stream's content)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self._acked = 0

    def start(self, last_offset: int, last_hash: bytes) -> None:
        self._acked = last_offset

    def publish(self, offset: int, payload: bytes) -> None:
        self.payloads.append(bytes(payload))
        self._acked = offset

    def wait_acked(self, offset: int) -> None:
        pass

    @property
    def acked_offset(self) -> int:
        return self._acked

    def close(self) -> None:
        pass


async def _per_record(connection: Any, database: str, first: int, last: int) -> list[bytes]:
    from cosmictron.cluster.jetstream_log import stream_name

    out = []
    for seq in range(first, last + 1):
        msg = await connection.js.get_msg(stream_name(database), seq, direct=True)
        out.append(bytes(msg.data or b""))
    return out


async def _publish_all(connection: Any, database: str, payloads: list[bytes]) -> None:
    from nats.js.api import StorageType, StreamConfig

    from cosmictron.cluster.jetstream_log import log_subject, stream_name, term_subject

    js = connection.js
    await js.add_stream(
        StreamConfig(
            name=stream_name(database),
            subjects=[log_subject(database)],
            num_replicas=3,
            storage=StorageType.FILE,
            allow_direct=True,
        )
    )
    subject = term_subject(database, 1)
    for start in range(0, len(payloads), 500):
        acks = [js.publish(subject, p) for p in payloads[start : start + 500]]
        await asyncio.gather(*acks)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__ or "", "cluster_catchup.json", argv)
    import cosmictron
    from cosmictron.cluster import catchup
    from cosmictron.durability import DurabilityConfig

    records = 2_000 if args.mode == "quick" else 20_000
    rounds = 2
    durability = DurabilityConfig.from_profile("balanced")
    started = time.perf_counter()
    results: dict[str, Any] = {way: [] for way in WAYS}
    with temp_parent(args.tmpdir, "cosmictron-bench-catchup-") as parent:
        machine = machine_info(parent)
        root = Path(parent)
        (root / "module.py").write_text(item_module(note_length=64))
        recorder = RecordingReplicator()
        db = cosmictron.Database.open(
            root / "source",
            str(root / "module.py"),
            durability=durability,
            replicator=recorder,
        )
        try:
            for n in range(records - len(recorder.payloads)):
                db.call("add", n)
        finally:
            db.close()
        payloads = recorder.payloads
        with nats_servers(root) as nats, nats_connection(nats.urls, "bench") as connection:
            connection.run(_publish_all(connection, "big", payloads), 300.0)
            batched = catchup._fetch
            for r in range(rounds):
                for way in WAYS:
                    target = root / f"{way.split()[0]}{r}"
                    catchup._fetch = _per_record if way == "per record" else batched
                    catchup.FETCH_TIMEOUT_S = 600.0
                    t0 = time.perf_counter()
                    copied, last = catchup.catch_up(connection, target, "big", durability)
                    took = time.perf_counter() - t0
                    assert copied == last == len(payloads), (copied, last, len(payloads))
                    results[way].append(took)
                    print(f"  {way}, round {r + 1}: {took:.2f} s", flush=True)
                    shutil.rmtree(target)
            catchup._fetch = batched
    best = {way: min(results[way]) for way in WAYS}
    ratio = best["per record"] / best["batched"]
    print(f"\ncatch-up of {len(payloads):,} records into an empty node (loaded, best of {rounds})")
    print(
        text_table(
            ["way", "seconds", "records/s"],
            [[way, f"{best[way]:.2f}", f"{len(payloads) / best[way]:,.0f}"] for way in WAYS],
        )
    )
    print(f"batched is {ratio:.1f}x faster than per record")
    print(run_took(started, args.mode))
    write_results(
        args.out,
        "cluster_catchup",
        args.mode,
        {"records": len(payloads), "rounds": rounds},
        machine,
        started,
        {"seconds": results, "best": best, "speedup": ratio},
    )


if __name__ == "__main__":
    main()
