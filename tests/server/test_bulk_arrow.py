"""The columnar CSV path (``bulk_arrow``, the ``[fast-csv]`` extra) against the row-wise one.

Both must give the same rows, and the same error for a bad body, whatever the body:
random bodies mixing plain segments with quotes, empty lines, carriage returns, bad
cells, out-of-range values and wrong field counts are parsed both ways and compared.
``SEGMENT_BYTES`` is made small so one body crosses many segments and hand-overs.
"""

from __future__ import annotations

import io
import random

import pytest

from cosmictron.datastore.schema import ColumnSchema, TableSchema
from cosmictron.datastore.types import F64, I64, INTEGERS, STR
from cosmictron.errors import InvalidRequest, TooLarge
from cosmictron.server import bulk_arrow
from cosmictron.server.bulk import bounded_lines

pytest.importorskip("pyarrow", reason="the [fast-csv] extra (pyarrow) is not installed")

LIMIT = 1 << 20


def table() -> TableSchema:
    return TableSchema(
        name="t",
        columns=(
            ColumnSchema("id", I64),
            ColumnSchema("small", INTEGERS["i8"], default=0),
            ColumnSchema("big", INTEGERS["u64"], default=0),
            ColumnSchema("price", F64, default=0.0),
            ColumnSchema("name", STR, default=""),
        ),
        primary_key=("id",),
    )


def parse(body: bytes, enabled: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(bulk_arrow, "ENABLED", enabled)
    monkeypatch.setattr(bulk_arrow, "SEGMENT_BYTES", 64)
    try:
        parsed = bulk_arrow.parse_csv_body(
            io.BytesIO(body), table(), LIMIT, lambda text: bounded_lines(text, LIMIT)
        )
    except (InvalidRequest, TooLarge, UnicodeDecodeError) as exc:
        return ("error", type(exc).__name__, str(exc))
    rows = [tuple((type(v).__name__, repr(v)) for v in row) for row in parsed.rows]
    return ("rows", rows, [parsed.line_of(i) for i in range(len(parsed.rows))], parsed.checked)


CELLS = {
    "id": ["1", "-5", "007", "+3", "x", "", "1.0", "99999999999999999999", " 4"],
    "small": ["0", "127", "-128", "128", "-129", "z", ""],
    "big": ["0", "18446744073709551615", "-1", "18446744073709551616"],
    "price": ["1.5", "-0.0", "1e3", ".5", "5.", "nan", "inf", "abc", "", "1_0"],
    "name": ["a", "", "b c", "é", '"q,uoted"', '"line\nbreak"', "x\ry"],
}


def random_body(rng: random.Random) -> bytes:
    names = rng.sample(["id", "small", "big", "price", "name"], rng.randint(1, 5))
    if "id" not in names:
        names.insert(0, "id")
    lines = [",".join(names)]
    dirt = rng.choice([0.0, 0.0, 0.01, 0.05])  # half the bodies are plain throughout
    for _ in range(rng.randint(0, 40)):
        if rng.random() < dirt:
            lines.append("")
            continue
        cells = []
        for name in names:
            good = rng.random() >= dirt
            options = CELLS[name][:3] if good else CELLS[name]
            cells.append(rng.choice(options))
        if rng.random() < dirt:
            cells.append("extra")
        lines.append(",".join(cells))
    ending = rng.choice(["\n", "\n", "\n", "\r\n"])
    text = ending.join(lines) + (ending if rng.random() < 0.8 else "")
    data = text.encode()
    if rng.random() < 0.05:
        data = b"\xef\xbb\xbf" + data
    if rng.random() < 0.02:
        data = data.replace(b"a", b"\xff", 1)
    return data


@pytest.mark.parametrize("seed", range(300))
def test_the_columnar_path_agrees_with_the_row_wise_one(seed, monkeypatch) -> None:
    body = random_body(random.Random(seed))
    assert parse(body, True, monkeypatch) == parse(body, False, monkeypatch), body


def test_a_plain_body_is_parsed_columnar_and_checked(monkeypatch) -> None:
    body = b"id,price,name\n" + b"".join(b"%d,%d.5,n%d\n" % (i, i, i) for i in range(1000))
    monkeypatch.setattr(bulk_arrow, "SEGMENT_BYTES", 1024)
    called = []
    real = bulk_arrow._hand_over
    monkeypatch.setattr(bulk_arrow, "_hand_over", lambda *a: called.append(1) or real(*a))
    parsed = bulk_arrow.parse_csv_body(
        io.BytesIO(body), table(), LIMIT, lambda text: bounded_lines(text, LIMIT)
    )
    assert called == [], "a plain body should never leave the columnar path"
    assert parsed.checked
    assert parsed.rows[7] == (7, 0, 0, 7.5, "n7")
    assert parsed.line_of(999) == 1001
