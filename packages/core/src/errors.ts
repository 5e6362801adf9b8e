/**
 * The error classes of castore (spec §3). Every error a backend or the
 * server raises on purpose is one of these; `code` is stable for matching
 * across package copies where `instanceof` would fail.
 */
import type { Digest } from "./digest.js";

export type CastoreErrorCode =
  | "VALIDATION"
  | "CLOSURE"
  | "CORRUPTION"
  | "NOT_FOUND"
  | "INVALID_DIGEST"
  | "INVALID_URL"
  | "BACKEND"
  | "ABORTED"
  | "CONFLICT";

export abstract class CastoreError extends Error {
  abstract readonly code: CastoreErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A directory breaks a rule of spec §2. */
export class ValidationError extends CastoreError {
  readonly code = "VALIDATION" as const;
}

/**
 * A blob writer opened with `expectDigest` was given bytes that hash to
 * another digest (spec §8.1): nothing was made visible. Says both digests
 * and the size written, so a caller can name what changed (castore import:
 * a file edited between its hash and its upload).
 */
export class BlobDigestMismatchError extends ValidationError {
  constructor(
    readonly expected: Digest,
    readonly actual: Digest,
    readonly size: number,
  ) {
    super(
      `the blob written hashes to ${actual.hex} (${size} bytes), not to the expected ${expected.hex}; nothing was stored`,
    );
  }
}

/** An upload is not a well-formed closure (dangling child, wrong size, two roots, …). */
export class ClosureError extends CastoreError {
  readonly code = "CLOSURE" as const;
}

/** Stored or received bytes do not match the digest they were asked for or stored under. */
export class CorruptionError extends CastoreError {
  readonly code = "CORRUPTION" as const;
}

/** A path or object that must exist does not. */
export class NotFoundError extends CastoreError {
  readonly code = "NOT_FOUND" as const;
}

/** Text or bytes that are not a digest. */
export class InvalidDigest extends CastoreError {
  readonly code = "INVALID_DIGEST" as const;
}

/** A store URL that is malformed or names no known backend. */
export class InvalidUrlError extends CastoreError {
  readonly code = "INVALID_URL" as const;
}

/** The operation was cancelled through an AbortSignal or putter.abort(). */
export class AbortError extends CastoreError {
  readonly code = "ABORTED" as const;
}

/**
 * A compare-and-swap lost: a ref did not hold the value the caller expected
 * (spec §9). Says what it held instead, so the caller can decide again.
 */
export class ConflictError extends CastoreError {
  readonly code = "CONFLICT" as const;
}

/** The storage engine failed. Says which backend; carries the engine's error as `cause`. */
export class BackendError extends CastoreError {
  readonly code = "BACKEND" as const;
  /** true when the engine could not be reached at all (maps to gRPC UNAVAILABLE). */
  readonly unavailable: boolean;
  constructor(
    readonly backend: string,
    message: string,
    options?: { cause?: unknown; unavailable?: boolean },
  ) {
    super(`${backend}: ${message}`, options);
    this.unavailable = options?.unavailable ?? false;
  }
}

const CASTORE_ERROR_CODES: ReadonlySet<string> = new Set<CastoreErrorCode>([
  "VALIDATION",
  "CLOSURE",
  "CORRUPTION",
  "NOT_FOUND",
  "INVALID_DIGEST",
  "INVALID_URL",
  "BACKEND",
  "ABORTED",
  "CONFLICT",
]);

/**
 * Whether `e` is a castore error, by its `code` (one of CastoreErrorCode), not
 * by `instanceof`: an error from a second copy of core (two versions in one
 * node_modules) is one too, and must not be re-wrapped as an engine failure.
 * With `code`: whether it is a castore error of that code (e.g. "CORRUPTION").
 */
export function isCastoreError(e: unknown, code?: CastoreErrorCode): e is CastoreError {
  const actual = e instanceof Error ? (e as { code?: unknown }).code : undefined;
  if (code !== undefined && actual !== code) return false;
  if (e instanceof CastoreError) return true;
  return typeof actual === "string" && CASTORE_ERROR_CODES.has(actual);
}

/** Throws an AbortError (with the signal's reason as cause) if the signal fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new AbortError("operation aborted", { cause: signal.reason });
  }
}

/**
 * Aborts `target` with `source`'s reason when `source` aborts (at once if it
 * already has); returns what stops listening. How a call's own controller
 * follows its caller's signal: not AbortSignal.any(), which on Node 20 keeps
 * every combined signal on the source for good (nodejs/node#55351), so one
 * long-lived caller's signal would keep something of every call.
 */
export function forwardAbort(source: AbortSignal | undefined, target: AbortController): () => void {
  if (source === undefined) return () => {};
  const onAbort = () => target.abort(source.reason);
  source.addEventListener("abort", onAbort, { once: true });
  if (source.aborted) onAbort();
  return () => source.removeEventListener("abort", onAbort);
}
