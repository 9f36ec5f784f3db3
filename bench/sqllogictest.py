"""Run SQLite's sqllogictest corpus through ``Database.sql`` and count what matches.

    .venv/bin/python bench/sqllogictest.py CORPUS [GLOB ...] [--out FILE] [--top N]
        [--timeout-s 1.0] [--max-files N] [--tmpdir DIR] [--files LIST]
        [--shard K/N] [--resume] [--skip-done JSON ...]
    .venv/bin/python bench/sqllogictest.py --combine JSON ... [--out FILE]

``CORPUS`` is a checkout of the corpus (the directory holding ``test/``; e.g. a GitHub
mirror of SQLite's sqllogictest); the GLOBs pick files under it (default
``test/select*.test``). The corpus is not part of this repository.

Each file gets a fresh database, as a new user would make one: its ``CREATE TABLE`` and
``CREATE INDEX`` statements become a module (``slt_corpus.module_source``; tables come
from the module, not from SQL), every other statement (``INSERT``, ``CREATE VIEW``,
``DROP VIEW``, ...) and every query runs through ``db.sql``. A ``DROP TABLE`` of a
declared table followed by its same ``CREATE TABLE`` (the corpus's way to start a
table afresh) is what a Cosmictron user does for that: ``DELETE FROM`` it through
``db.sql`` (``_drop_table``). Each query runs under a 1 s budget (``timeout_s``) and is
compared with SQLite's recorded answer exactly as sqllogictest compares
(``slt_corpus.matches``). Each query is one of:

- ``match``: SQLite's answer;
- ``refused``: ``db.sql`` raised an error (counted by reason: the message with names and
  numbers blanked, the top N printed);
- ``wrong``: an answer that is not SQLite's (every one listed, with file and line): it
  differs from the corpus's record and from the answer of the SQLite this Python ships,
  which runs every statement of the file beside Cosmictron. An answer that differs from
  the record but is today's SQLite's (the corpus was recorded by an older SQLite) is a
  ``match``, counted apart and listed;
- ``slow``: a query whose work takes longer than 1 s: over its 1 s (wall-clock) budget
  twice, then run a third time with a longer budget and still over 1 s of CPU time
  there (or not done at all). On a shared machine a process at ``nice`` can wait seconds
  for a core, so the wall clock alone would count the load, not the query: a query over
  1 s of wall time twice but under 1 s of CPU is judged by its third answer and listed
  apart (``over_1s_wall_only``).

Every answered query's wall and CPU seconds (``time.thread_time``: ``db.sql`` runs in the
calling thread) are kept: the slowest by each are in the JSON.

A statement (``INSERT``...) that fails where SQLite succeeded is counted apart, and the
queries after it that name its table are refused with its reason (they read other rows
than SQLite's). So are the queries over a table without a primary key once an
``INSERT`` into it stored fewer rows than it named: such a table is a set in Cosmictron
(a documented difference), so an identical row is stored once where SQLite keeps two.
Prints the summary and writes JSON (``--out``).

The JSON holds one record per file (``per_file``: its outcomes, refusals by reason, wrong
and slow queries, seconds) and is rewritten after every file, so a long run can be
stopped and picked up again: ``--resume`` keeps the files already in ``--out`` and runs
only the others; ``--skip-done`` skips the files recorded in other runs' JSON (shards run
at once). ``--files LIST`` adds the corpus-relative paths listed in a file (one a line);
``--shard K/N`` runs every N-th file from the K-th (1-based), so N processes split a list.
``--combine`` runs nothing: it adds up the per-file records of several JSON files (a file
in more than one counts from the last) into one summary.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from slt_corpus import (  # noqa: E402
    Query,
    Statement,
    corpus_files,
    declared_tables,
    matches,
    module_source,
    records,
    result_values,
)
from slt_schema import CorpusSchema  # noqa: E402

HARD_STOP_S = 20
"""A query still running after this long is abandoned by an alarm (a planner that never
checks its budget would otherwise hang the run); it counts as slow."""


class _HardStop(Exception):
    pass


def reason(error: BaseException) -> str:
    """An error's message with names, numbers and quoted text blanked, to count by kind."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    text = re.sub(r"\(line \d+, column \d+.*", "", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
    return f"{type(error).__name__}: {text.strip()}"[:120]


BUCKETS_S = (0.01, 0.1, 0.5, 1.0)
"""Upper bounds of the time histograms (``wall_histogram``, ``cpu_histogram``)."""


def bucket(seconds: float) -> str:
    """The histogram bucket a query's seconds fall in: ``<0.01`` ... ``>=1.0``."""
    for bound in BUCKETS_S:
        if seconds < bound:
            return f"<{bound}"
    return f">={BUCKETS_S[-1]}"


class Tally:
    def __init__(self) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()
        self.refused_example: dict[str, str] = {}
        self.statement_failures: collections.Counter[str] = collections.Counter()
        self.wrong: list[dict[str, Any]] = []
        self.slow: list[dict[str, Any]] = []
        self.files = 0
        self.slowest: list[tuple[float, str]] = []  # the slowest answered queries (wall)
        self.slowest_cpu: list[tuple[float, str]] = []  # ... by this thread's CPU time
        self.wall_only: list[dict[str, Any]] = []  # over 1 s wall twice, under 1 s CPU
        # Every answered query's seconds, by bucket.
        self.wall_histogram: collections.Counter[str] = collections.Counter()
        self.cpu_histogram: collections.Counter[str] = collections.Counter()
        self.retried = 0  # queries over the time limit once, run again
        self.file_errors: list[dict[str, str]] = []
        self.error_records: list[str] = []  # ``query error`` records, not judged
        self.newer_sqlite: list[str] = []  # matches that differ from the corpus's record

    def file_record(self, seconds: float) -> dict[str, Any]:
        """Everything this tally counted, for one file: ``per_file`` in the JSON."""
        return {
            "seconds": round(seconds, 1),
            "outcomes": dict(self.outcomes),
            "refused": dict(self.refused),
            "refused_example": self.refused_example,
            "statements_failed": dict(self.statement_failures),
            "wrong": self.wrong,
            "slow": self.slow,
            "retried": self.retried,
            "slowest": [list(pair) for pair in sorted(self.slowest, reverse=True)[:5]],
            "slowest_cpu": [list(pair) for pair in sorted(self.slowest_cpu, reverse=True)[:5]],
            "over_1s_wall_only": self.wall_only,
            "wall_histogram": dict(self.wall_histogram),
            "cpu_histogram": dict(self.cpu_histogram),
            "file_errors": self.file_errors,
            "error_records": self.error_records,
            "newer_sqlite": self.newer_sqlite,
        }

    def add(self, record: dict[str, Any]) -> None:
        """Count one file's record (``file_record``) into this tally."""
        self.files += 0 if record["file_errors"] else 1
        self.outcomes.update(record["outcomes"])
        self.refused.update(record["refused"])
        for key, example in record["refused_example"].items():
            self.refused_example.setdefault(key, example)
        self.statement_failures.update(record["statements_failed"])
        self.wrong += record["wrong"]
        self.slow += record["slow"]
        self.retried += record["retried"]
        self.slowest = sorted(
            self.slowest + [(float(t), str(w)) for t, w in record["slowest"]], reverse=True
        )[:50]
        # Records written before CPU time was kept have none.
        self.slowest_cpu = sorted(
            self.slowest_cpu + [(float(t), str(w)) for t, w in record.get("slowest_cpu", [])],
            reverse=True,
        )[:50]
        self.wall_only += record.get("over_1s_wall_only", [])
        self.wall_histogram.update(record.get("wall_histogram", {}))
        self.cpu_histogram.update(record.get("cpu_histogram", {}))
        self.file_errors += record["file_errors"]
        self.error_records += record["error_records"]
        self.newer_sqlite += record["newer_sqlite"]

    def as_json(self, top: int) -> dict[str, Any]:
        queries = sum(self.outcomes.values())
        return {
            "files": self.files,
            "queries": queries,
            "outcomes": dict(self.outcomes),
            "match_percent": round(100 * self.outcomes["match"] / queries, 3) if queries else None,
            "refused_top": [
                {"reason": r, "count": n, "example": self.refused_example[r]}
                for r, n in self.refused.most_common(top)
            ],
            "refused_reasons": len(self.refused),
            "wrong": self.wrong,
            "slow": self.slow,
            "retried_after_a_slow_run": self.retried,
            "slowest_answered": [
                {"seconds": round(took, 3), "where": where}
                for took, where in sorted(self.slowest, reverse=True)[:top]
            ],
            "slowest_answered_cpu": [
                {"cpu_seconds": round(took, 4), "where": where}
                for took, where in sorted(self.slowest_cpu, reverse=True)[:top]
            ],
            "over_1s_wall_only": self.wall_only,
            "wall_histogram": dict(self.wall_histogram),
            "cpu_histogram": dict(self.cpu_histogram),
            "statements_failed": dict(self.statement_failures.most_common(top)),
            "file_errors": self.file_errors,
            "matched_todays_sqlite_not_the_record": {
                "count": len(self.newer_sqlite),
                "sqlite_version": sqlite3.sqlite_version,
                "where": self.newer_sqlite[:top],
            },
            "query_error_records_not_judged": {
                "count": len(self.error_records),
                "where": self.error_records[:top],
            },
        }


def run_file(path: Path, corpus: Path, tally: Tally, timeout_s: float, parent: str) -> None:
    import cosmictron

    name = str(path.relative_to(corpus))
    items = list(records(path.read_text(encoding="utf-8", errors="replace")))
    statements = [item.sql for item in items if isinstance(item, Statement)]
    tables, _ = declared_tables(statements)
    work = Path(tempfile.mkdtemp(dir=parent))
    try:
        module = work / "slt_module.py"
        try:
            module.write_text(module_source(tables))
            db = cosmictron.Database.open(
                work / "data",
                module=str(module),
                durability=cosmictron.DurabilityConfig.from_profile("development"),
            )
        except Exception as error:
            tally.file_errors.append({"file": name, "error": reason(error)})
            return
        tally.files += 1
        lite = sqlite3.connect(":memory:")  # the SQLite this Python ships, same statements
        tainted: dict[str, str] = {}
        keyless = {name for name, decl in tables.items() if not decl.primary_key}
        schema = CorpusSchema(tables)
        try:
            for item in items:
                if isinstance(item, Statement):
                    with contextlib.suppress(sqlite3.Error):
                        lite.execute(item.sql)
                if isinstance(item, Statement) and schema.is_ddl(item.sql):
                    _ddl(db, item, schema, tally, tainted)
                    continue
                _synced(db, schema, tally, tainted)
                if isinstance(item, Statement):
                    _statement(db, item, tally, tainted, keyless)
                elif item.types == "error":
                    # ``query error <message>``: not sqllogictest's format, nor SQLite's
                    # answer (the copy's "division by zero" is NULL in SQLite): counted
                    # apart, not judged.
                    tally.error_records.append(f"{name}:{item.line}")
                elif (gone := schema.dropped_in(item.sql)) is not None:
                    key = f"names table {gone}, dropped and not created again"
                    tally.outcomes["refused"] += 1
                    tally.refused[key] += 1
                    tally.refused_example.setdefault(key, f"{name}:{item.line}")
                elif (cause := _tainted_by(item.sql, tainted)) is not None:
                    key = f"a statement this query depends on was refused ({cause})"[:160]
                    tally.outcomes["refused"] += 1
                    tally.refused[key] += 1
                    tally.refused_example.setdefault(key, f"{name}:{item.line}")
                else:
                    _query(db, item, name, tally, timeout_s, lite)
        finally:
            db.close()
            lite.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


_WRITES = re.compile(
    r"^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM|DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+(\w+)",
    re.I,
)


KEYLESS = "a table without a primary key is a set: an identical row was not stored again"
"""Why queries over such a table are not judged: Cosmictron's documented semantics."""


def _values_count(sql: str) -> int | None:
    """How many rows an ``INSERT ... VALUES`` names (None: not one)."""
    from sqlglot import exp, parse_one

    try:
        tree = parse_one(sql, read="sqlite")
    except Exception:
        return None
    values = tree.expression if isinstance(tree, exp.Insert) else None
    return len(values.expressions) if isinstance(values, exp.Values) else None


def _statement(
    db: Any, item: Statement, tally: Tally, tainted: dict[str, str], keyless: set[str]
) -> None:
    written = _WRITES.match(item.sql)
    table = written.group(1).lower() if written else None
    before = None
    if table in keyless and item.sql.lstrip()[:6].upper() == "INSERT":
        with contextlib.suppress(Exception):
            before = db.sql(f"SELECT count(*) FROM {table}").rows[0][0]
    try:
        db.sql(item.sql)
        if before is not None:
            after = db.sql(f"SELECT count(*) FROM {table}").rows[0][0]
            if after - before != _values_count(item.sql):
                tainted[str(table)] = KEYLESS
        if not item.expect_ok:
            tally.statement_failures["succeeded where SQLite fails"] += 1
    except Exception as error:
        if item.expect_ok:
            key = reason(error)
            tally.statement_failures[key] += 1
            # The queries after it read other rows than SQLite's: refused, not wrong.
            tainted[table or "*"] = key


def _ddl(
    db: Any, item: Statement, schema: CorpusSchema, tally: Tally, tainted: dict[str, str]
) -> None:
    """A CREATE/DROP of a table or index: the module follows it (``slt_schema``)."""
    try:
        error = schema.run(db, item.sql)
    except Exception as exc:  # the DELETE of a DROP TABLE failed
        error = None
        key = reason(exc)
        tally.statement_failures[key] += 1
        tainted["*"] = key
    if error is None and not item.expect_ok:
        tally.statement_failures["succeeded where SQLite fails"] += 1
    elif error is not None and item.expect_ok:
        tally.statement_failures[f"DDL refused: {error}"[:120]] += 1


def _synced(db: Any, schema: CorpusSchema, tally: Tally, tainted: dict[str, str]) -> None:
    """Bring the module up to the DDL so far; when the update is refused, every later
    query is refused with its reason."""
    if "*" in tainted:
        return
    try:
        schema.sync(db)
    except Exception as exc:
        key = f"module update refused: {reason(exc)}"[:160]
        tally.statement_failures[key] += 1
        tainted["*"] = key


def _tainted_by(sql: str, tainted: dict[str, str]) -> str | None:
    """Why a query cannot be judged: a table it names missed a statement SQLite ran."""
    if "*" in tainted:
        return tainted["*"]
    words = set(re.findall(r"\w+", sql.lower()))
    for table, key in tainted.items():
        if table in words:
            return key
    return None


class Attempt(NamedTuple):
    """One run of a query: its rows or its error, wall-clock and CPU seconds."""

    rows: Any
    error: BaseException | None
    seconds: float
    cpu_seconds: float


def _attempt(db: Any, sql: str, timeout_s: float) -> Attempt:
    """One run; a hard stop is an error. CPU time is this thread's (``db.sql`` runs the
    query in the calling thread), so other processes' load does not count."""
    started, cpu = time.perf_counter(), time.thread_time()
    signal.alarm(HARD_STOP_S)
    rows, error = None, None
    try:
        rows = db.sql(sql, timeout_s=timeout_s).rows
    except (_HardStop, Exception) as exc:
        error = exc
    finally:
        signal.alarm(0)
    return Attempt(rows, error, time.perf_counter() - started, time.thread_time() - cpu)


UNHURRIED_TIMEOUT_S = 15.0
"""The budget of the third run of a query slow twice, which only measures it."""


def _unhurried(db: Any, item: Query) -> tuple[Attempt, dict[str, Any]]:
    """A query over the limit twice, run a third time with a budget of 15 s (under the
    hard stop): that run, and what it says for the JSON: the wall and CPU seconds it
    took (on a shared machine a process at ``nice`` can wait seconds for a core, so a
    run's wall time may be mostly waiting) and whether its answer is the record's."""
    run = _attempt(db, item.sql, UNHURRIED_TIMEOUT_S)
    spent = {
        "unhurried_seconds": round(run.seconds, 3),
        "unhurried_cpu_seconds": round(run.cpu_seconds, 3),
    }
    if run.error is not None:
        return run, {**spent, "unhurried_answer": f"error: {reason(run.error)}"[:160]}
    values = result_values([tuple(row) for row in run.rows], item.types, item.sort)
    return run, {**spent, "unhurried_answer": "match" if matches(item, values) else "differs"}


def _stopped(error: BaseException | None) -> bool:
    """The run was stopped for its time (its budget or the hard stop), not refused."""
    return isinstance(error, _HardStop) or (
        error is not None and type(error).__name__ == "QueryCancelled"
    )


def _too_slow(run: Attempt, timeout_s: float) -> bool:
    return run.seconds > timeout_s or _stopped(run.error)


def _sqlite_values(lite: sqlite3.Connection, item: Query) -> list[str] | None:
    """The query's answer from the SQLite this Python ships (None: it fails there)."""
    try:
        rows = lite.execute(item.sql).fetchall()
    except sqlite3.Error:
        return None
    return result_values([tuple(row) for row in rows], item.types, item.sort)


def _query(
    db: Any, item: Query, name: str, tally: Tally, timeout_s: float, lite: sqlite3.Connection
) -> None:
    where = f"{name}:{item.line}"
    run = _attempt(db, item.sql, timeout_s)
    if _too_slow(run, timeout_s):
        # Once more: on a shared machine a burst of load elsewhere can stall one run.
        tally.retried += 1
        run = _attempt(db, item.sql, timeout_s)
    if _too_slow(run, timeout_s):
        # Twice over the wall clock: is it the query's work or the machine's load?
        third, said = _unhurried(db, item)
        seen = {"where": where, "sql": item.sql, "seconds": round(run.seconds, 3), **said}
        if third.cpu_seconds > timeout_s or _stopped(third.error):
            tally.outcomes["slow"] += 1
            tally.slow.append(seen)
            return
        tally.wall_only.append(seen)
        run = third  # judged by the answer of the run that finished
    rows, error = run.rows, run.error
    if error is not None:
        key = reason(error)
        tally.outcomes["refused"] += 1
        tally.refused[key] += 1
        tally.refused_example.setdefault(key, f"{where}: {' '.join(item.sql.split())[:200]}")
        return
    tally.slowest.append((run.seconds, where))
    tally.slowest_cpu.append((run.cpu_seconds, where))
    tally.wall_histogram[bucket(run.seconds)] += 1
    tally.cpu_histogram[bucket(run.cpu_seconds)] += 1
    if len(tally.slowest) > 200:
        tally.slowest = sorted(tally.slowest, reverse=True)[:50]
        tally.slowest_cpu = sorted(tally.slowest_cpu, reverse=True)[:50]
    values = result_values([tuple(row) for row in rows], item.types, item.sort)
    if not matches(item, values) and _sqlite_values(lite, item) == values:
        # The corpus recorded an older SQLite's answer; today's gives Cosmictron's.
        tally.outcomes["match"] += 1
        tally.newer_sqlite.append(f"{where}: {' '.join(item.sql.split())[:160]}")
    elif not matches(item, values):
        tally.outcomes["wrong"] += 1
        tally.wrong.append(
            {
                "where": where,
                "sql": item.sql,
                "expected": list(item.expected[:10]),
                "got": values[:10],
                "got_count": len(values),
            }
        )
    else:
        tally.outcomes["match"] += 1


def summary(result: dict[str, Any], top: int) -> str:
    lines = [
        f"files {result['files']}  queries {result['queries']}  "
        f"match {result['match_percent']}%  outcomes {result['outcomes']}",
        f"refused, top {top} of {result['refused_reasons']} reasons:",
    ]
    lines += [
        f"  {r['count']:>7}  {r['reason']}\n           e.g. {r['example']}"
        for r in result["refused_top"]
    ]
    lines.append(f"wrong: {len(result['wrong'])}")
    lines += [f"  {w['where']}: {' '.join(w['sql'].split())[:160]}" for w in result["wrong"][:50]]
    lines.append(f"slow (> 1 s): {len(result['slow'])}")
    lines += [
        f"  {s['where']} {s['seconds']}s"
        + (
            f" (unhurried: {s['unhurried_seconds']}s, {s['unhurried_cpu_seconds']}s CPU, "
            f"{s['unhurried_answer']})"
            if "unhurried_seconds" in s
            else ""
        )
        for s in result["slow"][:20]
    ]
    lines.append(
        "slowest answered: "
        + ", ".join(f"{s['seconds']}s {s['where']}" for s in result["slowest_answered"][:5])
    )
    lines.append(
        "slowest answered by CPU: "
        + ", ".join(f"{s['cpu_seconds']}s {s['where']}" for s in result["slowest_answered_cpu"][:5])
    )
    order = [f"<{b}" for b in BUCKETS_S] + [f">={BUCKETS_S[-1]}"]
    for kind in ("wall", "cpu"):
        counts = result[f"{kind}_histogram"]
        lines.append(f"{kind} seconds: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in order))
    wall_only = result["over_1s_wall_only"]
    lines.append(f"over 1 s wall twice, under 1 s CPU (judged by a third run): {len(wall_only)}")
    lines += [
        f"  {s['where']} {s['seconds']}s wall, {s['unhurried_cpu_seconds']}s CPU"
        f" ({s['unhurried_answer']})"
        for s in wall_only[:20]
    ]
    if result["statements_failed"]:
        lines.append("statements that failed where SQLite succeeded:")
        lines += [f"  {n:>7}  {r}" for r, n in result["statements_failed"].items()]
    newer = result["matched_todays_sqlite_not_the_record"]
    if newer["count"]:
        lines.append(
            f"matches counting SQLite {newer['sqlite_version']}'s answer where the corpus "
            f"recorded another: {newer['count']}"
        )
        lines += [f"  {w}" for w in newer["where"][:10]]
    skipped = result["query_error_records_not_judged"]["count"]
    if skipped:
        lines.append(f"'query error' records (not SQLite's format), not judged: {skipped}")
    if result["file_errors"]:
        lines.append(f"files whose tables could not be made: {len(result['file_errors'])}")
    return "\n".join(lines)


def _records(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """The per-file records of earlier runs' JSON (a file in several: the last)."""
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        found.update(json.loads(path.read_text()).get("per_file", {}))
    return found


def _listed(corpus: Path, lists: list[Path]) -> list[Path]:
    """The corpus files named in ``--files`` lists, one corpus-relative path a line."""
    named = []
    for listing in lists:
        for line in listing.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                named.append(corpus / line.strip())
    missing = [str(path) for path in named if not path.is_file()]
    if missing:
        raise SystemExit(f"not corpus files: {', '.join(missing[:5])}")
    return named


def _result(
    per_file: dict[str, dict[str, Any]], head: dict[str, Any], top: int, seconds: float
) -> dict[str, Any]:
    tally = Tally()
    for record in per_file.values():
        tally.add(record)
    return {
        "suite": "sqllogictest",
        **head,
        "seconds": round(seconds, 1),
        **tally.as_json(top),
        "per_file": per_file,
    }


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(result, indent=1) + "\n")
    partial.replace(path)  # a run stopped mid-write leaves the last whole JSON


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, nargs="?", help="the corpus directory")
    parser.add_argument("globs", nargs="*")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sqllogictest.json")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--timeout-s", type=float, default=1.0)
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--files", type=Path, action="append", default=[], metavar="LIST")
    parser.add_argument("--shard", default="1/1", metavar="K/N")
    parser.add_argument("--resume", action="store_true", help="keep --out's files, run the rest")
    parser.add_argument("--skip-done", type=Path, nargs="+", default=[], metavar="JSON")
    parser.add_argument("--combine", type=Path, nargs="+", default=[], metavar="JSON")
    args = parser.parse_args(argv)
    if args.combine:
        per_file = _records(args.combine)
        seconds = sum(r["seconds"] for r in per_file.values())
        result = _result(per_file, {"combined": [str(p) for p in args.combine]}, args.top, seconds)
        print(summary(result, args.top))
        _write(args.out, result)
        print(f"wrote {args.out}")
        return 0
    if args.corpus is None:
        parser.error("give the corpus directory (or --combine JSON ...)")
    shard, shards = (int(part) for part in args.shard.split("/"))
    if not 1 <= shard <= shards:
        parser.error(f"--shard {args.shard}: K must be between 1 and N")
    globs = args.globs or ([] if args.files else ["test/select*.test"])
    # Globbed files sorted, then listed files in their list's order (a list can put the
    # files most worth running first).
    files = list(dict.fromkeys(corpus_files(args.corpus, globs) + _listed(args.corpus, args.files)))
    files = files[shard - 1 :: shards][: args.max_files]
    if not files:
        parser.error(f"no .test files match {globs} {args.files} under {args.corpus}")
    per_file = _records([args.out]) if args.resume and args.out.exists() else {}
    done = set(per_file) | set(_records(args.skip_done))
    todo = [path for path in files if str(path.relative_to(args.corpus)) not in done]

    def stop(signum: int, frame: Any) -> None:
        raise _HardStop

    signal.signal(signal.SIGALRM, stop)
    head = {
        "corpus": str(args.corpus),
        "globs": globs,
        "files_lists": [str(f) for f in args.files],
        "shard": args.shard,
        "timeout_s": args.timeout_s,
    }
    started = time.perf_counter()
    parent = tempfile.mkdtemp(prefix="cosmictron-slt-", dir=args.tmpdir)
    try:
        for number, path in enumerate(todo, start=1):
            tally = Tally()
            began = time.perf_counter()
            run_file(path, args.corpus, tally, args.timeout_s, parent)
            name = str(path.relative_to(args.corpus))
            per_file[name] = tally.file_record(time.perf_counter() - began)
            _write(args.out, _result(per_file, head, args.top, time.perf_counter() - started))
            print(
                f"[{number}/{len(todo)}] {name} {dict(tally.outcomes)}"
                f" {per_file[name]['seconds']}s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    result = _result(per_file, head, args.top, time.perf_counter() - started)
    print(summary(result, args.top))
    _write(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
