/**
 * The SDK against a real server (started by the test, test/server.ts), on both protocols:
 * subscriptions and their cache, callbacks after the whole transaction, updates by
 * primary key, typed errors, one-off queries with parameters, bigint extremes, a hot-swap,
 * and a reconnect after the server is SIGKILLed and restarted.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  type Client,
  connect,
  type Codec,
  jsonCodec,
  ReducerFailedError,
  SqlError,
  SubscriptionError,
  NotFoundError,
  type WebSocketConstructor,
} from "../src/index.js";
import { msgpackCodec } from "../src/msgpack.js";
import { TestServer } from "./server.js";

const MODULE = `
from cosmictron import table, reducer, ReducerContext, field, u64

@table(name="message", public=True)
class Message:
    id: int = field(primary_key=True, auto_inc=True)
    room: str = ""
    text: str = ""

@table(name="num", public=True)
class Num:
    id: int = field(primary_key=True)
    i: int = 0
    u: u64 = 0
    data: bytes = b""

@reducer
def post(ctx: ReducerContext, room: str, text: str) -> int:
    return ctx.db.message.insert(Message(room=room, text=text)).id

@reducer
def post_many(ctx: ReducerContext, room: str, n: int) -> int:
    for k in range(n):
        ctx.db.message.insert(Message(room=room, text=f"bulk {k}"))
    return n

@reducer
def edit(ctx: ReducerContext, id: int, text: str) -> None:
    row = ctx.db.message.id.find(id)
    ctx.db.message.id.update(Message(id=id, room=row.room, text=text))

@reducer
def remove(ctx: ReducerContext, id: int) -> None:
    ctx.db.message.id.delete(id)

@reducer
def put_num(ctx: ReducerContext, id: int, i: int, u: u64, data: bytes) -> u64:
    ctx.db.num.insert(Num(id=id, i=i, u=u, data=data))
    return u

@reducer
def fail(ctx: ReducerContext) -> None:
    raise ValueError("always fails")
`;

const WS = WebSocket as unknown as WebSocketConstructor;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

let server: TestServer;
let database = 0;

beforeAll(async () => {
  server = await TestServer.start();
});

afterAll(async () => {
  await server?.stop();
});

/** A fresh database with MODULE, so tests do not see each other's rows. */
async function fresh(source = MODULE): Promise<string> {
  const name = `t${++database}`;
  await server.deploy(name, source);
  return name;
}

function open(name: string, codec: Codec, extra: object = {}): Promise<Client> {
  return connect({ url: server.url, database: name, codec, WebSocket: WS, ...extra });
}

function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const started = Date.now();
  return new Promise((done, fail) => {
    const poll = () => {
      if (check()) return done();
      if (Date.now() - started > timeoutMs) return fail(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

describe.each([
  ["json", jsonCodec],
  ["msgpack", msgpackCodec],
])("over %s", (_, codec) => {
  it("subscribes, calls, and has the call's rows when the call resolves", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    expect(client.identity).toMatch(/^[0-9a-f]{64}$/);
    const sub = client.subscribe("SELECT * FROM message WHERE room = 'a'");
    await sub.ready;
    expect(sub.isReady).toBe(true);
    const result = await client.call("post", "a", "hello");
    expect(result.value).toBe(1n); // an i64 is a bigint
    expect(typeof result.txOffset).toBe("number");
    expect(client.table("message").find(1n)).toEqual({ id: 1n, room: "a", text: "hello" });
    await client.call("post", "b", "elsewhere");
    expect(client.table("message").count).toBe(1);
    client.close();
  });

  it("fires callbacks after the whole transaction, in commit order", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    await client.subscribe("SELECT * FROM message").ready;
    const table = client.table("message");
    const seen: Array<[bigint, number, number]> = [];
    table.onInsert((row, context) => seen.push([row.id as bigint, context.txOffset, table.count]));
    const { txOffset } = await client.call("post_many", "a", 5);
    expect(seen.map(([id]) => id).sort()).toEqual([1n, 2n, 3n, 4n, 5n]);
    // Every callback saw all five rows: the transaction was applied whole first.
    expect(seen.every(([, offset, count]) => offset === txOffset && count === 5)).toBe(true);

    // Another client's transactions arrive strictly in commit order.
    const other = await open(name, codec);
    const offsets: number[] = [];
    table.onInsert((_, context) => offsets.push(context.txOffset));
    const calls = await Promise.all(Array.from({ length: 20 }, (_, k) => other.call("post", "b", `m${k}`)));
    await until(() => offsets.length === 20, "20 inserts");
    expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
    expect(new Set(offsets)).toEqual(new Set(calls.map((c) => c.txOffset)));
    other.close();
    client.close();
  });

  it("turns a delete and an insert of one primary key into one update", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    await client.subscribe("SELECT * FROM message").ready;
    await client.call("post", "a", "first");
    const events: string[] = [];
    const table = client.table("message");
    table.onInsert((row) => events.push(`insert ${row.text}`));
    table.onDelete((row) => events.push(`delete ${row.text}`));
    table.onUpdate((old, row) => events.push(`update ${old.text} -> ${row.text}`));
    await client.call("edit", 1n, "second");
    expect(events).toEqual(["update first -> second"]);
    expect(table.find(1n)?.text).toBe("second");
    await client.call("remove", 1n);
    expect(events).toEqual(["update first -> second", "delete second"]);
    expect(table.count).toBe(0);
    client.close();
  });

  it("keeps a row while any overlapping subscription holds it", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    await client.call("post", "a", "in a");
    await client.call("post", "b", "in b");
    const table = client.table("message");
    const events: string[] = [];
    table.onInsert((row) => events.push(`+${row.text}`));
    table.onDelete((row) => events.push(`-${row.text}`));
    const onlyA = client.subscribe("SELECT * FROM message WHERE room = 'a'");
    const all = client.subscribe(["SELECT * FROM message"]);
    const again = client.subscribe("SELECT * FROM message WHERE room = 'a'"); // shared query
    await Promise.all([onlyA.ready, all.ready, again.ready]);
    expect(events.sort()).toEqual(["+in a", "+in b"]);
    expect(table.count).toBe(2);
    await all.unsubscribe();
    expect(events.sort()).toEqual(["+in a", "+in b", "-in b"]); // 'a' stays, no flash
    await onlyA.unsubscribe();
    expect(table.all().map((r) => r.text)).toEqual(["in a"]); // `again` still wants it
    await client.call("post", "a", "later");
    expect(table.count).toBe(2);
    await again.unsubscribe();
    expect(table.count).toBe(0);
    expect(again.isReady).toBe(true); // ready never flips back
    client.close();
  });

  it("runs one-off queries with parameters", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    await client.call("post", "a", "x");
    await client.call("post", "b", "y");
    const rows = await client.query("SELECT text FROM message WHERE room = :room", { room: "b" });
    expect(rows).toEqual([{ text: "y" }]);
    client.close();
  });

  it("raises typed errors with the server's code", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    const failed = await client.call("fail").catch((e) => e);
    expect(failed).toBeInstanceOf(ReducerFailedError);
    expect(failed.code).toBe("reducer_failed");
    expect(failed.message).toContain("always fails");
    const unknown = await client.call("nope" as never).catch((e) => e);
    expect(unknown).toBeInstanceOf(NotFoundError);
    const bad = await client.query("SELECT nope FROM message").catch((e) => e);
    expect(bad).toBeInstanceOf(SqlError);
    expect(bad.code).toBe("sql_error");
    const sub = client.subscribe("SELECT * FROM missing");
    await expect(sub.ready).rejects.toBeInstanceOf(SubscriptionError);
    // The connection is still fine.
    expect((await client.call("post", "a", "ok")).value).toBe(1n);
    client.close();
  });

  it("round-trips 64-bit extremes as bigint", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    await client.subscribe("SELECT * FROM num").ready;
    const data = new Uint8Array([0, 255, 7]);
    const result = await client.call("put_num", 1n, I64_MIN, U64_MAX, data);
    expect(result.value).toBe(U64_MAX);
    await client.call("put_num", 2n, I64_MAX, 0n, new Uint8Array());
    await client.call("put_num", 3n, 2n ** 53n, 2n ** 53n + 1n, new Uint8Array());
    const table = client.table("num");
    expect(table.find(1n)).toEqual({ id: 1n, i: I64_MIN, u: U64_MAX, data });
    expect(table.find(2n)?.i).toBe(I64_MAX);
    expect(table.find(3n)).toMatchObject({ i: 2n ** 53n, u: 2n ** 53n + 1n });
    // A one-off query's values are in their wire forms: exact either way.
    const [row] = await client.query("SELECT i, u FROM num WHERE id = :id", { id: 1n });
    expect(BigInt(row.i as string | bigint)).toBe(I64_MIN);
    expect(BigInt(row.u as string | bigint)).toBe(U64_MAX);
    // Another client (the Python side, over HTTP) reads the same exact values.
    const http = await server.http("POST", `/v1/database/${name}/sql`, "SELECT i, u FROM num ORDER BY id");
    expect(http.rows[0]).toEqual({ i: I64_MIN.toString(), u: U64_MAX.toString() });
    client.close();
  });

  it("follows a hot-swap: new schema, the same subscription, no flash", async () => {
    const name = await fresh();
    const client = await open(name, codec);
    const sub = client.subscribe("SELECT * FROM message");
    await sub.ready;
    await client.call("post", "a", "before");
    const events: string[] = [];
    const table = client.table("message");
    table.onInsert((row) => events.push(`+${row.text}`));
    table.onDelete((row) => events.push(`-${row.text}`));
    table.onUpdate((old, row) => events.push(`~${old.text}/${row.mood}`));
    const swapped = MODULE.replace('    text: str = ""\n', '    text: str = ""\n    mood: str = "calm"\n')
      .concat(`
@reducer
def shout(ctx: ReducerContext, text: str) -> int:
    return ctx.db.message.insert(Message(room="a", text=text.upper(), mood="loud")).id
`);
    await server.deploy(name, swapped);
    await until(() => client.schema.reducers.some((r) => r.name === "shout"), "the new schema");
    await until(() => table.find(1n)?.mood === "calm", "the row with its new column");
    expect(events).toEqual(["~before/calm"]); // an update, never a delete and insert
    expect(sub.isReady).toBe(true);
    const { value } = await client.call("shout", "hey");
    expect(table.find(value)).toMatchObject({ text: "HEY", mood: "loud" });
    client.close();
  });
});

describe("reconnect", () => {
  it("resumes after SIGKILL and restart with no gap and no duplicate", async () => {
    const name = await fresh();
    const owner = server.operatorToken;
    const states: string[] = [];
    const client = await open(name, msgpackCodec, { reconnect: { minDelayMs: 50, maxDelayMs: 500 } });
    const sub = client.subscribe("SELECT * FROM message");
    await sub.ready;
    const inserted = new Map<bigint, number>();
    const table = client.table("message");
    table.onInsert((row) => inserted.set(row.id as bigint, (inserted.get(row.id as bigint) ?? 0) + 1));
    table.onDelete((row) => states.push(`unexpected delete ${row.id}`));
    for (let k = 0; k < 3; k++) await client.call("post", "a", `before ${k}`);

    await server.kill();
    await until(() => client.state === "reconnecting", "the client to notice");
    const during = client.call("post", "a", "sent while down"); // waits for the reconnect
    await server.launch();
    // Written by someone else right after the restart, likely before the client is back.
    for (let k = 0; k < 3; k++) {
      await server.http("POST", `/v1/database/${name}/call/post`, ["a", `while away ${k}`], owner);
    }
    await during;
    await until(() => client.state === "connected", "the reconnect");
    await client.call("post", "a", "after");

    const all = await server.http("POST", `/v1/database/${name}/sql`, "SELECT id FROM message");
    const ids = all.rows.map((r: { id: number }) => BigInt(r.id)).sort((x: bigint, y: bigint) => (x < y ? -1 : 1));
    expect(ids).toHaveLength(8);
    await until(() => inserted.size === 8, "every insert");
    expect([...inserted.keys()].sort((x, y) => (x < y ? -1 : 1))).toEqual(ids); // no gap
    expect([...inserted.values()].every((n) => n === 1)).toBe(true); // no duplicate
    expect(states).toEqual([]);
    expect(table.count).toBe(8);
    expect(sub.isReady).toBe(true);
    expect(client.statistics.reconnects).toBeGreaterThanOrEqual(1);
    // A restarted server has no resume window: the full rows came and were diffed.
    expect(client.statistics.fullResends).toBeGreaterThanOrEqual(1);
    client.close();
  });

  it("resumes from its last tx_offset when only the connection drops", async () => {
    const name = await fresh();
    const client = await open(name, jsonCodec, { reconnect: { minDelayMs: 200, maxDelayMs: 500 } });
    const other = await open(name, jsonCodec);
    await client.subscribe("SELECT * FROM message WHERE room = 'a'").ready;
    const inserted: bigint[] = [];
    const table = client.table("message");
    table.onInsert((row) => inserted.push(row.id as bigint));
    await client.call("post", "a", "one");
    (client as unknown as { ws: { close(): void } }).ws.close(); // the network drops
    await until(() => client.state === "reconnecting", "the drop");
    const missed = [];
    for (let k = 0; k < 3; k++) missed.push((await other.call("post", "a", `missed ${k}`)).value);
    await other.call("post", "b", "not ours");
    await until(() => inserted.length === 4, "the missed inserts");
    expect(inserted).toEqual([1n, ...missed]);
    expect(client.statistics.resumes).toBe(1); // replayed, not resent
    expect(client.statistics.fullResends).toBe(0);
    await client.call("post", "a", "after");
    expect(inserted).toHaveLength(5);
    expect(table.count).toBe(5);
    other.close();
    client.close();
  });
});
