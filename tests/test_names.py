"""``cosmictron.names``: each kind of name matched whole, ASCII only, within its length."""

from __future__ import annotations

import pytest

from cosmictron import limits, names
from cosmictron.datastore.schema import ColumnSchema, ReducerSchema, TableSchema
from cosmictron.datastore.types import I64
from cosmictron.errors import InvalidRequest, SchemaError

LOOK_ALIKES = ["qu\u0456ckstart", "\u0430dd", "ad\u200bd", "add\u00a0", "\uff41dd"]


@pytest.mark.parametrize("name", ["quickstart", "a", "db-1_x", "0" * 63])
def test_database_names_accepted(name: str) -> None:
    assert names.check_database(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Quick", "-a", "_a", "a" * 64, "a\n", "a\r", "a ", " a", "a/b", "a.b", "..", *LOOK_ALIKES],
)
def test_database_names_refused_with_the_name_shown(name: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        names.check_database(name)
    assert repr(name)[:60] in str(refused.value) or len(repr(name)) > 80
    assert "lowercase letters" in str(refused.value)


def test_identifiers_whole_ascii_and_bounded() -> None:
    longest = "a" * limits.identifier_bytes_max
    assert names.check_reducer(longest) == longest
    for bad in ["", "1a", "a-b", "a\n", "a b", longest + "a", *LOOK_ALIKES]:
        for check in (names.check_table, names.check_column, names.check_reducer):
            with pytest.raises(InvalidRequest, match="ASCII letters"):
                check(bad)
    assert not names.is_identifier(None) and not names.is_identifier(5)


def test_backup_members_and_identities() -> None:
    assert names.is_backup_member("log/00000000000000000000.log")
    for bad in ["database.json\n", "../x", "/etc/passwd", "a//b", "A.json", "a.b.c", ""]:
        assert not names.is_backup_member(bad), bad
    hexed = "ab" * 32
    assert names.check_identity_hex(hexed) == hexed
    assert names.check_identity_hex(hexed.upper()) == hexed.upper()
    for bad in [hexed + "\n", " " + hexed, "ab cd" * 13, hexed[:-1], "0x" + hexed, "zz" * 32]:
        with pytest.raises(InvalidRequest, match="64 hexadecimal digits"):
            names.check_identity_hex(bad)


def test_a_module_cannot_declare_what_a_caller_could_not_name() -> None:
    column = ColumnSchema("id", I64)
    with pytest.raises(SchemaError, match="table name"):
        TableSchema("\u0430dd", (column,))
    with pytest.raises(SchemaError, match="column name"):
        TableSchema("item", (ColumnSchema("v\u0430l", I64),))
    with pytest.raises(SchemaError, match="reducer name"):
        ReducerSchema("a" * (limits.identifier_bytes_max + 1))
