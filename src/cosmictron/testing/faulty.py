"""``FaultyStorage``: an in-memory disk that crashes, as SQLite's ``test6.c`` simulates.

``FaultyStorage(seed)`` is a disk that can lose power. It remembers, for every file, the
content a crash cannot take away (what was there at the last ``sync``) and the list of
writes and truncations made since; for the namespace, the names a crash cannot take away
(as of the last ``sync_directory``) and the creations, renames and removals since. Its
:meth:`FaultyStorage.crash` then does what SQLite's ``src/test6.c`` does: it applies each
unsynced write, drops it, or tears it (a random prefix of it, or garbage of its length),
each choice drawn from ``random.Random(seed)``; it keeps a random prefix of the unsynced
namespace changes (a journaling filesystem commits metadata in order); and it invalidates
every open handle and lock, as a reboot would. The durability code must survive every such
outcome with the guarantees of ``cosmictron.durability``.

It can also inject, with the probabilities given, the faults of SpacetimeDB's
``bitflip.rs`` and ``partial.rs``: a byte flipped in what ``read_file`` returns (the disk
is unchanged), a write that stops part-way with ``ENOSPC``, and a sync that fails with
``EIO``. ``faults_enabled`` switches these off and on, so a test can choose where they hit.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass

from cosmictron.testing.storage import MemoryStorage, _File, _Handle, _overwrite, _parent, _resize


class FaultyStorage(MemoryStorage):
    """A ``MemoryStorage`` that loses unsynced writes at :meth:`crash` (see the module doc).

    Args:
        seed: every random choice (crash outcomes and injected faults) comes from
            ``random.Random(seed)``, so a run replays exactly from its seed.
        read_corruption: the probability that ``read_file`` flips one byte of its result.
        write_failure: the probability that a write stops part-way with ``ENOSPC``.
        sync_failure: the probability that ``sync`` fails with ``EIO`` (the data stays
            unsynced, so a later crash may lose it).
        reorder_writes: ``True`` (as ``test6.c``): each unsynced write of a file meets its
            fate independently, so a later write may survive an earlier one that was lost
            (a disk writing back pages out of order). ``False``: a file keeps a prefix of
            its unsynced writes, the next one perhaps torn, as a log-structured append
            path on an ordered filesystem (ext4 ``data=ordered``) would.
    """

    def __init__(
        self,
        seed: int,
        *,
        read_corruption: float = 0.0,
        write_failure: float = 0.0,
        sync_failure: float = 0.0,
        reorder_writes: bool = True,
    ) -> None:
        super().__init__()
        self.reorder_writes = reorder_writes
        self.random = random.Random(seed)
        self.read_corruption = read_corruption
        self.write_failure = write_failure
        self.sync_failure = sync_failure
        self.faults_enabled = True
        self.durable_files: dict[str, _File] = {}
        self.durable_directories: set[str] = {"/"}
        self.pending_names: list[tuple[str, str, _File | None, str]] = []
        """Unsynced namespace changes in order: ``(kind, path, file, source)``; ``source``
        is the old name of a rename (one change, so a crash never loses both names)."""
        self.crash_count = 0
        self.faults_injected = 0

    def read_file(self, path: str) -> bytes:
        data = super().read_file(path)
        if data and self._fault(self.read_corruption):
            position = self.random.randrange(len(data))
            flipped = bytearray(data)
            flipped[position] ^= 1 << self.random.randrange(8)
            return bytes(flipped)
        return data

    def _write(self, handle: _Handle, data: bytes) -> int:
        if data and self._fault(self.write_failure):
            super()._write(handle, data[: self.random.randrange(len(data))])
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return super()._write(handle, data)

    def sync(self, handle: int, method: str) -> None:
        with self.mutex:
            self._handle(handle)
            if self._fault(self.sync_failure):
                raise OSError(errno.EIO, "Input/output error (injected)")
            super().sync(handle, method)

    def _fault(self, probability: float) -> bool:
        if self.faults_enabled and probability and self.random.random() < probability:
            self.faults_injected += 1
            return True
        return False

    # -- remembering what is not yet durable -------------------------------------------

    def _write_at(self, file: _File, position: int, data: bytes) -> None:
        super()._write_at(file, position, data)
        file.pending.append((position, data))

    def _truncate(self, file: _File, size_bytes: int) -> None:
        super()._truncate(file, size_bytes)
        file.pending.append(size_bytes)

    def _sync_file(self, file: _File) -> None:
        file.durable = bytearray(file.content)
        file.pending.clear()

    def _link(self, path: str, file: _File) -> None:
        super()._link(path, file)
        self.pending_names.append(("link", path, file, ""))

    def _unlink(self, path: str) -> None:
        super()._unlink(path)
        self.pending_names.append(("unlink", path, None, ""))

    def _rename(self, source: str, target: str, file: _File) -> None:
        super()._rename(source, target, file)
        self.pending_names.append(("rename", target, file, source))

    def _make_directory(self, path: str) -> None:
        super()._make_directory(path)
        self.pending_names.append(("mkdir", path, None, ""))

    def _sync_names(self, directory: str) -> None:
        # Metadata is journaled in order: syncing a directory makes every earlier change
        # durable too, up to the last one in this directory.
        touching = [
            index
            for index, (_, path, _, source) in enumerate(self.pending_names)
            if directory in (_parent(path), _parent(source))
        ]
        if touching:
            self._make_names_durable(touching[-1] + 1)

    def _make_names_durable(self, count: int) -> None:
        for kind, path, file, source in self.pending_names[:count]:
            if kind in ("link", "rename"):
                assert file is not None
                self.durable_files.pop(source, None)
                self.durable_files[path] = file
            elif kind == "unlink":
                self.durable_files.pop(path, None)
            else:
                self.durable_directories.add(path)
        del self.pending_names[:count]

    # -- the crash ---------------------------------------------------------------------

    def crash(self) -> CrashReport:
        """Lose power: decide the fate of every unsynced change, then "reboot".

        Afterwards every file holds what a real disk might hold after the crash, all of it
        durable; every handle and lock from before is dead (``EBADF``; released).
        """
        with self.mutex:
            report = CrashReport()
            kept = self.random.randint(0, len(self.pending_names))
            report.names_kept, report.names_lost = kept, len(self.pending_names) - kept
            self._make_names_durable(kept)
            self.pending_names.clear()
            for file in _unique(self.files.values(), self.durable_files.values()):
                self._crash_file(file, report)
            self.files = dict(self.durable_files)
            self.directories = set(self.durable_directories)
            self._handles.clear()
            self.locked_directories.clear()
            self.generation += 1
            self.crash_count += 1
            return report

    def _crash_file(self, file: _File, report: CrashReport) -> None:
        content = file.durable
        pending = file.pending
        kept = len(pending) if self.reorder_writes else self.random.randint(0, len(pending))
        for index, change in enumerate(pending):
            if index > kept:
                # Ordered: nothing after the first lost change reached the disk.
                report.writes_dropped += sum(not isinstance(c, int) for c in pending[index:])
                break
            in_kept_prefix = index < kept and not self.reorder_writes
            if isinstance(change, int):
                if in_kept_prefix or self.random.random() < 0.5:
                    _resize(content, change)
                continue
            position, data = change
            choice = 0.0 if in_kept_prefix else self.random.random()
            if choice < 0.4:
                report.writes_applied += 1
            elif choice < 0.7:
                report.writes_dropped += 1
                continue
            elif choice < 0.9 or not data:
                report.writes_torn += 1
                data = data[: self.random.randrange(len(data) + 1)]
            else:
                report.writes_garbled += 1
                data = self.random.randbytes(len(data))
            _overwrite(content, position, data)
        file.pending.clear()
        file.content = bytearray(content)


@dataclass
class CrashReport:
    """What one :meth:`FaultyStorage.crash` did, for failure messages."""

    writes_applied: int = 0
    writes_dropped: int = 0
    writes_torn: int = 0
    writes_garbled: int = 0
    names_kept: int = 0
    names_lost: int = 0


def _unique(*groups: object) -> list[_File]:
    found: dict[int, _File] = {}
    for group in groups:
        for file in group:  # type: ignore[attr-defined]
            found[file.number] = file
    return [found[number] for number in sorted(found)]
