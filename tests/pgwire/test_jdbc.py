"""PostgreSQL's JDBC driver, the one DBeaver and Metabase connect through, against a real
server: a Java program (``jdbc/Probe.java``, run as a single-file source launch)
connects with a token as the password, reads the catalogue through
``DatabaseMetaData`` (``getTables``, ``getColumns``, ``getPrimaryKeys``: what those
tools do on connect) and runs a parameterised ``PreparedStatement`` past the driver's
switch to a server-side prepared statement. Needs ``java`` and Debian's
``libpostgresql-jdbc-java`` (scripts/test installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pgwire.conftest import PG

JAR = Path("/usr/share/java/postgresql.jar")
PROBE = Path(__file__).parent / "jdbc" / "Probe.java"

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH (a JDK 11+)"),
    pytest.mark.skipif(
        not JAR.exists(),
        reason=f"no {JAR}: apt-get install libpostgresql-jdbc-java (scripts/test does)",
    ),
]


def probe(pg: PG, token: str) -> list[str]:
    url = f"jdbc:postgresql://{pg.host}:{pg.port}/shop"
    done = subprocess.run(
        ["java", "-cp", str(JAR), str(PROBE), url, token],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_jdbc_metadata_and_prepared_statement_as_a_reader(pg: PG) -> None:
    lines = probe(pg, pg.reader_token)
    assert lines[0] == "product PostgreSQL 15"
    # Public tables only: the reader may not see "secret".
    assert [line for line in lines if line.startswith("table ")] == [
        "table item TABLE",
        "table kinds TABLE",
    ]
    assert [line for line in lines if line.startswith("column ")] == [
        "column id int8 1 NO",
        "column name text 2 NO",
        "column price float8 3 NO",
        "column qty int8 4 NO",
        "column active bool 5 NO",
        "column note text 6 YES",
    ]
    assert [line for line in lines if line.startswith("pk ")] == ["pk id 1"]
    runs = [line for line in lines if line.startswith("rows")]
    assert runs == ["rows 2:item2 3:item3"] * 6


def test_jdbc_owner_sees_the_private_table(pg: PG) -> None:
    lines = probe(pg, pg.owner_token)
    assert [line for line in lines if line.startswith("table ")] == [
        "table item TABLE",
        "table kinds TABLE",
        "table secret TABLE",
    ]


def test_jdbc_wrong_token_is_refused(pg: PG) -> None:
    url = f"jdbc:postgresql://{pg.host}:{pg.port}/shop"
    done = subprocess.run(
        ["java", "-cp", str(JAR), str(PROBE), url, "not-a-token"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0
    assert "password authentication failed" in done.stderr
