"""The printed report: the throughput table, CPU lines, fan-out lines and the goals."""

from __future__ import annotations

from typing import Any

from common import fmt, text_table

from .scenarios import SCENARIOS


def table_text(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    header = (
        "scenario",
        "in flight",
        "cosmictron calls/s",
        "p50 ms",
        "p99 ms",
        "postgresql calls/s",
        "p50 ms",
        "p99 ms",
        "ratio",
    )
    lines = []
    for key, label, _, _ in SCENARIOS:
        mine = results["cosmictron"][key]
        peer = results["postgresql"].get(key)
        ratio = results["ratios"][key]
        lines.append(
            (
                label,
                str(mine["in_flight_per_client"]),
                fmt(mine["calls_per_s"]),
                ms(mine["latency_ms"]["p50"]),
                ms(mine["latency_ms"]["p99"]),
                fmt(peer["calls_per_s"]) if peer else "skipped",
                ms(peer["latency_ms"]["p50"]) if peer else "-",
                ms(peer["latency_ms"]["p99"]) if peer else "-",
                "n/a" if ratio is None else f"{ratio:.2f}x",
            )
        )
    out = [text_table(header, lines)]
    out.append("")
    for key, _, _, _ in SCENARIOS:
        mine = results["cosmictron"][key]
        peer = results["postgresql"].get(key)
        cpu = f"{key}: CPU cores busy, cosmictron server {mine['server_cpu_fraction']:.2f}"
        cpu += f" + client {mine['client_cpu_fraction']:.2f}"
        if mine["transactions_per_fsync"] is not None:
            cpu += f" ({mine['transactions_per_fsync']:.1f} tx per fsync"
            cpu += f" of {mine['fsync_ms_mean']:.2f} ms)"
        if peer:
            cpu += f"; postgresql server {peer['server_cpu_fraction']:.2f}"
            cpu += f" + client {peer['client_cpu_fraction']:.2f}"
        out.append(cpu)
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
