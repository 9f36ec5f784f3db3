"""The module every Cosmictron benchmark loads: one 5-column table, two reducers.

SQLite gets the same shape in ``bench/engines.py``: ``item(id INTEGER PRIMARY KEY, name TEXT,
qty INTEGER, price REAL, owner TEXT)`` plus an index on ``owner``.
"""

from cosmictron import ReducerContext, field, reducer, table


@table(name="item")
class Item:
    id: int = field(primary_key=True)
    name: str = ""
    qty: int = 0
    price: float = 0.0
    owner: str = field(default="", index="hash")


@reducer
def insert_item(
    ctx: ReducerContext, id: int, name: str, qty: int, price: float, owner: str
) -> None:
    ctx.db.item.insert(Item(id=id, name=name, qty=qty, price=price, owner=owner))


@reducer
def set_qty(ctx: ReducerContext, id: int, qty: int) -> None:
    row = ctx.db.item.id.find(id)
    row.qty = qty
    ctx.db.item.id.update(row)
