"""A Database against a model made of dicts: random reducer calls, some failing on purpose.

The module has a primary key, a unique column, a btree index, auto_inc columns and an
event table. Calls fail in every way a call can: a reducer raising after it wrote, a
duplicate key, a missing row, a wrong argument type, an unknown reducer; and a reducer
calls another that fails and catches the error, keeping its own writes. After every step
the database must equal the model (rows, lookups through every index, ``tx_offset``) and
pass ``check_invariants``; it is closed and reopened mid-run and at the end, once with
snapshots every few transactions so recovery starts from one.

Auto-increment ids are predicted exactly: a failed call gives its id back, so each new
note id is one more than the last committed one, across reopens too.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import cosmictron
from cosmictron import Database, DurabilityConfig, InvalidRequest, NotFound, ReducerFailed

MODULE = """
from cosmictron import ReducerContext, field, reducer, table


@table(name="account")
class Account:
    id: int = field(primary_key=True)
    email: str = field(unique=True)
    score: int = field(index="btree", default=0)


@table(name="note")
class Note:
    id: int = field(primary_key=True, auto_inc=True)
    owner: int = field(index="btree")
    body: str = ""


@table(name="event_log", event=True)
class EventLog:
    id: int = field(primary_key=True, auto_inc=True)
    kind: str = ""
    ref: int = 0


def log(ctx: ReducerContext, kind: str, ref: int) -> None:
    ctx.db.event_log.insert(EventLog(kind=kind, ref=ref))


@reducer
def create_account(ctx: ReducerContext, id: int, email: str, score: int) -> None:
    log(ctx, "create", id)
    ctx.db.account.insert(Account(id=id, email=email, score=score))


@reducer
def set_score(ctx: ReducerContext, id: int, score: int) -> None:
    log(ctx, "score", id)
    account = ctx.db.account.id.find(id)
    if account is None:
        raise LookupError(f"no account {id}")
    ctx.db.account.id.update(Account(id=id, email=account.email, score=score))


@reducer
def change_email(ctx: ReducerContext, id: int, email: str) -> None:
    log(ctx, "email", id)
    account = ctx.db.account.id.find(id)
    if account is None:
        raise LookupError(f"no account {id}")
    ctx.db.account.id.update(Account(id=id, email=email, score=account.score))


@reducer
def delete_account(ctx: ReducerContext, id: int) -> bool:
    for note in ctx.db.note.owner.filter(id):
        ctx.db.note.id.delete(note.id)
    if not ctx.db.account.id.delete(id):
        return False
    log(ctx, "delete", id)
    return True


@reducer
def add_note(ctx: ReducerContext, owner: int, body: str) -> int:
    note = ctx.db.note.insert(Note(owner=owner, body=body))
    log(ctx, "note", note.id)
    if ctx.db.account.id.find(owner) is None:
        raise LookupError(f"no account {owner}")  # after writing: all of it rolls back
    return note.id


@reducer
def fail_after_write(ctx: ReducerContext, id: int, email: str) -> None:
    log(ctx, "doomed", id)
    ctx.db.note.insert(Note(owner=id, body="doomed"))
    ctx.db.account.insert(Account(id=id, email=email, score=-1))
    raise RuntimeError("failing on purpose, after writing")


@reducer
def nested(
    ctx: ReducerContext, id: int, email: str, inner_id: int, inner_email: str, inner_raises: bool
) -> bool:
    ctx.db.account.insert(Account(id=id, email=email, score=0))
    log(ctx, "outer", id)
    try:
        if inner_raises:
            fail_after_write(ctx, inner_id, inner_email)
        else:
            create_account(ctx, inner_id, inner_email, 1)
    except Exception:
        log(ctx, "inner_failed", inner_id)
        return False
    return True
"""

IDS = st.integers(min_value=0, max_value=6)
EMAILS = st.sampled_from(["a@x", "b@x", "c@x", "d@x", "e@x", "f@x"])
SCORES = st.integers(min_value=-3, max_value=3)
BODIES = st.text(alphabet="abc é", max_size=4)


class Model:
    """The expected state: plain dicts, and the committed transaction count."""

    def __init__(self) -> None:
        self.accounts: dict[int, tuple[str, int]] = {}  # id -> (email, score)
        self.notes: dict[int, tuple[int, str]] = {}  # id -> (owner, body)
        self.events: list[tuple[str, int]] = []  # (kind, ref), in commit order
        self.offset = 0
        self.note_id_max = 0  # the highest note id ever committed

    def email_taken(self, email: str, by_other_than: int | None = None) -> bool:
        return any(e == email and i != by_other_than for i, (e, _) in self.accounts.items())


class DatabaseMachine(RuleBasedStateMachine):
    durability: ClassVar[DurabilityConfig] = DurabilityConfig(fsync_policy="never")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="cosmictron-model-"))
        module_path = self.tmp / "model_module.py"
        module_path.write_text(MODULE)
        self.data_dir = self.tmp / "data"
        self.db = Database.open(self.data_dir, module_path, durability=self.durability)
        self.model = Model()

    def teardown(self) -> None:
        try:
            if self.db is not None:
                self.reopen()
                self.check_matches_model()
                self.db.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- calling ------------------------------------------------------------------------

    def call(self, should_commit: bool, reducer: str, *args: Any) -> Any:
        """Call, check it committed or failed as the model predicts, and count offsets."""
        if should_commit:
            result = self.db.call(reducer, *args)
            self.model.offset += 1
            return result
        with pytest.raises(ReducerFailed):
            self.db.call(reducer, *args)
        return None

    @rule(id=IDS, email=EMAILS, score=SCORES)
    def create_account(self, id: int, email: str, score: int) -> None:
        model = self.model
        ok = id not in model.accounts and not model.email_taken(email)
        self.call(ok, "create_account", id, email, score)
        if ok:
            model.accounts[id] = (email, score)
            model.events.append(("create", id))

    @rule(id=IDS, score=SCORES)
    def set_score(self, id: int, score: int) -> None:
        model = self.model
        ok = id in model.accounts
        self.call(ok, "set_score", id, score)
        if ok:
            model.accounts[id] = (model.accounts[id][0], score)
            model.events.append(("score", id))

    @rule(id=IDS, email=EMAILS)
    def change_email(self, id: int, email: str) -> None:
        model = self.model
        ok = id in model.accounts and not model.email_taken(email, by_other_than=id)
        self.call(ok, "change_email", id, email)
        if ok:
            model.accounts[id] = (email, model.accounts[id][1])
            model.events.append(("email", id))

    @rule(id=IDS)
    def delete_account(self, id: int) -> None:
        model = self.model
        existed = id in model.accounts
        assert self.call(True, "delete_account", id) is existed
        model.notes = {k: v for k, v in model.notes.items() if v[0] != id}
        if existed:
            del model.accounts[id]
            model.events.append(("delete", id))

    @rule(owner=IDS, body=BODIES)
    def add_note(self, owner: int, body: str) -> None:
        model = self.model
        ok = owner in model.accounts
        note_id = self.call(ok, "add_note", owner, body)
        if ok:
            assert note_id == model.note_id_max + 1, "auto_inc ids must stay dense"
            model.note_id_max = note_id
            model.notes[note_id] = (owner, body)
            model.events.append(("note", note_id))

    @rule(id=IDS, email=EMAILS)
    def fail_after_write(self, id: int, email: str) -> None:
        self.call(False, "fail_after_write", id, email)

    @rule(id=IDS, email=EMAILS, inner_id=IDS, inner_email=EMAILS, inner_raises=st.booleans())
    def nested(
        self, id: int, email: str, inner_id: int, inner_email: str, inner_raises: bool
    ) -> None:
        model = self.model
        ok = id not in model.accounts and not model.email_taken(email)
        inner_ok = (
            not inner_raises
            and inner_id not in model.accounts
            and inner_id != id
            and not model.email_taken(inner_email)
            and inner_email != email
        )
        result = self.call(ok, "nested", id, email, inner_id, inner_email, inner_raises)
        if not ok:
            return
        assert result is inner_ok
        model.accounts[id] = (email, 0)
        model.events.append(("outer", id))
        if inner_ok:
            model.accounts[inner_id] = (inner_email, 1)
            model.events.append(("create", inner_id))
        else:
            model.events.append(("inner_failed", inner_id))

    @rule(
        args=st.sampled_from(
            [
                ("create_account", ("1", "a@x", 0)),  # str for i64
                ("create_account", (1, 2, 0)),  # int for str
                ("create_account", (2**63, "a@x", 0)),  # out of i64 range
                ("set_score", (1,)),  # too few arguments
                ("add_note", (1, "x", "extra")),  # too many arguments
                ("nested", (1, "a@x", 2, "b@x", "yes")),  # str for bool
            ]
        )
    )
    def wrong_arguments(self, args: tuple[str, tuple[Any, ...]]) -> None:
        reducer, values = args
        with pytest.raises(InvalidRequest):
            self.db.call(reducer, *values)

    @rule()
    def unknown_reducer(self) -> None:
        with pytest.raises(NotFound):
            self.db.call("no_such_reducer", 1)

    @precondition(lambda self: self.model.offset > 0)
    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = None  # type: ignore[assignment]
        self.db = Database.open(self.data_dir, durability=self.durability)

    # -- checking -----------------------------------------------------------------------

    @invariant()
    def check_matches_model(self) -> None:
        db, model = self.db, self.model
        db.check_invariants()
        assert db.tx_offset == model.offset
        accounts = {row.id: (row.email, row.score) for row in db.rows("account")}
        assert accounts == model.accounts
        notes = {row.id: (row.owner, row.body) for row in db.rows("note")}
        assert notes == model.notes
        events = sorted(db.rows("event_log"), key=lambda row: row.id)
        assert [(row.kind, row.ref) for row in events] == model.events

        account_table, note_table = db.table("account"), db.table("note")
        assert account_table.count() == len(model.accounts)
        for id, (email, score) in model.accounts.items():
            found = account_table.id.find(id)
            assert (found.email, found.score) == (email, score)
            assert account_table.email.find(email).id == id
        for id in range(7):
            if id not in model.accounts:
                assert account_table.id.find(id) is None
            expected = sorted(n for n, (owner, _) in model.notes.items() if owner == id)
            assert sorted(row.id for row in note_table.owner.filter(id)) == expected
        for email in ("a@x", "b@x", "c@x", "d@x", "e@x", "f@x"):
            if not model.email_taken(email):
                assert account_table.email.find(email) is None
        for low, high in ((-3, 0), (0, 4), (-3, 4)):
            expected = sorted(i for i, (_, s) in model.accounts.items() if low <= s < high)
            got = account_table.score.filter(start=low, stop=high)
            assert sorted(row.id for row in got) == expected
            assert [row.score for row in got] == sorted(row.score for row in got)


class SnapshottingMachine(DatabaseMachine):
    """The same, with a snapshot every three transactions, so reopening starts from one."""

    durability = DurabilityConfig(fsync_policy="never", snapshot_interval_tx=3)


MODEL_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    suppress_health_check=[HealthCheck.too_slow],
)

TestDatabaseModel = DatabaseMachine.TestCase
TestDatabaseModel.settings = MODEL_SETTINGS
TestDatabaseModelWithSnapshots = SnapshottingMachine.TestCase
TestDatabaseModelWithSnapshots.settings = MODEL_SETTINGS


# -- auto_inc across a restart ------------------------------------------------------------

ID_MODULE = """
from cosmictron import ReducerContext, field, reducer, table


@table(name="note")
class Note:
    id: int = field(primary_key=True, auto_inc=True)


@reducer
def add(ctx: ReducerContext, fail: bool) -> int:
    note = ctx.db.note.insert(Note())
    if fail:
        raise ValueError(f"handed out id {note.id}")
    return note.id
"""


@pytest.mark.parametrize("snapshot", [False, True], ids=["log_only", "with_snapshot"])
def test_ids_stay_dense_across_failures_and_reopen(tmp_path: Path, snapshot: bool) -> None:
    """datastore/tx.py: a failed transaction's counter change is undone with it.

    No committed row ever held the id a failed call drew, so the next call gets it; and
    recovery must not depend on whether a snapshot was written: both variants agree.
    """
    module_path = tmp_path / "id_module.py"
    module_path.write_text(ID_MODULE)
    durability = DurabilityConfig(fsync_policy="never")
    with Database.open(tmp_path / "data", module_path, durability=durability) as database:
        assert database.call("add", False) == 1
        with pytest.raises(ReducerFailed, match="handed out id 2"):
            database.call("add", True)
        assert database.call("add", False) == 2
        with pytest.raises(ReducerFailed, match="handed out id 3"):
            database.call("add", True)
        if snapshot:
            database.snapshot()  # taken after the failure
    with Database.open(tmp_path / "data", durability=durability) as database:
        assert database.call("add", False) == 3


def test_model_module_loads_through_the_public_api(tmp_path: Path) -> None:
    """The module above is an ordinary module: a quick smoke test of its reducers."""
    module_path = tmp_path / "model_module.py"
    module_path.write_text(MODULE)
    durability = DurabilityConfig(fsync_policy="never")
    with cosmictron.Database.open(tmp_path / "data", module_path, durability=durability) as db:
        db.call("create_account", 1, "a@x", 0)
        assert db.call("nested", 2, "b@x", 1, "c@x", False) is False
        assert db.call("nested", 3, "c@x", 4, "d@x", False) is True
        assert db.call("add_note", 3, "hi") == 1
        assert sorted(row.id for row in db.rows("account")) == [1, 2, 3, 4]
        assert [row.kind for row in db.rows("event_log")] == [
            "create",
            "outer",
            "inner_failed",
            "outer",
            "create",
            "note",
        ]
