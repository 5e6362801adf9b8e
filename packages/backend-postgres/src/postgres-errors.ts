/**
 * Which failures of `pg` mean "the server could not be reached or the
 * connection broke" (worth a retry on a fresh connection, reported as
 * `unavailable`), as opposed to an error the server returned for a query.
 */

/** Node socket and DNS error codes that mean the server is unreachable or the connection broke. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENOENT", // a Unix socket that does not exist
]);

/** SQLSTATEs of a connection going away: class 08, and the server shutting down or starting up. */
const SERVER_GONE = new Set(["57P01", "57P02", "57P03"]);

/** pg's own messages for a connection that ended or never opened. */
const PG_CONNECTION_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed|is not queryable|Connection closed/i;

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The connection broke or could not be made (as opposed to a query the server rejected). */
export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (NETWORK_CODES.has(code)) return true;
    if (code.startsWith("08") || SERVER_GONE.has(code)) return true;
  }
  if (error instanceof AggregateError && error.errors.some(isConnectionFailure)) return true; // happy eyeballs
  return PG_CONNECTION_MESSAGES.test(error.message);
}

/** Conflicts between concurrent transactions that a retry resolves. */
export function isRetryableConflict(error: unknown): boolean {
  const state = sqlState(error);
  return state === "40P01" || state === "40001";
}

/** A readable message for an error of pg or Node (AggregateError's message is often empty). */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map(describeError))].join("; ");
  }
  if (error instanceof Error) {
    const state = sqlState(error);
    const message = error.message || (error as { code?: string }).code || error.name;
    return state ? `${message} (SQLSTATE ${state})` : message;
  }
  return String(error);
}
