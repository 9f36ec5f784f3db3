"""psql (Debian's postgresql-client) against a real server: ``\\l``, ``\\dt``, ``\\d t``
print the right shapes, errors show SQLSTATE and the caret, COPY TO STDOUT works, and a
non-owner's catalogue holds no private table."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.pgwire.conftest import PG

pytestmark = pytest.mark.skipif(
    shutil.which("psql") is None, reason="psql is not installed (scripts/test installs it)"
)


def psql(
    pg: PG, command: str, token: str | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "psql",
            pg.dsn(token),
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            *extra,
            "-c",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"},
    )


def test_list_databases(pg: PG) -> None:
    done = psql(pg, r"\l")
    assert done.returncode == 0, done.stderr
    assert "List of databases" in done.stdout
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("shop"))
    assert "UTF8" in line


def test_list_tables_shows_only_what_the_caller_may_read(pg: PG) -> None:
    owner = psql(pg, r"\dt")
    assert owner.returncode == 0, owner.stderr
    rows = [line.split("|") for line in owner.stdout.splitlines() if "| table |" in line]
    assert sorted(cells[1].strip() for cells in rows) == ["item", "kinds", "secret"]
    reader = psql(pg, r"\dt", pg.reader_token)
    assert reader.returncode == 0, reader.stderr
    listed = [
        line.split("|")[1].strip() for line in reader.stdout.splitlines() if "| table |" in line
    ]
    assert listed == ["item", "kinds"]
    hidden = psql(pg, r"\d secret", pg.reader_token)
    assert "Did not find any relation named" in hidden.stderr


def test_describe_table(pg: PG) -> None:
    done = psql(pg, r"\d item")
    assert done.returncode == 0, done.stderr
    assert 'Table "public.item"' in done.stdout
    columns = {}
    for line in done.stdout.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) == 5 and cells[0] not in ("Column", ""):
            columns[cells[0]] = (cells[1], cells[3])
    assert columns == {
        "id": ("bigint", "not null"),
        "name": ("text", "not null"),
        "price": ("double precision", "not null"),
        "qty": ("bigint", "not null"),
        "active": ("boolean", "not null"),
        "note": ("text", ""),
    }
    assert '"item_pkey" PRIMARY KEY, btree (id)' in done.stdout
    assert '"item_name_key" UNIQUE CONSTRAINT, btree (name)' in done.stdout


def test_select_and_error_with_caret(pg: PG) -> None:
    done = psql(pg, "SELECT id, name FROM item WHERE id < 3 ORDER BY id", None, "-A", "-t")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1|item1", "2|item2"]
    failed = psql(pg, "SELECT nope FROM item")
    assert failed.returncode != 0
    assert "ERROR:  42703:" in failed.stderr and "LINE 1: SELECT nope FROM item" in failed.stderr
    caret = failed.stderr.splitlines()[
        failed.stderr.splitlines().index("LINE 1: SELECT nope FROM item") + 1
    ]
    assert caret.index("^") == len("LINE 1: SELECT ")


def test_copy_to_stdout_text_and_csv(pg: PG) -> None:
    text = psql(pg, r"COPY (SELECT id, name, note FROM item WHERE id <= 2 ORDER BY id) TO STDOUT")
    assert text.returncode == 0, text.stderr
    assert text.stdout == "1\titem1\t\\N\n2\titem2\t\\N\n"
    csv = psql(
        pg,
        "COPY (SELECT id, name FROM item WHERE id <= 2 ORDER BY id) TO STDOUT "
        "WITH (FORMAT csv, HEADER)",
    )
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout == "id,name\n1,item1\n2,item2\n"
    refused = psql(pg, r"COPY item FROM STDIN")
    assert refused.returncode != 0 and "0A000" in refused.stderr


def test_a_transaction_in_one_psql_session(pg: PG) -> None:
    done = psql(
        pg,
        "BEGIN; INSERT INTO item (id, name, price, qty, active, note) "
        "VALUES (3001, 'psql', 1.0, 1, true, NULL); "
        "ROLLBACK; SELECT count(*) FROM item WHERE id = 3001",
        None,
        "-A",
        "-t",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["BEGIN", "INSERT 0 1", "ROLLBACK", "0"]
