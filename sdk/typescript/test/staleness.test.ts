/**
 * Cluster mode (issue 19 part 6): with NATS's quorum lost, a client connected to a follower
 * is told its view is stale (`client.stale`, `onStaleness`) and keeps its rows; a call
 * rejects with `ClusterUnavailableError` and a retry hint; once the quorum is back it is
 * told it is current and gets the next committed transaction at the leader's offset. On
 * both protocols, against a real three-node cluster on three NATS servers
 * (test/cluster.ts); skipped, saying why, where no `nats-server` is installed.
 */

import { afterAll, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";
import {
  type Client,
  ClusterUnavailableError,
  connect,
  type Codec,
  jsonCodec,
  type StalenessEvent,
  type WebSocketConstructor,
} from "../src/index.js";
import { msgpackCodec } from "../src/msgpack.js";
import { TestCluster } from "./cluster.js";

const WS = WebSocket as unknown as WebSocketConstructor;
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start();
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
});

async function until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A call over HTTP to the leader, retried with a new item until one commits. */
async function commitOne(leader: string, first: number): Promise<{ n: number; txOffset: number }> {
  const deadline = Date.now() + 90_000;
  for (let n = first; ; n++) {
    const response = await fetch(`${leader}/v1/database/app/call/add`, {
      method: "POST",
      body: JSON.stringify([n]),
      headers: { "Content-Type": "application/json" },
    });
    const body = JSON.parse(await response.text());
    if (response.ok) return { n, txOffset: Number(body.tx_offset) };
    if (Date.now() > deadline) throw new Error(`no call committed: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const ids = (client: Client) => client.table("item").all().map((row) => Number(row.id)).sort((x, y) => x - y);

it("tells a follower's clients their view is stale, then current, on both protocols", async (ctx) => {
  if (cluster.skip) return ctx.skip(cluster.skip);
  const { a, b, c } = cluster.nodes;
  const before = await commitOne(a, 1);
  const heard = new Map<Codec, StalenessEvent[]>();
  const clients = new Map<Codec, Client>();
  for (const [codec, url] of [[jsonCodec, b], [msgpackCodec, c]] as const) {
    heard.set(codec, []);
    const client = await connect({
      url, database: "app", codec, WebSocket: WS,
      reconnect: { minDelayMs: 50, maxDelayMs: 500 },
      onStaleness: (event) => heard.get(codec)!.push(event),
    });
    clients.set(codec, client);
    await client.subscribe("SELECT * FROM item").ready;
    await until(() => client.txOffset >= before.txOffset, "the first row");
    expect(client.stale).toBe(false);
  }
  try {
    await cluster.loseQuorum();
    for (const [codec, client] of clients) {
      await until(() => client.stale, `${codec.protocol}: told stale`);
      const [told] = heard.get(codec)!;
      expect(told.stale).toBe(true);
      expect(told.txOffset).toBe(before.txOffset);
      expect(Date.parse(told.since!)).toBeGreaterThan(Date.now() - 120_000);
      expect(client.staleSince).toBe(told.since);
      expect(ids(client)).toEqual([before.n]); // the rows stay
    }
    const refused = await clients.get(jsonCodec)!.call("add", 1000).then(
      () => undefined,
      (error) => error,
    );
    expect(refused).toBeInstanceOf(ClusterUnavailableError);
    expect(refused.retryAfterS).toBeGreaterThan(0);

    await cluster.restoreQuorum();
    for (const [codec, client] of clients) {
      await until(() => !client.stale, `${codec.protocol}: told current`, 90_000);
      expect(heard.get(codec)!.map((told) => told.stale)).toEqual([true, false]);
    }
    const after = await commitOne(a, 2000);
    for (const [codec, client] of clients) {
      await until(() => client.txOffset >= after.txOffset, `${codec.protocol}: the next update`);
      expect(client.txOffset).toBe(after.txOffset); // the leader's offset
      expect(ids(client)).toContain(after.n);
      expect(client.stale).toBe(false);
    }
  } finally {
    for (const client of clients.values()) client.close();
  }
}, 300_000);
