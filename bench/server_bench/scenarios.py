"""The server benchmark's settings (full and ``--quick``) and its throughput scenarios."""

from __future__ import annotations

import dataclasses

from .workload import JSON_PROTOCOL, MSGPACK_PROTOCOL

# The ways Cosmictron is called, each measured in every scenario: (results key, label,
# the load generator's spec). "cosmictron" is WebSocket JSON (the key older results use).
TRANSPORTS: list[tuple[str, str, dict[str, str]]] = [
    ("cosmictron", "WebSocket JSON", {"kind": "cosmictron", "protocol": JSON_PROTOCOL}),
    (
        "cosmictron_msgpack",
        "WebSocket msgpack",
        {"kind": "cosmictron", "protocol": MSGPACK_PROTOCOL},
    ),
    ("cosmictron_http", "HTTP POST .../call", {"kind": "cosmictron_http"}),
]

# (key, label, clients, calls in flight per client); "depth" is filled from Settings.
SCENARIOS: list[tuple[str, str, bool, bool]] = [
    ("closed_1", "closed loop, 1 client", False, False),
    ("closed_16", "closed loop, 16 clients", True, False),
    ("pipelined_1", "pipelined, 1 client", False, True),
    ("pipelined_16", "pipelined, 16 clients", True, True),
]


@dataclasses.dataclass(frozen=True)
class Settings:
    slice_seconds: float  # measured time per engine per slice
    rounds: int  # slices per scenario per engine (engine order flips each round)
    warmup_seconds: float  # unmeasured load before each slice
    clients: int  # the "many clients" count
    pipeline_depth: int  # calls in flight per client when pipelined
    fanout_subscribers: int
    fanout_rate: float  # writer calls per second (the goal's figure)
    fanout_low_rate: float  # a second, lighter run: latency when the server keeps up
    fanout_seconds: float


FULL = Settings(
    slice_seconds=3.0,
    rounds=2,
    warmup_seconds=0.5,
    clients=16,
    pipeline_depth=16,
    fanout_subscribers=100,
    fanout_rate=200.0,
    fanout_low_rate=50.0,
    fanout_seconds=5.0,
)
QUICK = Settings(
    slice_seconds=0.4,
    # Two slices, the engines' order reversed in the second: one fsync stall of the shared
    # disk (50-170 ms here) in a single 0.4 s slice decided a row before (msgpack at 16
    # clients, 0.68x, its mean fsync twice JSON's; docs/benchmarks.md, issue 11 srvpath).
    rounds=2,
    warmup_seconds=0.1,
    clients=16,
    pipeline_depth=16,
    fanout_subscribers=20,
    fanout_rate=200.0,
    fanout_low_rate=50.0,
    fanout_seconds=0.5,
)


def scenario_shape(settings: Settings, many: bool, pipelined: bool) -> tuple[int, int]:
    """(clients, calls in flight per client) of a scenario under ``settings``."""
    return (settings.clients if many else 1), (settings.pipeline_depth if pipelined else 1)
