/**
 * One HTTP/2 request of the gRPC client, on the shared session manager: the
 * request body written, the response's status, headers, body and trailers
 * read. Ported from connect-node's HTTP/2 universal client
 * (`createNodeHttp2Client`, connect-es 2.2, Apache-2.0), whose error
 * behaviour it keeps (node errors and HTTP/2 reset codes become the same
 * ConnectErrors), minus its fixed costs per call, which made a warm call
 * about twice what node's http2 costs:
 * - no URL parsed, no web Headers built for the request or for a response
 *   that succeeds (headers stay node's objects; web Headers are made only
 *   for connect's checks of a failed response: `webHeaders`);
 * - no ConnectError (with its stack) made when a call completes: connect's
 *   "sentinel" made one at every close;
 * - the request body is written chunk after chunk as write() accepts it
 *   ('drain' when the stream's buffer is full: the flow control), and the
 *   end of stream goes with the last chunk, in one DATA frame: connect-node
 *   waited for each write's callback (a turn of the event loop) and sent the
 *   end in a frame of its own, which the server waited for.
 */
import type * as http2 from "node:http2";
import { constants as h2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { errorOfResetCode } from "./h2-reset-codes.js";

export interface H2Response {
  /** The HTTP status. */
  status: number;
  /** The response headers (node's object: lowercase names, pseudo-headers included). */
  header: http2.IncomingHttpHeaders;
  /** The response body's chunks. */
  body: AsyncIterable<Uint8Array>;
  /** The trailers, once the body has ended (empty if none came). */
  trailer(): http2.IncomingHttpHeaders;
  /**
   * Ends the call from this side, as aborting its signal would (RST_STREAM
   * CANCEL, CANCELLED for whatever still waits on it); nothing once it is
   * over. A caller that stops reading early says so here, rather than
   * through a signal of its own combined with its caller's.
   */
  cancel(): void;
}

/**
 * Sends a POST to `path` with `header` and the chunks of `body`, then
 * resolves with the response once its headers arrive. Aborting `signal`
 * cancels the stream (RST_STREAM CANCEL) and rejects with the signal's
 * reason as a ConnectError.
 */
export function h2Call(
  sessionManager: Http2SessionManager,
  path: string,
  header: http2.OutgoingHttpHeaders,
  /** The request body: chunks in hand (an array: written with the end of stream at once), or as they come. */
  body: readonly Uint8Array[] | AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
): Promise<H2Response> {
  const call = new CallState(signal);
  return new Promise<H2Response>((resolve, reject) => {
    call.onError(reject);
    if (call.isClosed()) return;
    sessionManager.request("POST", path, header, {}).then(
      (stream) => {
        call.onError((reason) => {
          if (stream.closed) return;
          // gRPC maps a cancelled call to CANCEL, anything else to INTERNAL_ERROR.
          stream.close(reason.code === Code.Canceled ? h2.NGHTTP2_CANCEL : h2.NGHTTP2_INTERNAL_ERROR);
        });
        stream.on("error", (e: Error) => {
          if (stream.writableEnded && isWriteAfterEnd(e)) return;
          call.error(e);
        });
        stream.on("close", () => {
          const err = errorOfResetCode(stream.rstCode);
          if (err) call.error(err);
        });
        let trailer: http2.IncomingHttpHeaders = {};
        stream.on("trailers", (t: http2.IncomingHttpHeaders) => (trailer = t));
        if (Array.isArray(body)) sendChunks(body as readonly Uint8Array[], stream);
        else void sendBody(body as AsyncIterable<Uint8Array>, stream, call);
        stream.on("response", (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
          resolve({
            status: headers[":status"] ?? 0,
            header: headers,
            body: responseBody(call, stream, sessionManager),
            trailer: () => trailer,
            cancel: () => call.error(new ConnectError("the call was cancelled by its caller", Code.Canceled)),
          });
        });
      },
      (reason: unknown) => call.error(reason),
    );
  });
}

/** Web Headers of node's headers (pseudo-headers left out), for connect's validators. */
export function webHeaders(nodeHeaders: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [k, v] of Object.entries(nodeHeaders)) {
    if (k.startsWith(":") || v === undefined) continue;
    if (Array.isArray(v)) for (const e of v) out.append(k, e);
    else out.append(k, String(v));
  }
  return out;
}

/** Writes chunks in hand, the last with the end of stream (node buffers what the flow control holds back). */
function sendChunks(chunks: readonly Uint8Array[], stream: http2.ClientHttp2Stream): void {
  for (let i = 0; i < chunks.length - 1; i++) stream.write(chunks[i]);
  if (chunks.length > 0) stream.end(chunks[chunks.length - 1]);
  else stream.end();
}

/**
 * Writes the body. A chunk taken is held while the body's next one comes
 * within the same run of promise callbacks, so that the end of stream goes
 * with the last chunk (one DATA frame for a one-message call); when the
 * next one is not ready by then, the held chunk is written at once (the
 * producer may be waiting for room, or for the network). Before each take,
 * the producer gets the rest of the current run of callbacks to queue more,
 * so a fast producer's chunks go out in large batches (connect-node's wait
 * for each write's callback did that, but also delayed every call's end of
 * stream by a turn of the event loop). Writes wait for 'drain' when the
 * stream's buffer is full: the HTTP/2 flow control.
 */
async function sendBody(body: AsyncIterable<Uint8Array>, stream: http2.ClientHttp2Stream, call: CallState) {
  const it = body[Symbol.asyncIterator]();
  try {
    let next = await it.next();
    let held: Uint8Array | undefined;
    for (;;) {
      if (call.isClosed()) return;
      if (next.done) {
        if (held !== undefined) stream.end(held);
        else stream.end();
        return;
      }
      if (held !== undefined && !(await write(stream, held, call))) return;
      held = next.value;
      await nextTurn();
      if (call.isClosed()) return;
      const pending = it.next();
      pending.catch(() => {}); // awaited below unless the call ends first: never unhandled
      const ready = await Promise.race([pending, nextTurn()]);
      if (ready === NOT_YET) {
        if (!(await write(stream, held, call))) return;
        held = undefined;
        next = await pending;
      } else {
        next = ready;
      }
    }
  } catch (e) {
    call.error(e);
  }
}

const NOT_YET = Symbol("not yet");
/** Settles after the promise callbacks queued now (process.nextTick runs once they are done). */
const nextTurn = () => new Promise<typeof NOT_YET>((resolve) => process.nextTick(resolve, NOT_YET));

/** Writes a chunk; waits for 'drain' when the buffer is full. False when the call ended meanwhile. */
function write(stream: http2.ClientHttp2Stream, chunk: Uint8Array, call: CallState): Promise<boolean> {
  if (stream.write(chunk)) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      stream.off("drain", onDrain);
      stream.off("close", onClose);
      resolve(ok && !call.isClosed());
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    stream.on("drain", onDrain);
    stream.on("close", onClose);
  });
}

/** The response body, ending the call with the first error; every read tells the manager the connection is alive. */
function responseBody(
  call: CallState,
  stream: http2.ClientHttp2Stream,
  sessionManager: Http2SessionManager,
): AsyncIterable<Uint8Array> {
  const inner = stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  return {
    [Symbol.asyncIterator]: () => ({
      async next() {
        const r = await call.race(inner.next());
        if (r.done === true) call.close();
        sessionManager.notifyResponseByteRead(stream);
        return r;
      },
      throw(e: unknown) {
        call.error(e);
        throw e;
      },
    }),
  };
}

/**
 * What ends a call: the first error (a node error, a reset, the signal) fails
 * whatever waits on it, once; close() ends it quietly.
 */
class CallState {
  private closed = false;
  private closedError: ConnectError | undefined;
  private listeners: ((e: ConnectError) => void)[] = [];
  private rejectRace: ((e: ConnectError) => void) | undefined;
  private readonly onAbort = () => this.error(this.signal!.reason ?? new Error("This operation was aborted"));

  constructor(private readonly signal: AbortSignal | undefined) {
    if (signal) {
      signal.addEventListener("abort", this.onAbort);
      if (signal.aborted) this.onAbort();
    }
  }

  isClosed(): boolean {
    return this.closed;
  }

  error(reason: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.closedError = reason instanceof ConnectError ? reason : connectErrorFromNodeReason(reason);
    this.rejectRace?.(this.closedError);
    for (const listener of this.listeners) listener(this.closedError);
    this.cleanup();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cleanup();
  }

  onError(listener: (e: ConnectError) => void): void {
    if (this.closed) {
      if (this.closedError) listener(this.closedError);
    } else this.listeners.push(listener);
  }

  /** `promise`, or the call's error if it comes first. */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.closed && this.closedError) {
      promise.catch(() => {}); // its own failure (e.g. the stream's premature close) is the same end
      return Promise.reject(this.closedError);
    }
    return new Promise<T>((resolve, reject) => {
      this.rejectRace = reject;
      promise.then(
        (value) => {
          this.rejectRace = undefined;
          resolve(value);
        },
        (reason: unknown) => {
          this.rejectRace = undefined;
          reject(reason);
        },
      );
    });
  }

  private cleanup(): void {
    this.signal?.removeEventListener("abort", this.onAbort);
    this.listeners = [];
    this.rejectRace = undefined;
  }
}

function isWriteAfterEnd(e: unknown): boolean {
  return errorChain(e).some((c) => (c as NodeJS.ErrnoException).code === "ERR_STREAM_WRITE_AFTER_END");
}

function errorChain(reason: unknown): Error[] {
  const chain: Error[] = [];
  while (reason instanceof Error && !chain.includes(reason)) {
    chain.push(reason);
    if (!("cause" in reason)) break;
    reason = reason.cause;
  }
  return chain;
}

/** connect-node's mapping of a node error to a ConnectError (connectErrorFromNodeReason). */
function connectErrorFromNodeReason(reason: unknown): ConnectError {
  const codes = errorChain(reason).map((c) => (c as NodeJS.ErrnoException).code);
  let code = Code.Internal;
  if (codes.includes("ERR_STREAM_WRITE_AFTER_END")) code = Code.Aborted;
  else if (codes.some((c) => c === "ERR_STREAM_DESTROYED" || c === "ERR_HTTP2_INVALID_STREAM" || c === "ECONNRESET"))
    code = Code.Aborted;
  else if (codes.some((c) => c === "ETIMEDOUT" || c === "ENOTFOUND" || c === "EAI_AGAIN" || c === "ECONNREFUSED"))
    code = Code.Unavailable;
  const ce = ConnectError.from(reason, code);
  if (ce !== reason) ce.cause = reason;
  return ce;
}
