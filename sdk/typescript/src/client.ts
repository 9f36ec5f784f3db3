/**
 * A connection to one database: subscriptions with a live cache, reducer calls, one-off
 * queries, and a reconnect that resumes (docs/guide/typescript-sdk.md).
 *
 * How subscriptions map onto the protocol (docs/reference/websocket.md): each distinct
 * query the application subscribes to is counted by the handles that want it. A new
 * query is one `Subscribe` of its own, and its initial rows are added to the cache (a
 * bag: a row two queries both see is counted twice). When the last handle of a query
 * goes, the server cannot say which cached rows were that query's alone, so the client
 * unsubscribes everything and subscribes again to the queries still wanted, in one
 * `Subscribe`; the new rows are staged and swapped in when they are whole, and only the
 * difference fires callbacks. After a reconnect the client sends one `Subscribe` of every
 * query with `since_tx_offset`, the last transaction it applied: if the server resumes,
 * the missed transactions arrive as updates; if not, the full rows are diffed against the
 * cache. Either way the cache, the callbacks and the ready state stay; nothing flashes.
 *
 * Frames are applied strictly in the order they arrive, which is commit order, each
 * transaction whole before its callbacks run; a call's `ReducerResult` comes after its
 * transaction's update, so a resolved call's effect is already in the cache.
 */

import { fire, type Row, type RowEvent, TableCache } from "./cache.js";
import { type Codec, jsonCodec } from "./codec.js";
import {
  ConnectionLostError,
  CosmictronError,
  errorFromCode,
  ReducerFailedError,
  SubscriptionError,
} from "./errors.js";
import type { Column, DatabaseSchema } from "./schema.js";
import { decodeRow, decodeValue } from "./values.js";

/** The part of the WebSocket API the client uses: the browser's, or Node's `ws`. */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

export interface ConnectOptions {
  /** The server: `http://127.0.0.1:3000` (https gives wss). */
  url: string;
  database: string;
  /** Connect as this token's identity; without one the server makes a fresh identity. */
  token?: string;
  /** `jsonCodec` (the default) or `msgpackCodec` from `cosmictron/msgpack`. */
  codec?: Codec;
  /** The WebSocket class: the browser's by default; pass `ws`'s in Node before 22. */
  WebSocket?: WebSocketConstructor;
  fetch?: typeof fetch;
  /** Reconnect backoff (ms): doubles from `minDelayMs` to `maxDelayMs`; false: never. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number } | false;
  /** Errors no promise can carry: a callback that threw, a subscription the server ended. */
  onError?: (error: unknown) => void;
  /**
   * Cluster mode: the server node's copy of the database went stale (NATS lost its quorum,
   * or the node is cut off: the cache stays as of `txOffset`, no update comes) or is
   * current again. Called on each change; `client.stale` holds the last word.
   */
  onStaleness?: (event: StalenessEvent) => void;
}

/** What a `Staleness` message (or a `SubscribeApplied`'s `stale`) told the client. */
export interface StalenessEvent {
  stale: boolean;
  /** The last transaction the node applied: the cache's offset while stale. */
  txOffset: number;
  /** While stale: when the node last heard from a quorum (RFC 3339, the server's clock). */
  since: string | null;
}

export interface CallResult<T = unknown> {
  value: T;
  txOffset: number;
}

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** A reducer's argument tuple and return type, as generated bindings declare them. */
export interface ReducerShape {
  args: unknown[];
  returns: unknown;
}
type TablesShape = object;
type ReducersShape<R> = { [K in keyof R]: ReducerShape };
type AnyReducers = Record<string, ReducerShape>;

/** What one `subscribe` call holds: its queries, until `unsubscribe`. */
export class SubscriptionHandle {
  readonly queries: readonly string[];
  /** Resolves once the cache holds every row of these queries (and stays resolved). */
  readonly ready: Promise<void>;
  isReady = false;
  isEnded = false;
  /** @internal */ settle!: (error?: CosmictronError) => void;
  private client: Client<any, any>;

  constructor(client: Client<any, any>, queries: string[]) {
    this.client = client;
    this.queries = queries;
    this.ready = new Promise<void>((resolve, reject) => {
      this.settle = (error) => {
        if (this.isReady || this.isEnded) return;
        if (error) {
          this.isEnded = true;
          reject(error);
        } else {
          this.isReady = true;
          resolve();
        }
      };
    });
    this.ready.catch(() => undefined); // an unobserved failure is not unhandled
  }

  /** Stop wanting these queries; their rows leave the cache once no handle wants them. */
  unsubscribe(): Promise<void> {
    if (this.isEnded && !this.isReady) return Promise.resolve();
    this.isEnded = true;
    return this.client.release(this);
  }
}

interface Pending {
  resolve: (body: any) => void;
  reject: (error: unknown) => void;
}

interface ServerSubscription {
  queryId: number;
  queries: string[];
  /** "add": its rows join the cache; "replace": staged, then swapped in whole. */
  mode: "add" | "replace";
  since?: number;
  /** The resubscription after a reconnect (a resume when `since` is set). */
  reconnect?: boolean;
}

const OFFSET = (value: unknown): number => Number(value);

/** What of a schema a cache depends on (not its `tx_offset`, which every commit moves). */
const shape = (schema: DatabaseSchema | undefined): string =>
  JSON.stringify(schema && [schema.tables, schema.reducers]);

export class Client<T extends TablesShape = Record<string, Row>, R extends ReducersShape<R> = AnyReducers> {
  identity = "";
  token: string | undefined;
  connectionId = "";
  state: ConnectionState = "connecting";
  /** The last transaction applied to the cache (what a reconnect resumes from). */
  txOffset = -1;
  /**
   * Cluster mode: the server node says its copy of the database is stale (see
   * `ConnectOptions.onStaleness`); always false on a single server.
   */
  stale = false;
  /** While `stale`: since when (RFC 3339) the node's copy may be behind. */
  staleSince: string | null = null;
  schema!: DatabaseSchema;
  readonly statistics = { reconnects: 0, resumes: 0, fullResends: 0 };

  private options: ConnectOptions;
  private codec: Codec;
  private ws: WebSocketLike | undefined;
  private nextId = 1;
  private pending = new Map<number | string, Pending>();
  private waiting: Array<{ go: () => void; reject: (error: unknown) => void }> = [];
  private tables = new Map<string, TableCache<any>>();
  private wanted = new Map<string, SubscriptionHandle[]>();
  private live = new Map<number, ServerSubscription>();
  private chain: Promise<unknown> = Promise.resolve();
  /** Queries whose rows the cache holds, kept current by the updates. */
  private cached = new Set<string>();
  private replacing = false;
  private holding = false;
  private delayMs = 0;
  private opened: ((error?: unknown) => void) | undefined;

  private constructor(options: ConnectOptions) {
    this.options = options;
    this.codec = options.codec ?? jsonCodec;
    this.token = options.token;
  }

  /** Open a connection; resolves once the server has said who we are. */
  static async connect<T extends TablesShape = Record<string, Row>, R extends ReducersShape<R> = AnyReducers>(
    options: ConnectOptions,
  ): Promise<Client<T, R>> {
    const client = new Client<T, R>(options);
    await client.open();
    await client.loadSchema();
    return client;
  }

  // -- the cache -------------------------------------------------------------------------

  /** The cached rows of `name` and its callbacks (a table, or a subscribed query's text). */
  table<K extends keyof T & string>(name: K): TableCache<T[K]>;
  table(name: string): TableCache<Row>;
  table(name: string): TableCache<any> {
    let table = this.tables.get(name);
    if (!table) {
      const info = this.schema?.tables.find((t) => t.name === name);
      table = new TableCache(name, info?.columns ?? [], info?.primary_key ?? []);
      this.tables.set(name, table);
    }
    return table;
  }

  // -- requests --------------------------------------------------------------------------

  /** Subscribe to `queries`; `handle.ready` resolves when their rows are cached. */
  subscribe(queries: string | string[]): SubscriptionHandle {
    const list = typeof queries === "string" ? [queries] : [...queries];
    const handle = new SubscriptionHandle(this, list);
    const fresh: string[] = [];
    for (const query of list) {
      const holders = this.wanted.get(query);
      if (holders) holders.push(handle);
      else {
        this.wanted.set(query, [handle]);
        fresh.push(query);
      }
    }
    if (!fresh.length) this.queue(async () => this.settleReady()); // all wanted already
    else this.queue(() => this.serverSubscribe({ queries: fresh, mode: "add" }));
    return handle;
  }

  /** @internal A handle's `unsubscribe`. */
  release(handle: SubscriptionHandle): Promise<void> {
    let gone = false;
    for (const query of handle.queries) {
      const holders = (this.wanted.get(query) ?? []).filter((h) => h !== handle);
      if (holders.length) this.wanted.set(query, holders);
      else if (this.wanted.delete(query)) gone = true;
    }
    return gone ? this.queue(() => this.resubscribeAll()) : Promise.resolve();
  }

  /** Call a reducer; resolves with its return value and transaction offset. */
  async call<K extends keyof R & string>(
    reducer: K,
    ...args: R[K]["args"]
  ): Promise<CallResult<R[K]["returns"]>> {
    const info = this.schema.reducers.find((r) => r.name === reducer);
    const given = [...(args as unknown[])];
    while (given.length && given[given.length - 1] === undefined) given.pop(); // defaults
    const body = await this.request("CallReducer", { reducer, args: given });
    if (body.status !== "committed") {
      throw errorFromCode(
        body.error_code,
        String(body.error),
        body.error_traceback,
        ReducerFailedError,
        body.retry_after_s,
      );
    }
    const value = info?.returns ? decodeValue(body.return_value, info.returns) : body.return_value;
    return { value: value as R[K]["returns"], txOffset: OFFSET(body.tx_offset) };
  }

  /**
   * Run one SQL statement (`:name` placeholders filled from `params`); the rows in their
   * wire forms (an integer past 2^53 is a decimal string on JSON, a bigint on msgpack).
   * Its reply follows every update sent before it.
   */
  async query(sql: string, params?: Record<string, unknown>): Promise<Row[]> {
    const fields: Record<string, unknown> = { query_string: sql };
    if (params) fields.params = params;
    const body = await this.request("OneOffQuery", fields);
    if (body.error !== undefined && body.error !== null) {
      throw errorFromCode(body.error_code, String(body.error));
    }
    return body.tables?.[0]?.rows ?? [];
  }

  /** Close for good: no reconnect; pending requests fail with `ConnectionLostError`. */
  close(): void {
    this.state = "closed";
    this.ws?.close(1000, "closed by the client");
    this.failPending("the client was closed");
  }

  // -- the connection --------------------------------------------------------------------

  private open(): Promise<void> {
    const { url, database } = this.options;
    const base = url.replace(/^http/, "ws").replace(/\/$/, "");
    const token = this.token ? `?token=${encodeURIComponent(this.token)}` : "";
    const WS = this.options.WebSocket ?? (globalThis as any).WebSocket;
    if (!WS) throw new CosmictronError("no WebSocket class: pass options.WebSocket", "invalid_request");
    const ws: WebSocketLike = new WS(
      `${base}/v1/database/${encodeURIComponent(database)}/subscribe${token}`,
      [this.codec.protocol],
    );
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    const done = new Promise<void>((resolve, reject) => {
      this.opened = (error) => (error ? reject(error) : resolve());
    });
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
    ws.onerror = () => undefined; // onclose follows and says what happened
    return done;
  }

  private closed(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = undefined;
    const first = this.opened;
    this.opened = undefined;
    this.failPending(`the connection to ${this.options.url} was lost (${code} ${reason})`);
    this.replacing = false;
    this.live.clear();
    if (this.state === "closed") return;
    if (first && this.state === "connecting") {
      this.state = "closed";
      first(new ConnectionLostError(`could not connect to ${this.options.url} (${code} ${reason})`, "connection_lost"));
      return;
    }
    if (this.options.reconnect === false) {
      this.state = "closed";
      return;
    }
    this.state = "reconnecting";
    const { minDelayMs = 100, maxDelayMs = 5000 } = this.options.reconnect ?? {};
    this.delayMs = Math.min(Math.max(this.delayMs * 2, minDelayMs), maxDelayMs);
    setTimeout(() => this.reopen(), this.delayMs * (0.75 + Math.random() / 2));
  }

  private reopen(): void {
    if (this.state === "closed") return;
    this.statistics.reconnects++;
    this.open().then(
      () => {
        this.delayMs = 0;
        this.afterReconnect();
      },
      () => undefined, // closed() scheduled the next attempt
    );
  }

  private async afterReconnect(): Promise<void> {
    // Requests wait until the subscriptions are sent again, so their replies follow the
    // resumed updates. A module update while we were away: the schema first, then a
    // full resend instead of a resume.
    this.holding = true;
    const before = shape(this.schema);
    try {
      await this.loadSchema();
    } catch (error) {
      this.report(error);
    }
    if (this.state !== "connected") return; // dropped again: the next reconnect redoes this
    const same = shape(this.schema) === before;
    const queries = [...this.wanted.keys()];
    const exact = queries.length === this.cached.size && queries.every((q) => this.cached.has(q));
    this.live.clear();
    this.holding = false;
    if (queries.length) {
      const since = same && exact ? this.txOffset : undefined;
      const resubscribe = { queries, mode: "replace" as const, since, reconnect: true };
      this.chain = this.chain.then(() => this.serverSubscribe(resubscribe));
    } else if (this.cached.size) {
      this.cached.clear();
      this.applyReplace(new Map(), this.txOffset);
    }
    this.flushWaiting();
  }

  private flushWaiting(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const item of waiting) item.go();
  }

  private async loadSchema(): Promise<void> {
    const doFetch = this.options.fetch ?? fetch;
    const { url, database } = this.options;
    const response = await doFetch(
      `${url.replace(/\/$/, "")}/v1/database/${encodeURIComponent(database)}/schema`,
      { headers: this.token ? { Authorization: `Bearer ${this.token}` } : {} },
    );
    const body = JSON.parse(await response.text());
    if (!response.ok) throw errorFromCode(body?.error?.code, String(body?.error?.message));
    this.schema = body as DatabaseSchema;
    for (const table of this.tables.values()) {
      const info = this.schema.tables.find((t) => t.name === table.name);
      if (info) {
        table.columns = info.columns;
        table.primaryKey = info.primary_key ?? [];
      }
    }
  }

  private send(kind: string, fields: Record<string, unknown>): void {
    const frame = this.codec.encode({ [kind]: fields });
    this.ws!.send(frame);
  }

  private request(kind: string, fields: Record<string, unknown>): Promise<any> {
    if (this.state === "closed") {
      return Promise.reject(new ConnectionLostError("the client is closed", "connection_lost"));
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        const id = this.nextId++;
        this.pending.set(id, { resolve, reject });
        this.send(kind, { request_id: id, ...fields });
      };
      if (this.state === "connected" && !this.holding) go();
      else this.waiting.push({ go, reject }); // sent once connected again
    });
  }

  private failPending(message: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(new ConnectionLostError(message, "connection_lost"));
    if (this.state === "closed") {
      const waiting = this.waiting;
      this.waiting = [];
      for (const item of waiting) item.reject(new ConnectionLostError(message, "connection_lost"));
    }
  }

  private queue<V>(step: () => Promise<V>): Promise<V> {
    const next = this.chain.then(step, step);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private report(error: unknown): void {
    if (this.options.onError) this.options.onError(error);
    else console.error(error);
  }

  // -- subscriptions ---------------------------------------------------------------------

  /**
   * Send one `Subscribe`; resolves when its rows are in the cache (or, if the connection
   * dropped, at once: the reconnect subscribes to every wanted query again).
   */
  private serverSubscribe(sub: Omit<ServerSubscription, "queryId">): Promise<void> {
    if (this.state !== "connected" || this.holding) return Promise.resolve();
    const queryId = this.nextId++;
    this.live.set(queryId, { queryId, ...sub });
    if (sub.mode === "replace") this.replacing = true;
    const fields: Record<string, unknown> = {
      request_id: queryId,
      query_id: queryId,
      query_strings: sub.queries,
    };
    if (sub.since !== undefined && sub.since >= 0) fields.since_tx_offset = sub.since;
    const done = new Promise<void>((resolve, reject) =>
      this.pending.set(queryId, { resolve: () => resolve(), reject }),
    );
    this.send("Subscribe", fields);
    return done.catch((error) => {
      this.live.delete(queryId);
      if (sub.mode === "replace") this.replacing = false;
      if (error instanceof ConnectionLostError) return;
      if (sub.mode === "replace" && sub.queries.length > 1) return this.subscribeEach(sub.queries);
      for (const query of sub.queries) this.endQuery(query, error as CosmictronError);
      if (sub.mode === "replace") this.resetCache();
    });
  }

  /** After a replace of several queries failed (a module update broke one): one by one. */
  private async subscribeEach(queries: string[]): Promise<void> {
    let first = true;
    for (const query of queries) {
      if (!this.wanted.has(query)) continue;
      await this.serverSubscribe({ queries: [query], mode: first ? "replace" : "add" });
      if (this.cached.has(query)) first = false;
    }
    if (first) this.resetCache();
  }

  private resetCache(): void {
    this.cached.clear();
    this.applyReplace(new Map(), this.txOffset);
  }

  private endQuery(query: string, error: CosmictronError): void {
    const holders = this.wanted.get(query) ?? [];
    this.wanted.delete(query);
    for (const handle of holders) {
      if (handle.isReady) this.report(error); // its promise settled long ago
      handle.settle(error);
    }
  }

  private settleReady(): void {
    for (const holders of this.wanted.values()) {
      for (const handle of holders) {
        if (handle.queries.every((q) => this.cached.has(q))) handle.settle();
      }
    }
  }

  /** Unsubscribe every server subscription and subscribe once to what is still wanted. */
  private async resubscribeAll(): Promise<void> {
    if (this.state !== "connected" || this.holding) return; // the reconnect will
    for (const queryId of [...this.live.keys()]) {
      this.live.delete(queryId);
      this.send("Unsubscribe", { request_id: this.nextId++, query_id: queryId });
    }
    const queries = [...this.wanted.keys()];
    if (queries.length) return this.serverSubscribe({ queries, mode: "replace" });
    this.resetCache(); // nothing wanted: the events say what left
  }

  // -- incoming frames -------------------------------------------------------------------

  private receive(data: string | ArrayBuffer): void {
    let message: Record<string, any>;
    try {
      message = this.codec.decode(data) as Record<string, any>;
    } catch (error) {
      return this.report(error);
    }
    const [kind] = Object.keys(message);
    const body = message[kind];
    switch (kind) {
      case "IdentityToken":
        this.identity = body.identity;
        this.token = body.token;
        this.connectionId = body.connection_id;
        this.state = "connected";
        this.opened?.();
        this.opened = undefined;
        return;
      case "TransactionUpdate":
        return this.applyUpdate(body);
      case "SubscribeApplied":
        return this.applied(body);
      case "SubscriptionError": {
        const error = new SubscriptionError(String(body.error), body.error_code ?? "subscription_error");
        const pending = body.request_id != null && this.pending.get(body.request_id);
        if (pending) {
          this.pending.delete(body.request_id);
          return pending.reject(error);
        }
        // The server ended a subscription (a module update): ModuleUpdated follows.
        if (body.query_id != null) this.live.delete(body.query_id);
        if (body.request_id == null && body.query_id == null) this.report(error);
        return;
      }
      case "ModuleUpdated":
        this.queue(() => this.moduleUpdated());
        return;
      case "Staleness":
        return this.setStale(Boolean(body.stale), OFFSET(body.tx_offset), body.since ?? null);
      default:
        // ReducerResult, OneOffQueryResult, UnsubscribeApplied, and kinds added later.
        if (body && body.request_id != null) {
          const pending = this.pending.get(body.request_id);
          this.pending.delete(body.request_id);
          pending?.resolve(body);
        }
    }
  }

  /** The server said whether the node's copy is stale; `onStaleness` hears of changes. */
  private setStale(stale: boolean, txOffset: number, since: string | null): void {
    this.staleSince = stale ? (since ?? this.staleSince) : null;
    if (stale === this.stale) return;
    this.stale = stale;
    const listener = this.options.onStaleness;
    if (!listener) return;
    try {
      listener({ stale, txOffset, since: this.staleSince });
    } catch (error) {
      this.report(error);
    }
  }

  private async moduleUpdated(): Promise<void> {
    await this.loadSchema();
    if (this.wanted.size || this.live.size) await this.resubscribeAll();
  }

  private applyUpdate(body: any): void {
    // While a replacing Subscribe is on its way, updates belong to the subscriptions it
    // replaces (none of its own can precede its rows): their rows are about to go.
    if (this.replacing) return;
    const txOffset = OFFSET(body.tx_offset);
    const before = new Map<string, Map<string, any>>();
    for (const t of body.tables) {
      const table = this.tableFor(t);
      const seen = before.get(table.name) ?? new Map();
      before.set(table.name, seen);
      table.apply(t.deletes, t.inserts, seen);
    }
    this.txOffset = Math.max(this.txOffset, txOffset);
    this.emit(before, txOffset);
  }

  private applied(body: any): void {
    const sub = this.live.get(body.query_id);
    const pending = this.pending.get(body.request_id);
    this.pending.delete(body.request_id);
    if (sub && typeof body.stale === "boolean") this.setStale(body.stale, OFFSET(body.tx_offset), null);
    if (sub) {
      const txOffset = OFFSET(body.tx_offset);
      if (body.resumed) {
        // The rows stay: the missed transactions follow as updates.
        this.statistics.resumes++;
        this.replacing = false;
      } else if (sub.mode === "replace") {
        if (sub.reconnect) this.statistics.fullResends++;
        this.replacing = false;
        const next = new Map<string, Map<string, any>>();
        for (const t of body.tables) {
          const table = this.tableFor(t);
          const rows = next.get(table.name) ?? new Map();
          next.set(table.name, rows);
          for (const raw of t.rows) {
            const row = decodeRow(raw, table.columns);
            const [key, text] = table.keyOf(row);
            const entry = rows.get(key);
            if (entry) entry.count++;
            else rows.set(key, { row, text, count: 1 });
          }
        }
        this.cached = new Set(sub.queries);
        this.applyReplace(next, txOffset);
      } else {
        const before = new Map<string, Map<string, any>>();
        for (const t of body.tables) {
          const table = this.tableFor(t);
          const seen = before.get(table.name) ?? new Map();
          before.set(table.name, seen);
          for (const raw of t.rows) table.add(decodeRow(raw, table.columns), seen);
        }
        for (const query of sub.queries) this.cached.add(query);
        this.txOffset = Math.max(this.txOffset, txOffset);
        this.emit(before, txOffset);
      }
      this.settleReady();
    }
    pending?.resolve(body);
  }

  /** Make the cache hold exactly `next` (per table), firing the difference. */
  private applyReplace(next: Map<string, Map<string, any>>, txOffset: number): void {
    const before = new Map<string, Map<string, any>>();
    for (const table of this.tables.values()) {
      const seen = new Map();
      before.set(table.name, seen);
      table.replaceAll(next.get(table.name) ?? new Map(), seen);
    }
    this.txOffset = Math.max(this.txOffset, txOffset);
    this.emit(before, txOffset);
  }

  private tableFor(t: { table_name: string; columns?: Column[] }): TableCache<any> {
    const table = this.table(t.table_name);
    if (t.columns && !table.columns.length) table.columns = t.columns;
    return table;
  }

  private emit(before: Map<string, Map<string, any>>, txOffset: number): void {
    const events: RowEvent[] = [];
    for (const [name, seen] of before) this.tables.get(name)!.events(seen, events);
    fire(this.tables, events, { txOffset }, (error) => this.report(error));
  }
}

/** Connect to a database (`Client.connect`). */
export function connect<T extends TablesShape = Record<string, Row>, R extends ReducersShape<R> = AnyReducers>(
  options: ConnectOptions,
): Promise<Client<T, R>> {
  return Client.connect<T, R>(options);
}
