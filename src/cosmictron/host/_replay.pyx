# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled replay loop: the common record of a log of small transactions, into the overlay.

Optional, like ``durability/_frames.pyx``: ``setup.py`` builds it when it can, and
``host/records.py`` does without it (``COSMICTRON_PURE=1`` turns it off).

After the newest snapshot, replay spends most of its time on records that each change a
row or two (``bench/run.py``'s "replay, log of 1-row txs"): the interpreter's loop over
the batch, the record's tests, then ``ReplayOverlay.add``'s, about 1.5 µs a record of
which the work itself (two dict operations and a tuple) is a small part. ``take`` runs
the same steps over a batch in C, for exactly the records ``ReplayOverlay.add`` would
take without anything else to do, and stops at the first record it does not handle
entirely; the Python loop applies that one as before (which is also where every error
is raised, except the one below) and calls ``take`` again for the rest. What it
handles, for each record:

- a ledger record (``skip_kinds``) is passed over, as the Python loop does;
- a transaction record of 7 fields whose reducer (a ``str``) is not one applied apart,
  with no sequence counters (``body[6]`` an empty list), whose every table change is a
  3-list ``[name, inserts, deletes]`` of lists, for a table the overlay has started
  (``pending``) with a plain codec (``decode`` is ``tuple``), the first row of which has
  the table's width (the check ``add`` makes): each row, an exact list, becomes
  ``tuple(row)`` and goes into the overlay exactly as ``add`` puts it.

A record that inserts a key the table held before the run or holds in the run is refused
with the error ``ReplayOverlay.add`` raises (``refuse(name, key)`` builds it), at the same
point. ``tests/host/test_replay_overlay.py`` replays histories both ways and compares.
"""

from cpython.list cimport PyList_AsTuple


cdef bint _ours(list changes, dict pending):
    """Whether ``take`` handles every change of a record (see the module's docstring)."""
    cdef object change, state, inserts, deletes, first, wire
    cdef list change_list
    cdef tuple st
    for change in changes:
        if type(change) is not list or len(<list>change) != 3:
            return False
        change_list = <list>change
        state = pending.get(change_list[0])
        if state is None:
            return False
        st = <tuple>state
        if st[2] is not tuple:
            return False
        inserts = change_list[1]
        deletes = change_list[2]
        if type(inserts) is not list or type(deletes) is not list:
            return False
        if len(<list>inserts):
            first = (<list>inserts)[0]
        elif len(<list>deletes):
            first = (<list>deletes)[0]
        else:
            continue
        if type(first) is not list or len(<list>first) != st[5]:
            return False
        for wire in <list>deletes:
            if type(wire) is not list:
                return False
        for wire in <list>inserts:
            if type(wire) is not list:
                return False
    return True


def take(
    list batch,
    Py_ssize_t i,
    dict pending,
    object tx_kind,
    frozenset skip_kinds,
    frozenset apart,
    object deleted,
    object refuse,
):
    """Add ``batch[i:]`` to the overlay while each record is one handled here.

    Returns ``(stop, last)``: the index of the first record not taken (``len(batch)``
    when all were) and the last transaction record taken (``None`` if none was).
    """
    cdef Py_ssize_t n = len(batch)
    cdef object record, kind, body, changes, change, name, inserts, deletes
    cdef object wire, row, key, seen, key_of, table, last = None
    cdef object sequences
    cdef dict rows, held
    cdef list change_list
    cdef tuple st
    while i < n:
        record = batch[i]
        kind = (<tuple>record)[1]
        if kind in skip_kinds:
            i += 1
            continue
        if kind != tx_kind:
            break
        body = (<tuple>record)[3]
        if type(body) is not list or len(<list>body) != 7:
            break
        name = (<list>body)[3]
        if type(name) is not str or name in apart:
            break
        sequences = (<list>body)[6]
        if type(sequences) is not list or len(<list>sequences) != 0:
            break
        changes = (<list>body)[5]
        if type(changes) is not list or not _ours(<list>changes, pending):
            break
        for change in <list>changes:
            change_list = <list>change
            st = <tuple>pending[change_list[0]]
            table = st[0]
            rows = <dict>st[1]
            key_of = st[3]
            for wire in <list>change_list[2]:
                row = PyList_AsTuple(wire)
                key = row if key_of is None else key_of(row)
                rows.pop(key, None)
                rows[key] = deleted
            held = <dict>table.rows
            for wire in <list>change_list[1]:
                row = PyList_AsTuple(wire)
                key = row if key_of is None else key_of(row)
                seen = rows.pop(key, None)
                if key_of is not None and (
                    (seen is None and key in held) or (seen is not None and seen is not deleted)
                ):
                    raise refuse(change_list[0], key)
                rows[key] = row
        last = record
        i += 1
    return i, last
