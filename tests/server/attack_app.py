"""The module the attack suite deploys (tests/server/test_attacks.py): its own inputs.

``reading`` takes float arguments (non-finite floats must not get in); ``secret_ledger``
is private and ``note`` hides every row from non-owners, so an anonymous scrape of
``/metrics`` must learn nothing about either. ``page`` holds large rows anyone may read
(``fill``). ``hog``, ``hoard`` and ``deep_return`` exist only so the harness can prove it
catches a stalled event loop, a memory blow-up and a 500: a module is trusted code and
can cause all three.
"""

from cosmictron import ReducerContext, field, reducer, table, visibility_filter

HOARD: list[bytes] = []


@table(name="reading", public=True)
class Reading:
    id: int = field(primary_key=True, auto_inc=True)
    value: float = 0.0


@table(name="secret_ledger")
class SecretLedger:
    id: int = field(primary_key=True, auto_inc=True)
    amount: int = 0


@table(name="note", public=True)
class Note:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""


HIDE_NOTES = visibility_filter("SELECT * FROM note WHERE id < 0")


@table(name="page", public=True)
class Page:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""


@reducer
def record(ctx: ReducerContext, value: float) -> int:
    """Store one reading; returns its id."""
    return ctx.db.reading.insert(Reading(value=value)).id


@reducer
def hide(ctx: ReducerContext, rows: int) -> None:
    """Add ``rows`` private ledger rows and as many notes no non-owner can see."""
    for n in range(rows):
        ctx.db.secret_ledger.insert(SecretLedger(amount=n))
        ctx.db.note.insert(Note(text=f"hidden {n}"))


@reducer
def fill(ctx: ReducerContext, rows: int, size: int) -> None:
    """Add ``rows`` public pages of ``size`` characters: large results for anyone to ask."""
    for n in range(rows):
        ctx.db.page.insert(Page(text=str(n % 10) * size))


@reducer
def hog(ctx: ReducerContext, digits: int) -> int:
    """One long call into C that holds the interpreter lock throughout (no bytecode runs,
    so no thread switch): the event loop cannot run meanwhile."""
    return (7**digits).bit_length()


@reducer
def hoard(ctx: ReducerContext, megabytes: int) -> int:
    """Keep ``megabytes`` MB alive in the module: memory that is never given back."""
    HOARD.append(b"\x01" * (megabytes * 1024 * 1024))
    return len(HOARD)


@reducer
def deep_return(ctx: ReducerContext, depth: int):  # type: ignore[no-untyped-def]
    """A value nested ``depth`` deep, returned untyped: the server fails to encode it (500),
    the one fault a module can cause that the harness must report."""
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value
