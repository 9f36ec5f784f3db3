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


# -- the row checker ------------------------------------------------------------------

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.list cimport PyList_CheckExact, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_CheckExact
from libc.limits cimport LLONG_MAX, LLONG_MIN
from libc.math cimport isfinite

cdef extern from "Python.h":
    bint PyBool_Check(object)

# The kinds ``checker.compile_checker`` gives each column (its ``_inline`` cases).
DEF _CALL = 0
DEF _INT = 1
DEF _FINITE_FLOAT = 2
DEF _STR = 3
DEF _BOOL = 4


cdef class RowChecker:
    """``checker.compile_checker``'s generated ``check_values``, compiled: the canonical
    tuple of exactly one value per column, the common cases (an ``int`` in range, a finite
    ``float``, a ``str``, a ``bool``) tested in C and every other value passed to its
    column type's ``check``, as the generated function does. It returns an equal tuple
    and raises the same errors (``TypeMismatch`` from ``check``, ``ValueError`` for a
    wrong count); ``tests/datastore/test_checker.py`` runs both on the same values.

    Why: the generated function is about 80 bytecodes for a five-column row and runs
    twice a reducer call (the arguments, then the row); this is one C call
    (docs/design/hot-path.md, "Seventh round").
    """

    cdef Py_ssize_t n
    cdef list checks
    cdef long long[64] low_c
    cdef long long[64] high_c
    cdef int[64] kind_c

    def __init__(self, list kinds, list lows, list highs, list checks):
        cdef Py_ssize_t i
        self.n = len(kinds)
        if self.n > 64 or not (len(lows) == len(highs) == len(checks) == self.n):
            raise ValueError("RowChecker takes at most 64 columns, one entry of each per column")
        self.checks = checks  # the kinds and bounds live on only in their C copies
        for i in range(self.n):
            self.kind_c[i] = kinds[i]
            if kinds[i] == _INT:
                # Bounds past 64 bits are clamped: a value C cannot hold goes to ``check``.
                self.low_c[i] = lows[i] if lows[i] > LLONG_MIN else LLONG_MIN
                self.high_c[i] = highs[i] if highs[i] < LLONG_MAX else LLONG_MAX

    def __call__(self, values):
        cdef object seq = values
        cdef Py_ssize_t i, j, count
        cdef bint is_tuple
        cdef object value, checked
        cdef int kind, overflow
        cdef long long number
        cdef bint fast
        cdef tuple out = None
        if not (PyTuple_CheckExact(seq) or PyList_CheckExact(seq)):
            seq = tuple(seq)
        is_tuple = PyTuple_CheckExact(seq)
        count = PyTuple_GET_SIZE(seq) if is_tuple else PyList_GET_SIZE(seq)
        if count != self.n:
            raise ValueError(
                f"too many values to unpack (expected {self.n})" if count > self.n
                else f"not enough values to unpack (expected {self.n}, got {count})"
            )
        for i in range(count):
            value = <object>(PyTuple_GET_ITEM(seq, i) if is_tuple else PyList_GET_ITEM(seq, i))
            kind = self.kind_c[i]
            fast = False
            if kind == _INT:
                if PyLong_CheckExact(value):
                    number = PyLong_AsLongLongAndOverflow(value, &overflow)
                    fast = overflow == 0 and self.low_c[i] <= number <= self.high_c[i]
            elif kind == _FINITE_FLOAT:
                fast = PyFloat_CheckExact(value) and isfinite(PyFloat_AS_DOUBLE(value))
            elif kind == _STR:
                fast = PyUnicode_CheckExact(value)
            elif kind == _BOOL:
                fast = PyBool_Check(value)
            checked = value if fast else self.checks[i](value)
            if out is None and checked is not value:
                out = PyTuple_New(count)  # the first changed value: copy those before it
                for j in range(i):
                    value = <object>(PyTuple_GET_ITEM(seq, j) if is_tuple else PyList_GET_ITEM(seq, j))
                    Py_INCREF(value)
                    PyTuple_SET_ITEM(out, j, value)
            if out is not None:
                Py_INCREF(checked)
                PyTuple_SET_ITEM(out, i, checked)
        if out is not None:
            return out
        # Every value canonical as given: a tuple is immutable, so it is the row itself.
        return seq if is_tuple else tuple(seq)
