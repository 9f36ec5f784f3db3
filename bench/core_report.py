"""The core benchmark's report: one row per metric with its target, and the printed table."""

from __future__ import annotations

from typing import Any

from common import fmt, text_table
from engines import POLICIES
from figures import ratio

POLICY_OF_PROFILE = {profile: policy for policy, (profile, _) in POLICIES.items()}


def fsync_label(r: dict[str, Any]) -> str:
    """The durability a figure was measured at: Cosmictron's fsync policy / SQLite's level."""
    policy = POLICY_OF_PROFILE.get(r.get("cosmictron_profile", ""), "-")
    return f"{policy} / {r.get('sqlite_synchronous', '-')}"


def evaluate(results: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """One row per printed metric, with its target, the fsync policy it was measured at,
    how far it is from its target (``of_target``: 1.0 or more is met) and whether it was met."""
    rows: list[dict[str, Any]] = []

    def add(
        key: str,
        label: str,
        unit: str,
        target: str,
        of_target: float | None,
        figure: str = "cosmictron",
    ) -> None:
        """One row for ``results[key]``; ``figure`` names the entry it prints."""
        r = results[key]
        rows.append(
            {
                "key": key,
                "metric": label,
                "unit": unit,
                "fsync": fsync_label(r),
                "cosmictron": r.get(figure),
                "peer": r.get("sqlite"),
                "ratio": ratio(r.get("cosmictron"), r.get("sqlite")),
                "target": target,
                "of_target": of_target,
                "met": None if of_target is None else of_target >= 1.0,
            }
        )

    def rel(key: str) -> float:
        return ratio(results[key]["cosmictron"], results[key]["sqlite"]) or 0.0

    for operation, label in (("insert", "insert tx/s"), ("update", "update-by-pk tx/s")):
        for policy, (_, sync) in POLICIES.items():
            key = f"{operation}_{policy}"
            of_target: float | None
            if policy == "never":
                target = f">= 2x SQLite {sync} and >= 100k tx/s"
                of_target = min(rel(key) / 2, results[key]["cosmictron"] / 100_000)
            elif policy == "periodic":
                target, of_target = f">= 3x SQLite {sync}", rel(key) / 3
            else:
                target, of_target = "-", None
            add(key, f"{label}, {policy} vs {sync}", "tx/s", target, of_target)
    add("always_1_callers", "insert tx/s, always vs FULL, 1 caller", "tx/s", "-", None)
    key = f"always_{threads}_callers"
    add(
        key,
        f"insert tx/s, always vs FULL, {threads} callers",
        "tx/s",
        ">= 5x SQLite FULL",
        rel(key) / 5,
    )
    add(
        "bulk_load",
        f"bulk load {results['bulk_load']['rows']:,} rows (always vs FULL)",
        "rows/s",
        ">= 300k rows/s",
        results["bulk_load"]["cosmictron"] / 300_000,
    )
    for key, label in (
        ("replay_log", "replay, 1-tx bulk log"),
        ("replay_snapshot", "replay, from snapshot"),
        ("replay_small_tx", "replay, log of 1-row txs"),
    ):
        r = results[key]
        label = f"{label} ({r['rows']:,} rows, {r['transactions']:,} tx" + (
            f", {r['log_reader']} reader)" if "log_reader" in r else ")"
        )
        if key != "replay_small_tx":
            add(
                key,
                label,
                "s per 1M rows",
                "<= 3 s per 1M rows",
                3.0 / r["cosmictron"] if r["cosmictron"] else None,
            )
            continue
        # One row written per transaction: the target is per million of them; the same
        # reopen per million rows it leaves is printed beside it, for reference.
        per_tx = r.get("seconds_per_1m_transactions")
        add(
            key,
            f"{label}, per 1M txs",
            "s per 1M txs",
            "<= 3 s per 1M 1-row txs",
            3.0 / per_tx if per_tx else None,
            figure="seconds_per_1m_transactions",
        )
        add(key, f"{label}, per 1M live rows", "s per 1M rows", "-", None)
    add(
        "memory_per_row",
        f"memory per row ({results['memory_per_row']['rows']:,} rows)",
        "bytes/row",
        "<= 400 bytes/row",
        400 / results["memory_per_row"]["cosmictron"],
    )
    return rows


def table_text(rows: list[dict[str, Any]]) -> str:
    """The core table: one line per metric; labels, units and targets left-aligned.

    ``fsync`` is the durability each figure was measured at (Cosmictron's policy / SQLite's
    ``synchronous``); ``of target`` is the figure as a fraction of its target, measured in
    this run (1.00x or more: met; for lower-is-better figures, target / figure).
    """
    extended = any("fsync" in r for r in rows)  # bench/sql.py prints plain rows
    header: tuple[str, ...] = ("metric", "unit", "cosmictron", "sqlite", "ratio", "target")
    if extended:
        header = ("metric", "fsync", *header[1:], "of target")
    lines = []
    for r in rows:
        line = [
            r["metric"],
            r["unit"],
            fmt(r["cosmictron"], r["unit"]),
            fmt(r["peer"], r["unit"]),
            "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            r["target"],
        ]
        if extended:
            line.insert(1, r.get("fsync", "-"))
            of_target = r.get("of_target")
            line.append("-" if of_target is None else f"{of_target:.2f}x")
        line.append({True: "met", False: "MISSED", None: "-"}[r["met"]])
        lines.append(tuple(line))
    header = (*header, "result")
    return text_table(header, lines, left=(0, 1, 2, 6) if extended else (0, 1, 5))
