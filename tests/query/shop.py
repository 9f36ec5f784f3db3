"""The module and rows the query tests share: customers, orders, a private and an event table."""

from __future__ import annotations

import random
from typing import Any

SHOP = """
class Status(enum.Enum):
    ACTIVE = 1
    CLOSED = 2

@table(name="customer", public=True)
class Customer:
    id: int = field(primary_key=True, auto_inc=True)
    name: str = ""
    city: Optional[str] = None
    age: Optional[int] = None
    owner: Optional[Identity] = field(default=None, index="hash")
    joined: Optional[Timestamp] = None
    status: Status = Status.ACTIVE

@table(name="orders", public=True)
class Order:
    id: int = field(primary_key=True, auto_inc=True)
    customer_id: int = field(default=0, index="btree")
    amount: Optional[float] = None
    qty: int = 0
    note: Optional[str] = None

@table(name="label", public=True)
class Label:
    id: int = field(primary_key=True)
    name: str = field(default="", unique=True)

@table(name="audit")
class Audit:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@table(name="event_log", public=True, event=True)
class EventLog:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""
"""

CITIES = ["Oslo", "Lima", "Pune", None, "Kyiv"]
NAMES = ["ann", "bob", "Bob", "cy", "dee", "eve", "al", "ann marie", ""]
NOTES = ["gift", "rush", "gift wrap", None, "50% off", "a_b"]


def customers(count: int = 40) -> list[tuple[Any, ...]]:
    """(id, name, city, age) rows, seeded so every run sees the same data."""
    rng = random.Random(7)
    return [
        (
            number,
            rng.choice(NAMES),
            rng.choice(CITIES),
            rng.choice([None, *range(18, 70, 3)]),
        )
        for number in range(1, count + 1)
    ]


def orders(count: int = 120) -> list[tuple[Any, ...]]:
    """(id, customer_id, amount, qty, note) rows; some name no customer, some amounts NULL."""
    rng = random.Random(11)
    return [
        (
            number,
            rng.randint(1, 45),
            rng.choice([None, round(rng.uniform(1, 500), 2), float(rng.randint(1, 9))]),
            rng.randint(-3, 12),
            rng.choice(NOTES),
        )
        for number in range(1, count + 1)
    ]


def load(db: Any) -> None:
    """Insert the seeded rows through ``bulk_insert``."""
    db.bulk_insert(
        "customer",
        [{"id": i, "name": n, "city": c, "age": a} for i, n, c, a in customers()],
    )
    db.bulk_insert(
        "orders",
        [
            {"id": i, "customer_id": c, "amount": a, "qty": q, "note": n}
            for i, c, a, q, n in orders()
        ],
    )
