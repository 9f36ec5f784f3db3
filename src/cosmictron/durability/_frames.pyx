# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled frame reader: the replay hot loop of ``segment.SegmentReader.batches``.

Optional. ``setup.py`` builds it when Cython and a C compiler (with zlib's and OpenSSL's
headers) are present and skips it silently otherwise; ``segment.py`` falls back to its
pure-Python reader when it is missing or ``COSMICTRON_PURE=1`` is set. The test suite
runs both (``tests/durability/test_frames_kernel.py``, and the recovery tests under
``COSMICTRON_PURE=1``).

The kernel only *accepts*: it walks frames while each one passes every check the Python
reader makes (those of ``record._check_header_fields``: a known version with its number
of fields, exact ``int`` kind and offset, a 32-byte ``bytes`` prev_hash; then the chain), and stops at the first frame that does not, returning what it
verified before it. It never raises ``CorruptLog`` and never decides a torn tail: the
Python reader reads on from where it stopped and applies the recovery rule there, so the
rule lives in one place (``segment.py``). Why it pays: see docs/design/hot-path.md.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject, PyObject_Call, PyTypeObject
from libc.stdint cimport uint32_t
from libc.string cimport memcmp, memcpy, memset

cdef extern from "zlib.h":
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len) nogil

cdef extern from "openssl/sha.h":
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX *c) nogil
    int SHA256_Update(SHA256_CTX *c, const void *data, size_t len) nogil
    int SHA256_Final(unsigned char *md, SHA256_CTX *c) nogil


cdef inline uint32_t _le32(const unsigned char *p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


def read_frames(
    bytes data,
    Py_ssize_t position,
    Py_ssize_t record_bytes_max,
    Py_ssize_t max_frames,
    long long next_offset,
    object last_hash,
    object unpackb,
    dict unpack_kwargs,
    frozenset kinds,
    dict formats,
    type record_type,
    bint want_records=True,
):
    """Verify up to ``max_frames`` frames from ``position``; stop at the first bad one.

    Returns ``(records, end, next_offset, last_hash)``: the verified records (instances
    of ``record_type``, a tuple subclass, of ``(offset, kind, prev_hash, body, hash)``;
    made with ``tuple.__new__``, not its Python ``__new__``), where the last of them
    ends, and the chain state after them. ``last_hash`` None means the chain starts here
    (the first record's prev_hash is not compared). ``formats`` maps each record format
    version read to its number of fields (``record.py``); ``kinds`` are the known kinds.

    ``want_records`` False verifies the same frames but builds no records (``records``
    is empty): the frames a snapshot covers, whose chain is checked but whose bodies are
    not applied (see ``_covered``).
    """
    if not want_records:
        position, next_offset, last_hash = _covered(
            data, position, record_bytes_max, max_frames, next_offset, last_hash,
            unpackb, unpack_kwargs, kinds, formats,
        )
        return [], position, next_offset, last_hash
    cdef const unsigned char *base = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t start, end, count = 0
    cdef uint32_t length, crc
    cdef unsigned long c
    cdef SHA256_CTX ctx
    cdef unsigned char digest_buf[32]
    cdef list records = []
    cdef list fields
    cdef object fields_obj, version, kind, offset, prev_hash, digest, payload
    cdef tuple args
    cdef PyTypeObject *tuple_type = <PyTypeObject *>tuple
    while count < max_frames:
        start = position + 16
        if start > size:
            break
        length = _le32(base + position)
        crc = _le32(base + position + 4)
        if length == 0 or length > record_bytes_max:
            break
        end = start + length
        if end > size:
            break
        # The frame crc: the payload's, extended over the 8 watermark bytes (record.py).
        c = crc32(0, base + start, length)
        c = crc32(c, base + position + 8, 8)
        if <uint32_t>c != crc:
            break
        payload = PyBytes_FromStringAndSize(<const char *>(base + start), length)
        try:
            fields_obj = PyObject_Call(unpackb, (payload,), unpack_kwargs)
        except Exception:  # msgpack raises several unrelated types for bad input.
            break
        if type(fields_obj) is not list:
            break
        fields = <list>fields_obj
        if len(fields) < 5:
            break
        version = fields[0]
        kind = fields[1]
        offset = fields[2]
        prev_hash = fields[3]
        if type(version) is not int or formats.get(version) != len(fields):
            break
        if type(kind) is not int or kind not in kinds:
            break
        if type(offset) is not int or offset != next_offset:
            break
        if type(prev_hash) is not bytes or PyBytes_GET_SIZE(prev_hash) != 32:
            break
        if last_hash is not None and prev_hash != last_hash:
            break
        SHA256_Init(&ctx)
        SHA256_Update(&ctx, base + start, length)
        SHA256_Final(digest_buf, &ctx)
        digest = PyBytes_FromStringAndSize(<const char *>digest_buf, 32)
        args = ((offset, kind, prev_hash, fields[4], digest),)
        records.append(tuple_type.tp_new(record_type, <PyObject *>args, NULL))
        last_hash = digest
        next_offset += 1
        position = end
        count += 1
    return records, position, next_offset, last_hash


# -- frames a snapshot covers -------------------------------------------------------------
#
# Their bodies are not applied, so building their Python objects is waste; but every
# check must stay what ``unpackb`` plus the header checks make. ``_skip`` walks one msgpack
# object without building it and answers only when it is *sure* ``unpackb(raw=False,
# strict_map_key=False)`` accepts it: ASCII strings (any other text might not be UTF-8),
# no ext types, only scalar map keys (a list key is unhashable), nesting up to
# ``_MAX_DEPTH``. Anything else returns -1 ("not sure"), and that frame is decoded by
# ``unpackb`` exactly as ``read_frames`` does. So the kernel still accepts exactly what it
# accepted, and the Python reader still decides every frame it stops at.

DEF _MAX_DEPTH = 32


cdef inline Py_ssize_t _be(const unsigned char *p, int width) noexcept nogil:
    cdef Py_ssize_t value = 0
    cdef int k
    for k in range(width):
        value = (value << 8) | p[k]
    return value


cdef Py_ssize_t _skip_ascii(const unsigned char *p, Py_ssize_t i, Py_ssize_t end, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    if n > end - i:
        return -1
    for k in range(i, i + n):
        if p[k] >= 0x80:
            return -1
    return i + n


cdef Py_ssize_t _skip(const unsigned char *p, Py_ssize_t i, Py_ssize_t end, int depth, bint key) noexcept nogil:
    """The index after the msgpack object at ``i``, or -1: see the note above."""
    cdef unsigned char b
    cdef Py_ssize_t n, k, width
    if i >= end or depth > _MAX_DEPTH:
        return -1
    b = p[i]
    if b <= 0x7f or b >= 0xe0 or b == 0xc0 or b == 0xc2 or b == 0xc3:
        return i + 1
    if b <= 0x8f or b == 0xde or b == 0xdf:  # maps
        if key:
            return -1
        if b <= 0x8f:
            n, i = b & 0x0f, i + 1
        else:
            width = 2 if b == 0xde else 4
            if end - i < 1 + width:
                return -1
            n, i = _be(p + i + 1, width), i + 1 + width
        for k in range(n):
            i = _skip(p, i, end, depth + 1, True)
            if i < 0:
                return -1
            i = _skip(p, i, end, depth + 1, False)
            if i < 0:
                return -1
        return i
    if b <= 0x9f or b == 0xdc or b == 0xdd:  # arrays
        if key:
            return -1
        if b <= 0x9f:
            n, i = b & 0x0f, i + 1
        else:
            width = 2 if b == 0xdc else 4
            if end - i < 1 + width:
                return -1
            n, i = _be(p + i + 1, width), i + 1 + width
        for k in range(n):
            i = _skip(p, i, end, depth + 1, False)
            if i < 0:
                return -1
        return i
    if b <= 0xbf:  # fixstr
        return _skip_ascii(p, i + 1, end, b & 0x1f)
    if b == 0xd9 or b == 0xda or b == 0xdb:  # str 8/16/32
        width = 1 if b == 0xd9 else (2 if b == 0xda else 4)
        if end - i < 1 + width:
            return -1
        return _skip_ascii(p, i + 1 + width, end, _be(p + i + 1, width))
    if b == 0xc4 or b == 0xc5 or b == 0xc6:  # bin 8/16/32
        width = 1 if b == 0xc4 else (2 if b == 0xc5 else 4)
        if end - i < 1 + width:
            return -1
        n = _be(p + i + 1, width)
        i += 1 + width
        return i + n if n <= end - i else -1
    if b == 0xca:
        width = 4
    elif b == 0xcb:
        width = 8
    elif b == 0xcc or b == 0xd0:
        width = 1
    elif b == 0xcd or b == 0xd1:
        width = 2
    elif b == 0xce or b == 0xd2:
        width = 4
    elif b == 0xcf or b == 0xd3:
        width = 8
    else:  # 0xc1 (never used), ext and fixext: not sure
        return -1
    return i + 1 + width if width <= end - i - 1 else -1


cdef int _header(
    const unsigned char *p, Py_ssize_t i, Py_ssize_t end,
    Py_ssize_t *count, int *version, int *kind, long long *offset, Py_ssize_t *prev_at,
) noexcept nogil:
    """Read a payload's array length, version, kind, offset and prev_hash position, and
    walk the rest; 1 if ``unpackb`` surely decodes it to those values, else 0."""
    cdef unsigned char b
    cdef Py_ssize_t n, k, n_byte
    cdef unsigned long long value
    if end - i < 1 + 1 + 1 + 1 + 34:
        return 0
    b = p[i]
    if 0x90 <= b <= 0x9f:
        n, i = b & 0x0f, i + 1
    elif b == 0xdc:
        n, i = _be(p + i + 1, 2), i + 3
    else:
        return 0
    if n < 5 or p[i] > 0x7f or p[i + 1] > 0x7f:
        return 0
    version[0] = p[i]
    kind[0] = p[i + 1]
    i += 2
    b = p[i]
    if b <= 0x7f:
        value, i = b, i + 1
    elif b == 0xcc or b == 0xcd or b == 0xce or b == 0xcf:
        k = 1 << (b - 0xcc)
        if end - i < 1 + k:
            return 0
        value = 0
        for n_byte in range(k):
            value = (value << 8) | p[i + 1 + n_byte]
        i += 1 + k
    else:
        return 0
    if value > (<unsigned long long>1 << 63) - 1:
        return 0
    offset[0] = <long long>value
    if end - i < 34 or p[i] != 0xc4 or p[i + 1] != 32:
        return 0
    prev_at[0] = i + 2
    i += 34
    for k in range(n - 4):
        i = _skip(p, i, end, 1, False)
        if i < 0:
            return 0
    if i != end:  # unpackb refuses trailing bytes
        return 0
    count[0] = n
    return 1


cdef tuple _covered(
    bytes data,
    Py_ssize_t position,
    Py_ssize_t record_bytes_max,
    Py_ssize_t max_frames,
    long long next_offset,
    object last_hash,
    object unpackb,
    dict unpack_kwargs,
    frozenset kinds,
    dict formats,
):
    """``read_frames`` without records: returns ``(end, next_offset, last_hash)``."""
    cdef const unsigned char *base = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t start, end, count = 0, fields_count, prev_at
    cdef uint32_t length, crc
    cdef unsigned long c
    cdef SHA256_CTX ctx
    cdef unsigned char chain_buf[32]
    cdef bint chained = False
    cdef int version_c, kind_c
    cdef long long offset_c
    cdef int field_counts[128]
    cdef char kind_known[128]
    cdef list fields
    cdef object fields_obj, version, kind, offset, prev_hash, payload
    memset(field_counts, 0, sizeof(field_counts))
    memset(kind_known, 0, sizeof(kind_known))
    for version, fields_obj in formats.items():
        if type(version) is int and 0 <= version < 128 and type(fields_obj) is int:
            field_counts[<int>version] = fields_obj
    for kind in kinds:
        if type(kind) is int and 0 <= kind < 128:
            kind_known[<int>kind] = 1
    if last_hash is not None:
        if type(last_hash) is not bytes or PyBytes_GET_SIZE(last_hash) != 32:
            return position, next_offset, last_hash  # no prev_hash can equal it
        memcpy(chain_buf, PyBytes_AS_STRING(last_hash), 32)
        chained = True
    while count < max_frames:
        start = position + 16
        if start > size:
            break
        length = _le32(base + position)
        crc = _le32(base + position + 4)
        if length == 0 or length > record_bytes_max:
            break
        end = start + length
        if end > size:
            break
        c = crc32(0, base + start, length)
        c = crc32(c, base + position + 8, 8)
        if <uint32_t>c != crc:
            break
        if _header(base, start, end, &fields_count, &version_c, &kind_c, &offset_c, &prev_at):
            if field_counts[version_c] != fields_count or not kind_known[kind_c]:
                break
            if offset_c != next_offset:
                break
            if chained and memcmp(base + prev_at, chain_buf, 32) != 0:
                break
        else:  # not sure: decode it as read_frames does
            payload = PyBytes_FromStringAndSize(<const char *>(base + start), length)
            try:
                fields_obj = PyObject_Call(unpackb, (payload,), unpack_kwargs)
            except Exception:
                break
            if type(fields_obj) is not list:
                break
            fields = <list>fields_obj
            if len(fields) < 5:
                break
            version = fields[0]
            kind = fields[1]
            offset = fields[2]
            prev_hash = fields[3]
            if type(version) is not int or formats.get(version) != len(fields):
                break
            if type(kind) is not int or kind not in kinds:
                break
            if type(offset) is not int or offset != next_offset:
                break
            if type(prev_hash) is not bytes or PyBytes_GET_SIZE(prev_hash) != 32:
                break
            if chained and memcmp(PyBytes_AS_STRING(prev_hash), chain_buf, 32) != 0:
                break
        SHA256_Init(&ctx)
        SHA256_Update(&ctx, base + start, length)
        SHA256_Final(chain_buf, &ctx)
        chained = True
        next_offset += 1
        position = end
        count += 1
    if count:
        last_hash = PyBytes_FromStringAndSize(<const char *>chain_buf, 32)
    return position, next_offset, last_hash


def seal(bytes payload):
    """``(zlib.crc32(payload), hashlib.sha256(payload).digest())`` in one call: the two
    hashes ``CommitLog.append`` takes of every record it writes.

    ``hashlib.sha256`` fetches the algorithm from OpenSSL's provider on every call (about
    5k instructions, more than hashing a 200-byte record) and each of the three calls
    costs a Python call; here both run over the payload's own buffer
    (docs/design/hot-path.md, "Fifth round"). The commit log falls back
    to the two library calls when this is not built or ``COSMICTRON_PURE=1`` is set;
    ``tests/durability/test_frames_kernel.py`` checks both give the same bytes.
    """
    cdef const unsigned char *base = <const unsigned char *>PyBytes_AS_STRING(payload)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(payload)
    return <uint32_t>_crc(0, base, size), _sha256(base, size)


cdef unsigned long _crc(unsigned long c, const unsigned char *base, Py_ssize_t size) noexcept nogil:
    """``zlib.crc32`` of ``size`` bytes from ``c`` on (crc32 takes an unsigned int length)."""
    cdef Py_ssize_t done = 0, step
    while done < size:
        step = size - done
        if step > 0x40000000:
            step = 0x40000000
        c = crc32(c, base + done, <unsigned int>step)
        done += step
    return c


cdef bytes _sha256(const unsigned char *base, Py_ssize_t size):
    """``hashlib.sha256(...).digest()`` of ``size`` bytes."""
    cdef SHA256_CTX ctx
    cdef unsigned char digest_buf[32]
    SHA256_Init(&ctx)
    SHA256_Update(&ctx, base, <size_t>size)
    SHA256_Final(digest_buf, &ctx)
    return PyBytes_FromStringAndSize(<char *>digest_buf, 32)


# -- the record packer --------------------------------------------------------------------

from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLong
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc, realloc

cdef extern from "Python.h":
    double PyFloat_AS_DOUBLE(object)
    Py_ssize_t PyList_GET_SIZE(object)
    Py_ssize_t PyTuple_GET_SIZE(object)
    Py_ssize_t PyDict_GET_SIZE(object)
    PyObject *PyList_GET_ITEM(object, Py_ssize_t)
    PyObject *PyTuple_GET_ITEM(object, Py_ssize_t)
    int PyDict_Next(object, Py_ssize_t *, PyObject **, PyObject **)

DEF _STACK_BYTES = 1024
DEF _DEPTH_MAX = 500  # msgpack refuses past 511 levels; deeper goes to it, which decides

cdef struct _Out:
    char *data
    Py_ssize_t size
    Py_ssize_t cap
    bint heap


cdef inline int _room(_Out *out, Py_ssize_t n) except -1:
    """Make room for ``n`` more bytes; the test is inline (it is made for every value),
    the growth (past the stack buffer: rare) a call."""
    if out.size + n <= out.cap:
        return 0
    return _grow(out, n)


cdef int _grow(_Out *out, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap
    cdef char *grown
    cap = out.cap * 2
    if cap < out.size + n:
        cap = out.size + n
    if out.heap:
        grown = <char *>realloc(out.data, cap)
    else:
        grown = <char *>malloc(cap)
        if grown != NULL:
            memcpy(grown, out.data, out.size)
    if grown == NULL:
        raise MemoryError()
    out.data = grown
    out.cap = cap
    out.heap = True
    return 0


cdef inline int _put1(_Out *out, unsigned char byte) except -1:
    if out.size + 1 > out.cap:
        _room(out, 1)
    out.data[out.size] = <char>byte
    out.size += 1
    return 0


cdef inline int _put_be(_Out *out, unsigned char tag, uint64_t value, int width) except -1:
    """``tag`` then ``value`` big-endian in ``width`` bytes."""
    cdef int i
    _room(out, 1 + width)
    out.data[out.size] = <char>tag
    for i in range(width):
        out.data[out.size + 1 + i] = <char>((value >> (8 * (width - 1 - i))) & 0xFF)
    out.size += 1 + width
    return 0


cdef inline int _put_raw(_Out *out, const char *data, Py_ssize_t n) except -1:
    _room(out, n)
    memcpy(out.data + out.size, data, n)
    out.size += n
    return 0


cdef inline int _put_length(_Out *out, Py_ssize_t n, unsigned char fix, Py_ssize_t fix_max,
                     unsigned char tag8, unsigned char tag16, unsigned char tag32) except -1:
    if n < fix_max:
        return _put1(out, fix | <unsigned char>n)
    if tag8 and n < 256:
        return _put_be(out, tag8, <uint64_t>n, 1)
    if n < 65536:
        return _put_be(out, tag16, <uint64_t>n, 2)
    return _put_be(out, tag32, <uint64_t>n, 4)


cdef int _pack(object value, _Out *out, int depth) except -1:
    """Append ``value``'s msgpack bytes as ``msgpack.Packer(use_bin_type=True)`` writes
    them; 1 (nothing usable written) for a value it leaves to msgpack."""
    cdef type kind = type(value)
    cdef long long svalue
    cdef unsigned long long uvalue
    cdef int overflow
    cdef Py_ssize_t n, i, pos
    cdef const char *text
    cdef double number
    cdef uint64_t bits
    cdef PyObject *key
    cdef PyObject *item
    if value is None:
        return _put1(out, 0xC0)
    if value is True:
        return _put1(out, 0xC3)
    if value is False:
        return _put1(out, 0xC2)
    if kind is int:
        svalue = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow == 0:
            if svalue >= 0:
                uvalue = <unsigned long long>svalue
            elif svalue >= -32:
                return _put1(out, <unsigned char>(svalue & 0xFF))
            elif svalue >= -128:
                return _put_be(out, 0xD0, <uint64_t>svalue, 1)
            elif svalue >= -32768:
                return _put_be(out, 0xD1, <uint64_t>svalue, 2)
            elif svalue >= -2147483648LL:
                return _put_be(out, 0xD2, <uint64_t>svalue, 4)
            else:
                return _put_be(out, 0xD3, <uint64_t>svalue, 8)
        elif overflow > 0 and value <= 0xFFFFFFFFFFFFFFFF:
            uvalue = PyLong_AsUnsignedLongLong(value)
        else:
            return 1
        if uvalue < 128:
            return _put1(out, <unsigned char>uvalue)
        if uvalue < 256:
            return _put_be(out, 0xCC, uvalue, 1)
        if uvalue < 65536:
            return _put_be(out, 0xCD, uvalue, 2)
        if uvalue < 4294967296ULL:
            return _put_be(out, 0xCE, uvalue, 4)
        return _put_be(out, 0xCF, uvalue, 8)
    if kind is str:
        text = PyUnicode_AsUTF8AndSize(value, &n)  # raises on a lone surrogate
        if n > 0xFFFFFFFF:
            return 1
        _put_length(out, n, 0xA0, 32, 0xD9, 0xDA, 0xDB)
        return _put_raw(out, text, n)
    if kind is bytes:
        n = PyBytes_GET_SIZE(value)
        if n > 0xFFFFFFFF:
            return 1
        _put_length(out, n, 0, 0, 0xC4, 0xC5, 0xC6)
        return _put_raw(out, PyBytes_AS_STRING(value), n)
    if kind is float:
        number = PyFloat_AS_DOUBLE(value)
        memcpy(&bits, &number, 8)
        return _put_be(out, 0xCB, bits, 8)
    if depth >= _DEPTH_MAX:
        return 1
    if kind is list or kind is tuple:
        n = PyList_GET_SIZE(value) if kind is list else PyTuple_GET_SIZE(value)
        if n > 0xFFFFFFFF:
            return 1
        _put_length(out, n, 0x90, 16, 0, 0xDC, 0xDD)
        for i in range(n):
            item = PyList_GET_ITEM(value, i) if kind is list else PyTuple_GET_ITEM(value, i)
            if _pack(<object>item, out, depth + 1):
                return 1
        return 0
    if kind is dict:
        n = PyDict_GET_SIZE(value)
        if n > 0xFFFFFFFF:
            return 1
        _put_length(out, n, 0x80, 16, 0, 0xDE, 0xDF)
        pos = 0
        while PyDict_Next(value, &pos, &key, &item):
            if _pack(<object>key, out, depth + 1) or _pack(<object>item, out, depth + 1):
                return 1
        return 0
    return 1


def pack_record(object fields):
    """``msgpack.Packer(use_bin_type=True).pack(fields)``, byte for byte, for a record made
    of the exact types a record holds (None, bool, int within 64 bits, float, str,
    bytes, list, tuple, dict); None for anything else (a subclass, an ext type, a lone
    surrogate, a huge int), which the caller then packs with msgpack itself.

    msgpack's packer tests each value against its types one by one and subclasses
    (``isinstance``) before it reaches a list, about 290 instructions a small value;
    this dispatches on the exact type (docs/design/hot-path.md, "Fifth round").
    ``tests/durability/test_frames_kernel.py`` compares the two on random
    values at every length and range edge.
    """
    cdef char stack[_STACK_BYTES]
    cdef _Out out
    _start(&out, stack, 0)
    try:
        if _pack_fields(fields, &out):
            return None
        return PyBytes_FromStringAndSize(out.data, out.size)
    finally:
        if out.heap:
            free(out.data)


cdef inline void _start(_Out *out, char *stack, Py_ssize_t reserved) noexcept:
    """An empty buffer over ``stack`` (``_STACK_BYTES``), ``reserved`` bytes left in front."""
    out.data = stack
    out.size = reserved
    out.cap = _STACK_BYTES
    out.heap = False


cdef int _pack_fields(object fields, _Out *out) except -1:
    """0 once ``fields`` is packed into ``out``; 1 for a record left to msgpack."""
    try:
        return _pack(fields, out, 0)
    except UnicodeError:
        return 1  # msgpack says what is wrong with the text


DEF _HEADER_BYTES = 16  # record.FRAME_HEADER: <IIQ (payload length, frame crc, durable)


cdef inline void _put_le(char *at, uint64_t value, int width) noexcept nogil:
    cdef int i
    for i in range(width):
        at[i] = <char>((value >> (8 * i)) & 0xFF)


def frame_record(object fields, uint64_t durable):
    """The whole frame of an unsigned record and its payload's SHA-256, in one call:
    ``(FRAME_HEADER.pack(len(payload), frame_crc(zlib.crc32(payload), durable), durable)
    + payload, hashlib.sha256(payload).digest())`` with ``payload = pack_record(fields)``;
    None where ``pack_record`` gives None (the caller then takes the general path).

    ``CommitLog.append`` without signing and without group commit: one call for what
    was ``pack_record``, ``seal``, the watermark's crc, the header and the join of header
    and payload (five calls, three more bytes objects; docs/design/hot-path.md, "Seventh
    round"). ``tests/durability/test_frames_kernel.py`` checks it against those steps.
    """
    cdef char stack[_STACK_BYTES]
    cdef _Out out
    cdef Py_ssize_t size
    cdef const unsigned char *payload
    cdef unsigned long c
    cdef unsigned char durable_le[8]
    _start(&out, stack, _HEADER_BYTES)  # the header goes in front once the crc is known
    try:
        if _pack_fields(fields, &out):
            return None
        size = out.size - _HEADER_BYTES
        if size > 0xFFFFFFFF:
            return None  # the header cannot hold it: the general path refuses it
        payload = <const unsigned char *>out.data + _HEADER_BYTES
        _put_le(<char *>durable_le, durable, 8)
        c = _crc(_crc(0, payload, size), durable_le, 8)
        _put_le(out.data, <uint64_t>size, 4)
        _put_le(out.data + 4, <uint64_t>(<uint32_t>c), 4)
        memcpy(out.data + 8, durable_le, 8)
        return PyBytes_FromStringAndSize(out.data, out.size), _sha256(payload, size)
    finally:
        if out.heap:
            free(out.data)
