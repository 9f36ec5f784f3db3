/** `/metrics` (Prometheus text) polled every 2 s: this database's series as small charts. */

import { useEffect, useState } from "preact/hooks";
import { api, curlOf, database } from "../session.js";
import { ErrorText, ShowCall, Sparkline } from "../ui.js";

const POLL_MS = 2000;
const KEEP = 60;

interface Series {
  name: string;
  labels: string;
  kind: string;
  values: number[];
}

/** `name{labels} value` lines and `# TYPE` lines of the text format. */
export function parseMetrics(text: string): Array<{ name: string; labels: string; kind: string; value: number }> {
  const kinds = new Map<string, string>();
  const out = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("# TYPE ")) {
      const [, , name, kind] = line.split(" ");
      kinds.set(name, kind);
      continue;
    }
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, name, labels = "", value] = match;
    const base = name.replace(/_(bucket|sum|count)$/, "");
    if (name.endsWith("_bucket")) continue; // histograms: the sum and count are enough here
    out.push({ name, labels, kind: kinds.get(name) ?? kinds.get(base) ?? "gauge", value: Number(value) });
  }
  return out;
}

export function MetricsPage() {
  const [series, setSeries] = useState<Map<string, Series>>(new Map());
  const [error, setError] = useState("");
  const db = database.value!;
  useEffect(() => {
    let stopped = false;
    const known = new Map<string, Series>();
    const poll = async () => {
      try {
        const text: string = await api("/metrics");
        for (const s of parseMetrics(text)) {
          const mentions = s.labels.includes(`database="`);
          if (mentions && !s.labels.includes(`database="${db}"`)) continue;
          const key = s.name + s.labels;
          const entry = known.get(key) ?? { name: s.name, labels: s.labels, kind: s.kind, values: [] };
          entry.values = [...entry.values, s.value].slice(-KEEP);
          known.set(key, entry);
        }
        if (!stopped) setSeries(new Map(known));
        setError("");
      } catch (e) {
        setError((e as Error).message);
      }
    };
    poll();
    const timer = setInterval(poll, POLL_MS);
    return () => ((stopped = true), clearInterval(timer));
  }, [db]);

  const shown = [...series.values()];
  return (
    <section>
      <h1>Metrics</h1>
      <p class="muted">
        From /metrics every {POLL_MS / 1000} s; counters are shown as a rate per second. Series of other databases
        are left out; an identity that owns nothing here sees only the server-wide ones.
      </p>
      <ErrorText error={error} />
      <ul class="metrics">
        {shown.map((s) => {
          const isCounter = s.kind === "counter" || s.name.endsWith("_total") || s.name.endsWith("_sum");
          const points = isCounter
            ? s.values.slice(1).map((v, i) => Math.max(0, (v - s.values[i]) / (POLL_MS / 1000)))
            : s.values;
          const last = s.values[s.values.length - 1];
          const label = `${s.name}${s.labels.replace(/database="[^"]*",?/, "").replace("{}", "")}`;
          return (
            <li key={s.name + s.labels} class="metric">
              <div class="metric-name mono">{label}</div>
              <Sparkline values={points} label={label} />
              <div class="metric-value">
                {isCounter ? `${(points[points.length - 1] ?? 0).toFixed(2)}/s (total ${last})` : String(last)}
              </div>
            </li>
          );
        })}
      </ul>
      <ShowCall text={curlOf("GET", "/metrics")} />
    </section>
  );
}
