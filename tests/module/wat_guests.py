"""Hand-written WebAssembly guests (WAT) for the sandbox tests: no SDK, no toolchain.

``guest(description, bodies)`` makes a module that speaks the module ABI: its description
sits in a data segment, ``cosmictron_alloc`` hands out one fixed buffer, and
``cosmictron_call`` dispatches on the reducer's position (the call frame's second byte,
since a frame is a msgpack array of 7 and positions below 128 are one byte) to the WAT
body given for it. A body that returns normally answers the constant result frame
``[0, nil, []]`` (committed, no value, no buffered writes).
"""

from __future__ import annotations

from typing import Any

import msgpack
import wasmtime

DESCRIPTION_AT = 1024
OK_FRAME_AT = 16384
SCRATCH_AT = 20480
BUFFER_AT = 32768
OK_FRAME = msgpack.packb([0, None, []])


def _data(offset: int, data: bytes) -> str:
    escaped = "".join(f"\\{byte:02x}" for byte in data)
    return f'(data (i32.const {offset}) "{escaped}")'


def description(reducers: list[str], tables: list[dict[str, Any]] | None = None) -> bytes:
    return msgpack.packb(
        {
            "abi": 1,
            "tables": tables or [],
            "reducers": [{"name": name, "kind": "reducer", "params": []} for name in reducers],
        },
        use_bin_type=True,
    )


def guest(
    bodies: dict[str, str],
    imports: str = "",
    tables: list[dict[str, Any]] | None = None,
    extra: str = "",
    pages: int = 1,
) -> bytes:
    """A WASM module whose reducers (in order) run ``bodies`` (WAT instructions)."""
    described = description(list(bodies), tables)
    assert len(described) < OK_FRAME_AT - DESCRIPTION_AT
    cases = "\n".join(
        f"(if (i32.eq (local.get $which) (i32.const {n})) (then {body}))"
        for n, body in enumerate(bodies.values())
    )
    text = f"""
(module
  (import "cosmictron" "ops" (func $ops (param i32 i32 i32 i32) (result i64)))
  {imports}
  (memory (export "memory") {pages})
  {_data(DESCRIPTION_AT, described)}
  {_data(OK_FRAME_AT, OK_FRAME)}
  (func (export "cosmictron_alloc") (param i32) (result i32) (i32.const {BUFFER_AT}))
  (func (export "cosmictron_describe") (result i64)
    (i64.or (i64.shl (i64.const {DESCRIPTION_AT}) (i64.const 32)) (i64.const {len(described)})))
  (func (export "cosmictron_call") (param $frame i32) (param $len i32) (result i64)
    (local $which i32)
    (local.set $which (i32.load8_u (i32.add (local.get $frame) (i32.const 1))))
    {cases}
    (i64.or (i64.shl (i64.const {OK_FRAME_AT}) (i64.const 32)) (i64.const {len(OK_FRAME)})))
  {extra}
)"""
    return bytes(wasmtime.wat2wasm(text))


def ops_call(request: bytes, at: int = SCRATCH_AT) -> tuple[str, str]:
    """(a data segment holding ``request``, WAT that sends it to ``ops`` and drops the
    answer): a guest that performs one fixed batch of operations."""
    segment = _data(at, request)
    call = (
        f"(drop (call $ops (i32.const {at}) (i32.const {len(request)}) "
        f"(i32.const {at + 2048}) (i32.const 8192)))"
    )
    return segment, call
