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

  constructor(message: string, code = "cosmictron_error", traceback?: string) {
    super(message);
    this.code = code;
    if (traceback) this.traceback = traceback;
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
};

/** The error class for a server code (a plain `CosmictronError` for an unknown one). */
export function errorFromCode(
  code: string | null | undefined,
  message: string,
  traceback?: string | null,
  fallback: typeof CosmictronError = CosmictronError,
): CosmictronError {
  const known = code ? BY_CODE[code] : undefined;
  return new (known ?? fallback)(message, code ?? "cosmictron_error", traceback ?? undefined);
}
