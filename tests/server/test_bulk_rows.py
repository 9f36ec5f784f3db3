"""The CSV converter checks each cell as it reads it, exactly as the table's checker would.

``bulk_rows.row_converter`` folds the table's row check into the generated converter, so
the host skips its own check of a CSV body (``Database.bulk_insert_once(checked_for=)``).
These tests hold the converter to ``check_values(convert(row))`` for every column type,
check that a chunk with a value only the check refuses is left for the host to check,
and that the host checks rows claimed for a schema that is no longer the table's.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import cosmictron
from cosmictron.errors import InvalidRequest
from cosmictron.server.bulk_rows import ColumnPlan, parse_csv, row_converter
from cosmictron.server.cells import cell_reader

MODULE = """
import enum
from typing import Optional
from cosmictron import Identity, Timestamp, field, i8, table, u128, f32

class Color(enum.Enum):
    RED = 1
    BLUE = 2

@table(name="every")
class Every:
    id: int = field(primary_key=True)
    small: i8 = 0
    big: u128 = 0
    ratio: f32 = 0.0
    price: float = 0.0
    flag: bool = False
    text: str = ""
    blob: bytes = b""
    who: Identity = field(default=Identity.zero())
    at: Timestamp = field(default=Timestamp(0))
    maybe: Optional[int] = None
    note: Optional[str] = None
    color: Color = Color.RED
"""

HEADER = "id,small,big,ratio,price,flag,text,blob,who,at,maybe,note,color"
ROWS = [
    "1,-128,340282366920938463463374607431768211455,1.5,2.25,true,a,00ff,"
    + "00" * 32
    + ",2026-01-01T00:00:00Z,7,x,BLUE",
    "2,127,0,0,-0.0,false,,," + "11" * 32 + ",1970-01-01T00:00:00.000001Z,,,RED",
]


@pytest.fixture
def database(tmp_path: Path):
    module = tmp_path / "every.py"
    module.write_text(MODULE)
    with cosmictron.Database.open(tmp_path / "data", module) as db:
        yield db


def test_the_converter_gives_what_the_table_check_gives(database) -> None:
    schema = database.schema.table("every")
    binding = database.core.module.rows["every"]
    cells = list(csv.reader(io.StringIO("\n".join([HEADER, *ROWS]))))
    plan = ColumnPlan.for_names(schema, cells[0], "line 1")
    convert = row_converter(plan, [cell_reader(column.type) for column in schema.columns])
    raw = row_converter_without_checks(plan, schema)
    for row in cells[1:]:
        converted = convert(row)
        assert converted == binding.check_values(raw(row))
        assert list(map(type, converted)) == list(map(type, binding.check_values(raw(row))))


def row_converter_without_checks(plan, schema):
    readers = [cell_reader(column.type) for column in schema.columns]

    def convert(row):
        return tuple(
            default
            if position is None
            else (row[position] if read is None else read(row[position]))
            for position, default, read in zip(plan.positions, plan.defaults, readers, strict=True)
        )

    return convert


def test_a_body_of_good_rows_is_marked_checked_and_loads(database) -> None:
    schema = database.schema.table("every")
    parsed = parse_csv(io.StringIO("\n".join([HEADER, *ROWS]) + "\n"), schema)
    assert parsed.checked
    outcome = database.bulk_insert_once("every", parsed.rows, None, checked_for=schema)
    assert outcome.row_count == 2
    database.check_invariants()


@pytest.mark.parametrize(
    ("cell", "column"),
    [("128", "small"), ("-1", "big"), ("nan", "price"), ("inf", "ratio")],
)
def test_a_value_only_the_check_refuses_is_left_to_the_host(database, cell, column) -> None:
    """``int``/``float`` read these cells; only the column's check refuses them."""
    schema = database.schema.table("every")
    body = io.StringIO(f"id,{column}\n1,0\n2,{cell}\n")
    parsed = parse_csv(body, schema)
    assert not parsed.checked
    with pytest.raises(InvalidRequest) as refused:
        database.bulk_insert_once("every", parsed.rows, None, checked_for=None)
    assert refused.value.row_index == 1  # type: ignore[attr-defined]
    assert database.rows("every") == []


def test_rows_claimed_for_another_schema_are_checked(database, tmp_path: Path) -> None:
    """A module update between parsing and inserting makes new schemas: check again."""
    other = tmp_path / "other.py"
    other.write_text(MODULE)
    with cosmictron.Database.open(tmp_path / "other", other) as elsewhere:
        stale = elsewhere.schema.table("every")
    bad = [(1, 999, 0, 0.0, 0.0, False, "", b"", cosmictron.Identity.zero(),
            cosmictron.Timestamp(0), None, None, "RED")]  # fmt: skip
    with pytest.raises(InvalidRequest):
        database.bulk_insert_once("every", bad, None, checked_for=stale)
    assert database.rows("every") == []
