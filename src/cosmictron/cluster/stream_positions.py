"""``stream_positions``: where each database's replicated log ends, for a metrics scrape.

One ``stream_info`` request per database, concurrently, each bounded: a scrape must not
hang on a cluster without quorum (``server/metrics.py`` calls it off the event loop).
"""

from __future__ import annotations

from typing import Any


def stream_positions(connection: Any, names: list[str], timeout_s: float = 2.0) -> dict[str, int]:
    """Each database's stream's last offset (JetStream ``stream_info``, concurrently), for
    the replication lag a scrape reports. A database whose stream did not answer in
    ``timeout_s`` is left out: a scrape must not hang on a cluster without quorum."""
    import asyncio

    from cosmictron.cluster.jetstream_log import stream_name

    async def one(name: str) -> tuple[str, int | None]:
        try:
            info = await asyncio.wait_for(connection.js.stream_info(stream_name(name)), timeout_s)
        except Exception:  # no stream yet, or no answer: no figure
            return name, None
        return name, int(info.state.last_seq)

    async def every() -> list[tuple[str, int | None]]:
        return list(await asyncio.gather(*(one(name) for name in names)))

    try:
        found = connection.run(every(), timeout_s + 1.0)
    except Exception:
        return {}
    return {name: last for name, last in found if last is not None}
