/** The agent layer's tables, live: threads, agent_state, tool calls with their leases,
 * hand-offs (docs/guide/agents.md). Shown when the module includes `cosmictron.agents`.
 * Read-only: those rows are the agent layer's reducers' to change. */

import { visibleTables } from "../session.js";
import { LiveTable } from "./live.js";

const SHOWN: Array<[string, string]> = [
  ["agent_thread", "Threads"],
  ["agent_state", "Agent state"],
  ["tool_call", "Tool calls and their leases"],
  ["handoff", "Hand-offs"],
  ["agent", "Agents"],
];

export function AgentsPage() {
  const names = new Set(visibleTables.value.map((t) => t.name));
  const present = SHOWN.filter(([name]) => names.has(name));
  return (
    <section>
      <h1>Agents</h1>
      {!present.length && (
        <p>
          This database has no agent tables you may read: its module does not include{" "}
          <code>cosmictron.agents</code>.
        </p>
      )}
      {present.map(([name, title]) => (
        <section key={name} aria-labelledby={`agents-${name}`}>
          <h2 id={`agents-${name}`}>{title}</h2>
          <LiveTable name={name} pageSize={20} allowDelete={false} />
        </section>
      ))}
    </section>
  );
}
