/**
 * How the S3 services read SDK errors: absent object, failed precondition,
 * abort, unreachable server; and engine failures turned into castore's
 * BackendError (naming the store, never credentials).
 */
import { AbortError, BackendError, isCastoreError } from "@castore-ts/core";

/** The S3 error name or HTTP status of an SDK error. */
export function s3Status(e: unknown): { name: string; status?: number } {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return { name: err?.name ?? "", status: err?.$metadata?.httpStatusCode };
}

export function isNotFound(e: unknown): boolean {
  const { name, status } = s3Status(e);
  return name === "NoSuchKey" || name === "NotFound" || (status === 404 && name !== "NoSuchBucket");
}

export function isPreconditionFailed(e: unknown): boolean {
  const { name, status } = s3Status(e);
  return name === "PreconditionFailed" || status === 412;
}

export function isNotImplemented(e: unknown): boolean {
  const { name, status } = s3Status(e);
  return name === "NotImplemented" || status === 501;
}

export function isSdkAbort(e: unknown): boolean {
  return (e as { name?: string } | undefined)?.name === "AbortError";
}

const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ETIMEDOUT",
]);

export function isUnavailable(e: unknown, depth = 0): boolean {
  const err = e as { code?: string; name?: string; cause?: unknown } | undefined;
  if (!err) return false;
  if ((err.code && UNAVAILABLE_CODES.has(err.code)) || err.name === "TimeoutError") return true;
  return depth < 5 && err.cause !== undefined && isUnavailable(err.cause, depth + 1);
}

/** Engine failures become BackendError naming the store (`backend`); castore's own errors pass through. */
export function wrapS3Error(backend: string, error: unknown, what: string, signal?: AbortSignal): unknown {
  if (isCastoreError(error)) return error;
  if (isSdkAbort(error) || signal?.aborted)
    return new AbortError(`${what}: aborted`, { cause: signal?.reason ?? error });
  const { name, status } = s3Status(error);
  const message = error instanceof Error && error.message ? error.message : String(error);
  const detail = [name && name !== "Error" && !message.includes(name) ? name : "", status ? `HTTP ${status}` : ""]
    .filter(Boolean)
    .join(", ");
  return new BackendError(backend, `${what}: ${message}${detail ? ` (${detail})` : ""}`, {
    cause: error,
    unavailable: isUnavailable(error),
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError("operation aborted", { cause: signal.reason }));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError("operation aborted", { cause: signal!.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
