# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled helper for loading many rows: stop the cyclic collector tracking them.

Optional, like ``durability/_frames.pyx``: ``setup.py`` builds it when it can, and
``table.py`` does without it (``COSMICTRON_PURE=1`` turns it off).

A row is a tuple. CPython tracks every new tuple for the cyclic collector and untracks
one only when a collection finds that none of its items can be in a cycle
(``_PyTuple_MaybeUntrack``). A replay or bulk load makes hundreds of thousands of rows at
once, so the first collection after it walks all of them (0.11 s after replaying 200k
rows), to untrack them. ``untrack_atomic`` applies the same rule when the rows are
stored: it untracks exactly the tuples that collection would, and no other.
"""

from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_CheckExact, PyTuple_GET_ITEM, PyTuple_GET_SIZE

cdef extern from "Python.h":
    int PyObject_IS_GC(PyObject *obj)
    int PyObject_GC_IsTracked(PyObject *obj)
    void PyObject_GC_UnTrack(void *obj)


cdef inline bint _may_be_tracked(PyObject *item) noexcept:
    # _PyObject_GC_MAY_BE_TRACKED: not a GC type, or an untracked exact tuple, is safe.
    if not PyObject_IS_GC(item):
        return False
    if PyTuple_CheckExact(<object>item):
        return PyObject_GC_IsTracked(item)
    return True


def untrack_atomic(list rows):
    """Untrack each exact tuple in ``rows`` none of whose items the collector may track."""
    cdef object row
    cdef Py_ssize_t i, n
    cdef PyObject *p
    for row in rows:
        p = <PyObject *>row
        if not PyTuple_CheckExact(row) or not PyObject_GC_IsTracked(p):
            continue
        n = PyTuple_GET_SIZE(row)
        for i in range(n):
            if _may_be_tracked(<PyObject *>PyTuple_GET_ITEM(row, i)):
                break
        else:
            PyObject_GC_UnTrack(p)


def net_effect_pass(
    dict changes, dict held, object deleted, list key_getters, list positions, list required
):
    """The pass over the changes of ``Table.apply_net_effect``, in C (same steps, same
    order): pop each touched key from ``held``, and sort the rows into what each index
    loses and gains (a replaced row whose index key is unchanged neither).

    Returns ``(fresh, size, per_index)``: the surviving rows by key in ``changes``' order,
    the change in the text and bytes lengths of ``positions`` (the replaced rows' taken
    away, the fresh rows' added; ``required`` says which of them are never None, whose
    values are measured without the test, as ``Table._variable_size_of`` does), and per
    key getter ``[gone_rows, gone_keys, came_rows,
    came_keys]``. The interpreter's steps per change were most of the flush's time after
    a snapshot (docs/design/hot-path.md, "Sixth round").
    """
    cdef dict fresh = {}
    cdef Py_ssize_t size = 0
    cdef Py_ssize_t count = len(key_getters)
    cdef Py_ssize_t j
    cdef list per_index = [[[], [], [], []] for _ in range(count)]
    cdef list lists
    cdef object key, row, was, value, key_of, position
    for key, row in changes.items():
        was = held.pop(key, None)
        if was is not None:
            for position in positions:
                value = was[position]
                if value is not None:
                    size -= len(value)
        if row is deleted:
            if was is not None:
                for j in range(count):
                    lists = <list>per_index[j]
                    (<list>lists[0]).append(was)
                    (<list>lists[1]).append(key)
            continue
        fresh[key] = row
        for j in range(len(positions)):
            value = row[positions[j]]
            if required[j] or value is not None:
                size += len(value)
        for j in range(count):
            lists = <list>per_index[j]
            if was is not None:
                key_of = key_getters[j]
                if key_of(was) == key_of(row):
                    continue
                (<list>lists[0]).append(was)
                (<list>lists[1]).append(key)
            (<list>lists[2]).append(row)
            (<list>lists[3]).append(key)
    return fresh, size, per_index
