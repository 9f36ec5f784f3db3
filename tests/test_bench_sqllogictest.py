"""The sqllogictest runner (``bench/sqllogictest.py``) on a small file written for it.

The corpus itself is not in the repository; ``tests/bench_slt/sample.test`` holds one of
each thing the runner must get right: a hashed result, each sort mode, the I/T/R
formatting, ``skipif``/``onlyif``/``halt``, a wrong answer, a refused query and a query
whose table missed a statement SQLite ran.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SAMPLE = Path(__file__).resolve().parent / "bench_slt"
sys.path.insert(0, str(BENCH))

import slt_corpus  # noqa: E402
import sqllogictest  # noqa: E402


def test_records_follow_skipif_onlyif_halt_and_the_threshold():
    items = list(slt_corpus.records((SAMPLE / "sample.test").read_text()))
    queries = [item for item in items if isinstance(item, slt_corpus.Query)]
    assert [q.sql for q in queries if "nowhere" in q.sql or "99" in q.expected] == []
    assert all(q.hash_threshold == 4 for q in queries)
    first = queries[0]
    assert (first.types, first.sort, first.line) == ("ITR", "rowsort", 20)
    assert queries[1].sort == "nosort" and queries[1].expected == ("3", "2", "1")


@pytest.mark.parametrize(
    ("value", "letter", "text"),
    [
        (None, "I", "NULL"),
        (7, "I", "7"),
        (7.9, "I", "7"),
        (-7.9, "I", "-7"),
        ("12abc", "I", "12"),
        ("abc", "I", "0"),
        (True, "I", "1"),
        (2, "R", "2.000"),
        (1 / 3, "R", "0.333"),
        ("", "T", "(empty)"),
        ("a\tb\u00e9", "T", "a@b@"),
        (5, "T", "5"),
        (1.0, "T", "1.0"),
        (0.1, "T", "0.1"),
        (1e20, "T", "1.0e+20"),
    ],
)
def test_values_print_as_sqllogictest_prints_them(value, letter, text):
    assert slt_corpus.format_value(value, letter) == text


def test_sort_modes_and_the_hash():
    rows = [(2, "b"), (10, "a"), (2, "a")]
    assert slt_corpus.result_values(rows, "IT", "rowsort") == ["10", "a", "2", "a", "2", "b"]
    assert slt_corpus.result_values(rows, "IT", "valuesort") == ["10", "2", "2", "a", "a", "b"]
    assert slt_corpus.result_values(rows, "IT", "nosort") == ["2", "b", "10", "a", "2", "a"]
    # md5 of "1\n2\n", as `printf '1\n2\n' | md5sum` prints it
    assert slt_corpus.digest(["1", "2"]) == "6ddb4095eb719e2a9f0a3f95677d24e0"


def test_tables_come_from_create_table_and_create_index():
    tables, taken = slt_corpus.declared_tables(
        [
            "CREATE TABLE tab0(pk INTEGER PRIMARY KEY, col0 INTEGER NOT NULL, col1 FLOAT, "
            "col2 TEXT)",
            "CREATE INDEX idx_tab0_0 ON tab0 (col0 DESC, col1)",
            "CREATE UNIQUE INDEX idx_tab0_1 ON tab0 (col2)",
            "INSERT INTO tab0 VALUES(1, 2, 3.0, 'x')",
        ]
    )
    decl = tables["tab0"]
    assert decl.primary_key == ["pk"]
    assert decl.columns == [
        ("pk", "int", False),
        ("col0", "int", False),
        ("col1", "float", True),
        ("col2", "str", True),
    ]
    assert decl.indexes == [
        ("idx_tab0_0", ("col0", "col1"), False),
        ("idx_tab0_1", ("col2",), True),
    ]
    assert len(taken) == 3
    source = slt_corpus.module_source(tables)
    assert "pk: int = field(primary_key=True)" in source
    assert "col1: Optional[float] = None" in source


def test_the_runner_counts_matches_refusals_and_wrong_answers(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert sqllogictest.main([str(SAMPLE), "*.test", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    # sample.test:56 records a wrong answer (2 where the row says 1): Cosmictron's 1 is
    # also what the SQLite beside it answers, so it counts as a match, listed apart.
    assert result["outcomes"] == {"match": 5, "refused": 2}
    assert result["queries"] == 7 and result["match_percent"] == pytest.approx(500 / 7, abs=0.01)
    newer = result["matched_todays_sqlite_not_the_record"]
    assert newer["count"] == 1 and newer["where"][0].startswith("sample.test:56:")
    assert result["wrong"] == []
    reasons = [item["reason"] for item in result["refused_top"]]
    assert any("unknown table" in reason for reason in reasons)
    assert any(reason.startswith("a statement this query depends on") for reason in reasons)
    assert result["statements_failed"] and result["slow"] == []
    assert "match 71.429%" in capsys.readouterr().out


def test_an_answer_unlike_the_record_and_unlike_sqlite_is_wrong(tmp_path):
    # The SQLite beside the run holds no rows, so its answer differs from Cosmictron's
    # as the record does: the answer is counted wrong, with what was got.
    import sqlite3

    import cosmictron

    (tmp_path / "m.py").write_text(
        "from cosmictron import field, table\n"
        "@table(name='t1', public=True)\nclass T1:\n    a: int = field(primary_key=True)\n"
    )
    db = cosmictron.Database.open(tmp_path / "data", module=str(tmp_path / "m.py"))
    db.sql("INSERT INTO t1 VALUES (1)")
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t1 (a INTEGER PRIMARY KEY)")
    query = slt_corpus.Query("SELECT a FROM t1", "I", "nosort", ("2",), 0, 7)
    tally = sqllogictest.Tally()
    try:
        sqllogictest._query(db, query, "x.test", tally, 1.0, lite)
    finally:
        db.close()
    assert tally.outcomes == {"wrong": 1}
    assert tally.wrong[0]["where"] == "x.test:7" and tally.wrong[0]["got"] == ["1"]


def test_a_query_over_its_time_is_slow_not_a_match(tmp_path):
    out = tmp_path / "result.json"
    sqllogictest.main([str(SAMPLE), "*.test", "--out", str(out), "--timeout-s", "0.0000001"])
    result = json.loads(out.read_text())
    assert result["outcomes"].get("match", 0) == 0
    assert result["outcomes"]["slow"] >= 4 and result["slow"][0]["where"].startswith("sample.test")
    # Each slow query is run a third time without the limit, to say what it cost: its
    # CPU seconds (on a shared machine the wall time may be mostly waiting for a core)
    # and whether that answer is SQLite's.
    for slow in result["slow"]:
        assert slow["unhurried_cpu_seconds"] >= 0 and slow["unhurried_seconds"] >= 0
        assert slow["unhurried_answer"] in ("match", "differs") or slow[
            "unhurried_answer"
        ].startswith("error")
    assert any(slow["unhurried_answer"] == "match" for slow in result["slow"])


def test_a_keyless_table_given_a_duplicate_row_is_not_judged(tmp_path):
    # Cosmictron's keyless table is a set (documented): the second identical row is not
    # stored, so SQLite's count of 2 cannot be reproduced; the query is refused, saying
    # why, rather than counted wrong. The other table is still judged.
    out = tmp_path / "result.json"
    sqllogictest.main([str(SAMPLE), "keyless/*.test", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["outcomes"] == {"match": 2, "refused": 1}
    (refused,) = result["refused_top"]
    assert sqllogictest.KEYLESS in refused["reason"]


def test_shards_resume_and_combine_add_up_to_one_whole_run(tmp_path, capsys):
    # The corpus takes hours: the runner splits a file list into shards, picks a run up
    # where it stopped (per-file records, rewritten after each file) and adds the
    # shards' records up; the sum is the whole run's.
    whole, first, second, resumed = (tmp_path / f"{n}.json" for n in "wabr")
    globs = ["*.test", "keyless/*.test"]
    sqllogictest.main([str(SAMPLE), *globs, "--out", str(whole)])
    for shard, out in (("1/2", first), ("2/2", second)):
        sqllogictest.main([str(SAMPLE), *globs, "--shard", shard, "--out", str(out)])
    one, two = (json.loads(path.read_text())["per_file"] for path in (first, second))
    assert len(one) == len(two) == 1 and set(one) != set(two)
    capsys.readouterr()
    sqllogictest.main(["--combine", str(first), str(second), "--out", str(tmp_path / "c.json")])
    combined = json.loads((tmp_path / "c.json").read_text())
    expected = json.loads(whole.read_text())
    assert combined["outcomes"] == expected["outcomes"] == {"match": 7, "refused": 3}
    assert set(combined["per_file"]) == set(expected["per_file"])
    # --files names corpus files in a list; --resume keeps the files --out holds.
    listing = tmp_path / "files.txt"
    listing.write_text("# the sample, then the keyless file\nsample.test\nkeyless/keyless.test\n")
    resumed.write_text(first.read_text())
    sqllogictest.main([str(SAMPLE), "--files", str(listing), "--out", str(resumed), "--resume"])
    ran = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert len(ran) == 1 and next(iter(two)) in ran[0]  # only the file not yet run
    assert json.loads(resumed.read_text())["outcomes"] == expected["outcomes"]


def test_a_file_list_naming_no_corpus_file_is_refused(tmp_path):
    listing = tmp_path / "files.txt"
    listing.write_text("no/such.test\n")
    with pytest.raises(SystemExit, match="not corpus files: .*no/such.test"):
        sqllogictest.main([str(SAMPLE), "--files", str(listing), "--out", str(tmp_path / "o")])


def test_a_query_slow_by_the_wall_clock_alone_is_judged_not_slow(tmp_path):
    # Load elsewhere on a shared machine stretches a query's wall time, not the CPU time
    # it uses: here a signal handler sleeps 0.25 s after every few milliseconds of this
    # process's CPU time (SIGVTALRM), so each run takes many times its CPU time on the
    # wall clock. The query is over its wall budget twice, run a third time, and judged
    # by that answer: a match, listed apart with its CPU seconds, not counted slow.
    import signal
    import sqlite3
    import time

    import cosmictron

    (tmp_path / "m.py").write_text(
        "from cosmictron import field, table\n"
        "@table(name='t1', public=True)\nclass T1:\n    a: int = field(primary_key=True)\n"
    )
    db = cosmictron.Database.open(tmp_path / "data", module=str(tmp_path / "m.py"))
    values = ", ".join(f"({n})" for n in range(300))
    db.sql(f"INSERT INTO t1 VALUES {values}")
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t1 (a INTEGER PRIMARY KEY)")
    lite.execute(f"INSERT INTO t1 VALUES {values}")
    sql = "SELECT COUNT(*) FROM t1 x, t1 y WHERE x.a + y.a = 100"
    (count,) = lite.execute(sql).fetchone()
    query = slt_corpus.Query(sql, "I", "nosort", (str(count),), 0, 3)
    tally = sqllogictest.Tally()
    previous = signal.signal(signal.SIGVTALRM, lambda *_: time.sleep(0.25))
    signal.setitimer(signal.ITIMER_VIRTUAL, 0.001, 0.001)
    try:
        sqllogictest._query(db, query, "x.test", tally, 0.5, lite)
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0, 0)
        signal.signal(signal.SIGVTALRM, previous)
        db.close()
    assert tally.outcomes == {"match": 1} and tally.retried == 1 and tally.slow == []
    (seen,) = tally.wall_only
    assert seen["where"] == "x.test:3" and seen["unhurried_answer"] == "match"
    assert seen["seconds"] > 0.5 > seen["unhurried_cpu_seconds"]
    assert sum(tally.cpu_histogram.values()) == sum(tally.wall_histogram.values()) == 1
