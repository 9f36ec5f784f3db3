"""An RFC 9162 (Certificate Transparency v2) Merkle tree: roots, proofs and their verifiers.

Hashing is RFC 9162 §2.1.1 with SHA-256: a leaf is ``SHA-256(0x00 || data)``, an interior
node ``SHA-256(0x01 || left || right)``, the empty tree ``SHA-256("")``. The prefixes
keep a leaf from ever being read as a node (second-preimage resistance). For ``n > 1``
leaves, with ``k`` the largest power of two below ``n``::

    MTH(D[0:n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))

**Stored subtree hashes.** Every *complete* subtree (``2**level`` leaves starting at a
multiple of ``2**level``) has exactly one hash, and it never changes once its last leaf
is appended. They are kept in one append-only sequence in the order they become
complete: appending leaf ``j`` writes its leaf hash, then the hash of every subtree that
leaf completes, lowest level first. A tree of ``n`` leaves therefore holds
``2n - popcount(n)`` hashes (:func:`stored_count`), and the node at ``(level, index)``
sits at a position computed in O(1) (:func:`stored_index`), so a store is a flat file of
32-byte entries that only ever grows (or is cut back to a leaf boundary), like a commit
log. Any tree size's root, and every proof, reads O(log n) entries: the RFC's recursion
splits a range into a complete left part, which is stored, and a right part that is
either complete or split again. The same sequence is rebuilt from the leaves alone
(:meth:`MerkleTree.append` each in order), so a damaged store is never a loss.

A :class:`Frontier` is the other half: the O(log n) hashes of the complete subtrees that
make up the tree now (the "compact range"). Appending touches only the frontier, and a
verifier that only wants roots (does the log match every checkpoint?) streams the leaves
through a frontier in O(log n) memory.

Proofs are RFC 9162 §2.1.3 (inclusion, ``PATH``) and §2.1.4 (consistency,
``SUBPROOF``); the verifiers are the algorithms of §2.1.3.2 and §2.1.4.2, and raise
:class:`~cosmictron.ledger.errors.ProofInvalid` naming why. Like transparency-dev's
verifier, a consistency proof from the empty tree is refused: it proves nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from cosmictron.ledger.errors import ProofInvalid, ProofUnavailable

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree with no leaves (RFC 9162 §2.1.1: the hash of the empty string)."""

_sha256 = hashlib.sha256
_LEAF_CTX = hashlib.sha256(LEAF_PREFIX)

_append_payloads: Callable[[list[bytes], int, list[bytes]], bytes] | None = None
"""The compiled batch append (``_leaves.pyx``), or None: not built, or ``COSMICTRON_PURE``
is set (:meth:`MerkleTree.extend_payloads` then runs the same loop in Python)."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.ledger._leaves import append_payloads as _append_payloads
    except ImportError:  # built without a compiler: the pure-Python loop
        pass
COMPILED = _append_payloads is not None
"""Whether checkpoints hash their batch with the compiled kernel (tests run both ways)."""


def leaf_hash(data: bytes | bytearray | memoryview) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf.

    >>> leaf_hash(b"").hex()[:16]
    '6e340b9cffb37a98'
    """
    ctx = _LEAF_CTX.copy()
    ctx.update(data)
    return ctx.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def stored_count(size: int) -> int:
    """How many hashes a store holds for a tree of ``size`` leaves: ``2n - popcount(n)``."""
    return 2 * size - size.bit_count()


def stored_index(level: int, index: int) -> int:
    """Position in the store of the complete subtree ``index`` at ``level``.

    It is written right after its last leaf ``m = (index + 1) * 2**level - 1``, whose own
    hash sits at ``stored_count(m)``, followed by the nodes of levels 1, 2, … it completes.
    """
    last_leaf = ((index + 1) << level) - 1
    return stored_count(last_leaf) + level


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size >= 2``)."""
    return 1 << ((size - 1).bit_length() - 1)


def size_for_count(count: int) -> int:
    """The largest tree size whose stored hashes fit in ``count`` entries.

    ``stored_count`` grows by ``1 + trailing_zeros(n)`` from ``n - 1`` to ``n``, so it is
    strictly increasing and a binary search finds the leaf boundary at or below ``count``.
    """
    lo, hi = 0, count + 1  # stored_count(count + 1) > count
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if stored_count(mid) <= count:
            lo = mid
        else:
            hi = mid
    return lo


class HashStore(Protocol):
    """Where a tree keeps its stored hashes: an append-only array of 32-byte entries."""

    def __len__(self) -> int:
        """Number of 32-byte entries held."""
        ...

    def read(self, position: int) -> bytes:
        """The entry at ``position`` (0-based)."""
        ...

    def append(self, hashes: bytes) -> None:
        """Append one or more entries, concatenated."""
        ...

    def truncate(self, count: int) -> None:
        """Keep only the first ``count`` entries."""
        ...


class MemoryHashStore:
    """Stored hashes in one ``bytearray``: 64 bytes per leaf, no per-hash object."""

    def __init__(self) -> None:
        self._data = bytearray()

    def __len__(self) -> int:
        return len(self._data) // HASH_SIZE

    def read(self, position: int) -> bytes:
        if not 0 <= position < len(self):
            raise IndexError(f"stored hash {position} is not in a store of {len(self)}")
        start = position * HASH_SIZE
        return bytes(self._data[start : start + HASH_SIZE])

    def append(self, hashes: bytes) -> None:
        self._data += hashes

    def truncate(self, count: int) -> None:
        del self._data[count * HASH_SIZE :]


class FileHashStore:
    """Stored hashes in a flat file of 32-byte entries, appended and read in place.

    The file is derived data (rebuilt from the log's leaves), so it is not synced on
    every append: :meth:`sync` is there for whoever wants it. Opening a file whose length
    is not a whole number of entries (a torn append) drops the partial entry; the tree
    then cuts back further to a leaf boundary (:class:`MerkleTree`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        length = os.fstat(self._fd).st_size
        whole = length - length % HASH_SIZE
        if whole != length:
            os.ftruncate(self._fd, whole)
        self._count = whole // HASH_SIZE

    def __len__(self) -> int:
        return self._count

    def read(self, position: int) -> bytes:
        if not 0 <= position < self._count:
            raise IndexError(f"stored hash {position} is not in a store of {self._count}")
        data = os.pread(self._fd, HASH_SIZE, position * HASH_SIZE)
        if len(data) != HASH_SIZE:
            raise OSError(f"{self.path}: short read at entry {position}")
        return data

    def append(self, hashes: bytes) -> None:
        offset = self._count * HASH_SIZE
        view = memoryview(hashes)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written
        self._count += len(hashes) // HASH_SIZE

    def truncate(self, count: int) -> None:
        os.ftruncate(self._fd, count * HASH_SIZE)
        self._count = min(self._count, count)

    def sync(self) -> None:
        """Make the appended entries durable (``fdatasync``)."""
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileHashStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BasedHashStore:
    """A store that starts at a compact range: the tree of ``base_size`` leaves is known
    only by its frontier (one hash per set bit), the stored hashes after it are held by
    ``inner``.

    A node that joined a replicated log from a snapshot at offset ``S`` never saw records
    ``1..S``; the snapshot carries the tree's frontier at ``S``
    (``cosmictron.ledger.archived``), which is enough to go on appending, to compute every
    root at a size ``>= S`` and every inclusion proof for a leaf ``>= S`` and consistency
    proof between sizes ``>= S``: each hash those read is either a complete subtree
    ending at or past leaf ``S`` (in ``inner``) or one of the frontier's (a complete
    subtree wholly below ``S`` that such a read needs is never strictly inside one of the
    frontier's subtrees). Reading any other position below the base raises
    :class:`~cosmictron.ledger.errors.ProofUnavailable`, so a proof is either right or
    refused, never built from a missing hash.

    Positions are the tree's own (:func:`stored_index`); ``inner`` holds position
    ``stored_count(base_size) + i`` at its entry ``i``.
    """

    def __init__(self, inner: HashStore, base_size: int, frontier: Sequence[bytes]) -> None:
        self.inner = inner
        self.base_size = base_size
        self.offset = stored_count(base_size)
        known: dict[int, bytes] = {}
        start = 0
        levels = [bit for bit in reversed(range(base_size.bit_length())) if base_size >> bit & 1]
        if len(levels) != len(frontier):
            raise ValueError(f"a tree of {base_size} leaves has {len(levels)} frontier nodes")
        for level, node in zip(levels, frontier, strict=True):
            if len(node) != HASH_SIZE:
                raise ValueError(f"a frontier hash has {HASH_SIZE} bytes, not {len(node)}")
            known[stored_index(level, start >> level)] = bytes(node)
            start += 1 << level
        self._known = known

    def __len__(self) -> int:
        return self.offset + len(self.inner)

    def read(self, position: int) -> bytes:
        if position >= self.offset:
            return self.inner.read(position - self.offset)
        found = self._known.get(position)
        if found is None:
            raise ProofUnavailable(
                "below_base",
                f"the hash at position {position} covers records below offset "
                f"{self.base_size + 1}: this tree starts from the compact range of the "
                f"first {self.base_size} records (its node joined from a snapshot there)",
                self.base_size,
            )
        return found

    def append(self, hashes: bytes) -> None:
        self.inner.append(hashes)

    def truncate(self, count: int) -> None:
        if count < self.offset:
            raise ValueError(
                f"cannot cut a tree that starts at {self.base_size} leaves below its base"
            )
        self.inner.truncate(count - self.offset)

    def sync(self) -> None:
        """Make ``inner``'s entries durable, when it can (a :class:`FileHashStore`)."""
        sync = getattr(self.inner, "sync", None)
        if sync is not None:
            sync()

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class Frontier:
    """The roots of the complete subtrees that make up a tree now (its compact range).

    One hash per set bit of the size, highest level first. Appending a leaf merges equal
    levels like a binary counter's carries; the hashes each merge produces are returned,
    which is exactly what a store appends. The root is the right fold of the frontier.
    """

    __slots__ = ("_hashes", "_levels", "size")

    def __init__(self) -> None:
        self.size = 0
        self._levels: list[int] = []
        self._hashes: list[bytes] = []

    @classmethod
    def from_nodes(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        """A frontier from its hashes, one per set bit of ``size``, highest level first."""
        levels = [bit for bit in reversed(range(size.bit_length())) if size >> bit & 1]
        if len(levels) != len(hashes):
            raise ValueError(f"a tree of {size} leaves has {len(levels)} frontier nodes")
        frontier = cls()
        frontier.size = size
        frontier._levels = levels
        frontier._hashes = list(hashes)
        return frontier

    def append(self, leaf: bytes) -> bytes:
        """Add one leaf hash; return it followed by every subtree hash it completed."""
        carry = leaf
        out = leaf
        level = 0
        levels = self._levels
        hashes = self._hashes
        while levels and levels[-1] == level:
            levels.pop()
            carry = _sha256(NODE_PREFIX + hashes.pop() + carry).digest()
            out += carry
            level += 1
        levels.append(level)
        hashes.append(carry)
        self.size += 1
        return out

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add many leaf hashes (nothing is returned: for verifiers that want roots)."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The tree's root: the hashes folded from the right; the empty root when empty."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        root = hashes[-1]
        for left in reversed(hashes[:-1]):
            root = _sha256(NODE_PREFIX + left + root).digest()
        return root

    def nodes(self) -> list[bytes]:
        """The frontier's hashes, highest level first (one per set bit of ``size``)."""
        return list(self._hashes)


def append_payloads(frontier: list[bytes], size: int, payloads: list[bytes]) -> bytes:
    """Append the leaves of ``payloads`` to a tree of ``size`` leaves, given as its frontier.

    ``frontier`` (one hash per set bit of ``size``, highest level first) is updated in
    place; returns the hashes the store appends, in its order. Nothing else is touched,
    so the ledger thread can run this ahead of a checkpoint on a copy of the frontier
    (``durability/ledger_writer.py``, ``prehash``). With the compiled kernel
    (``_leaves.pyx``) the hashing runs in C without the GIL over the payloads' own
    buffers; otherwise each leaf is hashed from a copy of the prefixed context (no
    concatenated copy of the payload).
    """
    if _append_payloads is not None:
        return _append_payloads(frontier, size, payloads)
    tree = Frontier.from_nodes(size, frontier)
    out = bytearray()
    ctx = _LEAF_CTX
    for payload in payloads:
        leaf = ctx.copy()
        leaf.update(payload)
        out += tree.append(leaf.digest())
    frontier[:] = tree._hashes
    return bytes(out)


class MerkleTree:
    """An append-only RFC 9162 tree over a :class:`HashStore`.

    Opening over a non-empty store resumes it: entries past the last whole leaf (a torn
    append of a leaf and its nodes) are cut, and the frontier is read back in O(log n).
    ``size`` is then the number of leaves the store holds; the caller (the durability
    wiring) appends the log's leaves from there, or :meth:`truncate`\\ s to the log.
    """

    def __init__(self, store: HashStore | None = None) -> None:
        self.store: HashStore = store if store is not None else MemoryHashStore()
        size = size_for_count(len(self.store))
        if stored_count(size) != len(self.store):
            self.store.truncate(stored_count(size))
        self._frontier = self._frontier_at(size)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._frontier.size

    def _frontier_at(self, size: int) -> Frontier:
        nodes = []
        start = 0
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                nodes.append(self.store.read(stored_index(level, start >> level)))
                start += 1 << level
        return Frontier.from_nodes(size, nodes)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Append a leaf's data (hashed with the leaf prefix); return its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, leaf: bytes) -> int:
        """Append an already computed leaf hash; return its index."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf)}")
        index = self._frontier.size
        self.store.append(self._frontier.append(leaf))
        return index

    def extend(self, items: Iterable[bytes]) -> None:
        """Append many leaves' data, writing their hashes to the store in one append."""
        frontier = self._frontier
        out = bytearray()
        ctx = _LEAF_CTX
        for data in items:
            leaf_ctx = ctx.copy()
            leaf_ctx.update(data)
            out += frontier.append(leaf_ctx.digest())
        self.store.append(bytes(out))

    def extend_payloads(self, payloads: list[bytes]) -> None:
        """Append the leaves of many records' bytes (hashed here), in one store append.

        The commit log's batch at each checkpoint (see :func:`append_payloads`).
        """
        if not payloads:
            return
        frontier = self._frontier
        hashes = list(frontier._hashes)
        out = append_payloads(hashes, frontier.size, payloads)
        self.adopt(frontier.size + len(payloads), hashes, out)

    def frontier_nodes(self) -> tuple[int, list[bytes]]:
        """The size and a copy of the frontier: where :func:`append_payloads` starts."""
        return self._frontier.size, list(self._frontier._hashes)

    def adopt(self, size: int, frontier: list[bytes], stored: bytes) -> None:
        """Take the result of :func:`append_payloads` run from :meth:`frontier_nodes`.

        ``stored`` is what the store appends and ``frontier`` the new frontier of a tree
        of ``size`` leaves; the caller makes sure the tree did not change in between.
        """
        if len(stored) != (stored_count(size) - stored_count(self.size)) * HASH_SIZE:
            raise ValueError("the staged hashes do not extend this tree")
        self._frontier = Frontier.from_nodes(size, frontier)
        self.store.append(stored)

    def extend_hashes(self, leaves: Sequence[bytes]) -> None:
        """Append many already computed leaf hashes, writing the store in one append.

        The commit log hands the leaves over in batches (at a checkpoint), so the store
        sees one write per batch. This runs for every committed record, so the carry
        loop is inlined and driven by the size's bits alone: appending to a tree of
        ``n`` leaves merges once per trailing one bit of ``n``, and the frontier's levels
        are the set bits of the new size, so no per-leaf list of levels is kept (a
        level-at-a-time version, whose store order needs a position per hash, measured
        slower).
        """
        for leaf in leaves:
            if len(leaf) != HASH_SIZE:
                raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf)}")
        frontier = self._frontier
        hashes = frontier._hashes
        pop = hashes.pop
        push = hashes.append
        out: list[bytes] = []
        emit = out.append
        sha256 = _sha256
        prefix = NODE_PREFIX
        size = frontier.size
        for leaf in leaves:
            emit(leaf)
            carry = leaf
            merges = size
            size += 1
            while merges & 1:
                carry = sha256(prefix + pop() + carry).digest()
                emit(carry)
                merges >>= 1
            push(carry)
        frontier.size = size
        frontier._levels = [bit for bit in reversed(range(size.bit_length())) if size >> bit & 1]
        if out:
            self.store.append(b"".join(out))

    def frontier_at(self, size: int) -> list[bytes]:
        """The compact range of the first ``size`` leaves (one hash per set bit, highest
        level first): enough to go on appending from ``size`` without the leaves."""
        self._check_size(size)
        return self._frontier_at(size).nodes()

    def truncate(self, size: int) -> None:
        """Cut the tree back to its first ``size`` leaves (the log lost a torn tail)."""
        if not 0 <= size <= self.size:
            raise ValueError(f"cannot truncate a tree of {self.size} leaves to {size}")
        self.store.truncate(stored_count(size))
        self._frontier = self._frontier_at(size)

    def leaf(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        self._check_index(index, self.size)
        return self.store.read(stored_index(0, index))

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first ``size`` leaves (default: all of them)."""
        if size is None or size == self.size:
            return self._frontier.root()
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 ``PATH(index, D[0:size])``: the sibling hashes from the leaf up."""
        size = self.size if size is None else size
        self._check_size(size)
        self._check_index(index, size)
        path = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 ``PROOF(old_size, D[0:new_size])``; empty when the sizes are equal."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 < old_size <= new_size:
            raise ValueError(
                f"a consistency proof needs 0 < old size <= new size, got {old_size}, {new_size}"
            )
        path = []
        lo, hi = 0, new_size
        complete = True
        while old_size != hi:
            k = _split(hi - lo)
            if old_size <= lo + k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo += k
                complete = False
        if not complete:
            path.append(self._subtree(lo, hi))
        path.reverse()
        return path

    def _subtree(self, lo: int, hi: int) -> bytes:
        """``MTH(D[lo:hi])`` for a range of the RFC's recursion, in O(log(hi - lo)) reads."""
        size = hi - lo
        if size & (size - 1) == 0 and lo % size == 0:
            level = size.bit_length() - 1
            return self.store.read(stored_index(level, lo >> level))
        k = _split(size)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not between 0 and {self.size}")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is not in a tree of {size} leaves")


def _check_hashes(proof: Sequence[bytes], *named: tuple[str, bytes]) -> None:
    for name, value in named:
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise ProofInvalid("bad_hash_length", f"{name} is not a {HASH_SIZE}-byte hash")
    for n, value in enumerate(proof):
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise ProofInvalid("bad_hash_length", f"proof hash {n} is not {HASH_SIZE} bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a leaf and its inclusion proof imply (RFC 9162 §2.1.3.2), or ProofInvalid."""
    if size <= 0 or not 0 <= index < size:
        raise ProofInvalid("index_out_of_range", f"leaf {index} is not in a tree of {size}")
    fn, sn = index, size - 1
    root = leaf
    for sibling in proof:
        if sn == 0:
            raise ProofInvalid("wrong_proof_length", "the proof has more hashes than the path")
        if fn & 1 or fn == sn:
            root = _sha256(NODE_PREFIX + sibling + root).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            root = _sha256(NODE_PREFIX + root + sibling).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid("wrong_proof_length", "the proof has fewer hashes than the path")
    return root


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` whose root is ``root``.

    Raises:
        ProofInvalid: with ``reason`` saying which check failed.
    """
    _check_hashes(proof, ("leaf hash", leaf), ("root", root))
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofInvalid("root_mismatch", f"the proof for leaf {index} leads to another root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` is a prefix of the tree of ``new_size``.

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; an old size of 0
    is refused (it proves nothing), as is ``old_size > new_size``.

    Raises:
        ProofInvalid: with ``reason`` saying which check failed.
    """
    _check_hashes(proof, ("old root", old_root), ("new root", new_root))
    if old_size <= 0:
        raise ProofInvalid("empty_tree", "a consistency proof from the empty tree proves nothing")
    if old_size > new_size:
        raise ProofInvalid("bad_sizes", f"old size {old_size} is above new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofInvalid("wrong_proof_length", "equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofInvalid("root_mismatch", f"two different roots for size {old_size}")
        return
    if not proof:
        raise ProofInvalid("wrong_proof_length", "the proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofInvalid("wrong_proof_length", "the proof has more hashes than needed")
        if fn & 1 or fn == sn:
            first = _sha256(NODE_PREFIX + c + first).digest()
            second = _sha256(NODE_PREFIX + c + second).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            second = _sha256(NODE_PREFIX + second + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid("wrong_proof_length", "the proof has fewer hashes than needed")
    if first != old_root:
        raise ProofInvalid("root_mismatch", f"the proof does not lead to the size {old_size} root")
    if second != new_root:
        raise ProofInvalid("root_mismatch", f"the proof does not lead to the size {new_size} root")
