/** The ledger: chain head and latest checkpoint, the RFC 3161 anchors, and (owner) the
 * verify result (`GET .../audit/*`, docs/guide/ledger.md). */

import { useEffect, useState } from "preact/hooks";
import { api, curlOf, database, dbPath, isOwner, schema } from "../session.js";
import { ErrorText, ShowCall } from "../ui.js";

function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

export function AuditPage() {
  const base = `${dbPath(database.value!)}/audit`;
  const [checkpoint, setCheckpoint] = useState<any>(null);
  const [anchors, setAnchors] = useState<any>(null);
  const [verified, setVerified] = useState<any>(null);
  const [error, setError] = useState("");
  const [verifying, setVerifying] = useState(false);
  const ledgerOn = (schema.value as any)?.ledger?.on !== false;
  useEffect(() => {
    if (!ledgerOn) return;
    api(`${base}/checkpoint`).then(setCheckpoint, (e) => setError((e as Error).message));
    api(`${base}/anchors`).then(setAnchors, () => undefined);
  }, [base, ledgerOn]);
  const verify = async () => {
    setVerifying(true);
    try {
      setVerified(await api(`${base}/verify`));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setVerifying(false);
    }
  };
  if (!ledgerOn) {
    return (
      <section>
        <h1>Audit</h1>
        <p>
          This database keeps no ledger: start it with <code>signing = "checkpoint"</code> or <code>"event"</code>{" "}
          (<code>COSMICTRON_SIGNING</code>) to have signed checkpoints, anchors and verification.
        </p>
      </section>
    );
  }
  return (
    <section>
      <h1>Audit</h1>
      <ErrorText error={error} />
      <h2>Chain head and latest checkpoint</h2>
      {checkpoint ? <Json value={checkpoint} /> : <p>Loading…</p>}
      <ShowCall text={curlOf("GET", `${base}/checkpoint`)} />
      <h2>Anchors</h2>
      {anchors ? (
        anchors.anchors?.length ? (
          <Json value={anchors.anchors} />
        ) : (
          <p>No RFC 3161 anchors yet (anchoring is configured per database).</p>
        )
      ) : (
        <p>Loading…</p>
      )}
      <h2>Verify</h2>
      {isOwner.value ? (
        <>
          <button type="button" class="primary" onClick={verify} disabled={verifying}>
            {verifying ? "Verifying…" : "Verify the log"}
          </button>
          {verified && (
            <div role="status">
              <p class={verified.ok === false ? "error" : "ok"}>
                {verified.ok === false ? "Verification FAILED" : "Verified"}
              </p>
              <Json value={verified} />
            </div>
          )}
          <ShowCall text={curlOf("GET", `${base}/verify`)} />
        </>
      ) : (
        <p>Only the owner may verify the whole log on the server; anyone may verify it from the checkpoint.</p>
      )}
    </section>
  );
}
