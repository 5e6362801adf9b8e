/**
 * BackoffRetryStrategy: the S3 client's retry policy. Retries what the SDK
 * classifies as transient (connection reset or refused, timeouts, 500, 502,
 * 503, 504), throttling (503 SlowDown, 429) or other server errors, up to
 * `maxAttempts` attempts per request, waiting an exponentially growing,
 * fully jittered delay. Client errors (4xx) and 501 Not Implemented are not
 * retried.
 *
 * Unlike the SDK's standard strategy it has no shared retry quota: an upload
 * of thousands of objects through a flaky link keeps retrying each request
 * up to its own bound instead of failing every request once a client-wide
 * budget is spent. It implements the SDK's RetryStrategyV2 interface
 * structurally (no import of @smithy/types needed).
 */

export interface RetryOptions {
  /** Most attempts per request, the first one included. Default 5. */
  maxAttempts?: number;
  /** Attempt k+1 waits a random time in [0, min(maxDelayMs, baseDelayMs · 2^(k-1))]. Default 100 ms. */
  baseDelayMs?: number;
  /** Cap of one wait. Default 5 000 ms. */
  maxDelayMs?: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 5_000 };

type ErrorType = "TRANSIENT" | "THROTTLING" | "SERVER_ERROR" | "CLIENT_ERROR";

interface Token {
  getRetryCount(): number;
  getRetryDelay(): number;
}

function token(count: number, delay: number): Token {
  return { getRetryCount: () => count, getRetryDelay: () => delay };
}

export class BackoffRetryStrategy {
  readonly options: Required<RetryOptions>;
  /** The SDK reads this to label requests; "standard" keeps its own behaviour otherwise unchanged. */
  readonly mode = "standard";

  constructor(options: RetryOptions = {}) {
    this.options = resolveRetryOptions(options);
  }

  /** The wait before retry number `retry` (1 = the first retry). */
  delayFor(retry: number, errorType: ErrorType, retryAfter?: Date): number {
    const { baseDelayMs, maxDelayMs } = this.options;
    if (retryAfter) {
      const hinted = retryAfter.getTime() - Date.now();
      if (hinted > 0) return Math.min(maxDelayMs, hinted);
    }
    const base = errorType === "THROTTLING" ? baseDelayMs * 2 : baseDelayMs;
    const ceiling = Math.min(maxDelayMs, base * 2 ** (retry - 1));
    return Math.floor(Math.random() * ceiling);
  }

  async acquireInitialRetryToken(_scope: string): Promise<Token> {
    return token(0, 0);
  }

  async refreshRetryTokenForRetry(
    previous: Token,
    info: { errorType: ErrorType; error?: unknown; retryAfterHint?: Date },
  ): Promise<Token> {
    const retry = previous.getRetryCount() + 1;
    if (info.errorType === "CLIENT_ERROR" || isPermanent(info.error) || retry >= this.options.maxAttempts) {
      throw info.error ?? new Error("no more retries");
    }
    return token(retry, this.delayFor(retry, info.errorType, info.retryAfterHint));
  }

  recordSuccess(_token: Token): void {}
}

/** 501 Not Implemented is a server error the SDK would retry, but it answers the same every time. */
function isPermanent(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === "NotImplemented" || e?.$metadata?.httpStatusCode === 501;
}

export function resolveRetryOptions(options: RetryOptions = {}): Required<RetryOptions> {
  const r = { ...DEFAULT_RETRY, ...dropUndefined(options) };
  if (!Number.isInteger(r.maxAttempts) || r.maxAttempts < 1) {
    throw new RangeError(`retry maxAttempts must be a positive integer, got ${r.maxAttempts}`);
  }
  if (!(r.baseDelayMs >= 0) || !(r.maxDelayMs >= 0)) {
    throw new RangeError(`retry delays must be non-negative, got base ${r.baseDelayMs} ms, max ${r.maxDelayMs} ms`);
  }
  return r;
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
