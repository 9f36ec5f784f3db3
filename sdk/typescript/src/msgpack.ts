/**
 * The msgpack codec (`v1.msgpack.cosmictron`), a separate entry point so the main bundle
 * does not carry a msgpack library: `import { msgpackCodec } from "cosmictron/msgpack"`
 * and pass `codec: msgpackCodec` to `connect`. Needs `@msgpack/msgpack` (>= 3).
 *
 * Integers up to 64 bits travel as msgpack ints (decoded to `bigint` when the sender used
 * a 64-bit format); wider ones as extension type 1, the two's-complement big-endian bytes
 * (docs/reference/websocket.md, "The msgpack protocol").
 */

import { decode, encode, ExtData, ExtensionCodec } from "@msgpack/msgpack";
import type { Codec } from "./codec.js";

const BIG_INT_EXT = 1;
const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;

const extensions = new ExtensionCodec();
extensions.register({
  type: BIG_INT_EXT,
  encode: () => null, // wide bigints are wrapped in ExtData by `wide` below
  decode: (data: Uint8Array) => {
    let value = 0n;
    for (const byte of data) value = (value << 8n) | BigInt(byte);
    if (data.length && data[0] & 0x80) value -= 1n << BigInt(data.length * 8);
    return value;
  },
});

function bigIntBytes(value: bigint): Uint8Array {
  let size = 1;
  while (value < -(1n << BigInt(size * 8 - 1)) || value >= 1n << BigInt(size * 8 - 1)) size++;
  const out = new Uint8Array(size);
  let rest = BigInt.asUintN(size * 8, value);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

/** The message with every bigint past 64 bits as extension type 1. */
function wide(value: unknown): unknown {
  if (typeof value === "bigint") {
    return value < INT64_MIN || value > UINT64_MAX
      ? new ExtData(BIG_INT_EXT, bigIntBytes(value))
      : value;
  }
  if (Array.isArray(value)) return value.map(wide);
  if (value && typeof value === "object" && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) if (item !== undefined) out[key] = wide(item);
    return out;
  }
  return value;
}

export const msgpackCodec: Codec = {
  protocol: "v1.msgpack.cosmictron",
  binary: true,
  encode: (message) => encode(wide(message), { extensionCodec: extensions, useBigInt64: true }),
  decode: (data) =>
    decode(data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array), {
      extensionCodec: extensions,
      useBigInt64: true,
    }),
};
