/** The database list and a database's schema: tables, columns, indexes, reducers, module. */

import { useEffect, useState } from "preact/hooks";
import { api, curlOf, isOwner, schema, visibleTables } from "../session.js";
import { ErrorText, ShowCall } from "../ui.js";
import { LiveTable } from "./live.js";
import type { TypeDescription } from "../../../sdk/typescript/src/index.js";

export function typeName(t: TypeDescription | null | undefined): string {
  if (!t) return "None";
  if (t.type === "Optional") return `Optional[${typeName(t.of)}]`;
  if (t.type === "list") return `list[${typeName(t.of)}]`;
  if (t.type === "enum" && t.members) return `enum(${t.members.join(", ")})`;
  if (t.fields) return `${String(t.name ?? t.type)}{${t.fields.map((f) => `${f.name}: ${typeName(f)}`).join(", ")}}`;
  return t.type;
}

export function DatabasesPage() {
  const [list, setList] = useState<Array<{ name: string; owner: string; mine: boolean }>>([]);
  const [error, setError] = useState("");
  const [loaded, setLoaded] = useState(false);
  useEffect(() => {
    api("/v1/database").then(
      (body) => (setList(body.databases), setLoaded(true)),
      (e) => setError((e as Error).message),
    );
  }, []);
  return (
    <section>
      <h1>Databases</h1>
      <ErrorText error={error} />
      {loaded && !list.length && <p>This server hosts no database yet.</p>}
      <ul class="db-list">
        {list.map((db) => (
          <li key={db.name}>
            <a href={`#/db/${encodeURIComponent(db.name)}/schema`}>{db.name}</a>{" "}
            <span class="muted">{db.mine ? "yours" : `owner ${db.owner.slice(0, 12)}…`}</span>
          </li>
        ))}
      </ul>
      <ShowCall text={curlOf("GET", "/v1/database")} />
    </section>
  );
}

function formatTime(us: number | null | undefined): string {
  if (!us) return "unknown";
  return new Date(us / 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function SchemaPage() {
  const s = schema.value!;
  const tables = visibleTables.value;
  return (
    <section>
      <h1>Schema of {s.database}</h1>
      <dl class="facts">
        <dt>Module</dt>
        <dd>{s.module?.filename ?? "unknown"}</dd>
        <dt>Module SHA-256</dt>
        <dd class="mono">{s.module?.sha256 ?? "unknown"}</dd>
        <dt>Deployed</dt>
        <dd>{formatTime(s.module?.deployed_at_us)}</dd>
        <dt>Transaction offset</dt>
        <dd>{String(s.tx_offset)}</dd>
        <dt>Owner</dt>
        <dd class="mono">
          {s.owner} {isOwner.value ? "(you)" : ""}
        </dd>
      </dl>
      <h2>Tables</h2>
      {!isOwner.value && (
        <p class="muted">Private tables are not shown to you: the server lists them to the owner only.</p>
      )}
      {tables.map((t) => (
        <article class="card" key={t.name} aria-labelledby={`table-${t.name}`}>
          <h3 id={`table-${t.name}`}>
            <a href={`#/db/${encodeURIComponent(s.database)}/tables/${t.name}`}>{t.name}</a>{" "}
            <span class="muted">{t.public ? "public" : "private"}</span>
          </h3>
          <table class="grid small">
            <caption>Columns of {t.name}</caption>
            <thead>
              <tr>
                <th scope="col">Column</th>
                <th scope="col">Type</th>
                <th scope="col">Key</th>
              </tr>
            </thead>
            <tbody>
              {t.columns.map((col) => (
                <tr key={col.name}>
                  <td>{col.name}</td>
                  <td class="mono">{typeName(col)}</td>
                  <td>
                    {t.primary_key?.includes(col.name) ? "primary key" : ""}
                    {col.auto_inc ? " auto_inc" : ""}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {!!t.indexes?.length && (
            <p>
              Indexes:{" "}
              {t.indexes.map((ix) => `${ix.name} (${ix.columns.join(", ")}${ix.unique ? ", unique" : ""})`).join("; ")}
            </p>
          )}
        </article>
      ))}
      <h2>Reducers</h2>
      <ul>
        {s.reducers.map((r) => (
          <li key={r.name} class="mono">
            {r.name}({r.params.map((p) => `${p.name}: ${typeName(p)}`).join(", ")}) → {typeName(r.returns)}
            {r.kind && r.kind !== "reducer" ? ` [${r.kind}]` : ""}
          </li>
        ))}
      </ul>
      <ShowCall text={curlOf("GET", `/v1/database/${encodeURIComponent(s.database)}/schema`)} />
    </section>
  );
}

export function TablesPage({ name }: { name?: string }) {
  const tables = visibleTables.value;
  const s = schema.value!;
  return (
    <section>
      <h1>Tables{name ? `: ${name}` : ""}</h1>
      <nav aria-label="Tables" class="tabs">
        {tables.map((t) => (
          <a
            key={t.name}
            href={`#/db/${encodeURIComponent(s.database)}/tables/${t.name}`}
            aria-current={t.name === name ? "page" : undefined}
          >
            {t.name}
          </a>
        ))}
      </nav>
      {!name && <p>Choose a table to browse its rows, live.</p>}
      {name && !tables.some((t) => t.name === name) && <p class="error">No table {name} you may read.</p>}
      {name && tables.some((t) => t.name === name) && <LiveTable key={name} name={name} />}
    </section>
  );
}
