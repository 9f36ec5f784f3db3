"""Optional compiled hot paths (docs/design/hot-path.md); everything else is in pyproject.toml.

The extensions are built when Cython and a C compiler (with zlib's and OpenSSL's headers)
are present, and skipped with a warning otherwise: every one has a pure-Python fallback,
so an install without a compiler works, only replay is slower. ``COSMICTRON_PURE=1`` at
build time skips them too.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_SOURCES = {
    "cosmictron.durability._frames": "src/cosmictron/durability/_frames.pyx",
    # The PostgreSQL port's DataRow writer (server/pgwire/results.py falls back without it).
    "cosmictron.server.pgwire._rows": "src/cosmictron/server/pgwire/_rows.pyx",
    "cosmictron.datastore._rows": "src/cosmictron/datastore/_rows.pyx",
    # Replay's loop over the common record of small transactions (host/records.py).
    "cosmictron.host._replay": "src/cosmictron/host/_replay.pyx",
    "cosmictron.ledger._leaves": "src/cosmictron/ledger/_leaves.pyx",
    # A lone call's reply written by the thread that waited for its sync (frames_out.py;
    # without it every reply goes the event loop's way).
    "cosmictron.server._direct": "src/cosmictron/server/_direct.pyx",
}


class _OptionalBuildExt(build_ext):
    """``build_ext`` that warns and carries on when an extension cannot be built."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (DistutilsPlatformError and kin)
            _skip("the compiled hot path", exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError: missing headers or libraries
            _skip(ext.name, exc)


def _skip(what: str, exc: BaseException) -> None:
    print(
        f"cosmictron: not building {what} ({exc}); the pure-Python fallback is used",
        file=sys.stderr,
    )


def _extensions() -> list[Extension]:
    if os.environ.get("COSMICTRON_PURE"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    extensions = [
        Extension(
            name,
            [source],
            libraries=["z", "crypto"],
            # SHA256_Init/Update/Final: deprecated in OpenSSL 3 but direct; the EVP path
            # fetches the algorithm per call, which costs more than hashing a small record.
            define_macros=[("OPENSSL_SUPPRESS_DEPRECATED", None)],
        )
        for name, source in _SOURCES.items()
    ]
    return cythonize(extensions, quiet=True, language_level=3)


setup(ext_modules=_extensions(), cmdclass={"build_ext": _OptionalBuildExt})
