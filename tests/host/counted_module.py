"""The module the crash, hot-swap and backup tests write with.

Its reducer inserts item ``n`` and bumps one counter row in the same transaction, so
after any crash or restore "counter == number of items" holds exactly when no
transaction was half applied, and the set of items says which calls survived.
"""

COUNTED_MODULE = """
from cosmictron import ReducerContext, field, reducer, table


@table(name="item")
class Item:
    id: int = field(primary_key=True)


@table(name="counter")
class Counter:
    key: int = field(primary_key=True)
    value: int = 0


@reducer
def append(ctx: ReducerContext, n: int) -> None:
    ctx.db.item.insert(Item(id=n))
    counter = ctx.db.counter.key.find(0)
    if counter is None:
        ctx.db.counter.insert(Counter(key=0, value=1))
    else:
        ctx.db.counter.key.update(Counter(key=0, value=counter.value + 1))
"""
