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
