/** The module's log, followed live (`GET .../logs?follow=true`, NDJSON), with a level filter. */

import { useEffect, useRef, useState } from "preact/hooks";
import { curlOf, database, dbPath, isOwner, token } from "../session.js";
import { ErrorText, ShowCall } from "../ui.js";

const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const KEEP = 1000;

interface Line {
  ts_us?: number;
  level?: string;
  message?: string;
  reducer?: string | null;
  dropped?: number;
}

export function LogsPage() {
  const [level, setLevel] = useState("DEBUG");
  const [lines, setLines] = useState<Line[]>([]);
  const [error, setError] = useState("");
  const [following, setFollowing] = useState(false);
  const [stick, setStick] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const path = `${dbPath(database.value!)}/logs?follow=true&num_lines=100&level=${level}`;

  useEffect(() => {
    if (!isOwner.value) return;
    const abort = new AbortController();
    setLines([]);
    setError("");
    (async () => {
      try {
        const response = await fetch(path, {
          headers: token.value ? { Authorization: `Bearer ${token.value}` } : {},
          signal: abort.signal,
        });
        if (!response.ok || !response.body) {
          const body = await response.json().catch(() => null);
          throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
        }
        if (abort.signal.aborted) return;
        setFollowing(true);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let rest = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          rest += value;
          const parts = rest.split("\n");
          rest = parts.pop() ?? "";
          const fresh = parts.filter((p) => p.trim()).map((p) => JSON.parse(p) as Line);
          // A read that resolved just before this stream was replaced (the level changed)
          // must not append the old filter's lines to the new view.
          if (abort.signal.aborted) return;
          if (fresh.length) setLines((old) => [...old, ...fresh].slice(-KEEP));
        }
        if (!abort.signal.aborted) setFollowing(false);
      } catch (e) {
        if (abort.signal.aborted) return;
        setError((e as Error).message);
        setFollowing(false);
      }
    })();
    return () => abort.abort();
  }, [path]);

  /** The old filter's lines and "following" go in the same render as the level changes:
   * the new stream opens only after that render (an effect), and until then the page
   * showed the old level's lines as if they were the new one's. */
  function changeLevel(next: string) {
    setLevel(next);
    setLines([]);
    setFollowing(false);
  }

  useEffect(() => {
    if (stick && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, stick]);

  if (!isOwner.value) {
    return (
      <section>
        <h1>Logs</h1>
        <p>Only the database's owner may read its logs.</p>
      </section>
    );
  }
  return (
    <section>
      <h1>Logs</h1>
      <div class="toolbar">
        <label>
          Level at least{" "}
          <select value={level} onChange={(e) => changeLevel(e.currentTarget.value)}>
            {LEVELS.map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
        <label>
          <input type="checkbox" checked={stick} onChange={(e) => setStick(e.currentTarget.checked)} /> Scroll to
          newest
        </label>
        <span class="live">{following ? "following" : "not following"}</span>
      </div>
      <ErrorText error={error} />
      <div class="log" role="log" aria-label="Module log" tabIndex={0} ref={box}>
        {lines.map((line, i) =>
          line.dropped !== undefined ? (
            <div key={i} class="log-line dropped">
              … {line.dropped} lines dropped (the console fell behind)
            </div>
          ) : (
            <div key={i} class={`log-line level-${(line.level ?? "").toLowerCase()}`}>
              <span class="ts">{line.ts_us ? new Date(line.ts_us / 1000).toISOString().slice(11, 23) : ""}</span>{" "}
              <span class="lvl">{line.level}</span> {line.reducer ? <span class="muted">[{line.reducer}]</span> : null}{" "}
              {line.message}
            </div>
          ),
        )}
        {!lines.length && <div class="muted">No log lines at {level} or above yet.</div>}
      </div>
      <ShowCall text={curlOf("GET", path)} />
    </section>
  );
}
