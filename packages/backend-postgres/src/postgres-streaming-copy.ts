/**
 * StreamingCopy: one binary `COPY <table> FROM STDIN` inside a transaction on
 * a pooled connection, fed piece by piece as an upload's batches arrive, then
 * committed or rolled back whole. Nothing of it is visible before finish()
 * has committed. PostgresUpload decides when to start one and what to do when
 * it fails; this class only drives the connection and always gives it back
 * (to the pool when it is clean, closed when it is not).
 */
import { finished } from "node:stream/promises";
import type { Writable } from "node:stream";
import { AbortError, type ClosureEntry } from "@castore-ts/core";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { binaryCopyChunks, byteaArray, COPY_CHUNK_BYTES, COPY_TRAILER } from "./postgres-wire.js";

/** What a StreamingCopy needs from its store. */
export interface StreamingCopyHost {
  /** The quoted table the rows go into. */
  readonly table: string;
  /** A pooled connection (a BackendError when there is none to be had). */
  connect(): Promise<pg.PoolClient>;
  /** Called once when the copy gave its connection back (or never got one): its streaming slot is free again. */
  streamEnded(copy: StreamingCopy): void;
}

/**
 * Bytes buffered in the COPY stream before a write waits for the socket: a
 * few chunks in flight keep the server busy while core checks the next batch.
 */
const COPY_HIGH_WATER_BYTES = 4 * COPY_CHUNK_BYTES;
/**
 * How long a row may wait for another transaction holding the same digest
 * (an overlapping upload that has not committed yet) before the COPY gives up.
 * Streamed rows arrive in upload order, not digest order, so two streaming
 * uploads can wait for each other; and the other one may be paced by a slow
 * client. Giving up early is cheap: the upload stores at close instead.
 */
export const STREAM_LOCK_TIMEOUT_MS = 1000;
/** How long cancel() waits for the server to end a COPY and roll back before closing the connection instead. */
const CANCEL_TIMEOUT_MS = 5000;

type CopyStream = ReturnType<typeof copyFrom>;

function asError(why: unknown): Error {
  return why instanceof Error ? why : new Error(String(why));
}

/** Resolves when `stream` can take more; rejects when it fails or closes first, or when `signal` aborts. */
function drained(stream: Writable, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: unknown) => {
      stream.off("drain", onDrain).off("error", onError).off("close", onClose);
      signal?.removeEventListener("abort", onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onDrain = () => settle();
    const onError = (error: Error) => settle(error);
    const onClose = () => settle(new Error("the COPY stream closed"));
    const onAbort = () => settle(new AbortError("upload aborted", { cause: signal?.reason }));
    if (signal?.aborted) return onAbort();
    stream.on("drain", onDrain).on("error", onError).on("close", onClose);
    signal?.addEventListener("abort", onAbort);
  });
}

/** Rejects after `ms` unless `promise` settled first. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export class StreamingCopy {
  /** Rows sent so far. */
  written = 0;
  private client: pg.PoolClient | undefined;
  private copy: CopyStream | undefined;
  private inTransaction = false;
  /** The first failure of the COPY or of its connection: every later step throws it. */
  private failure: unknown;
  /** The connection cannot be trusted any more: close it instead of pooling it. */
  private broken: unknown;
  private released = false;
  /** The step in flight (start, write, finish): cancel() closes the connection under it, then waits for it. */
  private inFlight: Promise<unknown> | undefined;
  private failureNoticed = false;
  /** The one cancel(), however often it is called. */
  private cancelling: Promise<void> | undefined;

  /**
   * @param onIdleFailure called once if the COPY or its connection fails while
   *   no step is in flight (e.g. a lock timeout on rows already sent while the
   *   client is between batches), so the upload can give the connection back
   *   now rather than at its next batch. A failure during a step is thrown by it.
   */
  constructor(
    private readonly host: StreamingCopyHost,
    private readonly onIdleFailure: () => void = () => undefined,
  ) {}

  // While checked out a client has no pool listener: an "error" event must find one here.
  private readonly onClientError = (error: Error) => {
    this.broken ??= error;
    this.failed(error);
  };
  private readonly onCopyError = (error: Error) => {
    this.failed(error);
  };

  private failed(error: unknown): void {
    this.failure ??= error;
    if (this.inFlight === undefined) this.noticeIdleFailure();
  }

  private noticeIdleFailure(): void {
    if (this.failure === undefined || this.failureNoticed || this.released) return;
    this.failureNoticed = true;
    this.onIdleFailure();
  }

  private step<T>(fn: () => Promise<T>): Promise<T> {
    const running = fn();
    this.inFlight = running;
    const settled = () => {
      if (this.inFlight === running) this.inFlight = undefined;
    };
    return running.then(
      (value) => {
        settled();
        // A failure that came in as the step completed without seeing it.
        this.noticeIdleFailure();
        return value;
      },
      (error: unknown) => {
        settled();
        throw error; // the caller deals with it
      },
    );
  }

  /**
   * Takes a connection, opens a transaction and starts the COPY with `first`.
   * False, having sent nothing, if any of `first` is stored already: a re-upload
   * would only fail on the primary key. The caller cancel()s after false or a failure.
   */
  start(first: readonly ClosureEntry[], signal?: AbortSignal): Promise<boolean> {
    return this.step(async () => {
      const client = await this.host.connect();
      if (this.released) {
        // cancel() came while we waited for the connection: it was never used.
        client.release();
        throw new AbortError("upload aborted");
      }
      this.client = client;
      client.on("error", this.onClientError);
      this.inTransaction = true;
      await client.query(`BEGIN; SET LOCAL lock_timeout = ${STREAM_LOCK_TIMEOUT_MS}`);
      const { rows } = await client.query<[boolean]>({
        text: `SELECT EXISTS (SELECT 1 FROM ${this.host.table} WHERE digest = ANY($1::bytea[]))`,
        values: [byteaArray(first.map((e) => e.digest.bytes))],
        rowMode: "array",
      });
      if (rows[0][0]) return false;
      const copy = client.query(
        copyFrom(`COPY ${this.host.table} (digest, bytes, children) FROM STDIN (FORMAT binary)`, {
          highWaterMark: COPY_HIGH_WATER_BYTES,
        }),
      );
      this.copy = copy;
      copy.on("error", this.onCopyError);
      await this.send(first, { header: true, signal });
      return true;
    });
  }

  /** More rows into the COPY; resolves when the stream can take more (the upload's backpressure). */
  write(entries: readonly ClosureEntry[], signal?: AbortSignal): Promise<void> {
    return this.step(() => this.send(entries, { header: false, signal }));
  }

  private async send(
    entries: readonly ClosureEntry[],
    { header, signal }: { header: boolean; signal?: AbortSignal },
  ): Promise<void> {
    const copy = this.copy;
    if (!copy) throw new Error("the COPY was not started");
    for (const chunk of binaryCopyChunks(entries, { header, trailer: false })) {
      if (this.failure !== undefined) throw this.failure;
      if (!copy.write(chunk)) await drained(copy, signal);
    }
    if (this.failure !== undefined) throw this.failure;
    this.written += entries.length;
  }

  /** Ends the COPY and commits: every row written becomes visible at once. The caller cancel()s after a failure. */
  finish(): Promise<void> {
    return this.step(async () => {
      const { copy, client } = this;
      if (!copy || !client) throw new Error("the COPY was not started");
      if (this.failure !== undefined) throw this.failure;
      copy.end(COPY_TRAILER);
      await finished(copy);
      if (this.failure !== undefined) throw this.failure;
      await client.query("COMMIT");
      this.inTransaction = false;
      this.release();
    });
  }

  /**
   * Drops everything sent: ends the COPY with CopyFail and rolls back, then
   * gives the connection back. If a step is still waiting on the server or the
   * socket, or the server does not answer in time, the connection is closed
   * instead (the server rolls back). Never throws; calling it again returns the same promise.
   */
  cancel(): Promise<void> {
    return (this.cancelling ??= this.rollBackAndRelease());
  }

  private async rollBackAndRelease(): Promise<void> {
    this.failureNoticed = true; // being dealt with: no more notices
    if (this.released) {
      await this.inFlight?.catch(() => undefined);
      return;
    }
    if (this.inFlight) {
      this.release(new Error("upload abandoned while its COPY was in flight"));
      await this.inFlight.catch(() => undefined);
      return;
    }
    const { client, copy } = this;
    if (client && this.broken === undefined) {
      try {
        if (copy && !copy.destroyed && !copy.writableFinished) {
          // Drops the chunks still queued here. A live COPY is ended with CopyFail, and the server's
          // error awaited; a failed one the server has ended already (pg-copy-streams then only
          // emitted the error, without destroying the stream).
          const live = this.failure === undefined;
          copy.destroy();
          if (live)
            await within(
              finished(copy).catch(() => undefined),
              CANCEL_TIMEOUT_MS,
              "ending the COPY",
            );
        }
        if (this.inTransaction) await within(client.query("ROLLBACK"), CANCEL_TIMEOUT_MS, "ROLLBACK");
        this.inTransaction = false;
      } catch (error) {
        this.broken ??= error;
      }
    }
    this.release(this.broken ?? (this.inTransaction ? new Error("transaction left open") : undefined));
  }

  /** Gives the connection back once: to the pool if clean, else closed (which also ends whatever it was doing). */
  private release(error?: unknown): void {
    if (this.released) return;
    this.released = true;
    const client = this.client;
    if (client) {
      client.off("error", this.onClientError);
      client.release(error === undefined ? undefined : asError(error));
    }
    this.host.streamEnded(this);
  }
}
