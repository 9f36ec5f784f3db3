"""The dataset every ``.slt`` file queries: a Cosmictron module and its rows.

The module declares four public tables; ``rows()`` builds their contents from a seed, so
the SQLite side and the Cosmictron side of ``tests/query/test_slt.py`` load the same rows.
The data is small (20-60 rows a table) but holds the cases a query engine gets wrong:
NULLs in nullable columns, duplicate values in non-key columns, users without orders,
orders of unknown products, tags of unknown products, ties in sort columns, negative
numbers, zero and empty strings.

Prices are multiples of 0.25, so sums and products of them are exact in binary floating
point and no float result depends on the order an engine adds rows in.

Changing ``SEED`` or the generator changes every expected result: run
``python tests/query/slt/generate.py`` afterwards and review the diff.
"""

from __future__ import annotations

import random
from typing import Any

from cosmictron import Index, field, table

SEED = 20240611


@table(name="users", public=True)
class Users:
    id: int = field(primary_key=True)
    name: str
    age: int | None = None
    city: str | None = field(index="btree", default=None)
    active: bool = True


@table(name="products", public=True)
class Products:
    id: int = field(primary_key=True)
    name: str
    category: str = field(index="hash")
    price: float = 0.0


@table(
    name="orders",
    public=True,
    indexes=[Index("by_user_product", ("user_id", "product_id"))],
)
class Orders:
    id: int = field(primary_key=True)
    user_id: int = field(index="btree")
    product_id: int = field(index="hash")
    qty: int = 0
    price: float = 0.0
    note: str | None = None


@table(name="tags", public=True, primary_key=("product_id", "tag"))
class Tags:
    product_id: int
    tag: str


NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "ann marie", "Bob", "")
CITIES = ("paris", "london", "new york", "tokyo", "berlin", "", None, None)
PRODUCT_NAMES = (
    "hammer",
    "wrench",
    "saw",
    "drill",
    "kite",
    "yo-yo",
    "puzzle",
    "robot",
    "novel",
    "atlas",
    "cookbook",
    "poems",
    "apple",
    "bread",
    "cheese",
    "tea",
    "coffee",
    "gift card",
    "coupon",
    "sample",
)
CATEGORIES = ("tools", "toys", "books", "food")
NOTES = ("gift", "rush", "gift wrap", "", None, None, None)
TAGS = ("sale", "new", "eco", "gift", "bulk")

USER_COUNT = 40
"""Users 35-40 never order: ``orders.user_id`` is drawn from 1-34 (and 0, unknown)."""

PRODUCT_COUNT = 20
"""``orders.product_id`` and ``tags.product_id`` also use 21 and 22, unknown products."""

ORDER_COUNT = 60


def rows(seed: int = SEED) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of each table, as tuples in column order, built from ``seed``."""
    rng = random.Random(seed)
    return {
        "users": _users(rng),
        "products": _products(rng),
        "orders": _orders(rng),
        "tags": _tags(rng),
    }


def _users(rng: random.Random) -> list[tuple[Any, ...]]:
    users = []
    for user_id in range(1, USER_COUNT + 1):
        age = None if rng.random() < 0.2 else rng.choice((0, 18, 21, 25, 30, 30, 42, 55, 67))
        users.append((user_id, rng.choice(NAMES), age, rng.choice(CITIES), rng.random() < 0.7))
    return users


def _products(rng: random.Random) -> list[tuple[Any, ...]]:
    products = []
    for index, name in enumerate(PRODUCT_NAMES):
        category = CATEGORIES[min(index // 4, 3)] if index < 17 else rng.choice(CATEGORIES)
        price = rng.randrange(0, 200) * 0.25
        if name == "coupon":
            price = -5.0
        products.append((index + 1, name, category, price))
    return products


def _orders(rng: random.Random) -> list[tuple[Any, ...]]:
    orders = []
    for order_id in range(1, ORDER_COUNT + 1):
        user_id = rng.choice((0, *range(1, 35), 1, 2, 3))
        product_id = rng.randrange(1, PRODUCT_COUNT + 3)
        qty = rng.randrange(-2, 10)
        price = rng.randrange(-4, 120) * 0.25
        orders.append((order_id, user_id, product_id, qty, price, rng.choice(NOTES)))
    return orders


def _tags(rng: random.Random) -> list[tuple[Any, ...]]:
    pairs = {(rng.randrange(1, PRODUCT_COUNT + 3), rng.choice(TAGS)) for _ in range(45)}
    return sorted(pairs)
