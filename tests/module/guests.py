"""The Rust guest modules the tests deploy, built from guest/rust by scripts/build-guests.

``built_guest(name)`` runs the build script (a no-op in about a second when nothing
changed; it installs Debian's toolchain when it is missing) and returns the ``.wasm``
bytes. Where the toolchain cannot be had (no apt-get, not root and no sudo), the tests
that need a guest are skipped, saying so; CI has it (scripts/test builds first).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "guest" / "rust" / "target" / "wasm32-unknown-unknown" / "release"


@functools.cache
def _build() -> str | None:
    """None when the guests are built, else why they could not be."""
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / "build-guests")],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/build-guests could not run: {exc}"
    if done.returncode != 0:
        return f"scripts/build-guests failed:\n{done.stderr[-3000:]}"
    return None


def built_guest(name: str) -> bytes:
    problem = _build()
    if problem is not None:
        if "apt-get" in problem or "sudo" in problem or "dpkg" in problem:
            pytest.skip(f"the Rust guest toolchain is not available here: {problem}")
        pytest.fail(problem)
    return (RELEASE / f"{name}.wasm").read_bytes()
