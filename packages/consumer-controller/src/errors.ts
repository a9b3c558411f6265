/**
 * Why the consumer controller refused or failed to reconcile a cluster.
 *
 * - `invalid-name`: the cluster name is not an RFC 1123 DNS label of at most 63 characters, which
 *   Maestro requires of consumer names (maestro-db.md §7); nothing is written. Not retried.
 * - `soft-deleted-consumer`: a consumer row with that name exists but is soft-deleted. It still holds
 *   the name (`idx_consumers_name` covers every row) and the controller never modifies existing
 *   consumers, so an operator has to remove it. Not retried.
 * - `database-unavailable`: the database could not be reached or dropped the connection (retried).
 * - `database-error`: any other database failure, e.g. a missing `consumers` table or a lock wait
 *   that timed out (retried).
 * - `maestro-unavailable` (REST mode): Maestro could not be reached, timed out, or answered 5xx
 *   (retried).
 * - `maestro-error` (REST mode): any other unexpected answer, e.g. 401/403 for a missing or wrong
 *   token, or a body that is not what Maestro sends (retried: a fixed token or a Maestro upgrade
 *   lets it succeed later).
 */
export type ConsumerControllerErrorCode =
  | "invalid-name"
  | "soft-deleted-consumer"
  | "database-unavailable"
  | "database-error"
  | "maestro-unavailable"
  | "maestro-error";

/** The one error type of this package; {@link ConsumerControllerError.code} says what went wrong. */
export class ConsumerControllerError extends Error {
  /** What went wrong. */
  readonly code: ConsumerControllerErrorCode;

  /**
   * @param code - what went wrong.
   * @param message - a sentence naming the cluster.
   * @param options - `cause`: the underlying error (e.g. the postgres.js error).
   */
  constructor(code: ConsumerControllerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConsumerControllerError";
    this.code = code;
  }

  /** True for the codes the controller retries with back-off (the database and Maestro ones). */
  get retryable(): boolean {
    return this.code !== "invalid-name" && this.code !== "soft-deleted-consumer";
  }
}

/** Connection-level codes of postgres.js and Node's socket errors. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE",
  "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT",
]);

/**
 * Wraps a database failure as a {@link ConsumerControllerError}: connection failures and the
 * SQLSTATEs of a server that is going away or overloaded (classes 08, 53, 57P) are
 * `database-unavailable`, everything else `database-error`.
 *
 * @param err - what postgres.js threw.
 * @param what - the operation, for the message (e.g. `creating consumer "cluster1"`).
 */
export function databaseError(err: unknown, what: string): ConsumerControllerError {
  if (err instanceof ConsumerControllerError) return err;
  const code = String((err as { code?: unknown } | null)?.code ?? "");
  const unavailable = CONNECTION_CODES.has(code) || /^(08|53|57P)/.test(code);
  const detail = err instanceof Error ? err.message : String(err);
  return new ConsumerControllerError(unavailable ? "database-unavailable" : "database-error", `${what}: ${detail}`, { cause: err });
}
