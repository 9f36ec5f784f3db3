/**
 * `cosmictron-cli generate --lang typescript`: the bindings of a real database's schema
 * type-check with `tsc --noEmit`, catch a wrong argument, and work against the server.
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import WebSocket from "ws";
import { cli, TestServer } from "./server.js";

const SDK = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");

const MODULE = `
import enum
from typing import Optional
from cosmictron import table, reducer, ReducerContext, field, type, u8, u64, i128, Identity, Timestamp

class Mood(enum.Enum):
    CALM = 1
    LOUD = 2

@type
class Point:
    x: float = 0.0
    y: float = 0.0

@table(name="chat_message", public=True)
class ChatMessage:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""
    author: Optional[Identity] = None
    at: Optional[Timestamp] = None
    small: u8 = 0
    big: u64 = 0
    huge: i128 = 0
    data: bytes = b""
    tags: Optional[list[str]] = None
    mood: Mood = Mood.CALM
    where: Optional[Point] = None

@reducer
def post(ctx: ReducerContext, text: str, default: u64 = 0) -> int:
    return ctx.db.chat_message.insert(ChatMessage(text=text, big=default)).id

@reducer
def clear(ctx: ReducerContext) -> None:
    for row in list(ctx.db.chat_message.iter()):
        ctx.db.chat_message.delete(row)
`;

let server: TestServer;
let dir: string;

beforeAll(async () => {
  server = await TestServer.start();
  await server.deploy("gen", MODULE);
  dir = mkdtempSync(join(tmpdir(), "cosmictron-gen-"));
  const result = cli(["generate", "--lang", "typescript", "gen", "--out", join(dir, "bindings.ts"), "--server", server.url]);
  expect(result.status, result.stderr).toBe(0);
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2020", module: "ESNext", moduleResolution: "Bundler", strict: true,
        noEmit: true, skipLibCheck: true, lib: ["ES2020", "DOM"], types: [],
        paths: { cosmictron: [join(SDK, "src", "index.ts")] },
      },
      files: ["bindings.ts", "usage.ts"],
    }),
  );
});

afterAll(async () => {
  await server?.stop();
});

function tsc(usage: string): { status: number | null; output: string } {
  writeFileSync(join(dir, "usage.ts"), usage);
  const run = spawnSync(join(SDK, "node_modules", ".bin", "tsc"), ["-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
  return { status: run.status, output: run.stdout + run.stderr };
}

const HEADER = `import { connect, reducers, type ChatMessage } from "./bindings.js";\n`;

it("emits bindings that type-check and type the tables and reducers", () => {
  const good = tsc(`${HEADER}
export async function use(WebSocket: any): Promise<void> {
  const client = await connect({ url: "http://127.0.0.1:1", WebSocket });
  const row: ChatMessage | undefined = client.table("chat_message").find(1n);
  const big: bigint | undefined = row?.big;
  const small: number | undefined = row?.small;
  const data: Uint8Array | undefined = row?.data;
  const mood: "CALM" | "LOUD" | undefined = row?.mood;
  const x: number | undefined = row?.where?.x;
  const id: bigint = (await reducers.post(client, "hi", 5n)).value;
  const again = await client.call("post", "hi");
  const none: null = (await reducers.clear(client)).value;
  console.log(big, small, data, mood, x, id, again.txOffset, none);
}
`);
  expect(good.output).toBe("");
  expect(good.status).toBe(0);
});

it("makes tsc refuse a wrong argument, a wrong column and an unknown reducer", () => {
  const bad = tsc(`${HEADER}
export async function use(WebSocket: any): Promise<void> {
  const client = await connect({ url: "http://127.0.0.1:1", WebSocket });
  await reducers.post(client, 42);
  const text: number | undefined = client.table("chat_message").find(1n)?.text;
  await client.call("no_such_reducer");
  console.log(text);
}
`);
  expect(bad.status).not.toBe(0);
  expect(bad.output).not.toContain("bindings.ts");
  expect(bad.output).toContain("usage.ts(5,"); // post(client, 42): a number for a string
  expect(bad.output).toContain("usage.ts(6,"); // text is a string
  expect(bad.output).toContain("usage.ts(7,"); // no such reducer
});

it("works against the server it was generated from", async () => {
  const bindings = await import(join(dir, "bindings.ts"));
  const client = await bindings.connect({ url: server.url, WebSocket });
  await client.subscribe("SELECT * FROM chat_message").ready;
  const { value } = await bindings.reducers.post(client, "typed", 2n ** 64n - 1n);
  expect(client.table("chat_message").find(value)).toMatchObject({ text: "typed", big: 2n ** 64n - 1n, mood: "CALM" });
  const defaulted = await bindings.reducers.post(client, "no default given");
  expect(client.table("chat_message").find(defaulted.value)).toMatchObject({ big: 0n, tags: null });
  client.close();
});
