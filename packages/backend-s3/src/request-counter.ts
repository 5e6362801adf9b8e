/**
 * RequestCounter: counts the HTTP requests an S3Client sends, by operation,
 * through a middleware inside the retry loop. `byOperation` and `total` are
 * the requests castore makes (each request's first attempt); `retries` the
 * attempts the SDK made again after a transient failure (also on the bill).
 * Tests assert request counts with it, which a server's hiccup under load
 * must not change; the benchmark reports them.
 */
import type { S3Client } from "@aws-sdk/client-s3";

export class RequestCounter {
  /** Requests per operation name ("PutObject", "GetObject", …). */
  readonly byOperation = new Map<string, number>();
  total = 0;
  /** Attempts after the first, by the SDK's retry loop. */
  retries = 0;

  /** Adds the counting middleware to a client's stack (once per client). */
  static attach(client: S3Client): RequestCounter {
    const counter = new RequestCounter();
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (attemptOf(args.request) > 1) counter.retries++;
        else counter.record(context.commandName ?? "unknown");
        return next(args);
      },
      // finalizeRequest/low sits inside the retry middleware (finalizeRequest/high): one count per attempt.
      { step: "finalizeRequest", priority: "low", name: "castoreRequestCounter" },
    );
    return counter;
  }

  record(operation: string): void {
    const name = operation.replace(/Command$/, "");
    this.byOperation.set(name, (this.byOperation.get(name) ?? 0) + 1);
    this.total++;
  }

  count(operation: string): number {
    return this.byOperation.get(operation) ?? 0;
  }

  reset(): void {
    this.byOperation.clear();
    this.total = 0;
    this.retries = 0;
  }

  /** The counts so far, then resets: `const { total } = counter.take()`. */
  take(): { total: number; byOperation: Record<string, number> } {
    const out = { total: this.total, byOperation: Object.fromEntries(this.byOperation) };
    this.reset();
    return out;
  }
}

/** Which attempt a request is: the SDK's retry loop numbers them in `amz-sdk-request: attempt=N; max=M` (1 without it). */
function attemptOf(request: unknown): number {
  const headers = (request as { headers?: Record<string, string> } | undefined)?.headers;
  const match = /attempt=(\d+)/.exec(headers?.["amz-sdk-request"] ?? "");
  return match ? Number(match[1]) : 1;
}
