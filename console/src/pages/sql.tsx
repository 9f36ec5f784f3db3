/** The SQL editor: Ctrl+Enter runs, a results grid, CSV/JSON export, this tab's history. */

import { useState } from "preact/hooks";
import { api, curlOf, database, dbPath, isOwner } from "../session.js";
import { cellText, confirmWrite, download, ErrorText, Grid, ShowCall, WriteMark } from "../ui.js";

const READS = /^\s*(select|with|explain|show|values)\b/i;
const HISTORY_MAX = 30;

interface Result {
  columns: string[];
  rows: Array<Record<string, unknown>>;
  rows_affected?: number;
  tx_offset?: number | null;
  ms: number;
}

const rows = (n: number) => `${n} ${n === 1 ? "row" : "rows"}`;
const historyKey = () => `cosmictron.console.sql-history.${database.value}`;
const readHistory = (): string[] => JSON.parse(sessionStorage.getItem(historyKey()) ?? "[]");

function csvOf(result: Result): string {
  const quote = (text: string) => (/[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
  const lines = [result.columns.map(quote).join(",")];
  for (const row of result.rows) lines.push(result.columns.map((c) => quote(cellText(row[c]))).join(","));
  return lines.join("\r\n") + "\r\n";
}

export function SqlPage() {
  const [text, setText] = useState("SELECT * FROM ");
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState("");
  const [running, setRunning] = useState(false);
  const [history, setHistory] = useState<string[]>(readHistory);
  const path = `${dbPath(database.value!)}/sql`;
  const isWrite = !READS.test(text);

  const run = async () => {
    const query = text.trim();
    if (!query || running) return;
    if (!READS.test(query)) {
      if (!isOwner.value) {
        setError("Only the database's owner may change it: this editor runs queries only.");
        return;
      }
      if (!(await confirmWrite("Run this statement?", query))) return;
    }
    setRunning(true);
    setError("");
    const started = performance.now();
    try {
      const body = await api(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ query }),
      });
      setResult({ ...body, ms: performance.now() - started });
      const next = [query, ...history.filter((h) => h !== query)].slice(0, HISTORY_MAX);
      sessionStorage.setItem(historyKey(), JSON.stringify(next));
      setHistory(next);
    } catch (e) {
      setResult(null);
      setError((e as Error).message);
    } finally {
      setRunning(false);
    }
  };

  return (
    <section>
      <h1>SQL</h1>
      {!isOwner.value && <p class="muted">Read-only: your identity does not own this database.</p>}
      <label for="sql-text">Statement (Ctrl+Enter runs it)</label>
      <textarea
        id="sql-text"
        rows={6}
        spellcheck={false}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
            e.preventDefault();
            run();
          }
        }}
      />
      <div class="toolbar">
        <button type="button" class="primary" onClick={run} disabled={running}>
          Run {isWrite && isOwner.value ? <WriteMark /> : null}
        </button>
        {result && (
          <>
            <button type="button" onClick={() => download("result.csv", "text/csv", csvOf(result))}>
              Export CSV
            </button>
            <button
              type="button"
              onClick={() =>
                download("result.json", "application/json", JSON.stringify(result.rows, null, 1))
              }
            >
              Export JSON
            </button>
          </>
        )}
      </div>
      <ShowCall text={curlOf("POST", path, JSON.stringify({ query: text.trim() }))} />
      <ErrorText error={error} />
      {result && (
        <>
          <p class="status" role="status">
            {result.columns.length ? rows(result.rows.length) : `${rows(result.rows_affected ?? 0)} affected`}
            {result.tx_offset !== null && result.tx_offset !== undefined ? `, tx_offset ${result.tx_offset}` : ""} in{" "}
            {result.ms.toFixed(0)} ms
          </p>
          {result.columns.length > 0 && (
            <Grid
              caption="Result"
              columns={result.columns}
              rows={result.rows.map((row) => result.columns.map((c) => row[c]))}
            />
          )}
        </>
      )}
      {history.length > 0 && (
        <>
          <h2>History</h2>
          <ol class="history">
            {history.map((h) => (
              <li key={h}>
                <button type="button" class="link" onClick={() => setText(h)}>
                  {h}
                </button>
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
