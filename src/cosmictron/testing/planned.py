"""``PlannedFaults``: one fault at one chosen storage call, to walk every step of a procedure.

Random faults (``FaultyStorage``'s probabilities) find problems by chance; a matrix needs
each step hit on purpose. ``PlannedFaults(inner, at=N, fault=F)`` passes every ``Storage``
call to ``inner`` and numbers them from 0; call ``N`` fails instead of running:

- ``"error"``: with the ``OSError`` the call would really raise on a failing disk: ``ENOSPC``
  for the writes, ``EIO`` for everything else (reads, syncs, renames, listings);
- ``"crash"``: with ``PowerLoss``, a ``BaseException`` that no ``except Exception`` in the
  code under test can swallow: the process stops right before that call. The test then
  calls ``inner.crash()`` (a ``FaultyStorage``), which loses unsynced writes and names
  as a power cut would (the LazyFS model), and reopens.

Run a procedure once with ``at=None`` to learn how many calls it makes (``calls``), then
once per call number and fault: every step is hit exactly once.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from cosmictron.durability.storage import Storage

FAULTS = ("error", "crash")

_WRITES = frozenset({"write", "writev", "writev_at"})
_COUNTED = frozenset(
    {
        "open_append",
        "open_overwrite",
        "open_write",
        "writev_at",
        "write",
        "writev",
        "read_file",
        "size",
        "truncate",
        "sync",
        "close",
        "rename",
        "unlink",
        "list_directory",
        "make_directory",
        "is_directory",
        "sync_directory",
    }
)


class PowerLoss(BaseException):
    """The simulated process stopped here; nothing after this call ran."""


class PlannedFaults:
    """A ``Storage`` that fails its ``at``-th call with ``fault`` (see the module doc)."""

    def __init__(self, inner: Storage, at: int | None = None, fault: str = "error") -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        self.inner = inner
        self.at = at
        self.fault = fault
        self.calls = 0
        self.hit: str | None = None
        """The name of the call that failed, once it has."""

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in _COUNTED:
            return method
        return self._counted(name, method)

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            number = self.calls
            self.calls += 1
            if number == self.at:
                self.hit = name
                if self.fault == "crash":
                    raise PowerLoss(f"power lost before storage call {number} ({name})")
                code = errno.ENOSPC if name in _WRITES else errno.EIO
                raise OSError(code, f"{errno.errorcode[code]} (planned, call {number} {name})")
            return method(*args, **kwargs)

        return call
