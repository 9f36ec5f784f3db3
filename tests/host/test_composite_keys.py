"""Composite primary keys, multi-column unique indexes and prefix lookups, through handles."""

import pytest

from cosmictron import InvalidRequest, ReducerFailed

MODULE = """
@table(name="membership", primary_key=("org", "user"),
       indexes=[Index("by_role", ["role", "since"]),
                Index("seat", ["org", "seat_no"], unique=True),
                Index("by_user", ["user"], kind="hash")])
class Membership:
    org: str
    user: str
    role: str = "member"
    since: int = 0
    seat_no: int = 0

@reducer
def join(ctx: ReducerContext, org: str, user: str, role: str, since: int, seat_no: int) -> None:
    ctx.db.membership.insert(Membership(org, user, role, since, seat_no))

@reducer
def promote(ctx: ReducerContext, org: str, user: str) -> None:
    member = ctx.db.membership.primary_key.find((org, user))
    member.role = "admin"
    ctx.db.membership.primary_key.update(member)

@reducer
def take_seat(ctx: ReducerContext, org: str, seat_no: int, user: str) -> None:
    member = ctx.db.membership.seat.find((org, seat_no))
    member.user = user
    ctx.db.membership.seat.update(member)

@reducer
def leave(ctx: ReducerContext, org: str, user: str) -> bool:
    return ctx.db.membership.primary_key.delete((org, user))
"""


@pytest.fixture
def db(open_db):
    database = open_db(MODULE)
    for org, user, role, since, seat in [
        ("acme", "ann", "member", 2020, 1),
        ("acme", "bob", "member", 2021, 2),
        ("acme", "cid", "owner", 2019, 3),
        ("zeta", "ann", "member", 2022, 1),
    ]:
        database.call("join", org, user, role, since, seat)
    return database


def users(rows):
    return sorted((row.org, row.user) for row in rows)


def test_composite_primary_key_find_update_delete(db):
    memberships = db.table("membership")
    assert memberships.primary_key.find(("acme", "bob")).since == 2021
    assert memberships.primary_key.find(("acme", "nobody")) is None
    db.call("promote", "acme", "bob")
    assert memberships.primary_key.find(("acme", "bob")).role == "admin"
    assert db.call("leave", "zeta", "ann") is True
    assert db.call("leave", "zeta", "ann") is False
    assert users(memberships.primary_key.filter(("acme",))) == [
        ("acme", "ann"),
        ("acme", "bob"),
        ("acme", "cid"),
    ]
    db.check_invariants()


def test_multi_column_unique_index(db):
    with pytest.raises(ReducerFailed, match="unique index org='acme', seat_no=2"):
        db.call("join", "acme", "dan", "member", 2023, 2)
    db.call("join", "zeta", "dan", "member", 2023, 2)  # same seat, other org: fine
    db.call("take_seat", "acme", 3, "eve")  # moves the row to a new primary key
    memberships = db.table("membership")
    assert memberships.seat.find(("acme", 3)).user == "eve"
    assert memberships.primary_key.find(("acme", "cid")) is None
    db.check_invariants()


def test_prefix_and_range_lookups_on_a_multi_column_index(db):
    by_role = db.table("membership").by_role
    assert users(by_role.filter(("member",))) == [("acme", "ann"), ("acme", "bob"), ("zeta", "ann")]
    assert users(by_role.filter(("member", 2021))) == [("acme", "bob")]
    ranged = by_role.filter(start=("member", 2021), stop=("member", 2023))
    assert [(row.user, row.since) for row in ranged] == [("bob", 2021), ("ann", 2022)]
    assert users(by_role.filter(start=("member",), stop=("owner",), inclusive=True)) == [
        ("acme", "ann"),
        ("acme", "bob"),
        ("acme", "cid"),
        ("zeta", "ann"),
    ]
    assert users(db.table("membership").by_user.filter("ann")) == [("acme", "ann"), ("zeta", "ann")]
    with pytest.raises(InvalidRequest, match="pass a tuple of them"):
        db.table("membership").primary_key.find("acme")
    with pytest.raises(InvalidRequest, match="hash index"):
        db.table("membership").by_user.filter(start="a")
