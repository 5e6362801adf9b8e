/**
 * One client-streaming call of an upload (a Put of directories, or of a
 * blob's chunks), shared by GrpcDirectoryPutter and GrpcBlobWriter: the
 * messages queued at most `queueLength` ahead of the network and sent as
 * they come, the call started at the first message (or at the end), the
 * caller's signal followed while the call runs. Once the call settles,
 * `outcome` says whether the server answered, or holds the call's error (an
 * AbortError when it was aborted), for the writer to report at its next
 * step: never an unhandled rejection.
 */
import { AbortError } from "@castore-ts/core";
import { BoundedQueue } from "./bounded-queue.js";
import { CallSignal } from "./call-signal.js";
import { type CallTarget, clientStreamingCall } from "./grpc-stream-calls.js";
import { fromConnectError } from "./status.js";

export class UploadCall<T> {
  private readonly queue: BoundedQueue<Uint8Array>;
  /**
   * Aborted by cancel(), and by the caller's signal while the call runs: it
   * follows that signal only from the call's start until it settles, so a
   * finished call, or one never started, leaves nothing on it.
   */
  private readonly callSignal = new CallSignal();
  private call: Promise<T> | undefined;
  /** Set once the call has settled: whether the server answered, or the call's error. */
  outcome: { ok: true } | { ok: false; error: Error } | undefined;

  constructor(
    private readonly target: CallTarget,
    private readonly path: string,
    private readonly address: string,
    queueLength: number,
    private readonly callerSignal: AbortSignal | undefined,
    /** The answer in the response's bytes; throws (a BackendError) on a malformed one. */
    private readonly parse: (response: Uint8Array) => T,
  ) {
    this.queue = new BoundedQueue(queueLength);
  }

  /** The signal that aborted the upload (cancel()'s, or the caller's); undefined while none has. */
  get aborted(): AbortSignal | undefined {
    if (this.callSignal.signal.aborted) return this.callSignal.signal;
    return this.callerSignal?.aborted ? this.callerSignal : undefined;
  }

  /** Queues a message, starting the call; waits for room. Rejects once the call has failed. */
  async send(message: Uint8Array): Promise<void> {
    this.start();
    await this.queue.push(message);
  }

  /** No more messages: the call's answer, or its error. */
  finish(): Promise<T> {
    this.start();
    this.queue.end();
    return this.call!;
  }

  /** The call's answer once finish() was called (undefined before the call started). */
  get answer(): Promise<T> | undefined {
    return this.call;
  }

  /**
   * Cancels the call (RST_STREAM CANCEL: the server stores nothing) and fails
   * what is queued or being pushed with an AbortError; resolves once the call
   * has ended.
   */
  async cancel(reason: unknown): Promise<void> {
    this.queue.fail(new AbortError("upload was aborted", { cause: reason }));
    // No reason: the plain AbortError, which connect maps to CANCELLED.
    this.callSignal.abort(undefined);
    await this.call?.catch(() => {});
  }

  private start(): void {
    if (this.call) return;
    this.call = clientStreamingCall(this.target, this.path, this.queue.batches(), this.callSignal.signal).then(
      (response) => {
        let value: T;
        try {
          value = this.parse(response);
        } catch (e) {
          this.outcome = { ok: false, error: e as Error };
          throw e;
        }
        this.outcome = { ok: true };
        return value;
      },
      (e: unknown) => {
        const aborted = this.aborted;
        const error = aborted
          ? new AbortError("upload was aborted", { cause: aborted.reason ?? e })
          : fromConnectError(e, this.address);
        this.outcome = { ok: false, error };
        this.queue.fail(error);
        throw error;
      },
    );
    if (this.callerSignal) this.callSignal.follow(this.callerSignal);
    // Stops following the caller's signal once the call settles. Also the call's rejection handler:
    // errors are reported by the writer's next step, never as an unhandled rejection.
    const end = () => this.callSignal.end();
    this.call.then(end, end);
  }
}
