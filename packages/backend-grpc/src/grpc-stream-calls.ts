/**
 * The client's two gRPC calls, server streaming (Get) and client streaming
 * (Put), on the shared Http2SessionManager (one request each: h2-call.ts)
 * and connect's gRPC protocol helpers (request headers, response and
 * trailer validation, status parsing; the checks of a response that
 * succeeded are done here on node's header objects, without web Headers).
 *
 * Why not connect's `createClient`: its transport runs every message through
 * a chain of about six async generators (split, decompress, parse, trailer
 * check, …) and parses with protobuf-es; for a stream of 100 000 small
 * directories that chain costs several times what checking a directory
 * does. Here a received chunk is split into messages in one synchronous pass
 * and handed over as a batch of raw bytes (decoded by core's codec), and an
 * upload joins the messages that are ready into one write. The wire is the
 * same: one Directory per gRPC message, standard gRPC framing and status.
 *
 * A stream the server refused unprocessed (RST_STREAM or GOAWAY beyond its
 * id: REFUSED_STREAM, RFC 9113 §8.7), as when a server closes a connection
 * it found idle just as a call was sent on it, is sent again, on a new
 * connection, before any response (gRPC's "transparent retry"). So is a Get
 * the server's GOAWAY cut off before its first message, whatever the
 * GOAWAY's error code (a read: sending it again changes nothing).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http2 from "node:http2";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { requestHeader, validateResponse, validateTrailer } from "@connectrpc/connect/protocol-grpc";
import { type H2Response, h2Call, webHeaders } from "./h2-call.js";
import { envelope, EnvelopeReader, FLAG_COMPRESSED } from "./grpc-framing.js";
import { GoawayStreamError } from "./http2-connection.js";

/** The messages of a chunk of a response: no compression was negotiated, so none may be compressed. */
function uncompressed(reader: EnvelopeReader, chunk: Uint8Array): Uint8Array[] {
  const envelopes = reader.push(chunk);
  const out = new Array<Uint8Array>(envelopes.length);
  for (let i = 0; i < envelopes.length; i++) {
    if (envelopes[i].flags & FLAG_COMPRESSED) {
      throw new ConnectError("received a compressed message, but no compression was negotiated", Code.Internal);
    }
    out[i] = envelopes[i].data;
  }
  return out;
}

export interface CallTarget {
  /** The connection every call goes on. */
  sessionManager: Http2SessionManager;
  /** The request headers of every call (callTarget makes them once). */
  header: http2.OutgoingHttpHeaders;
  /** Largest message accepted from the server. */
  maxMessageBytes: number;
}

/** A call target on `sessionManager`, with a bearer token for the `authorization` header if given. */
export function callTarget(
  sessionManager: Http2SessionManager,
  maxMessageBytes: number,
  authToken?: string,
): CallTarget {
  const h = requestHeader(true, undefined, undefined);
  if (authToken !== undefined) h.set("authorization", `Bearer ${authToken}`);
  const header: http2.OutgoingHttpHeaders = {};
  h.forEach((value, key) => (header[key] = value));
  return { sessionManager, header, maxMessageBytes };
}

/**
 * Checks a response's status and headers as connect's validateResponse
 * does; a plain success (200, a gRPC protobuf content type, no status in
 * the headers) is recognised without building web Headers.
 */
function checkResponse(response: H2Response): { foundStatus: boolean } {
  const contentType = response.header["content-type"];
  if (
    response.status === 200 &&
    (contentType === "application/grpc" || contentType === "application/grpc+proto") &&
    response.header["grpc-status"] === undefined
  ) {
    return { foundStatus: false };
  }
  const { foundStatus, headerError } = validateResponse(response.status, webHeaders(response.header));
  if (headerError) throw headerError;
  return { foundStatus };
}

/** Checks the trailers as connect's validateTrailer does; grpc-status 0 alone needs no web Headers. */
function checkTrailer(response: H2Response): void {
  const trailer = response.trailer();
  if (trailer["grpc-status"] === "0" && trailer["grpc-status-details-bin"] === undefined) return;
  validateTrailer(webHeaders(trailer), webHeaders(response.header));
}

/** Attempts of a call whose stream the server refused unprocessed. */
const MAX_ATTEMPTS = 3;
/** An upload is sent again after a refusal only if it had sent at most this much (it keeps that much for it). */
const REPLAY_LIMIT_BYTES = 1024 * 1024;

/** Whether the server refused the call's stream without processing it (so sending it again is safe). */
export function isRefusedStream(e: unknown): boolean {
  // A status the server sent is an answer, whatever its message says.
  if (e instanceof ConnectError && e.isWireError) return false;
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    if (c instanceof GoawayStreamError) return c.refused;
    if (/\b(?:NGHTTP2_)?REFUSED_STREAM\b/.test(c.message)) return true;
  }
  return false;
}

/** Whether the call died with its connection, closed by the server's GOAWAY (processed or not). */
function isClosedByGoaway(e: unknown): boolean {
  if (e instanceof ConnectError && e.isWireError) return false;
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    if (c instanceof GoawayStreamError) return true;
  }
  return false;
}

/**
 * A server-streaming call: sends `request`, yields the response messages in
 * batches (one batch per received chunk). Leaving the loop early, or
 * aborting `signal`, cancels the call (RST_STREAM CANCEL).
 */
export async function* serverStreamingCall(
  target: CallTarget,
  path: string,
  request: Uint8Array,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array[], void, undefined> {
  // The attempt in progress: cancelled if the caller leaves before its end
  // (not through a signal of our own combined with the caller's: see H2Response.cancel).
  let response: H2Response | undefined;
  let completed = false;
  try {
    for (let attempt = 1; ; attempt++) {
      // Nothing of a call is handed on until its first message: until then a
      // Get (a read, no effect on the server) can be sent again.
      let yielded = false;
      try {
        response = await h2Call(target.sessionManager, path, target.header, [envelope([request])], signal);
        const { foundStatus } = checkResponse(response);
        const reader = new EnvelopeReader(target.maxMessageBytes);
        for await (const chunk of response.body) {
          const messages = uncompressed(reader, chunk);
          if (messages.length > 0) {
            yielded = true;
            yield messages;
          }
        }
        reader.end();
        if (!foundStatus) checkTrailer(response);
        completed = true;
        return;
      } catch (e) {
        // Refused unprocessed, or cut off by the server's GOAWAY before any
        // message (a server on nghttp2 sends one with INTERNAL_ERROR after a
        // burst of client resets, and node then fails every stream on it):
        // sent again, on a new connection.
        const retryable = isRefusedStream(e) || (!yielded && isClosedByGoaway(e));
        if (attempt < MAX_ATTEMPTS && retryable && !signal?.aborted) continue;
        throw e;
      }
    }
  } finally {
    if (!completed) response?.cancel();
  }
}

/**
 * A client-streaming call: sends every batch of `requests` as one write
 * (each message of a batch its own gRPC message) and resolves to the single
 * response message. Aborting `signal` cancels the call with RST_STREAM
 * (never a clean end of stream; see http2-connection.ts).
 */
export async function clientStreamingCall(
  target: CallTarget,
  path: string,
  requests: AsyncIterable<Uint8Array[]>,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const body = new ReplayableBody(requests);
  let response: H2Response;
  for (let attempt = 1; ; attempt++) {
    try {
      response = await h2Call(target.sessionManager, path, target.header, body.stream(), signal);
      break;
    } catch (e) {
      if (attempt < MAX_ATTEMPTS && isRefusedStream(e) && !signal?.aborted && body.replayable) continue;
      throw e;
    }
  }
  body.release();
  const { foundStatus } = checkResponse(response);
  const reader = new EnvelopeReader(target.maxMessageBytes);
  const messages: Uint8Array[] = [];
  for await (const chunk of response.body) messages.push(...uncompressed(reader, chunk));
  reader.end();
  if (!foundStatus) checkTrailer(response);
  if (messages.length !== 1) {
    throw new ConnectError(`protocol error: expected one response message, got ${messages.length}`, Code.Unimplemented);
  }
  return messages[0];
}

/**
 * An upload's request body that can be sent again from its start while what
 * was taken from `requests` is at most REPLAY_LIMIT_BYTES: each stream()
 * yields the envelopes taken so far, then takes more. One pull at a time is
 * shared by every stream(), so a batch taken for an abandoned attempt is not
 * lost.
 */
class ReplayableBody {
  private readonly iterator: AsyncIterator<Uint8Array[]>;
  /** Envelopes taken so far; entries before `dropped` are released. */
  private readonly taken: (Uint8Array | undefined)[] = [];
  private dropped = 0;
  private takenBytes = 0;
  private pulling: Promise<boolean> | undefined;
  replayable = true;

  constructor(requests: AsyncIterable<Uint8Array[]>) {
    this.iterator = requests[Symbol.asyncIterator]();
  }

  /** Stops keeping envelopes for a replay (the call was accepted, or is past the limit). */
  release(): void {
    this.replayable = false;
    for (; this.dropped < this.taken.length; this.dropped++) this.taken[this.dropped] = undefined;
  }

  /** Takes the next non-empty batch as one envelope; false at the end. */
  private pull(): Promise<boolean> {
    this.pulling ??= (async () => {
      try {
        for (;;) {
          const next = await this.iterator.next();
          if (next.done) return false;
          if (next.value.length === 0) continue;
          const e = envelope(next.value);
          this.taken.push(e);
          this.takenBytes += e.length;
          if (this.takenBytes > REPLAY_LIMIT_BYTES) this.replayable = false;
          return true;
        }
      } finally {
        this.pulling = undefined;
      }
    })();
    return this.pulling;
  }

  async *stream(): AsyncGenerator<Uint8Array> {
    // A replay starts from the beginning: only possible while nothing was released.
    let i = this.dropped;
    for (;;) {
      while (i < this.taken.length) {
        // An abandoned attempt's stream resumed late: what it would send was released.
        if (i < this.dropped) i = this.dropped;
        if (i >= this.taken.length) break;
        const e = this.taken[i]!;
        // Past the limit, an envelope is released once handed out.
        if (!this.replayable) {
          this.taken[i] = undefined;
          this.dropped = i + 1;
        }
        i++;
        yield e;
      }
      if (!(await this.pull())) return;
    }
  }
}
