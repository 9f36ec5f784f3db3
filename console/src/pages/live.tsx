/**
 * A table's rows, live: subscribed through the SDK's cache, filtered, sorted and paged
 * here, re-rendered once per transaction, the rows a transaction touched highlighted.
 *
 * Only the page on screen is rendered, and the cache is read once per transaction (not
 * once per row event), so a table of 10k rows stays responsive
 * (docs/guide/console.md#budgets).
 */

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Row } from "../../../sdk/typescript/src/index.js";
import { api, client, curlOf, dbPath, database, isOwner, stale } from "../session.js";
import { cellText, confirmWrite, ErrorText, Grid, ShowCall, WriteMark } from "../ui.js";

const HIGHLIGHT_MS = 2500;

/** "live", or, while the server node's copy is stale (cluster mode), since when and at what offset. */
function liveness(): string {
  const told = stale.value;
  if (!told) return "live";
  const since = told.since ? ` since ${new Date(told.since).toLocaleTimeString()}` : "";
  return `stale${since} (the server lost touch with its cluster; rows as of offset ${told.txOffset})`;
}

export function LiveTable({
  name,
  pageSize = 50,
  allowDelete = true,
}: {
  name: string;
  pageSize?: number;
  /** Offer the owner a Delete button per row (not for tables a layer's reducers manage). */
  allowDelete?: boolean;
}) {
  const c = client.value!;
  const cache = c.table(name);
  const [version, setVersion] = useState(0);
  const [ready, setReady] = useState(false);
  const [error, setError] = useState("");
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<{ column: string; descending: boolean } | undefined>();
  const [page, setPage] = useState(0);
  const changed = useRef(new Map<string, number>());
  const query = `SELECT * FROM ${name}`;

  useEffect(() => {
    const keyOf = (row: Row) => cache.keyOf(row)[0];
    let scheduled = false;
    let initial = true; // the subscription's first rows are not changes
    const touch = (row: Row) => {
      if (!initial) changed.current.set(keyOf(row), performance.now());
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(() => {
          scheduled = false;
          setVersion((v) => v + 1);
        });
      }
    };
    const offs = [
      cache.onInsert((row) => touch(row)),
      cache.onUpdate((_old, row) => touch(row)),
      cache.onDelete((row) => touch(row)),
    ];
    const handle = c.subscribe(query);
    handle.ready.then(
      () => {
        initial = false;
        setReady(true);
        setVersion((v) => v + 1);
      },
      (e) => setError((e as Error).message),
    );
    return () => {
      offs.forEach((off) => off());
      handle.unsubscribe();
    };
  }, [c, name]);

  const columns = cache.columns.map((col) => col.name);
  const all = useMemo(() => {
    let rows = cache.all();
    const needle = filter.trim().toLowerCase();
    if (needle) {
      rows = rows.filter((row) => columns.some((col) => cellText(row[col]).toLowerCase().includes(needle)));
    }
    if (sort) {
      const { column, descending } = sort;
      const sign = descending ? -1 : 1;
      rows = [...rows].sort((a, b) => {
        const x = a[column] as any;
        const y = b[column] as any;
        if (x === y) return 0;
        if (x === null || x === undefined) return -sign;
        if (y === null || y === undefined) return sign;
        return (x < y ? -1 : 1) * sign;
      });
    }
    return rows;
  }, [version, filter, sort, name]);

  const pages = Math.max(1, Math.ceil(all.length / pageSize));
  const shown = Math.min(page, pages - 1);
  const slice = all.slice(shown * pageSize, (shown + 1) * pageSize);
  const now = performance.now();
  const meta = slice.map((row) => {
    const key = cache.keyOf(row)[0];
    const at = changed.current.get(key);
    return { key, className: at !== undefined && now - at < HIGHLIGHT_MS ? "changed" : undefined };
  });
  const primaryKey = cache.primaryKey;
  const canDelete = allowDelete && isOwner.value && primaryKey.length > 0;

  const remove = async (row: Row) => {
    const where = primaryKey.map((col) => `${col} = :${col}`).join(" AND ");
    const sql = `DELETE FROM ${name} WHERE ${where}`;
    const params = Object.fromEntries(primaryKey.map((col) => [col, row[col]]));
    const body = JSON.stringify({ query: sql, params }, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    if (!(await confirmWrite(`Delete this row of ${name}?`, `${sql}\n${cellText(params)}`))) return;
    try {
      await api(`${dbPath(database.value!)}/sql`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
      });
    } catch (e) {
      setError((e as Error).message);
    }
  };

  return (
    <section aria-label={`Rows of ${name}`}>
      <div class="toolbar">
        <label>
          Filter <input type="search" value={filter} onInput={(e) => (setFilter(e.currentTarget.value), setPage(0))} />
        </label>
        <span class="live" aria-live="polite">
          {ready ? `${all.length} ${all.length === 1 ? "row" : "rows"}${filter ? " match" : ""}, ${liveness()}` : "loading…"}
        </span>
        <nav class="pager" aria-label={`Pages of ${name}`}>
          <button type="button" disabled={shown === 0} onClick={() => setPage(shown - 1)}>
            Previous
          </button>
          <span>
            Page {shown + 1} of {pages}
          </span>
          <button type="button" disabled={shown >= pages - 1} onClick={() => setPage(shown + 1)}>
            Next
          </button>
        </nav>
      </div>
      <ErrorText error={error} />
      <Grid
        caption={`${name}: rows ${all.length ? shown * pageSize + 1 : 0}–${shown * pageSize + slice.length} of ${all.length}`}
        columns={columns}
        rows={slice.map((row) => columns.map((col) => row[col]))}
        rowMeta={meta}
        sort={sort}
        onSort={(column) =>
          setSort((s) => (s?.column === column ? { column, descending: !s.descending } : { column, descending: false }))
        }
        actions={
          canDelete
            ? (i) => (
                <button type="button" class="danger small" onClick={() => remove(slice[i])}>
                  Delete <WriteMark />
                </button>
              )
            : undefined
        }
      />
      <ShowCall text={`WebSocket Subscribe (the SDK's client.subscribe):\n${query}`} />
    </section>
  );
}
