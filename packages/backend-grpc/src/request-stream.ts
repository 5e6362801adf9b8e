/**
 * The server's side of a call's HTTP/2 stream, on node's compat request and
 * response, without connect-node's universal adapters (see
 * grpc-call-handler.ts for why): a request header's value, the reason of a
 * stream that closes before its response is complete, and the response
 * writer (headers after the first chunk of the body, each chunk written as
 * it comes with 'drain' as the backpressure, then the trailers).
 */
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorOfResetCode } from "./h2-reset-codes.js";

/** A request header's value (several joined by ", ", as web Headers do), or null. */
export function headerValue(req: http2.Http2ServerRequest, name: string): string | null {
  const value = req.headers[name.toLowerCase()];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

/**
 * Calls `abort` when the stream closes before the response was complete:
 * with the status its reset code maps to (CANCEL → CANCELLED,
 * REFUSED_STREAM → UNAVAILABLE, …, as connect-node maps them), else
 * CANCELLED. A stream that closes after its response aborts nothing.
 */
export function onStreamClosed(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  abort: (reason: ConnectError) => void,
): void {
  req.once("close", () => {
    const reset = errorOfResetCode(req.stream.rstCode);
    if (reset) abort(reset);
    else if (!res.writableEnded) abort(new ConnectError("the stream closed", Code.Canceled));
  });
}

/**
 * Writes the response: the headers once the body's first chunk (or its end)
 * is there, so a call that fails before any message still sends them; each
 * chunk as it comes (a chunk being a list of buffers, written in order),
 * waiting for 'drain' when the stream's buffer is full (the HTTP/2 flow
 * control); then `trailers()` and the end. A write that
 * fails, or a stream that closes first, stops the body (its `throw`) and
 * rejects.
 */
export async function writeResponse(
  res: http2.Http2ServerResponse,
  header: Readonly<Record<string, string>>,
  body: AsyncIterable<readonly Uint8Array[]>,
  trailers: () => Record<string, string>,
): Promise<void> {
  const it = body[Symbol.asyncIterator]();
  let writing = false;
  try {
    let chunk = await it.next();
    writing = true;
    res.writeHead(200, { ...header });
    writing = false;
    for (; chunk.done !== true; chunk = await it.next()) {
      writing = true;
      let room = true;
      for (const buffer of chunk.value) room = res.write(buffer);
      if (!room) await drained(res);
      writing = false;
    }
    res.addTrailers(trailers());
    res.end();
  } catch (e) {
    if (writing) void it.throw?.(e).catch(() => {});
    // A stream the client reset or the connection lost: CANCELLED, not a failure of ours.
    throw ConnectError.from(e, res.stream.destroyed || res.stream.closed ? Code.Canceled : Code.Internal);
  } finally {
    void it.return?.()?.catch(() => {});
  }
}

/** Resolves on 'drain'; rejects on 'error', or on 'close' before it (the stream went away). */
function drained(res: http2.Http2ServerResponse): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      res.off("drain", onDrain);
      res.off("error", onError);
      res.off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (e: Error) => done(e);
    const onClose = () => done(new ConnectError("the stream closed while the response was written", Code.Canceled));
    res.on("drain", onDrain);
    res.on("error", onError);
    res.on("close", onClose);
  });
}
