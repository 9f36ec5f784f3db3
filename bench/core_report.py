"""The core benchmark's report: one row per metric with its target, and the printed table."""

from __future__ import annotations

from typing import Any

from common import fmt, text_table
from engines import POLICIES
from figures import ratio


def evaluate(results: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """One row per printed metric, with its target and whether it was met."""
    rows: list[dict[str, Any]] = []

    def add(key: str, label: str, unit: str, target: str, met: bool | None) -> None:
        r = results[key]
        rows.append(
            {
                "key": key,
                "metric": label,
                "unit": unit,
                "cosmictron": r.get("cosmictron"),
                "peer": r.get("sqlite"),
                "ratio": ratio(r.get("cosmictron"), r.get("sqlite")),
                "target": target,
                "met": met,
            }
        )

    def rel(key: str) -> float:
        return ratio(results[key]["cosmictron"], results[key]["sqlite"]) or 0.0

    for operation, label in (("insert", "insert tx/s"), ("update", "update-by-pk tx/s")):
        for policy, (_, sync) in POLICIES.items():
            key = f"{operation}_{policy}"
            if policy == "never":
                target = f">= 2x SQLite {sync} and >= 100k tx/s"
                met = rel(key) >= 2 and results[key]["cosmictron"] >= 100_000
            elif policy == "periodic":
                target, met = f">= 3x SQLite {sync}", rel(key) >= 3
            else:
                target, met = "-", None
            add(key, f"{label}, {policy} vs {sync}", "tx/s", target, met)
    add("always_1_callers", "insert tx/s, always vs FULL, 1 caller", "tx/s", "-", None)
    key = f"always_{threads}_callers"
    add(
        key,
        f"insert tx/s, always vs FULL, {threads} callers",
        "tx/s",
        ">= 5x SQLite FULL",
        rel(key) >= 5,
    )
    add(
        "bulk_load",
        f"bulk load {results['bulk_load']['rows']:,} rows (always vs FULL)",
        "rows/s",
        ">= 300k rows/s",
        results["bulk_load"]["cosmictron"] >= 300_000,
    )
    for key, label in (
        ("replay_log", "replay, 1-tx bulk log"),
        ("replay_snapshot", "replay, from snapshot"),
        ("replay_small_tx", "replay, log of 1-row txs"),
    ):
        r = results[key]
        add(
            key,
            f"{label} ({r['rows']:,} rows, {r['transactions']:,} tx)",
            "s per 1M rows",
            "<= 3 s per 1M rows",
            r["cosmictron"] is not None and r["cosmictron"] <= 3.0,
        )
    add(
        "memory_per_row",
        f"memory per row ({results['memory_per_row']['rows']:,} rows)",
        "bytes/row",
        "<= 400 bytes/row",
        results["memory_per_row"]["cosmictron"] <= 400,
    )
    return rows


def table_text(rows: list[dict[str, Any]]) -> str:
    """The core table: one line per metric; labels, units and targets left-aligned."""
    header = ("metric", "unit", "cosmictron", "sqlite", "ratio", "target", "result")
    lines = [
        (
            r["metric"],
            r["unit"],
            fmt(r["cosmictron"], r["unit"]),
            fmt(r["peer"], r["unit"]),
            "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            r["target"],
            {True: "met", False: "MISSED", None: "-"}[r["met"]],
        )
        for r in rows
    ]
    return text_table(header, lines, left=(0, 1, 5))
