/**
 * Who the console is and what it is looking at: the token (from the URL fragment, then
 * sessionStorage), the server's HTTP API, the open database's SDK client and schema.
 *
 * The token arrives as `#token=...&db=...` (what `cosmictron-cli console` prints). A
 * fragment never reaches a server, so it cannot land in a server or proxy log; the page
 * moves it into `sessionStorage` (gone when the tab closes) and replaces the address
 * with one that holds no token, so it is neither bookmarked nor left in history.
 */

import { computed, signal } from "@preact/signals";
import { type Client, connect, errorFromCode, type StalenessEvent } from "../../sdk/typescript/src/index.js";
import type { DatabaseSchema, TableSchema } from "../../sdk/typescript/src/schema.js";

const TOKEN_KEY = "cosmictron.console.token";

export interface ModuleSummary {
  sha256: string;
  filename: string;
  deployed_at_us: number | null;
}
export type Schema = DatabaseSchema & {
  owner: string;
  identity: string;
  tx_offset: number;
  module?: ModuleSummary;
};

export const token = signal<string | null>(sessionStorage.getItem(TOKEN_KEY));
export const identity = signal<string>("");
export const client = signal<Client | null>(null);
export const schema = signal<Schema | null>(null);
export const database = signal<string | null>(null);
export const connectionState = signal<string>("");
export const connectError = signal<string>("");
/** Cluster mode: what the node said while its copy of the open database is stale; else null. */
export const stale = signal<StalenessEvent | null>(null);
/** Whether this identity owns the open database: only then are write controls shown. */
export const isOwner = computed(() => !!schema.value && schema.value.owner === identity.value);
/** The tables this identity may read: every table for the owner, the public ones otherwise. */
export const visibleTables = computed<TableSchema[]>(() =>
  (schema.value?.tables ?? []).filter((t) => isOwner.value || t.public),
);

/** Take a token from the fragment (`#token=...&db=...`) and return the route to show. */
export function adoptFragment(hash: string): string | null {
  const text = hash.replace(/^#/, "");
  if (!text.includes("token=")) return null;
  const params = new URLSearchParams(text);
  const given = params.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    token.value = given;
  }
  const db = params.get("db");
  return db ? `#/db/${encodeURIComponent(db)}/schema` : "#/";
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  token.value = null;
}

/** A request to the server's HTTP API with the console's token; JSON or text back. */
export async function api(path: string, init: RequestInit = {}): Promise<any> {
  const headers = new Headers(init.headers);
  if (token.value) headers.set("Authorization", `Bearer ${token.value}`);
  const response = await fetch(path, { ...init, headers });
  const text = await response.text();
  const isJson = (response.headers.get("Content-Type") ?? "").includes("json");
  const body = isJson && text ? JSON.parse(text) : text;
  if (!response.ok) {
    const error = body?.error ?? { code: String(response.status), message: text };
    throw errorFromCode(error.code, String(error.message));
  }
  return body;
}

/** The request an action makes, as a curl command a person can rerun (token left out). */
export function curlOf(method: string, path: string, body?: string): string {
  const parts = [`curl -X ${method}`, `-H "Authorization: Bearer $COSMICTRON_TOKEN"`];
  if (body !== undefined) {
    parts.push(`-H "Content-Type: application/json"`, `--data '${body.replace(/'/g, "'\\''")}'`);
  }
  parts.push(`"${location.origin}${path}"`);
  return parts.join(" \\\n  ");
}

export const dbPath = (name: string) => `/v1/database/${encodeURIComponent(name)}`;

export async function loadIdentity(): Promise<void> {
  if (!token.value) return;
  try {
    const who = await api("/v1/identity");
    identity.value = String(who.identity ?? "");
  } catch (error) {
    connectError.value = `the saved token was refused: ${(error as Error).message}`;
    forgetToken();
  }
}

let opening = 0;

/** Open `name`: its schema over HTTP, then an SDK client (one open database at a time). */
export async function openDatabase(name: string): Promise<void> {
  if (database.value === name && client.value) return;
  const attempt = ++opening;
  client.value?.close();
  client.value = null;
  schema.value = null;
  connectError.value = "";
  stale.value = null;
  database.value = name;
  try {
    const described = (await api(`${dbPath(name)}/schema`)) as Schema;
    const opened = await connect({
      url: location.origin,
      database: name,
      token: token.value ?? undefined,
      onError: (error) => (connectError.value = String((error as Error).message ?? error)),
      onStaleness: (event) => {
        if (attempt === opening) stale.value = event.stale ? event : null;
      },
    });
    if (attempt !== opening) {
      opened.close();
      return;
    }
    if (!token.value && opened.token) {
      // No token given: keep the fresh identity for this tab, so a reload stays it.
      sessionStorage.setItem(TOKEN_KEY, opened.token);
      token.value = opened.token;
    }
    identity.value = opened.identity;
    schema.value = described;
    client.value = opened;
    connectionState.value = opened.state;
    const poll = setInterval(() => {
      if (client.value !== opened) clearInterval(poll);
      else connectionState.value = opened.state;
    }, 500);
  } catch (error) {
    if (attempt === opening) connectError.value = (error as Error).message;
  }
}

/** Reload the schema (after a deploy, or to see the new `tx_offset`). */
export async function reloadSchema(): Promise<void> {
  if (database.value) schema.value = (await api(`${dbPath(database.value)}/schema`)) as Schema;
}
