"""The load generator's fan-out run: one writer at a fixed rate, many subscribers.

A receipt's latency is the subscriber's wall clock at receipt minus the update's
``timestamp`` (the transaction's, taken by the server just before it commits; same
machine, same clock), so it measures commit, the fsync before sending, and delivery. The
writer's send time matched by ``tx_offset`` gives a second figure, call sent to receipt.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from typing import Any

from figures import distribution

from .load import connect_ws
from .workload import FANOUT_QUERY, call_message


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp (the update's ``timestamp``)."""
    return datetime.datetime.fromisoformat(text).timestamp()


async def fanout_load(spec: dict[str, Any]) -> dict[str, Any]:
    """One writer at a fixed rate, ``subscribers`` connections receiving every update."""
    import aiohttp

    async def subscriber(ws: Any, log: list[tuple[float, float, str]]) -> None:
        # Keep the receive path minimal: timestamp and keep the text, parse afterwards.
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                log.append((time.time(), time.perf_counter(), frame.data))
            else:
                break

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        subs = []
        for batch in range(0, spec["subscribers"], 25):
            count = min(25, spec["subscribers"] - batch)
            subs += await asyncio.gather(
                *(connect_ws(session, spec["ws_url"]) for _ in range(count))
            )
        for i, ws in enumerate(subs):
            query = {"request_id": i, "query_id": 1, "query_strings": [FANOUT_QUERY]}
            await ws.send_str(json.dumps({"Subscribe": query}))
        for ws in subs:
            reply = await ws.receive_json(timeout=30)
            if "SubscribeApplied" not in reply:
                raise RuntimeError(f"subscribe failed: {reply}")
        logs: list[list[tuple[float, float, str]]] = [[] for _ in subs]
        readers = [
            asyncio.create_task(subscriber(ws, log)) for ws, log in zip(subs, logs, strict=True)
        ]
        writer = await connect_ws(session, spec["ws_url"])
        sent: dict[int, float] = {}
        results: dict[int, tuple[int | None, float]] = {}
        calls = int(spec["rate"] * spec["seconds"])

        async def read_results() -> None:
            while len(results) < calls:
                frame = await writer.receive(timeout=30)
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"writer connection ended: {frame.type}")
                result = json.loads(frame.data).get("ReducerResult")
                if result is not None:
                    results[result["request_id"]] = (result["tx_offset"], time.perf_counter())

        reader = asyncio.create_task(read_results())
        cpu = time.process_time()
        start = time.perf_counter() + 0.05
        print("window-start", flush=True)
        for n in range(calls):
            delay = start + n / spec["rate"] - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[n] = time.perf_counter()
            await writer.send_str(call_message(0, n))
        await asyncio.wait_for(reader, timeout=30)
        offsets = {offset for offset, _ in results.values() if offset is not None}
        last = max(offsets) if offsets else 0
        # Wait until every subscriber has its update for the last transaction (bounded).
        deadline = time.perf_counter() + 10
        needle = f'"tx_offset": {last},'
        while time.perf_counter() < deadline and not all(
            log and needle in log[-1][2] for log in logs
        ):
            await asyncio.sleep(0.05)
        client_cpu = time.process_time() - cpu
        elapsed = time.perf_counter() - start
        print("window-end", flush=True)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(writer.close(), *(ws.close() for ws in subs))

    send_by_offset = {
        offset: sent[request] for request, (offset, _) in results.items() if offset is not None
    }
    commit_to_receipt: list[float] = []
    send_to_receipt: list[float] = []
    other = 0
    for log in logs:
        for wall, perf, text in log:
            update = json.loads(text).get("TransactionUpdate")
            if update is None:
                other += 1
                continue
            commit_to_receipt.append((wall - parse_rfc3339(update["timestamp"])) * 1000)
            if update["tx_offset"] in send_by_offset:
                send_to_receipt.append((perf - send_by_offset[update["tx_offset"]]) * 1000)
    call_latency = [(t - sent[r]) * 1000 for r, (_, t) in results.items()]
    return {
        "subscribers": len(logs),
        "writer_calls": calls,
        "transactions": len(offsets),
        "expected_receipts": len(offsets) * len(logs),
        "receipts": len(commit_to_receipt),
        "other_messages": other,
        "rate_per_s": spec["rate"],
        "seconds": elapsed,
        "client_cpu_seconds": client_cpu,
        "commit_to_receipt_ms": distribution(commit_to_receipt),
        "send_to_receipt_ms": distribution(send_to_receipt),
        "writer_call_latency_ms": distribution(call_latency),
    }
