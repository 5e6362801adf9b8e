/**
 * ClosurePutter: the DirectoryPutter that local backends build on. It checks
 * the whole upload with ClosureValidator and hands the backend every
 * directory, leaves to root, in one `commit` call at close(), so a backend
 * only implements "store these bytes atomically". A sink that can take rows
 * early (`write`) gets them in batches as they pass the per-directory checks,
 * and `commit` then only has to make them visible. Nothing is visible before
 * close() succeeds. The closing rules of DirectoryPutter (service.ts) hold:
 * once close() is called, put() and another close() are refused, and an
 * abort() during close() either stops the commit or reports that it came too
 * late.
 */
import type { Digest } from "./digest.js";
import { AbortError, ClosureError, forwardAbort } from "./errors.js";
import { type ClosureEntry, type ValidatedClosure, ClosureValidator } from "./closure.js";
import type { Directory } from "./model.js";
import type { DirectoryPutter } from "./service.js";
import type { SizeCheck } from "./size-check.js";

/** Where a ClosurePutter's checked directories go. */
export interface ClosureSink {
  /** Optional: directories that passed the per-directory checks, in upload order, while the upload is open. Awaited (backpressure). */
  write?(entries: ClosureEntry[]): Promise<void>;
  /**
   * The whole upload checked out: store it (or make what was written
   * visible), all or nothing. `signal` fires on the caller's signal and on
   * an abort() while the commit runs: stop if nothing is visible yet, and
   * throw; a commit that completes anyway is reported to abort() as too late.
   */
  commit(closure: ValidatedClosure, signal?: AbortSignal): Promise<void>;
  /** The upload failed or was abandoned: drop what was written. Never throws. */
  abort?(): Promise<void>;
}

const DONE: Promise<void> = Promise.resolve();

/** Directories per write() to a streaming sink: big enough to amortise a call, small enough to overlap. */
const WRITE_BATCH = 2048;

type State =
  | { kind: "open" }
  | { kind: "failed"; error: unknown }
  /** close() was called and has not settled: the closure is fixed, the commit may be running. */
  | { kind: "closing"; done: Promise<Digest>; commitAbort: AbortController }
  | { kind: "closed" }
  | { kind: "aborted" };

export class ClosurePutter implements DirectoryPutter {
  private readonly validator: ClosureValidator;
  private state: State = { kind: "open" };
  /** Checked directories not yet written to a streaming sink. */
  private pending: ClosureEntry[] = [];
  /** The last write to the sink (writes run one at a time, in order). */
  private writing: Promise<void> = DONE;

  constructor(
    private readonly sink: ClosureSink,
    private readonly opts: {
      sizeCheck?: SizeCheck;
      signal?: AbortSignal;
      maxDirectories?: number;
      /** A partial upload (spec §3.6): children it does not carry are left to the store to check. */
      partial?: boolean;
    } = {},
  ) {
    this.validator = new ClosureValidator({ sizeCheck: opts.sizeCheck, partial: opts.partial });
  }

  private checkOpen(): void {
    switch (this.state.kind) {
      case "failed":
        throw this.state.error;
      case "closing":
      case "closed":
        throw new ClosureError("upload already closed");
      case "aborted":
        throw new AbortError("upload was aborted");
    }
  }

  /** A cancelled signal aborts the upload (and the sink's part of it), then fails the call. */
  private async abortBySignal(signal: AbortSignal): Promise<never> {
    await this.abort();
    throw new AbortError("upload was aborted", { cause: signal.reason });
  }

  /**
   * Not an async function on purpose: a put that needs no I/O (most of them)
   * returns one shared resolved promise instead of a new one, which was
   * measurable on uploads of 100 000s of small directories.
   */
  put(directory: Directory, bytes?: Uint8Array): Promise<void> {
    try {
      this.checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.opts.signal?.aborted) return this.abortBySignal(this.opts.signal);
    try {
      const added = this.validator.addRecord(directory, bytes);
      const max = this.opts.maxDirectories;
      if (max !== undefined && this.validator.count > max) {
        throw new ClosureError(`upload exceeds the limit of ${max} directories`);
      }
      // An entry object only for a sink that writes as the upload goes (most keep none until the commit).
      if (added >= 0 && this.sink.write) {
        this.pending.push(this.validator.entryAt(added));
        if (this.pending.length >= WRITE_BATCH) return this.writePending().catch((error) => this.failWith(error));
      }
    } catch (error) {
      return this.failWith(error);
    }
    return DONE;
  }

  private async failWith(error: unknown): Promise<never> {
    await this.fail(error);
    throw error;
  }

  /**
   * Hands the checked directories not written yet to the sink, after the
   * writes before them: a caller that does not await each put() must not get
   * two writes into the sink at once, or a commit before the last write.
   */
  private writePending(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) this.writing = this.writing.then(() => this.sink.write!(batch));
    return this.writing;
  }

  /** Ends the upload. While it runs, put() and a second close() are refused (ClosureError). */
  async close(): Promise<Digest> {
    this.checkOpen();
    if (this.opts.signal?.aborted) await this.abortBySignal(this.opts.signal);
    const commitAbort = new AbortController();
    const done = this.commitUpload(commitAbort);
    this.state = { kind: "closing", done, commitAbort };
    return done;
  }

  private async commitUpload(commitAbort: AbortController): Promise<Digest> {
    // Yield once: `state` is "closing" before anything below can fail and
    // record that, and an abort() right after close() is seen before the commit starts.
    await DONE;
    const callerSignal = this.opts.signal;
    // The caller's signal reaches the commit through commitAbort, until the commit settles.
    const stopForwarding = forwardAbort(callerSignal, commitAbort);
    const signal = commitAbort.signal;
    try {
      const closure = this.validator.finish();
      if (this.sink.write) await this.writePending();
      if (signal.aborted) throw new AbortError("upload was aborted", { cause: signal.reason });
      await this.sink.commit(closure, signal);
      this.state = { kind: "closed" };
      return closure.root;
    } catch (error) {
      // Once aborted, that is what close() reports, however the commit happened to stop.
      const reported =
        signal.aborted && !(error instanceof AbortError)
          ? new AbortError("upload was aborted", { cause: signal.reason })
          : error;
      await this.fail(reported);
      throw reported;
    } finally {
      stopForwarding();
    }
  }

  /** Records the first failure and releases what the sink holds for this upload. */
  private async fail(error: unknown): Promise<void> {
    const first = this.state.kind === "open" || this.state.kind === "closing";
    if (first) this.state = { kind: "failed", error };
    this.pending = [];
    if (first) await this.sink.abort?.();
  }

  /**
   * Abandons the upload. During close(): signals the commit to stop and waits
   * for close() to settle; resolves if nothing became visible (close() then
   * rejects with AbortError), rejects with ClosureError if the commit
   * completed first (close() resolves with the root). After close(): nothing
   * to do.
   */
  async abort(reason?: unknown): Promise<void> {
    const state = this.state;
    if (state.kind === "closing") {
      state.commitAbort.abort(reason);
      let root: Digest;
      try {
        root = await state.done;
      } catch {
        this.state = { kind: "aborted" };
        return;
      }
      throw new ClosureError(`abort() came too late: the upload was already committed as ${root}`);
    }
    const wasOpen = state.kind === "open";
    if (wasOpen || state.kind === "failed") this.state = { kind: "aborted" };
    this.pending = [];
    if (wasOpen) await this.sink.abort?.();
  }
}
