"""The sqllogictest corpus (``slt/*.slt``): the same queries on SQLite and on Cosmictron.

Every record runs on SQLite, which must return the rows written in the file: that checks
the corpus itself. When ``Database.sql`` exists, every record also runs on a Cosmictron
database holding the same rows (``slt/dataset.py``) and must return the same rows. The
format is described in ``slt/README.md``; ``slt/generate.py`` rewrites expected rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cosmictron
from cosmictron import Database, DurabilityConfig
from tests.query import slt_format

SLT_DIR = Path(__file__).parent / "slt"
DATASET = SLT_DIR / "dataset.py"
FILES = sorted(SLT_DIR.glob("*.slt"))
QUERY_COUNT_MIN = 200


@pytest.fixture(scope="module")
def dataset() -> tuple[Any, dict[str, list[tuple[Any, ...]]]]:
    return slt_format.load_dataset(DATASET)


@pytest.fixture(scope="module")
def sqlite(dataset: tuple[Any, dict[str, list[tuple[Any, ...]]]]) -> slt_format.Engine:
    return slt_format.sqlite_engine(*dataset)


@pytest.fixture(scope="module")
def cosmictron_engine(
    dataset: tuple[Any, dict[str, list[tuple[Any, ...]]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[slt_format.Engine]:
    if not hasattr(Database, "sql"):
        pytest.skip("Database.sql is not built yet")
    _, rows = dataset
    database = Database.open(
        tmp_path_factory.mktemp("slt") / "data",
        module=DATASET,
        durability=DurabilityConfig(fsync_policy="never"),
    )
    try:
        for table, table_rows in rows.items():
            database.bulk_insert(table, table_rows)

        def execute(sql: str) -> tuple[Any, Any]:
            result = database.sql(sql)
            return result.columns, result.rows

        yield slt_format.Engine(
            "cosmictron", execute, cosmictron.CosmictronError, cosmictron.InternalError
        )
    finally:
        database.close()


def _check(path: Path, engine: slt_format.Engine) -> None:
    ran, failures = slt_format.run_file(path, engine)
    assert ran > 0, f"{path.name}: no record runs on {engine.name}"
    assert not failures, f"{len(failures)} of {ran} records failed:\n\n" + "\n\n".join(failures)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_sqlite_matches_expected(path: Path, sqlite: slt_format.Engine) -> None:
    _check(path, sqlite)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_cosmictron_matches_expected(path: Path, cosmictron_engine: slt_format.Engine) -> None:
    _check(path, cosmictron_engine)


def test_corpus_is_large_enough() -> None:
    queries = [
        record
        for path in FILES
        for record in slt_format.records(slt_format.parse_file(path))
        if record.kind == "query"
    ]
    assert len(queries) >= QUERY_COUNT_MIN, f"only {len(queries)} queries"


def test_format_round_trips() -> None:
    for path in FILES:
        text = path.read_text()
        assert slt_format.render(slt_format.parse(text, str(path))) == text, path.name


def test_values_are_typed() -> None:
    record = slt_format.parse("query IRT rowsort\nSELECT 1\n----\n")[0]
    assert isinstance(record, slt_format.Record)
    rows = [(True, 2.0 / 3.0, ""), (None, -0.0, "a b"), (7, 1e7, "z")]
    assert slt_format.format_rows(record, rows) == [
        "1\t0.666667\t(empty)",
        "7\t1e+07\tz",
        "NULL\t0\ta b",
    ]
    for value, letter in [(1.0, "I"), (1, "R"), (1, "T"), ("1", "I"), ("NULL", "T")]:
        with pytest.raises(slt_format.ValueTypeError):
            slt_format.format_value(value, letter)
