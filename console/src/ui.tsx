/** Pieces every page uses: a cell's text, a grid of rows, the call behind an action, the
 * confirmation a write needs, and a sparkline. */

import { useEffect, useRef, useState } from "preact/hooks";
import type { ComponentChildren } from "preact";
import { bytesToHex, stringify } from "../../sdk/typescript/src/index.js";

/** A value as one line of text: bigints exact, bytes as hex, objects as JSON. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "string") return value;
  if (typeof value === "bigint" || typeof value === "number" || typeof value === "boolean") {
    return String(value);
  }
  if (value instanceof Uint8Array) return bytesToHex(value);
  return stringify(value);
}

export interface GridProps {
  columns: string[];
  rows: unknown[][];
  caption: string;
  /** Per row: a class (e.g. `changed`) and a key. */
  rowMeta?: Array<{ key: string; className?: string }>;
  sort?: { column: string; descending: boolean };
  onSort?: (column: string) => void;
  actions?: (index: number) => ComponentChildren;
}

export function Grid(props: GridProps) {
  const { columns, rows, caption, rowMeta, sort, onSort, actions } = props;
  return (
    <div class="grid-wrap">
      <table class="grid">
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map((column) => {
              const sorted = sort?.column === column;
              const ariaSort = sorted ? (sort!.descending ? "descending" : "ascending") : undefined;
              return (
                <th scope="col" aria-sort={ariaSort} key={column}>
                  {onSort ? (
                    <button type="button" class="sort" onClick={() => onSort(column)}>
                      {column}
                      <span aria-hidden="true">{sorted ? (sort!.descending ? " ▼" : " ▲") : ""}</span>
                    </button>
                  ) : (
                    column
                  )}
                </th>
              );
            })}
            {actions && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, index) => (
            <tr key={rowMeta?.[index]?.key ?? index} class={rowMeta?.[index]?.className}>
              {row.map((value, i) => {
                const text = cellText(value);
                return (
                  <td
                    key={i}
                    class={value === null || value === undefined ? "null" : undefined}
                    title={text.length > 40 ? text : undefined}
                  >
                    {text}
                  </td>
                );
              })}
              {actions && <td>{actions(index)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The HTTP request or SQL behind an action, shown on demand. */
export function ShowCall({ text }: { text: string }) {
  return (
    <details class="show-call">
      <summary>Show the call</summary>
      <pre>{text}</pre>
    </details>
  );
}

/** A badge saying the control writes to the database. */
export const WriteMark = () => <span class="write-mark">writes</span>;

let confirmOpen: ((request: { title: string; detail: string; resolve: (ok: boolean) => void }) => void) | null =
  null;

/** Ask the person to confirm a write; resolves true if they chose to go ahead. */
export function confirmWrite(title: string, detail: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!confirmOpen) resolve(false);
    else confirmOpen({ title, detail, resolve });
  });
}

/** The one confirmation dialog (a modal `<dialog>`, focus trapped by the browser). */
export function ConfirmHost() {
  const dialog = useRef<HTMLDialogElement>(null);
  const [request, setRequest] = useState<{ title: string; detail: string; resolve: (ok: boolean) => void } | null>(
    null,
  );
  useEffect(() => {
    confirmOpen = (next) => setRequest(next);
    return () => (confirmOpen = null);
  }, []);
  useEffect(() => {
    if (request && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [request]);
  const answer = (ok: boolean) => {
    dialog.current?.close();
    request?.resolve(ok);
    setRequest(null);
  };
  return (
    <dialog ref={dialog} aria-labelledby="confirm-title" onCancel={() => answer(false)}>
      <h2 id="confirm-title">{request?.title}</h2>
      <p>This changes the database.</p>
      <pre>{request?.detail}</pre>
      <div class="buttons">
        <button type="button" onClick={() => answer(false)}>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => answer(true)}>
          Confirm write
        </button>
      </div>
    </dialog>
  );
}

/** A small line chart of the last values of one series. */
export function Sparkline({ values, label }: { values: number[]; label: string }) {
  const width = 160;
  const height = 36;
  if (values.length < 2) {
    return <svg class="spark" width={width} height={height} role="img" aria-label={`${label}: waiting for data`} />;
  }
  const max = Math.max(...values);
  const min = Math.min(...values);
  const span = max - min || 1;
  const step = width / (values.length - 1);
  const points = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`)
    .join(" ");
  return (
    <svg class="spark" width={width} height={height} role="img" aria-label={`${label}, from ${min} to ${max}`}>
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

export function ErrorText({ error }: { error: string }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

/** Download `text` as a file (CSV or JSON exports). */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
