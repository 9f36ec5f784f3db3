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
