/**
 * The reducer runner: a form built from a reducer's argument types; the call goes through
 * the SDK (the WebSocket) and shows the return value, `tx_offset`, the error, and the rows
 * the transaction changed in the tables this identity may read.
 */

import { useEffect, useState } from "preact/hooks";
import type { ReducerSchema, TypeDescription } from "../../../sdk/typescript/src/index.js";
import { client, curlOf, database, dbPath, isOwner, schema, visibleTables } from "../session.js";
import { cellText, confirmWrite, ErrorText, ShowCall, WriteMark } from "../ui.js";
import { typeName } from "./overview.js";

const CALLABLE = new Set(["reducer", "procedure"]);
const INTEGERS = /^[iu](8|16|32)$/;
const BIG = /^([iu](64|128)|TimeDuration)$/;

/** The value of one form field, by the argument's type; throws a message for the form. */
function parseArgument(text: string, t: TypeDescription, checked: boolean): unknown {
  switch (t.type) {
    case "bool":
      return checked;
    case "str":
    case "Identity":
    case "ConnectionId":
    case "Timestamp":
      return text;
    case "f32":
    case "f64": {
      const n = Number(text);
      if (text.trim() === "" || Number.isNaN(n)) throw new Error(`"${text}" is not a number`);
      return n;
    }
    case "Optional":
      return text.trim() === "" ? null : parseArgument(text, t.of!, checked);
    default:
      if (INTEGERS.test(t.type)) {
        if (!/^-?\d+$/.test(text.trim())) throw new Error(`"${text}" is not a whole number`);
        return Number(text);
      }
      if (BIG.test(t.type)) {
        if (!/^-?\d+$/.test(text.trim())) throw new Error(`"${text}" is not a whole number`);
        return BigInt(text.trim());
      }
      try {
        return JSON.parse(text); // lists, products, enums, bytes (hex string): as JSON
      } catch {
        throw new Error(`"${text}" is not JSON (a ${typeName(t)} is given as JSON)`);
      }
  }
}

interface Outcome {
  value?: unknown;
  txOffset?: number;
  error?: string;
  changes: Array<{ table: string; kind: string; row: string }>;
}

function ReducerForm({ reducer }: { reducer: ReducerSchema }) {
  const c = client.value!;
  const [texts, setTexts] = useState<string[]>(() => reducer.params.map(() => ""));
  const [checks, setChecks] = useState<boolean[]>(() => reducer.params.map(() => false));
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [formError, setFormError] = useState("");
  const [busy, setBusy] = useState(false);

  let args: unknown[] | null = null;
  try {
    args = reducer.params.map((p, i) =>
      p.optional && texts[i] === "" && p.type !== "bool" ? undefined : parseArgument(texts[i], p, checks[i]),
    );
  } catch {
    args = null;
  }
  const shown = args ? JSON.stringify(args, (_k, v) => (typeof v === "bigint" ? Number(v) : v)) : "[...]";
  const path = `${dbPath(database.value!)}/call/${reducer.name}`;

  const call = async (event: Event) => {
    event.preventDefault();
    setFormError("");
    let given: unknown[];
    try {
      given = reducer.params.map((p, i) =>
        p.optional && texts[i] === "" && p.type !== "bool" ? undefined : parseArgument(texts[i], p, checks[i]),
      );
    } catch (e) {
      setFormError((e as Error).message);
      return;
    }
    if (!(await confirmWrite(`Call ${reducer.name}?`, `${reducer.name}(${shown.slice(1, -1)})`))) return;
    setBusy(true);
    const changes: Outcome["changes"] = [];
    const offs = visibleTables.value.flatMap((t) => {
      const cache = c.table(t.name);
      return [
        cache.onInsert((row, ctx) => changes.push({ table: t.name, kind: "insert", row: cellText(row), ...ctx })),
        cache.onUpdate((_o, row, ctx) => changes.push({ table: t.name, kind: "update", row: cellText(row), ...ctx })),
        cache.onDelete((row, ctx) => changes.push({ table: t.name, kind: "delete", row: cellText(row), ...ctx })),
      ];
    });
    try {
      const result = await c.call(reducer.name, ...given);
      const mine = changes.filter((ch: any) => ch.txOffset === result.txOffset);
      setOutcome({ value: result.value, txOffset: result.txOffset, changes: mine });
    } catch (e) {
      setOutcome({ error: `${(e as any).code ?? "error"}: ${(e as Error).message}`, changes: [] });
    } finally {
      offs.forEach((off) => off());
      setBusy(false);
    }
  };

  return (
    <form class="card" onSubmit={call} aria-labelledby={`reducer-${reducer.name}`}>
      <h2 id={`reducer-${reducer.name}`} class="mono">
        {reducer.name}
      </h2>
      {reducer.params.map((p, i) => {
        const id = `arg-${reducer.name}-${p.name}`;
        return (
          <div class="field" key={p.name}>
            <label for={id}>
              {p.name} <span class="muted mono">{typeName(p)}</span>
            </label>
            {p.type === "bool" ? (
              <input
                id={id}
                type="checkbox"
                checked={checks[i]}
                onChange={(e) => setChecks(checks.map((v, j) => (j === i ? e.currentTarget.checked : v)))}
              />
            ) : (
              <input
                id={id}
                type="text"
                inputMode={INTEGERS.test(p.type) || BIG.test(p.type) ? "numeric" : undefined}
                value={texts[i]}
                placeholder={p.optional || p.type === "Optional" ? "empty: the default" : undefined}
                onInput={(e) => setTexts(texts.map((v, j) => (j === i ? e.currentTarget.value : v)))}
              />
            )}
          </div>
        );
      })}
      <button type="submit" class="primary" disabled={busy}>
        Call {reducer.name} <WriteMark />
      </button>
      <ErrorText error={formError} />
      <ShowCall text={curlOf("POST", path, shown)} />
      {outcome && (
        <div class="outcome" role="status">
          {outcome.error ? (
            <p class="error">Failed: {outcome.error}</p>
          ) : (
            <dl class="facts">
              <dt>Returned</dt>
              <dd class="mono">{cellText(outcome.value)}</dd>
              <dt>tx_offset</dt>
              <dd>{String(outcome.txOffset)}</dd>
              <dt>Rows changed</dt>
              <dd>{outcome.changes.length}</dd>
            </dl>
          )}
          {outcome.changes.length > 0 && (
            <ul class="changes">
              {outcome.changes.map((ch, i) => (
                <li key={i} class="mono">
                  {ch.kind} {ch.table} {ch.row}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </form>
  );
}

export function ReducersPage() {
  const c = client.value!;
  const s = schema.value!;
  const tables = visibleTables.value;
  const [picked, setPicked] = useState<string>("");
  // The rows a call changes are seen through subscriptions to every readable table.
  useEffect(() => {
    if (!isOwner.value || !tables.length) return;
    const handle = c.subscribe(tables.map((t) => `SELECT * FROM ${t.name}`));
    return () => handle.unsubscribe();
  }, [c, tables.map((t) => t.name).join(",")]);
  if (!isOwner.value) {
    return (
      <section>
        <h1>Reducers</h1>
        <p>Only the database's owner may run reducers from the console.</p>
      </section>
    );
  }
  const callable = s.reducers.filter((r) => CALLABLE.has(r.kind ?? "reducer"));
  const chosen = callable.find((r) => r.name === picked) ?? callable[0];
  return (
    <section>
      <h1>Reducers</h1>
      {!callable.length && <p>This module has no reducer to call.</p>}
      {callable.length > 0 && (
        <div class="field">
          <label for="reducer-pick">Reducer</label>
          <select id="reducer-pick" value={chosen?.name} onChange={(e) => setPicked(e.currentTarget.value)}>
            {callable.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name}
                {r.kind === "procedure" ? " (procedure)" : ""}
              </option>
            ))}
          </select>
        </div>
      )}
      {chosen && <ReducerForm key={chosen.name} reducer={chosen} />}
    </section>
  );
}
