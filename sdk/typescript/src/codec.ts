/**
 * How messages travel: the JSON subprotocol (built in) or msgpack (`cosmictron/msgpack`,
 * which needs the optional `@msgpack/msgpack`). Both carry the same messages; the client's
 * API is the same on either.
 */

import { stringify } from "./values.js";

export interface Codec {
  /** The WebSocket subprotocol this codec speaks. */
  readonly protocol: string;
  /** Binary frames (msgpack) or text frames (JSON). */
  readonly binary: boolean;
  encode(message: unknown): string | Uint8Array;
  decode(data: string | ArrayBuffer | Uint8Array): unknown;
}

const text = /* @__PURE__ */ new TextDecoder();

/** `v1.json.cosmictron`: one JSON object per text frame. */
export const jsonCodec: Codec = {
  protocol: "v1.json.cosmictron",
  binary: false,
  encode: stringify,
  decode: (data) =>
    JSON.parse(typeof data === "string" ? data : text.decode(data as ArrayBuffer)),
};
