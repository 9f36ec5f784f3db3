"""The shop module of the import and export guide (docs/guide/import-export.md).

One table of items; ``items.csv`` beside this file holds rows for it, in the CSV form
``cosmictron-cli import`` and the ``bulk_insert`` route read.
"""

from cosmictron import field, table


@table(public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    name: str = field(unique=True)
    price: float = 0.0
    qty: int = 0
