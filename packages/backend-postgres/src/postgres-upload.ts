/**
 * PostgresUpload: the store's side of one upload while core is still checking
 * it (DirectoryStore.openUpload). A large upload streams: its checked batches
 * go into one binary COPY inside a transaction as they arrive, so the server
 * stores rows on its core while castore hashes the next ones on its own, and
 * commit() only ends the COPY and commits. Anything that goes wrong with the
 * stream (a digest stored already or racing in from another upload, a
 * deadlock or lock timeout against another streaming upload, a broken
 * connection, a client that stalls) rolls it back and gives the connection
 * back; commit() then stores the whole closure the close-time way
 * (putClosure, which skips stored rows, survives races and retries a broken
 * connection). Nothing is visible before commit() resolves, nothing after
 * abort().
 *
 * Small uploads never stream: below the threshold they are buffered (by
 * reference) and go to putClosure at commit, holding no connection while the
 * client sends them.
 */
import {
  AbortError,
  ClosureError,
  throwIfAborted,
  type ClosureEntry,
  type ClosureSink,
  type ValidatedClosure,
} from "@castore-ts/core";
import type { StreamingCopy } from "./postgres-streaming-copy.js";

/** What an upload needs from its store. */
export interface UploadHost {
  /**
   * A streaming COPY if a streaming slot is free (about half the pool), else
   * undefined: the upload then tries again at its next batch, or stores at close.
   */
  openStream(onIdleFailure: () => void): StreamingCopy | undefined;
  /** Creates the schema if needed. */
  init(): Promise<void>;
  /** The close-time path: stores a checked closure, all or nothing, whatever is stored already. */
  putClosure(entries: ClosureEntry[], signal?: AbortSignal): Promise<void>;
}

export interface UploadPolicy {
  /** Whether this upload may stream at all. */
  stream: boolean;
  /** An upload streams once its written entries exceed this many canonical bytes. */
  streamAfterBytes: number;
  /**
   * A streaming upload whose client sends nothing for this long gives its
   * connection back and stores at close instead. (The server's
   * idle_in_transaction_session_timeout cannot do this: a backend waiting for
   * COPY data is active, not idle.) It also bounds how long an upload that is
   * abandoned without abort() holds a connection.
   */
  idleTimeoutMs: number;
}

type Phase =
  /** Below the threshold: nothing sent, nothing held. */
  | { kind: "buffering"; entries: ClosureEntry[]; bytes: number }
  | { kind: "streaming"; copy: StreamingCopy }
  /** Not streaming (not allowed, or given up): commit() stores everything through putClosure. */
  | { kind: "atClose" }
  | { kind: "finished" };

export class PostgresUpload implements ClosureSink {
  private phase: Phase;
  private idleTimer: NodeJS.Timeout | undefined;
  /** A stream being rolled back after it was given up: commit() and abort() wait for it. */
  private cancelling: Promise<void> = Promise.resolve();

  constructor(
    private readonly host: UploadHost,
    private readonly policy: UploadPolicy,
    private readonly signal?: AbortSignal,
  ) {
    this.phase = policy.stream ? { kind: "buffering", entries: [], bytes: 0 } : { kind: "atClose" };
  }

  async write(entries: ClosureEntry[]): Promise<void> {
    this.stopIdleTimer();
    throwIfAborted(this.signal);
    const phase = this.phase;
    if (phase.kind === "buffering") {
      for (const entry of entries) {
        phase.entries.push(entry);
        phase.bytes += entry.bytes.length;
      }
      if (phase.bytes > this.policy.streamAfterBytes) await this.startStreaming(phase.entries);
    } else if (phase.kind === "streaming") {
      try {
        await phase.copy.write(entries, this.signal);
      } catch (error) {
        await this.giveUpStreaming(phase.copy, error);
      }
    } else if (phase.kind === "finished") {
      throw new ClosureError("upload already finished");
    }
    if (this.phase.kind === "streaming") this.startIdleTimer();
  }

  private async startStreaming(buffered: ClosureEntry[]): Promise<void> {
    // Every streaming slot taken: keep buffering and try again at the next batch.
    const copy = this.host.openStream(() => {
      // Failed between batches: give the connection back now, not at the next batch.
      this.giveUpStreaming(copy!, undefined).catch(() => undefined);
    });
    if (!copy) return;
    this.phase = { kind: "streaming", copy };
    try {
      await this.host.init();
      if (!(await copy.start(buffered, this.signal))) await this.giveUpStreaming(copy, undefined);
    } catch (error) {
      await this.giveUpStreaming(copy, error);
    }
  }

  /**
   * Stops streaming for good: the COPY is rolled back and its connection given
   * back; commit() will store the whole upload through putClosure. Only an
   * abort (the signal, or abort() meanwhile) fails the caller's write.
   */
  private async giveUpStreaming(copy: StreamingCopy, error: unknown): Promise<void> {
    const current = this.phase.kind === "streaming" && this.phase.copy === copy;
    if (current) this.phase = { kind: "atClose" };
    this.cancelling = copy.cancel();
    await this.cancelling;
    if (error instanceof AbortError) throw error;
    if (this.phase.kind === "finished" && !current) throw new AbortError("upload aborted");
  }

  /**
   * Ends the COPY and commits, or stores the closure through putClosure. It
   * does not take ClosureSink's commit signal: the upload's own signal (the
   * caller's, given at openUpload) is what the COPY and putClosure honour.
   */
  async commit(closure: ValidatedClosure): Promise<void> {
    const entries = closure.entries;
    this.stopIdleTimer();
    const phase = this.phase;
    this.phase = { kind: "finished" };
    if (phase.kind === "finished") throw new ClosureError("upload already finished");
    if (phase.kind === "streaming") {
      // Every entry of the closure went into the COPY (a safety net: core writes them all).
      if (phase.copy.written === entries.length) {
        try {
          await phase.copy.finish();
          return;
        } catch {
          // The COPY or COMMIT failed (e.g. a row another upload committed meanwhile): store the close-time way.
        }
      }
      await phase.copy.cancel();
    }
    await this.cancelling;
    await this.host.putClosure(entries, this.signal);
  }

  async abort(): Promise<void> {
    this.stopIdleTimer();
    const phase = this.phase;
    this.phase = { kind: "finished" };
    if (phase.kind === "streaming") await phase.copy.cancel();
    await this.cancelling;
  }

  private startIdleTimer(): void {
    this.idleTimer = setTimeout(() => {
      const phase = this.phase;
      if (phase.kind === "streaming") this.giveUpStreaming(phase.copy, undefined).catch(() => undefined);
    }, this.policy.idleTimeoutMs);
    this.idleTimer.unref();
  }

  private stopIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
