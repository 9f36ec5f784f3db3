"""Reducers as transactions: arguments, return values, rollback, nesting, context.

Every test runs a real module in a real Database on disk (the ``never`` policy, for speed;
the durability tests cover syncing).
"""

import random

import pytest

from cosmictron import Identity, InvalidRequest, NotFound, ReducerFailed

MODULE = """
log = logging.getLogger(__name__)

@table(name="account", public=True)
class Account:
    id: int = field(primary_key=True, auto_inc=True)
    email: str = field(unique=True, index="hash")
    balance: i32 = field(index="btree", default=0)

@table(name="event_log", event=True)
class EventLog:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@reducer
def open_account(ctx: ReducerContext, email: str, balance: i32 = 0) -> Account:
    return ctx.db.account.insert(Account(email=email, balance=balance))

@reducer
def open_then_fail(ctx: ReducerContext, email: str) -> None:
    ctx.db.account.insert(Account(email=email))
    log.warning("about to fail for %s", email)
    raise RuntimeError("no thanks")

@reducer
def transfer(ctx: ReducerContext, source: int, target: int, amount: int) -> None:
    a = ctx.db.account.id.find(source)
    b = ctx.db.account.id.find(target)
    a.balance -= amount
    b.balance += amount
    ctx.db.account.id.update(a)
    ctx.db.account.id.update(b)
    if a.balance < 0:
        raise ValueError("insufficient funds")

@reducer
def try_inner(ctx: ReducerContext, email: str, catch: bool) -> int:
    ctx.db.event_log.insert(EventLog(text="outer"))
    try:
        open_then_fail(ctx, email)
    except RuntimeError:
        if not catch:
            raise
    return ctx.db.account.count()

@reducer
def call_inner_ok(ctx: ReducerContext, email: str) -> int:
    return open_account(ctx, email).id

@reducer
def read_own_writes(ctx: ReducerContext) -> int:
    Account.insert(Account(email="mine@x", balance=5))
    found = ctx.db.account.email.find("mine@x")
    return found.balance

@reducer
def context_facts(ctx: ReducerContext) -> list[str]:
    first = ctx.timestamp
    return [str(first == ctx.timestamp), ctx.sender.hex(), ctx.identity.hex(),
            str(first.micros_since_epoch), repr(ctx.rng.random())]

@reducer
def wrong_return(ctx: ReducerContext) -> int:
    ctx.db.event_log.insert(EventLog(text="x"))
    return "not an int"

@reducer
def bad_row(ctx: ReducerContext, balance: int) -> None:
    ctx.db.account.insert(Account(email="b@x", balance=balance))

@reducer
def missing_column(ctx: ReducerContext) -> None:
    ctx.db.account.insert(Account())

@reducer
def edit_event(ctx: ReducerContext) -> None:
    row = ctx.db.event_log.insert(EventLog(text="x"))
    ctx.db.event_log.delete(row)

@reducer
def change_email(ctx: ReducerContext, old: str, new: str) -> None:
    row = ctx.db.account.email.find(old)
    row.email = new
    ctx.db.account.id.update(row)

@reducer
def move_id(ctx: ReducerContext, email: str, new_id: int) -> None:
    row = ctx.db.account.email.find(email)
    row.id = new_id
    ctx.db.account.email.update(row)

@reducer
def delete_by_email(ctx: ReducerContext, email: str) -> bool:
    return ctx.db.account.email.delete(email)

@reducer
def says_none(ctx: ReducerContext) -> None:
    return 5

@reducer
def nested_bad_args(ctx: ReducerContext) -> None:
    open_account(ctx, 12345)

DATABASE = []

@reducer
def reenter(ctx: ReducerContext) -> None:
    ctx.db.event_log.insert(EventLog(text="outer"))
    DATABASE[0].call("open_account", "inner@x")

@reducer
def delete_where_low(ctx: ReducerContext, below: int) -> int:
    removed = 0
    for row in ctx.db.account.iter():
        if row.balance < below:
            removed += ctx.db.account.delete(row)
    return removed

@reducer
def read_missing(ctx: ReducerContext, table: str, accessor: str) -> None:
    handle = getattr(ctx.db, table)
    if accessor:
        getattr(handle, accessor)
"""


@pytest.fixture
def db(open_db):
    return open_db(MODULE)


def state(db):
    return sorted((a.id, a.email, a.balance) for a in db.rows("account"))


def test_return_values_reach_the_caller(db):
    account = db.call("open_account", "a@x", 10)
    assert (account.id, account.email, account.balance) == (1, "a@x", 10)
    assert db.call("open_account", email="b@x").id == 2
    assert db.call("read_own_writes") == 5


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((), {}, InvalidRequest, "argument 'email' is missing"),
        (("a@x", 1, 2), {}, InvalidRequest, r"takes 2 arguments \(email: str, balance: i32\)"),
        ((5,), {}, InvalidRequest, r"argument 'email': expected str, got 5 \(int\)"),
        (("a@x", 2**31), {}, InvalidRequest, r"argument 'balance': expected i32.*out of range"),
        (("a@x",), {"bogus": 1}, InvalidRequest, "unexpected or repeated argument 'bogus'"),
        (("a@x",), {"email": "b"}, InvalidRequest, "unexpected or repeated argument 'email'"),
    ],
)
def test_bad_arguments_are_refused_before_the_transaction(db, args, kwargs, error, message):
    offset = db.tx_offset
    with pytest.raises(error, match=message):
        db.call("open_account", *args, **kwargs)
    assert db.tx_offset == offset


def test_unknown_reducer(db):
    with pytest.raises(NotFound, match=r"no reducer named 'nope' \(reducers: .*open_account"):
        db.call("nope")


def test_failure_rolls_back_everything_and_is_logged(db):
    db.call("open_account", "a@x", 10)
    db.call("open_account", "b@x", 0)
    before, offset = state(db), db.tx_offset
    with pytest.raises(ReducerFailed, match="reducer 'transfer' failed: ValueError: insufficient"):
        db.call("transfer", 2, 1, 5)
    with pytest.raises(ReducerFailed, match="RuntimeError: no thanks"):
        db.call("open_then_fail", "c@x")
    assert state(db) == before and db.tx_offset == offset
    assert db.table("account").balance.filter(0) == [db.table("account").id.find(2)]
    db.check_invariants()
    messages = [line["message"] for line in db.logs()]
    assert "about to fail for c@x" in messages
    assert any("insufficient funds" in m for m in messages)
    db.call("transfer", 1, 2, 4)
    assert state(db) == [(1, "a@x", 6), (2, "b@x", 4)]


def test_failed_calls_give_their_ids_back(db):
    db.call("open_account", "a@x")
    with pytest.raises(ReducerFailed):
        db.call("open_then_fail", "b@x")
    assert db.call("open_account", "c@x").id == 2
    assert db.call("try_inner", "d@x", True) == 2, "the nested failure's id is undone too"
    assert db.call("open_account", "e@x").id == 3


def test_nested_reducer_failure_undoes_only_its_own_writes(db):
    assert db.call("try_inner", "n@x", True) == 0
    assert [r.text for r in db.rows("event_log")] == ["outer"]
    with pytest.raises(ReducerFailed, match="no thanks"):
        db.call("try_inner", "m@x", False)
    assert len(db.rows("event_log")) == 1 and state(db) == []
    assert db.call("call_inner_ok", "ok@x") == state(db)[0][0]


def test_context_is_fixed_per_call_and_deterministic(db):
    same, sender, identity, micros, draw = db.call("context_facts")
    assert same == "True"
    assert sender == db.owner.hex() and identity == db.identity.hex()
    expected = random.Random(db.tx_offset ^ int(micros)).random()
    assert draw == repr(expected)
    later = db.call("context_facts")
    assert int(later[3]) > int(micros)
    other = Identity.random()
    outcome = db.execute_reducer("context_facts", sender=other)
    assert outcome.return_value[1] == other.hex() and outcome.tx_offset == db.tx_offset


def test_row_type_errors_name_table_column_type_and_value(db):
    with pytest.raises(ReducerFailed, match=r"column 'balance': expected i32, got 4294967296"):
        db.call("bad_row", 2**32)
    with pytest.raises(ReducerFailed, match=r"column 'email' \(str\) is required"):
        db.call("missing_column")
    with pytest.raises(ReducerFailed, match="returned a wrong value: expected i64"):
        db.call("wrong_return")
    assert db.rows("event_log") == []


def test_event_tables_are_append_only(db):
    with pytest.raises(
        ReducerFailed, match="event table 'event_log': event tables are append-only"
    ):
        db.call("edit_event")
    assert db.rows("event_log") == []


def test_unique_update_and_delete(db):
    db.call("open_account", "a@x", 1)
    db.call("open_account", "b@x", 2)
    with pytest.raises(ReducerFailed, match="unique index email='b@x'"):
        db.call("change_email", "a@x", "b@x")
    db.call("change_email", "a@x", "z@x")
    db.call("move_id", "z@x", 40)
    assert state(db) == [(2, "b@x", 2), (40, "z@x", 1)]
    with pytest.raises(ReducerFailed, match="primary key id=2"):
        db.call("move_id", "z@x", 2)
    assert db.call("delete_by_email", "b@x") is True
    assert db.call("delete_by_email", "b@x") is False
    assert state(db) == [(40, "z@x", 1)]
    db.check_invariants()


def test_delete_while_iterating(db):
    for number in range(10):
        db.call("open_account", f"{number}@x", number)
    assert db.call("delete_where_low", 5) == 5
    assert [balance for _, _, balance in state(db)] == [5, 6, 7, 8, 9]


def test_reads_outside_reducers_are_read_only(db):
    db.call("open_account", "a@x", 3)
    accounts = db.table("account")
    assert accounts.count() == 1 and accounts.email.find("a@x").balance == 3
    assert accounts.balance.filter(range(0, 4))[0].email == "a@x"
    with pytest.raises(InvalidRequest, match="writes happen inside reducers"):
        accounts.insert(accounts.email.find("a@x"))
    with pytest.raises(AttributeError, match="no unique column or index 'nope'"):
        accounts.nope  # noqa: B018
    with pytest.raises(InvalidRequest, match="'email' is a hash index: it answers equality only"):
        accounts.email.filter(start="a")
    with pytest.raises(NotFound, match="no table named 'nope'"):
        db.table("nope")


def test_a_missing_table_or_accessor_in_a_reducer_is_named(db):
    # ctx.db and its handles have no __getattr__ (speed): the failure still names them.
    with pytest.raises(ReducerFailed, match="AttributeError: the database has no table 'nope'"):
        db.call("read_missing", "nope", "")
    listed = r"table 'account' has no unique column or index 'nope' \(it has: id, email, balance\)"
    with pytest.raises(ReducerFailed, match=listed):
        db.call("read_missing", "account", "nope")
    db.call("read_missing", "account", "balance")  # an index is there from the start


def test_none_annotation_and_nested_arguments_are_checked(db):
    with pytest.raises(ReducerFailed, match="annotated -> None but returned 5"):
        db.call("says_none")
    with pytest.raises(ReducerFailed, match="argument 'email': expected str, got 12345"):
        db.call("nested_bad_args")
    assert state(db) == []


def test_database_call_from_inside_a_reducer_is_refused(db):
    db.module.namespace.DATABASE.append(db)
    with pytest.raises(ReducerFailed, match="would start a second transaction"):
        db.call("reenter")
    assert state(db) == [] and db.rows("event_log") == []
    assert db.call("open_account", "after@x").id == 1, "the session is clean afterwards"


def test_the_names_an_index_may_not_take_are_the_table_handles_methods() -> None:
    """``module.api.HANDLE_METHODS`` (refused as index names when a module loads) is
    every public method of ``TableHandle``: a new method must be added there, or an
    index of its name would be hidden behind it."""
    from cosmictron.host.handles import TableHandle
    from cosmictron.module.api import HANDLE_METHODS

    public = {name for name in dir(TableHandle) if not name.startswith("_")}
    assert public == set(HANDLE_METHODS)
