/**
 * The client's copy of its subscribed rows: one `TableCache` per table (or per subscribed
 * query whose rows are not one table's, cached under the query's text).
 *
 * Rows are a *bag*, as the server sends them: two subscriptions that both see a row
 * each send it, and the row is kept once with a count of 2, so it stays while either
 * subscription still holds it (the cache is ref-counted across overlapping
 * subscriptions). A table with a primary key keys its rows by it; a keyless one by the
 * row's canonical text.
 *
 * Applying a transaction returns its events instead of firing them, so the client fires
 * every callback after the whole transaction is in the cache; a delete and an insert of
 * one primary key in one transaction are one `update`.
 */

import { type Column } from "./schema.js";
import { decodeRow, stringify } from "./values.js";

export type Row = Record<string, unknown>;

export interface RowEvent {
  kind: "insert" | "update" | "delete";
  table: string;
  oldRow?: Row;
  newRow?: Row;
}

interface Entry {
  row: Row;
  text: string;
  count: number;
}

export type RowCallback<R> = (row: R, context: EventContext) => void;
export type UpdateCallback<R> = (oldRow: R, newRow: R, context: EventContext) => void;

export interface EventContext {
  /** The transaction the change belongs to. */
  txOffset: number;
}

/** A table's cached rows (read-only for the application) and its row callbacks. */
export class TableCache<R = Row> {
  readonly name: string;
  columns: Column[];
  primaryKey: string[];
  private rows = new Map<string, Entry>();
  /** @internal */ listeners = {
    insert: new Set<RowCallback<R>>(),
    delete: new Set<RowCallback<R>>(),
    update: new Set<UpdateCallback<R>>(),
  };

  constructor(name: string, columns: Column[], primaryKey: string[] = []) {
    this.name = name;
    this.columns = columns;
    this.primaryKey = primaryKey;
  }

  /** How many distinct rows are cached. */
  get count(): number {
    return this.rows.size;
  }

  /** Every cached row, each once. */
  all(): R[] {
    return [...this.rows.values()].map((entry) => entry.row as R);
  }

  [Symbol.iterator](): Iterator<R> {
    return this.all()[Symbol.iterator]();
  }

  /** The row with this primary key (one value per key column), or undefined. */
  find(...key: unknown[]): R | undefined {
    if (!this.primaryKey.length) throw new TypeError(`table '${this.name}' has no primary key`);
    return this.rows.get(stringify(key))?.row as R | undefined;
  }

  /** Call `callback` after each transaction that inserts a row; returns the remover. */
  onInsert(callback: RowCallback<R>): () => void {
    return add(this.listeners.insert, callback);
  }

  /** Call `callback` for each row a transaction removes from the cache. */
  onDelete(callback: RowCallback<R>): () => void {
    return add(this.listeners.delete, callback);
  }

  /** Call `callback` when a transaction replaces the row of a primary key. */
  onUpdate(callback: UpdateCallback<R>): () => void {
    return add(this.listeners.update, callback);
  }

  /** @internal The key and canonical text of a decoded row. */
  keyOf(row: Row): [string, string] {
    const text = stringify(row);
    if (!this.primaryKey.length) return [text, text];
    return [stringify(this.primaryKey.map((column) => row[column])), text];
  }

  /** @internal Apply deletes then inserts (wire rows), noting what each key held first. */
  apply(
    deletes: Record<string, unknown>[],
    inserts: Record<string, unknown>[],
    before: Map<string, Entry | undefined>,
  ): void {
    for (const raw of deletes) this.remove(decodeRow(raw, this.columns), before);
    for (const raw of inserts) this.add(decodeRow(raw, this.columns), before);
  }

  /** @internal */
  add(row: Row, before: Map<string, Entry | undefined>, count = 1): void {
    const [key, text] = this.keyOf(row);
    const entry = this.rows.get(key);
    if (!before.has(key)) before.set(key, entry && { ...entry });
    if (entry && entry.count > 0) {
      entry.count += count;
      if (entry.text !== text) Object.assign(entry, { row, text });
    } else {
      this.rows.set(key, { row, text, count });
    }
  }

  /** @internal */
  remove(row: Row, before: Map<string, Entry | undefined>): void {
    const [key] = this.keyOf(row);
    const entry = this.rows.get(key);
    if (!before.has(key)) before.set(key, entry && { ...entry });
    if (!entry) return; // never had it: nothing to take back
    if (--entry.count <= 0) this.rows.delete(key);
  }

  /** @internal Every entry, for a replace's diff. */
  entries(): Map<string, Entry> {
    return this.rows;
  }

  /** @internal Replace every row by `next` (decoded rows with counts), noting the old. */
  replaceAll(next: Map<string, Entry>, before: Map<string, Entry | undefined>): void {
    for (const [key, entry] of this.rows) before.set(key, { ...entry });
    for (const key of next.keys()) if (!before.has(key)) before.set(key, undefined);
    this.rows = next;
  }

  /** @internal The events of the keys in `before`, against what they hold now. */
  events(before: Map<string, Entry | undefined>, out: RowEvent[]): void {
    for (const [key, was] of before) {
      const now = this.rows.get(key);
      if (was && now) {
        if (was.text !== now.text) {
          out.push({ kind: "update", table: this.name, oldRow: was.row, newRow: now.row });
        }
      } else if (was) out.push({ kind: "delete", table: this.name, oldRow: was.row });
      else if (now) out.push({ kind: "insert", table: this.name, newRow: now.row });
    }
  }
}

function add<T>(set: Set<T>, item: T): () => void {
  set.add(item);
  return () => set.delete(item);
}

/** Fire `events` to their tables' listeners; a throwing callback does not stop the rest. */
export function fire(
  tables: Map<string, TableCache<any>>,
  events: RowEvent[],
  context: EventContext,
  report: (error: unknown) => void,
): void {
  for (const event of events) {
    const table = tables.get(event.table);
    if (!table) continue;
    const { listeners } = table;
    try {
      if (event.kind === "insert") for (const cb of listeners.insert) cb(event.newRow, context);
      else if (event.kind === "delete") for (const cb of listeners.delete) cb(event.oldRow, context);
      else if (table.primaryKey.length && listeners.update.size) {
        for (const cb of listeners.update) cb(event.oldRow, event.newRow, context);
      } else {
        // A keyless table has no updates; with no update listener, report both halves.
        for (const cb of listeners.delete) cb(event.oldRow, context);
        for (const cb of listeners.insert) cb(event.newRow, context);
      }
    } catch (error) {
      report(error);
    }
  }
}
