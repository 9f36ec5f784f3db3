"""The printed report: the throughput table, CPU lines, fan-out lines and the goals."""

from __future__ import annotations

from typing import Any

from common import fmt, text_table

from .scenarios import SCENARIOS, TRANSPORTS


def table_text(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    durability = results.get("cosmictron_durability", {})
    mine_fsync = durability.get("fsync_policy", "always")
    settings = results.get("postgresql_settings", {})
    peer_fsync = (
        f"fsync={settings.get('fsync', '?')}, synchronous_commit="
        f"{settings.get('synchronous_commit', '?')}"
        if settings
        else "-"
    )
    header = (
        "scenario",
        "cosmictron over",
        "in flight",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "fsync",
        "postgresql calls/s",
        "p50 ms",
        "p99 ms",
        "fsync",
        "ratio",
    )
    lines = []
    for key, label, _, _ in SCENARIOS:
        peer = results["postgresql"].get(key)
        for transport, name, _ in TRANSPORTS:
            mine = results[transport][key]
            ratio = results["ratios_by_transport"][transport][key]
            lines.append(
                (
                    label,
                    name,
                    str(mine["in_flight_per_client"]),
                    fmt(mine["calls_per_s"]),
                    ms(mine["latency_ms"]["p50"]),
                    ms(mine["latency_ms"]["p99"]),
                    mine_fsync,
                    fmt(peer["calls_per_s"]) if peer else "skipped",
                    ms(peer["latency_ms"]["p50"]) if peer else "-",
                    ms(peer["latency_ms"]["p99"]) if peer else "-",
                    "on" if peer else "-",
                    "n/a" if ratio is None else f"{ratio:.2f}x",
                )
            )
    out = [text_table(header, lines)]
    out.append(
        f"fsync policy of every figure: cosmictron {mine_fsync} "
        f"({durability.get('sync_method', '?')}, profile {durability.get('profile', '?')}, "
        f"a reply only once its transaction is durable; group commit); postgresql {peer_fsync}"
    )
    out.append("")
    for key, _, _, _ in SCENARIOS:
        peer = results["postgresql"].get(key)
        for transport, name, _ in TRANSPORTS:
            mine = results[transport][key]
            cpu = f"{key} {name}: CPU cores busy, cosmictron server "
            cpu += f"{mine['server_cpu_fraction']:.2f} + client {mine['client_cpu_fraction']:.2f}"
            if mine["transactions_per_fsync"] is not None:
                cpu += f" ({mine['transactions_per_fsync']:.1f} tx per fsync"
                cpu += f" of {mine['fsync_ms_mean']:.2f} ms)"
            out.append(cpu)
        if peer:
            out.append(
                f"{key} postgresql: server {peer['server_cpu_fraction']:.2f}"
                f" + client {peer['client_cpu_fraction']:.2f}"
            )
    if "skipped" in results["postgresql"]:
        out.append(f"PostgreSQL skipped: {results['postgresql']['skipped']}")
    out.append("")
    for key in ("fanout", "fanout_low_rate"):
        f = results[key]
        c, s = f["commit_to_receipt_ms"], f["send_to_receipt_ms"]
        out.append(
            f"fan-out at {f['rate_per_s']:.0f} calls/s: {f['subscribers']} subscribers, "
            f"{f['transactions']} transactions, {f['receipts']:,} of "
            f"{f['expected_receipts']:,} updates received; commit to receipt p50 "
            f"{ms(c['p50'])} ms, p99 {ms(c['p99'])} ms, max {ms(c['max'])} ms; call sent to "
            f"receipt p50 {ms(s['p50'])}, p99 {ms(s['p99'])}, max {ms(s['max'])} ms; "
            f"server CPU {f['server_cpu_fraction']:.2f} cores"
        )
    out.append("")
    for row in rows:
        verdict = {True: "met", False: "MISSED", None: "unknown"}[row["met"]]
        value = row["value"]
        shown = "n/a" if value is None else (f"{value:.2f}" if value < 100 else fmt(value))
        out.append(f"goal {row['goal']}: {shown} -> {verdict}")
    return "\n".join(out)
