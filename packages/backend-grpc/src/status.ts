/**
 * Mapping between castore's errors and gRPC status codes, both directions.
 *
 * Server → wire (spec §5): validation and closure failures are
 * INVALID_ARGUMENT with the message; an absent directory is NOT_FOUND; a
 * backend failure is INTERNAL, or UNAVAILABLE when the backend is unreachable.
 * The castore error code travels along in the `castore-error-code` trailer so
 * a castore client can rebuild the same error class; other clients ignore it.
 *
 * Wire → client: the trailer wins when present; without it (a tvix or snix
 * server) INVALID_ARGUMENT becomes a ValidationError or ClosureError guessed
 * from the message, and everything else a BackendError naming the address.
 * The ConnectError is kept as `cause`, so its gRPC code is never lost
 * (see `grpcCodeOf`).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AbortError,
  BackendError,
  type CastoreError,
  type CastoreErrorCode,
  ClosureError,
  ConflictError,
  CorruptionError,
  InvalidDigest,
  isCastoreError,
  NotFoundError,
  ValidationError,
} from "@castore-ts/core";

/** Trailer carrying the castore error code of a failed call. */
export const CASTORE_ERROR_CODE_TRAILER = "castore-error-code";

/** Rejects a request (bad input from the client) with INVALID_ARGUMENT. */
export function invalidArgument(message: string, code: CastoreErrorCode = "VALIDATION"): ConnectError {
  return withCode(new ConnectError(message, Code.InvalidArgument), code);
}

/** A per-upload or per-message limit was exceeded. */
export function resourceExhausted(message: string): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted);
}

function withCode(error: ConnectError, code: CastoreErrorCode): ConnectError {
  error.metadata.set(CASTORE_ERROR_CODE_TRAILER, code);
  return error;
}

/** The status a server answers for an error raised by a DirectoryService. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (!isCastoreError(error)) {
    const message = error instanceof Error ? error.message : String(error);
    return new ConnectError(`internal error: ${message}`, Code.Internal, undefined, undefined, error);
  }
  const e: CastoreError = error;
  switch (e.code) {
    case "VALIDATION":
    case "CLOSURE":
    case "INVALID_DIGEST":
      return withCode(new ConnectError(e.message, Code.InvalidArgument, undefined, undefined, e), e.code);
    case "NOT_FOUND":
      return withCode(new ConnectError(e.message, Code.NotFound, undefined, undefined, e), e.code);
    case "ABORTED":
      return withCode(new ConnectError(e.message, Code.Canceled, undefined, undefined, e), e.code);
    case "CONFLICT":
      // gRPC's code for a lost read-modify-write race.
      return withCode(new ConnectError(e.message, Code.Aborted, undefined, undefined, e), e.code);
    case "BACKEND":
      return withCode(
        new ConnectError(
          e.message,
          (e as BackendError).unavailable ? Code.Unavailable : Code.Internal,
          undefined,
          undefined,
          e,
        ),
        e.code,
      );
    case "CORRUPTION":
    case "INVALID_URL":
      return withCode(new ConnectError(e.message, Code.Internal, undefined, undefined, e), e.code);
  }
}

// Messages of tvix/snix servers for upload problems, for servers that send no trailer.
const CLOSURE_HINTS =
  /not connected|not seen|was not sent|referred|refers to|declares size|wrong size|size mismatch|empty upload|no directories|closure/i;

/**
 * The castore error a client raises for a failed call to `address`.
 * `signal` is the caller's: a cancellation it caused is an AbortError.
 */
export function fromConnectError(error: unknown, address: string, signal?: AbortSignal): Error {
  if (isCastoreError(error)) return error;
  if (signal?.aborted) return new AbortError("operation aborted", { cause: signal.reason ?? error });
  const ce = ConnectError.from(error);
  const message = ce.rawMessage;
  const opts = { cause: ce };
  switch (ce.metadata.get(CASTORE_ERROR_CODE_TRAILER) as CastoreErrorCode | null) {
    case "VALIDATION":
      return new ValidationError(message, opts);
    case "CLOSURE":
      return new ClosureError(message, opts);
    case "INVALID_DIGEST":
      return new InvalidDigest(message, opts);
    case "NOT_FOUND":
      return new NotFoundError(message, opts);
    case "CORRUPTION":
      return new CorruptionError(`${address}: ${message}`, opts);
    case "CONFLICT":
      return new ConflictError(message, opts);
    default:
      break;
  }
  switch (ce.code) {
    case Code.InvalidArgument:
      return CLOSURE_HINTS.test(message) ? new ClosureError(message, opts) : new ValidationError(message, opts);
    case Code.NotFound:
      return new NotFoundError(message, opts);
    case Code.Unavailable:
      return new BackendError(address, `unavailable: ${message}`, { cause: ce, unavailable: true });
    default:
      return new BackendError(address, `${Code[ce.code] ?? ce.code}: ${message}`, opts);
  }
}

/** The gRPC status code behind an error raised by the client, if it came off the wire. */
export function grpcCodeOf(error: unknown): Code | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof ConnectError) return e.code;
  }
  return undefined;
}

/**
 * The castore error code the server sent in the `castore-error-code` trailer
 * for an error raised by the client, or undefined when the server sent none
 * (a tvix or snix server, or an error that never came off the wire). Tells a
 * class the server proved apart from one this client guessed from the status.
 */
export function castoreCodeOf(error: unknown): string | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof ConnectError) return e.metadata.get(CASTORE_ERROR_CODE_TRAILER) ?? undefined;
  }
  return undefined;
}

const NETWORK_ERRORS = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_SESSION_ERROR",
]);

/**
 * Why an error raised by the client means the server went away rather than
 * answered (UNAVAILABLE, DEADLINE_EXCEEDED, a reset or refused connection),
 * or undefined for an answer of the server. `castore conformance URL` never
 * counts such an error as the rejection a scenario expects.
 */
export function transportFailureOf(error: unknown): string | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof ConnectError) {
      if (e.code === Code.Unavailable) return "gRPC UNAVAILABLE";
      if (e.code === Code.DeadlineExceeded) return "gRPC DEADLINE_EXCEEDED";
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_ERRORS.has(code)) return code;
  }
  return undefined;
}
