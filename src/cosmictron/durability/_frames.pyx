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
):
    """Verify up to ``max_frames`` frames from ``position``; stop at the first bad one.

    Returns ``(records, end, next_offset, last_hash)``: the verified records (instances
    of ``record_type``, a tuple subclass, of ``(offset, kind, prev_hash, body, hash)``;
    made with ``tuple.__new__``, not its Python ``__new__``), where the last of them
    ends, and the chain state after them. ``last_hash`` None means the chain starts here
    (the first record's prev_hash is not compared). ``formats`` maps each record format
    version read to its number of fields (``record.py``); ``kinds`` are the known kinds.
    """
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
