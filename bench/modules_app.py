"""The benchmark's insert module in Python (bench/modules.py); its WASM twin is
guest/rust/examples/bench_insert."""

from cosmictron import ReducerContext, field, reducer, table


@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)
    name: str = ""
    qty: int = 0


@reducer
def add_item(ctx: ReducerContext, id: int, name: str, qty: int) -> None:
    ctx.db.item.insert(Item(id=id, name=name, qty=qty))


@reducer
def noop(ctx: ReducerContext) -> None:
    pass
