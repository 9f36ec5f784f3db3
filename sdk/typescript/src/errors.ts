/**
 * Errors as typed classes, one per stable code of the server (docs/reference/errors.md).
 *
 * Every error the SDK raises is a `CosmictronError` whose `code` is the server's
 * (`reducer_failed`, `sql_error`, ...); the common codes have classes of their own so a
 * caller can `catch (e) { if (e instanceof ReducerFailedError) ... }`. A code this SDK
 * does not know still arrives, as a plain `CosmictronError` with that code.
 */

export class CosmictronError extends Error {
  /** The server's stable snake_case code. */
  readonly code: string;
  /** The module's own frames, for the database owner (a failed reducer); else undefined. */
  readonly traceback?: string;
  /**
   * When to try again, in seconds, for an error that says (`cluster_unavailable`,
   * `rate_limited`: HTTP's `Retry-After`); else undefined.
   */
  readonly retryAfterS?: number;

  constructor(message: string, code = "cosmictron_error", traceback?: string, retryAfterS?: number) {
    super(message);
    this.code = code;
    if (traceback) this.traceback = traceback;
    if (typeof retryAfterS === "number") this.retryAfterS = retryAfterS;
    this.name = new.target.name;
  }
}

export class InvalidRequestError extends CosmictronError {}
export class SqlError extends InvalidRequestError {}
export class SubscriptionError extends InvalidRequestError {}
export class UnauthenticatedError extends CosmictronError {}
export class PermissionDeniedError extends CosmictronError {}
export class OriginNotAllowedError extends PermissionDeniedError {}
export class NotFoundError extends CosmictronError {}
export class ReducerFailedError extends CosmictronError {}
export class RateLimitedError extends CosmictronError {}
export class QueryCancelledError extends CosmictronError {}
export class ResourceExhaustedError extends CosmictronError {}
/** The connection dropped before the reply came: a call may or may not have committed. */
export class ConnectionLostError extends CosmictronError {}
/**
 * Cluster mode: no quorum, or no leader right now; retry after `retryAfterS`. A call may
 * still commit once the cluster recovers (it is never applied twice).
 */
export class ClusterUnavailableError extends CosmictronError {}
/** Cluster mode: the node that ran the call is no longer the leader; retry. */
export class NotLeaderError extends ClusterUnavailableError {}

const BY_CODE: Record<string, typeof CosmictronError> = {
  invalid_request: InvalidRequestError,
  protocol_error: InvalidRequestError,
  not_finite: InvalidRequestError,
  too_large: InvalidRequestError,
  too_deep: InvalidRequestError,
  sql_error: SqlError,
  subscription_error: SubscriptionError,
  unauthenticated: UnauthenticatedError,
  permission_denied: PermissionDeniedError,
  origin_not_allowed: OriginNotAllowedError,
  not_found: NotFoundError,
  reducer_failed: ReducerFailedError,
  rate_limited: RateLimitedError,
  query_cancelled: QueryCancelledError,
  resource_exhausted: ResourceExhaustedError,
  connection_lost: ConnectionLostError,
  cluster_unavailable: ClusterUnavailableError,
  not_leader: NotLeaderError,
};

/** The error class for a server code (a plain `CosmictronError` for an unknown one). */
export function errorFromCode(
  code: string | null | undefined,
  message: string,
  traceback?: string | null,
  fallback: typeof CosmictronError = CosmictronError,
  retryAfterS?: number | null,
): CosmictronError {
  const known = code ? BY_CODE[code] : undefined;
  const retry = typeof retryAfterS === "number" ? retryAfterS : undefined;
  return new (known ?? fallback)(message, code ?? "cosmictron_error", traceback ?? undefined, retry);
}
