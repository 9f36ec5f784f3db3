/**
 * Cosmictron's TypeScript SDK: `connect` to a database, `subscribe` to SQL queries whose
 * rows stay in a local cache, `call` reducers, run one-off `query`s. Works in browsers and
 * in Node (pass a WebSocket class). docs/guide/typescript-sdk.md explains it.
 */
export { Client, connect, SubscriptionHandle } from "./client.js";
export type {
  CallResult,
  ReducerShape,
  ConnectionState,
  ConnectOptions,
  StalenessEvent,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { TableCache } from "./cache.js";
export type { EventContext, Row, RowCallback, RowEvent, UpdateCallback } from "./cache.js";
export { jsonCodec } from "./codec.js";
export type { Codec } from "./codec.js";
export * from "./errors.js";
export type { Column, DatabaseSchema, ReducerSchema, TableSchema } from "./schema.js";
export { bytesToHex, decodeValue, hexToBytes, stringify } from "./values.js";
export type { TypeDescription } from "./values.js";
