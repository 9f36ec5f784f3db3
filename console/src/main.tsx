/**
 * Cosmictron's web console (docs/guide/console.md): routes in the URL fragment
 * (`#/db/<name>/<page>`), one SDK client for the open database, a page per job.
 */

import { render } from "preact";
import { signal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import {
  adoptFragment,
  client,
  connectError,
  connectionState,
  database,
  forgetToken,
  identity,
  isOwner,
  loadIdentity,
  openDatabase,
  schema,
  token,
} from "./session.js";
import { ConfirmHost, ErrorText } from "./ui.js";
import { DatabasesPage, SchemaPage, TablesPage } from "./pages/overview.js";
import { SqlPage } from "./pages/sql.js";
import { ReducersPage } from "./pages/reducers.js";
import { LogsPage } from "./pages/logs.js";
import { MetricsPage } from "./pages/metrics.js";
import { AgentsPage } from "./pages/agents.js";
import { AuditPage } from "./pages/audit.js";

const PAGES: Array<[string, string]> = [
  ["schema", "Schema"],
  ["tables", "Tables"],
  ["sql", "SQL"],
  ["reducers", "Reducers"],
  ["logs", "Logs"],
  ["metrics", "Metrics"],
  ["agents", "Agents"],
  ["audit", "Audit"],
];

const route = signal(location.hash);
const fromFragment = adoptFragment(location.hash);
if (fromFragment) {
  history.replaceState(null, "", location.pathname + fromFragment); // the token leaves the address
  route.value = fromFragment;
}
window.addEventListener("hashchange", () => (route.value = location.hash));

function parseRoute(hash: string): { db?: string; page: string; arg?: string } {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "db" && parts[1]) return { db: parts[1], page: parts[2] ?? "schema", arg: parts[3] };
  return { page: "databases" };
}

function Page({ page, arg }: { page: string; arg?: string }) {
  switch (page) {
    case "schema":
      return <SchemaPage />;
    case "tables":
      return <TablesPage name={arg} />;
    case "sql":
      return <SqlPage />;
    case "reducers":
      return <ReducersPage />;
    case "logs":
      return <LogsPage />;
    case "metrics":
      return <MetricsPage />;
    case "agents":
      return <AgentsPage />;
    case "audit":
      return <AuditPage />;
    default:
      return <p>No page {page}.</p>;
  }
}

function App() {
  const { db, page, arg } = parseRoute(route.value);
  useEffect(() => {
    loadIdentity();
  }, []);
  useEffect(() => {
    if (db) openDatabase(db);
  }, [db]);
  useEffect(() => {
    const name = PAGES.find(([p]) => p === page)?.[1] ?? "Databases";
    document.title = db ? `${name} · ${db} · Cosmictron console` : "Cosmictron console";
  }, [db, page]);
  const ready = db && client.value && schema.value && database.value === db;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/">
          Cosmictron
        </a>
        {db && <span class="db-name">{db}</span>}
        <span class="who">
          {identity.value ? (
            <>
              <span class="mono" title={identity.value}>
                {identity.value.slice(0, 12)}…
              </span>{" "}
              {db && schema.value ? <span class="badge">{isOwner.value ? "owner" : "not the owner"}</span> : null}
            </>
          ) : token.value ? (
            "…"
          ) : (
            "no token: a fresh identity"
          )}
          {db && connectionState.value && <span class={`state ${connectionState.value}`}>{connectionState.value}</span>}
          {token.value && (
            <button type="button" class="small" onClick={() => (forgetToken(), location.reload())}>
              Forget token
            </button>
          )}
        </span>
      </header>
      <div class="layout">
        {db && (
          <nav class="side" aria-label="Pages">
            <ul>
              {PAGES.map(([p, title]) => (
                <li key={p}>
                  <a href={`#/db/${encodeURIComponent(db)}/${p}`} aria-current={p === page ? "page" : undefined}>
                    {title}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        )}
        <main id="main" tabIndex={-1}>
          <ErrorText error={connectError.value} />
          {!db ? <DatabasesPage /> : ready ? <Page page={page} arg={arg} /> : <p>Connecting to {db}…</p>}
        </main>
      </div>
      <ConfirmHost />
    </>
  );
}

render(<App />, document.getElementById("app")!);
