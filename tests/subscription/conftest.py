"""The module the subscription tests share: three small tables and a batch reducer."""

from __future__ import annotations

from collections import Counter
from typing import Any

MODULE = """
import json

@table(name="a", public=True)
class A:
    id: int = field(primary_key=True)
    k: Optional[int] = field(default=None, index="btree")
    v: int = 0

@table(name="b", public=True)
class B:
    id: int = field(primary_key=True)
    k: int = 0
    w: Optional[int] = None

@table(name="c", public=True)
class C:
    id: int = field(primary_key=True)
    a_id: int = field(default=0, index="hash")
    k: int = 0

@table(name="secret")
class Secret:
    id: int = field(primary_key=True)

@reducer
def batch(ctx: ReducerContext, ops: str) -> None:
    classes = {"a": A, "b": B, "c": C}
    for kind, name, values in json.loads(ops):
        handle = getattr(ctx.db, name)
        row = classes[name](**values) if kind != "del" else None
        if kind == "ins":  # fails on a duplicate key
            handle.insert(row)
        elif kind == "put":  # insert, or update the row with that id
            if handle.id.find(values["id"]) is None:
                handle.insert(row)
            else:
                handle.id.update(row)
        elif kind == "del":
            handle.id.delete(values["id"])
        else:
            raise ValueError("this transaction fails")
"""


class Mirror:
    """A subscriber's copy of its result, maintained only from updates."""

    def __init__(self) -> None:
        self.rows: dict[str, Counter[Any]] = {}
        self.updates: list[dict[str, Any]] = []

    def start(self, initial: dict[str, Any]) -> None:
        for table in initial["tables"]:
            self.rows.setdefault(table["table_name"], Counter()).update(table["rows"])

    def __call__(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        for table in update["tables"]:
            rows = self.rows.setdefault(table["table_name"], Counter())
            for row in table["deletes"]:
                assert rows[row] > 0, f"delete of a row not in the result: {row}"
                rows[row] -= 1
            rows.update(table["inserts"])
            for row in [row for row, count in rows.items() if count == 0]:
                del rows[row]

    def table(self, name: str) -> Counter[Any]:
        return +self.rows.get(name, Counter())
