# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled Merkle append: a checkpoint's batch of leaf and node hashes in C.

Optional, like ``durability/_frames.pyx``: ``setup.py`` builds it when Cython and a C
compiler (with OpenSSL's headers) are present; ``merkle.py`` falls back to its pure-Python
loop when it is missing or ``COSMICTRON_PURE=1`` is set, and the tests run both
(``tests/ledger/test_leaves_kernel.py``). Why it pays: the commit thread hashes every
record's leaf and about as many interior nodes at each checkpoint; through ``hashlib``
each small hash costs a Python call and a concatenated copy (about 1 µs), which was most
of the ledger's cost per transaction (docs/design/ledger.md, "Checkpoint cost"). Here the
whole batch runs without the GIL over the payloads' own buffers (no copies).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cdef extern from "openssl/sha.h":
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX *c) nogil
    int SHA256_Update(SHA256_CTX *c, const void *data, size_t len) nogil
    int SHA256_Final(unsigned char *md, SHA256_CTX *c) nogil

cdef enum:
    HASH = 32
    MAX_LEVELS = 64

cdef unsigned char LEAF_PREFIX = 0
cdef unsigned char NODE_PREFIX = 1


def append_payloads(list frontier, unsigned long long size, list payloads):
    """Append the leaves of ``payloads`` (``bytes``) to a tree of ``size`` leaves.

    ``frontier`` holds the tree's frontier hashes, highest level first (one per set bit of
    ``size``); it is updated in place. Returns the bytes the hash store appends: each
    leaf hash followed by the subtree hashes it completes, lowest level first (the order
    of ``merkle.py``'s stored sequence).
    """
    cdef Py_ssize_t n = len(payloads)
    cdef Py_ssize_t depth = len(frontier)
    cdef Py_ssize_t i, k
    cdef unsigned long long merges, total
    cdef unsigned char stack[MAX_LEVELS][HASH]
    cdef unsigned char carry[HASH]
    cdef SHA256_CTX ctx
    cdef const char **data
    cdef Py_ssize_t *lengths
    cdef unsigned char *out
    cdef Py_ssize_t written = 0
    if depth > MAX_LEVELS:
        raise ValueError("a frontier has at most 64 levels")
    for k in range(depth):
        node = frontier[k]
        if type(node) is not bytes or PyBytes_GET_SIZE(node) != HASH:
            raise ValueError("a frontier hash is 32 bytes")
        memcpy(stack[k], PyBytes_AS_STRING(node), HASH)
    # Stored hashes for these leaves: one per leaf plus one per merge; merges over the
    # batch are (size + n) minus size in trailing-carry count, bounded by n + 64.
    total = n * 2 + MAX_LEVELS
    result = PyBytes_FromStringAndSize(NULL, total * HASH)
    out = <unsigned char *>PyBytes_AS_STRING(result)
    data = <const char **>malloc(n * sizeof(char *) + 1)
    lengths = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t) + 1)
    if data == NULL or lengths == NULL:
        free(data)
        free(lengths)
        raise MemoryError()
    try:
        for i in range(n):
            payload = payloads[i]
            if type(payload) is not bytes:
                raise TypeError("a payload is bytes")
            data[i] = PyBytes_AS_STRING(payload)
            lengths[i] = PyBytes_GET_SIZE(payload)
        with nogil:
            for i in range(n):
                SHA256_Init(&ctx)
                SHA256_Update(&ctx, &LEAF_PREFIX, 1)
                SHA256_Update(&ctx, data[i], lengths[i])
                SHA256_Final(carry, &ctx)
                memcpy(out + written, carry, HASH)
                written += HASH
                merges = size
                size += 1
                while merges & 1:
                    depth -= 1
                    SHA256_Init(&ctx)
                    SHA256_Update(&ctx, &NODE_PREFIX, 1)
                    SHA256_Update(&ctx, stack[depth], HASH)
                    SHA256_Update(&ctx, carry, HASH)
                    SHA256_Final(carry, &ctx)
                    memcpy(out + written, carry, HASH)
                    written += HASH
                    merges >>= 1
                memcpy(stack[depth], carry, HASH)
                depth += 1
    finally:
        free(data)
        free(lengths)
    frontier[:] = [PyBytes_FromStringAndSize(<char *>stack[k], HASH) for k in range(depth)]
    return result[:written]
