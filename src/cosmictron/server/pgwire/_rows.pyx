# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The PostgreSQL port's compiled hot paths: the DataRow writer of a scan, and the reader
of a prepared statement's round trip (Bind, Describe, Execute, Sync).

Optional. ``setup.py`` builds it beside ``durability/_frames.pyx`` when Cython and a C
compiler are present; ``results.row_writer`` falls back to its generated pure-Python
writers, and ``messages.frontend_run`` to its Python reader, when it is missing or
``COSMICTRON_PURE=1`` is set. Each pair must give the same result:
tests/pgwire/test_encoding.py compares each writer against encoding every value on its
own, tests/pgwire/test_frontend_run.py the two readers on random bytes.

``data_rows(rows, kinds, encoders)`` writes one DataRow per row into one growing C
buffer. ``kinds`` has one byte per column naming the fast path for its encoder; a value
whose Python type is not the one that path expects (or out of its range) goes through
the column's Python encoder, exactly as the pure writer does, so errors and odd values
come out the same. Kinds: text ``i`` int, ``f`` float, ``s`` str, ``B`` bool (else
``pgtypes.text_of``); binary ``q`` int8, ``l`` int4, ``h`` int2, ``d`` float8, ``?``
bool; ``o`` always the encoder (which returns the value's bytes).

``frontend_run(data, at, bytes_max)`` parses the whole messages buffered from ``at``
that a point query's round trip is made of, in one call (see ``messages.frontend_run``).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport isfinite
from libc.stdint cimport uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.string cimport memcmp, memcpy, strlen

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int *ptype) except NULL
    int Py_DTSF_ADD_DOT_0


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int reserve(Buffer* b, Py_ssize_t more) except -1:
    cdef Py_ssize_t capacity
    cdef char* grown
    if b.size + more <= b.capacity:
        return 0
    capacity = b.capacity * 2
    if capacity < b.size + more + 4096:
        capacity = b.size + more + 4096
    grown = <char*>PyMem_Realloc(b.data, capacity)
    if grown == NULL:
        raise MemoryError()
    b.data = grown
    b.capacity = capacity
    return 0


cdef inline void put32(char* at, uint32_t value) noexcept:
    at[0] = <char>((value >> 24) & 0xFF)
    at[1] = <char>((value >> 16) & 0xFF)
    at[2] = <char>((value >> 8) & 0xFF)
    at[3] = <char>(value & 0xFF)


cdef inline void put64(char* at, uint64_t value) noexcept:
    put32(at, <uint32_t>(value >> 32))
    put32(at + 4, <uint32_t>(value & 0xFFFFFFFF))


cdef int put_value(Buffer* b, const char* data, Py_ssize_t size) except -1:
    """A value: its 4-byte length, then its bytes."""
    reserve(b, 4 + size)
    put32(b.data + b.size, <uint32_t>size)
    memcpy(b.data + b.size + 4, data, size)
    b.size += 4 + size
    return 0


cdef int put_text(Buffer* b, object text) except -1:
    cdef Py_ssize_t size
    cdef const char* data = PyUnicode_AsUTF8AndSize(text, &size)
    return put_value(b, data, size)


cdef int put_encoded(Buffer* b, object encoder, object value) except -1:
    cdef object encoded = encoder(value)
    if type(encoded) is not bytes:
        encoded = bytes(encoded)
    return put_value(b, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))


cdef int put_fixed(Buffer* b, uint64_t bits, int width) except -1:
    reserve(b, 4 + width)
    cdef char* at = b.data + b.size
    put32(at, <uint32_t>width)
    if width == 8:
        put64(at + 4, bits)
    elif width == 4:
        put32(at + 4, <uint32_t>(bits & 0xFFFFFFFF))
    elif width == 2:
        at[4] = <char>((bits >> 8) & 0xFF)
        at[5] = <char>(bits & 0xFF)
    else:
        at[4] = <char>(bits & 0xFF)
    b.size += 4 + width
    return 0


@cython.cdivision(True)
cdef inline int decimal_of(long long number, char* digits) noexcept:
    """``number`` in decimal, as ``str`` writes it, ending at ``digits[32]``; its length.
    (snprintf's ``%lld`` took about three quarters of a text integer's cost.)"""
    cdef unsigned long long n = <unsigned long long>number
    cdef int at = 32
    if number < 0:
        n = 0 - n  # two's complement: right for the most negative value too
    while True:
        at -= 1
        digits[at] = <char>(48 + n % 10)
        n = n // 10
        if n == 0:
            break
    if number < 0:
        at -= 1
        digits[at] = b"-"
    return 32 - at


cdef extern from *:
    """
    #if defined(__SIZEOF_INT128__)
    typedef unsigned __int128 cosmictron_u128;
    #define COSMICTRON_HAS_U128 1
    #else
    typedef unsigned long long cosmictron_u128;
    #define COSMICTRON_HAS_U128 0
    #endif
    """
    ctypedef unsigned long long u128 "cosmictron_u128"
    int HAS_U128 "COSMICTRON_HAS_U128"


cdef unsigned long long[21] POW5
cdef unsigned long long[18] POW10
POW5[0] = 1
POW10[0] = 1
for _i in range(1, 21):
    POW5[_i] = POW5[_i - 1] * 5
for _i in range(1, 18):
    POW10[_i] = POW10[_i - 1] * 10


cdef inline bint inside(u128 candidate, u128 low, u128 high, bint closed) noexcept:
    if closed:
        return low <= candidate <= high
    return low < candidate < high


@cython.cdivision(True)
cdef int short_repr(double value, char* out) noexcept:
    """``repr(value)`` into ``out`` (at least 32 bytes) for 1e-4 <= |value| < 1e15; its
    length, or 0 for any other value and for the rare ties this leaves to Python's
    ``repr`` (``PyOS_double_to_string``), whose shortest-digits search (big-number
    arithmetic) was four fifths of a text scan's float column.

    The shortest decimal that reads back as ``value``, the closest to it among those of
    that length: ``value`` is exactly ``m * 2**e``; scaled by ``10**k`` to 17 integer
    digits it is ``m * 5**k / 2**s`` (s = -e - k >= 0 in this range), exact in 128 bits,
    and so are the bounds of the interval that reads back as ``value`` (half a unit in
    the last place either side, a quarter below a power of two; the ends included when
    ``m`` is even, as round-half-even reading does). That interval is narrower than 23
    units of the 17th digit, so at most one 15-digit decimal lies in it: if one does,
    it is the answer with its trailing zeros dropped; else the closest 16-digit one in
    it, else the closest 17-digit one. tests/pgwire/test_encoding.py compares this with
    ``repr`` on millions of values and the edge cases."""
    cdef unsigned long long bits, mantissa, q, c, best = 0, digits_value = 0
    cdef int exponent, e, k, s, d, length, i, step, count
    cdef u128 n, v, half_high, half_low, low, high, candidate, distance, best_distance
    cdef bint closed, tie, negative
    cdef char digits[20]
    if not HAS_U128:
        return 0
    negative = value < 0
    if negative:
        value = -value
    if not (1e-4 <= value < 1e15):
        return 0
    memcpy(&bits, &value, 8)
    exponent = <int>((bits >> 52) & 0x7FF)
    mantissa = (bits & 0xFFFFFFFFFFFFF) | (<unsigned long long>1 << 52)
    e = exponent - 1075
    d = ((exponent - 1023) * 78913) >> 18  # floor(log2(value) * log10(2)): d or d - 1
    while True:
        k = 16 - d
        s = -e - k
        if k < 0 or k > 20 or s < 0 or s > 60:
            return 0
        n = <u128>mantissa * POW5[k]
        q = <unsigned long long>(n >> s)
        if q >= POW10[17]:
            d += 1
        elif q < POW10[16]:
            d -= 1
        else:
            break
    # In units of 2**-(s + 2) of the 17-digit scale.
    v = n << 2
    half_high = <u128>POW5[k] << 1
    half_low = half_high >> 1 if (bits & 0xFFFFFFFFFFFFF) == 0 and exponent > 1 else half_high
    low = v - half_low
    high = v + half_high
    closed = (mantissa & 1) == 0
    count = 0
    # 15 digits: the one multiple of 100 that can lie inside.
    c = q - q % 100
    for step in range(2):
        candidate = <u128>(c + 100 * step) << (s + 2)
        if inside(candidate, low, high, closed):
            digits_value = (c + 100 * step) // 100
            count = 15
            break
    if count == 0:
        # 16 digits: the closest multiple of 10 inside; a tie is left to repr.
        c = q - q % 10
        best_distance = 0
        tie = False
        for i in range(-1, 3):
            if i < 0 and c < 10:
                continue
            candidate = <u128>(c + 10 * i) << (s + 2)
            if not inside(candidate, low, high, closed):
                continue
            distance = candidate - v if candidate >= v else v - candidate
            if count == 0 or distance < best_distance:
                best_distance = distance
                best = c + 10 * i
                count = 16
                tie = False
            elif distance == best_distance:
                tie = True
        if tie:
            return 0
        if count:
            digits_value = best // 10
    if count == 0:
        # 17 digits: q or q + 1, the closer one inside.
        candidate = <u128>q << (s + 2)
        distance = v - candidate
        best_distance = (<u128>(q + 1) << (s + 2)) - v
        if distance == best_distance:
            return 0
        if distance < best_distance and inside(candidate, low, high, closed):
            digits_value = q
        elif inside(<u128>(q + 1) << (s + 2), low, high, closed):
            digits_value = q + 1
        else:
            return 0
        count = 17
    if digits_value >= POW10[count]:  # rounded up to one more digit: left to repr
        return 0
    while count > 1 and digits_value % 10 == 0:
        digits_value //= 10
        count -= 1
    for i in range(count - 1, -1, -1):
        digits[i] = <char>(48 + digits_value % 10)
        digits_value //= 10
    # Python's layout for a decimal point after digit d + 1 (fixed notation here).
    length = 0
    if negative:
        out[0] = b"-"
        length = 1
    if d >= 0:
        for i in range(d + 1):
            out[length] = digits[i] if i < count else b"0"
            length += 1
        out[length] = b"."
        length += 1
        if count > d + 1:
            for i in range(d + 1, count):
                out[length] = digits[i]
                length += 1
        else:
            out[length] = b"0"
            length += 1
    else:
        out[length] = b"0"
        out[length + 1] = b"."
        length += 2
        for i in range(-d - 1):
            out[length] = b"0"
            length += 1
        for i in range(count):
            out[length] = digits[i]
            length += 1
    return length


cdef int put_one(Buffer* b, char kind, object value, object encoder) except -1:
    cdef int overflow = 0
    cdef long long number
    cdef double real
    cdef uint64_t bits
    cdef char digits[32]
    cdef char* text
    cdef int size
    if kind == b"i":
        if type(value) is int:
            number = PyLong_AsLongLongAndOverflow(value, &overflow)
            if overflow == 0:
                size = decimal_of(number, digits)
                return put_value(b, digits + 32 - size, size)
            return put_text(b, str(value))
    elif kind == b"f":
        if type(value) is float and isfinite(PyFloat_AS_DOUBLE(value)):
            size = short_repr(PyFloat_AS_DOUBLE(value), digits)
            if size > 0:
                return put_value(b, digits, size)
            # What repr(value) gives (float_repr makes this call), without the str.
            text = PyOS_double_to_string(PyFloat_AS_DOUBLE(value), b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
            try:
                return put_value(b, text, strlen(text))
            finally:
                PyMem_Free(text)
    elif kind == b"s":
        if type(value) is str:
            return put_text(b, value)
    elif kind == b"B":
        if value is True:
            return put_value(b, "t", 1)
        if value is False:
            return put_value(b, "f", 1)
    elif kind == b"q" or kind == b"l" or kind == b"h":
        if type(value) is int:
            number = PyLong_AsLongLongAndOverflow(value, &overflow)
            if overflow == 0:
                if kind == b"q":
                    return put_fixed(b, <uint64_t>number, 8)
                if kind == b"l" and -2147483648 <= number <= 2147483647:
                    return put_fixed(b, <uint64_t>number, 4)
                if kind == b"h" and -32768 <= number <= 32767:
                    return put_fixed(b, <uint64_t>number, 2)
    elif kind == b"d":
        if type(value) is float:
            real = PyFloat_AS_DOUBLE(value)
            memcpy(&bits, &real, 8)
            return put_fixed(b, bits, 8)
    elif kind == b"?":
        if value is True:
            return put_fixed(b, 1, 1)
        if value is False:
            return put_fixed(b, 0, 1)
    return put_encoded(b, encoder, value)


def data_rows(rows, bytes kinds, tuple encoders):
    """The DataRow messages of ``rows`` (tuples of ``len(kinds)`` values), concatenated.

    Raises:
        ValueError: a row of another width (as unpacking it in Python would).
    """
    cdef Py_ssize_t width = len(kinds)
    cdef const char* kind = kinds
    cdef Buffer b
    cdef Py_ssize_t start, i
    cdef PyObject* item
    cdef object row
    if len(encoders) != width:
        raise ValueError("one encoder per column")
    b.data = NULL
    b.size = 0
    b.capacity = 0
    try:
        for row in rows:
            if type(row) is not tuple:
                row = tuple(row)
            if PyTuple_GET_SIZE(row) != width:
                raise ValueError(
                    f"a row of {PyTuple_GET_SIZE(row)} values for {width} columns"
                )
            reserve(&b, 7)
            start = b.size
            b.data[start] = b"D"
            b.data[start + 5] = <char>((width >> 8) & 0xFF)
            b.data[start + 6] = <char>(width & 0xFF)
            b.size += 7
            for i in range(width):
                item = PyTuple_GET_ITEM(row, i)
                if item == <PyObject*>None:
                    reserve(&b, 4)
                    put32(b.data + b.size, 0xFFFFFFFF)
                    b.size += 4
                    continue
                put_one(&b, kind[i], <object>item, <object>PyTuple_GET_ITEM(encoders, i))
            put32(b.data + start + 1, <uint32_t>(b.size - start - 1))
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        PyMem_Free(b.data)


# --- the frontend side: a run of buffered messages, cut and parsed at once ------------

cdef bytes _B = b"B"
cdef bytes _E = b"E"
cdef bytes _D = b"D"
cdef bytes _S = b"S"
cdef bytes _H = b"H"
cdef dict _FORMATS = {}


cdef inline int get16(const unsigned char* at) noexcept:
    return <short>((at[0] << 8) | at[1])


cdef inline long get32(const unsigned char* at) noexcept:
    return <int>((<uint32_t>at[0] << 24) | (<uint32_t>at[1] << 16) | (<uint32_t>at[2] << 8) | at[3])


cdef Py_ssize_t name_end(const unsigned char* body, Py_ssize_t at, Py_ssize_t size) noexcept:
    """Where the zero byte ending the name at ``at`` is; -1 when there is none."""
    cdef Py_ssize_t i = at
    while i < size:
        if body[i] == 0:
            return i
        i += 1
    return -1


cdef object name_at(const unsigned char* body, Py_ssize_t start, Py_ssize_t end):
    """The UTF-8 name between ``start`` and ``end`` ("" unread); None when not UTF-8."""
    if end == start:
        return ""
    try:
        return (<const char*>body)[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None


cdef object int16s(const unsigned char* at, Py_ssize_t count):
    """``count`` int16 as a tuple (the format codes; the usual ones kept)."""
    cdef Py_ssize_t i
    if count == 1:
        found = _FORMATS.get(get16(at))
        if found is not None:
            return found
        one = (get16(at),)
        if len(_FORMATS) < 8:
            _FORMATS[one[0]] = one
        return one
    return tuple([get16(at + 2 * i) for i in range(count)])


cdef object bind_of(const unsigned char* body, Py_ssize_t size):
    """A Bind body as ``messages.parse_bind`` gives it (a negative count reads as none,
    as there), or None where that raises ``Malformed``."""
    cdef Py_ssize_t end, at, count, i, length
    end = name_end(body, 0, size)
    if end < 0:
        return None
    portal = name_at(body, 0, end)
    at = end + 1
    end = name_end(body, at, size)
    if end < 0 or portal is None:
        return None
    statement = name_at(body, at, end)
    if statement is None:
        return None
    at = end + 1
    if at + 2 > size:
        return None
    count = get16(body + at)
    at += 2
    formats = ()
    if count > 0:
        if at + 2 * count > size:
            return None
        formats = int16s(body + at, count)
        at += 2 * count
    if at + 2 > size:
        return None
    count = get16(body + at)
    at += 2
    values = []
    for i in range(count):
        if at + 4 > size:
            return None
        length = get32(body + at)
        at += 4
        if length == -1:
            values.append(None)
            continue
        if length < 0 or at + length > size:
            return None
        values.append((<const char*>body)[at:at + length])
        at += length
    if at + 2 > size:
        return None
    count = get16(body + at)
    results = ()
    if count > 0:
        if at + 2 + 2 * count > size:
            return None
        results = int16s(body + at + 2, count)
    return (portal, statement, formats, values, results)


def frontend_run(bytes data not None, Py_ssize_t at, Py_ssize_t bytes_max):
    """The messages buffered in ``data`` from ``at`` that a prepared statement's round
    trip is made of, parsed: a list of ``(kind, end, *fields)``, ``end`` being where the
    message ends in ``data``. Bind: portal, statement, parameter formats, values, result
    formats (``messages.parse_bind``'s); Execute: portal, row limit; Describe: ``P`` or
    ``S``, name; Sync and Flush: nothing more. It stops before the first message that
    is not whole, is over ``bytes_max``, is of another type or does not parse cleanly:
    the session's task reads that one as it reads every message, errors included.
    ``messages.frontend_run`` is the same in Python."""
    cdef const unsigned char* buffer = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t length, start, end, stop
    cdef unsigned char kind
    cdef list run = []
    if at < 0:
        raise ValueError("a negative offset")
    while size - at >= 5:
        kind = buffer[at]
        length = get32(buffer + at + 1)
        if length < 4 or length > bytes_max or size - at < 1 + length:
            break
        start = at + 5
        end = at + 1 + length
        if kind == b"B":
            bound = bind_of(buffer + start, end - start)
            if bound is None:
                break
            run.append((_B, end) + bound)
        elif kind == b"E":
            stop = name_end(buffer, start, end)
            if stop < 0 or end - stop - 1 < 4:
                break
            name = name_at(buffer, start, stop)
            if name is None:
                break
            run.append((_E, end, name, get32(buffer + stop + 1)))
        elif kind == b"D":
            if end - start < 2 or buffer[end - 1] != 0:
                break
            stop = name_end(buffer, start + 1, end)
            if stop != end - 1:
                break
            name = name_at(buffer, start + 1, stop)
            if name is None:
                break
            run.append((_D, end, data[start:start + 1], name))
        elif kind == b"S":
            run.append((_S, end))
        elif kind == b"H":
            run.append((_H, end))
        else:
            break
        at = end
    return run


# --- a kept round trip's bytes (``rounds.py``) ---------------------------------------

cdef inline bint starts(const unsigned char* buffer, Py_ssize_t size, Py_ssize_t at, bytes part) noexcept:
    """``data.startswith(part, at)`` for ``0 <= at``."""
    cdef Py_ssize_t length = PyBytes_GET_SIZE(part)
    if at > size or at + length > size:
        return False
    return memcmp(buffer + at, PyBytes_AS_STRING(part), length) == 0


def match_round(
    bytes data not None,
    Py_ssize_t at,
    bytes head not None,
    bytes tail not None,
    bytes rest not None,
    Py_ssize_t bytes_max,
):
    """Where the key of a kept round starting at ``at`` begins in ``data``, or -1
    (``rounds._match``, which is the definition: the same checks in the same order)."""
    cdef const unsigned char* buffer = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t length, end, found, value
    if at < 0:
        raise ValueError("a negative offset")
    if size - at < 5 or buffer[at] != 66:
        return -1
    length = get32(buffer + at + 1)
    end = at + 1 + length
    if length > bytes_max or end + PyBytes_GET_SIZE(rest) > size or not starts(buffer, size, at + 5, head):
        return -1
    found = at + 5 + PyBytes_GET_SIZE(head)
    if found + 4 > end:
        return -1
    value = get32(buffer + found)
    if value < 0 or found + 4 + value + PyBytes_GET_SIZE(tail) != end:
        return -1
    if not starts(buffer, size, end - PyBytes_GET_SIZE(tail), tail) or not starts(buffer, size, end, rest):
        return -1
    return found
