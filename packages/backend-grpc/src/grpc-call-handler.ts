/**
 * The server side of one gRPC call, shared by the castore services
 * (DirectoryService, BlobService): routing by path, bearer authentication,
 * content type, grpc-timeout, compression negotiation, the call's signal
 * (client reset, deadline, idle request, shutdown), request message framing
 * and the response body with its trailer status. A route only decodes its
 * request messages and produces its response messages (a MessageSource).
 *
 * Built on node's http2 compat request and response (read and written here:
 * request-stream.ts) and connect's gRPC protocol helpers (content type,
 * grpc-timeout, compression negotiation, trailer status). Not connect-node's
 * universal request/response adapters: per call they parsed a URL, copied
 * the headers into a web Headers both ways, and aborted an AbortController
 * at every stream's close (a DOMException with its stack each time), more
 * than a third of a small call's server time.
 * What is not connect's is the per-message path. connect's handler runs every
 * response message through about six async generators (serialize, envelope,
 * compress, join, …), about 8–10 µs per message here, more than reading and
 * checking the directory itself; a recursive Get of 100 000 directories spent
 * most of its time there. Here a message is encoded by the route, framed, and
 * joined with the others ready at the same time into one write
 * (messageBody): one message per gRPC frame on the wire, several per
 * HTTP/2 DATA frame.
 */
import type * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { type Compression, compressionNegotiate } from "@connectrpc/connect/protocol";
import {
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerGrpcMessage,
  headerTimeout,
  parseContentType,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import { isCastoreError } from "@castore-ts/core";
import { type MessageSource, messageBody } from "./message-batcher.js";
import { EnvelopeReader, FLAG_COMPRESSED } from "./grpc-framing.js";
import { invalidArgument, toConnectError } from "./status.js";
import { parseGrpcTimeout } from "./grpc-timeout.js";
import { CallSignal } from "./call-signal.js";
import { percentEncodeGrpcMessage } from "./status-response.js";
import { headerValue, onStreamClosed, writeResponse } from "./request-stream.js";
import type { BearerTokens } from "./auth.js";

/** A pino-compatible logger; the server is silent without one. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** One running call, as a route sees it. */
export interface Call {
  /** The method's name, for logs ("Get", "Read", …). */
  rpc: string;
  /** Aborted when the call ends early: client reset, deadline, idle request, server shutdown. */
  signal: AbortSignal;
  /** The request's messages, in batches (one per received chunk), each at most maxMessageBytes. */
  messages(): AsyncGenerator<Uint8Array[]>;
}

/** One method: opening it reads what it needs of the request and returns the response's messages. */
export interface Route {
  rpc: string;
  /** Rejecting (before any message) ends the call with that error's status; so does a failing item. */
  open(call: Call): Promise<MessageSource<unknown>>;
  /** Most bytes of response messages read ahead and joined into one write (default 64 KiB). */
  writeBatchBytes?: number;
}

export interface CallHandlerOptions {
  /** Largest single request message (compressed and decompressed). */
  maxMessageBytes: number;
  /** A call whose request brings nothing new for this long ends with DEADLINE_EXCEEDED (0 or undefined: no timer). */
  idleTimeoutMs?: number;
  /** Accepted bearer tokens; without, calls are not authenticated. */
  authTokens?: BearerTokens;
  /** Aborting it cancels every running call (server shutdown). */
  shutdownSignal: AbortSignal;
  logger: Logger;
}

/** Most bytes of response messages joined into one write. */
const WRITE_BATCH_BYTES = 64 * 1024;
/** Request compressions accepted (responses are never compressed). */
const ACCEPT_COMPRESSION: Compression[] = [compressionGzip, compressionBrotli];

/** The node request handler serving `routes` (path → method); any other path is UNIMPLEMENTED. */
export function createCallHandler(
  routes: ReadonlyMap<string, Route>,
  opts: CallHandlerOptions,
): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void {
  const { logger } = opts;

  return (req, res) => {
    const route = routes.get(req.url.split("?", 1)[0]);
    if (opts.authTokens && !opts.authTokens.accepts(req.headers.authorization)) {
      // Nothing of the request is read, and nothing of the header is logged.
      logger.debug(
        { path: route === undefined ? "unknown" : req.url.split("?", 1)[0] },
        "call refused: not authenticated",
      );
      writeStatusOnly(
        res,
        new ConnectError("missing or invalid bearer token (authorization: Bearer …)", Code.Unauthenticated),
      );
      return;
    }
    if (route === undefined || req.method !== "POST") {
      writeStatusOnly(res, new ConnectError(`unknown method ${req.method} ${req.url}`, Code.Unimplemented));
      return;
    }
    const contentType = parseContentType(req.headers["content-type"] ?? null);
    if (contentType === undefined || !contentType.binary) {
      res.writeHead(415).end();
      return;
    }
    const timeout = parseGrpcTimeout(headerValue(req, headerTimeout));
    const compression = compressionNegotiate(
      ACCEPT_COMPRESSION,
      headerValue(req, headerEncoding),
      headerValue(req, headerAcceptEncoding),
      headerAcceptEncoding,
    );
    // The call's sources of an abort call it directly: an AbortController
    // each (the stream's close, the client's reset, the idle timer, the
    // deadline) cost about a tenth of a warm call's CPU on the server.
    const callSignal = new CallSignal().follow(opts.shutdownSignal);
    const abort = (reason: unknown) => callSignal.abort(reason);
    onStreamClosed(req, res, abort);
    onClientAborted(req, abort);
    if (timeout.timeoutMs !== undefined) onDeadline(timeout.timeoutMs, res, abort);
    // Every call ends with its stream's close, whatever ended it.
    res.once("close", () => callSignal.end());
    const { signal } = callSignal;
    const method = route.rpc;
    const call: Call = {
      rpc: method,
      signal,
      messages: () =>
        requestMessages(
          watchedBody(req as AsyncIterable<Uint8Array>, opts.idleTimeoutMs ?? 0, abort, signal),
          compression.request,
          opts.maxMessageBytes,
        ),
    };
    async function open(): Promise<MessageSource<unknown>> {
      if (timeout.error) throw timeout.error;
      if (compression.error) throw compression.error;
      return route!.open(call);
    }
    // OK unless onEnd sets an error's status (a web Headers only then: most calls succeed).
    let trailer: Record<string, string> = OK_TRAILER;
    function onEnd(error: unknown): void {
      if (error === undefined) return;
      const status = statusOf(error, call.signal);
      if (status.code === Code.Internal || status.code === Code.Unavailable || status.code === Code.Unknown) {
        logger.warn({ rpc: method, code: Code[status.code], err: error }, "call failed");
      } else {
        logger.debug({ rpc: method, code: Code[status.code], msg: status.rawMessage }, "call refused");
      }
      trailer = statusTrailer(status);
    }
    const body = messageBody(open, {
      maxBytes: route.writeBatchBytes ?? WRITE_BATCH_BYTES,
      signal: call.signal,
      onEnd,
    });
    writeResponse(res, RESPONSE_HEADER, body, () => trailer).catch((reason: unknown) => {
      const code = ConnectError.from(reason).code;
      // Aborted/Canceled: the client went away while we were writing.
      if (code !== Code.Aborted && code !== Code.Canceled) {
        logger.warn({ rpc: method, err: reason }, "writing the response failed");
      }
    });
  };
}

/**
 * The status for an error. A call whose signal was aborted says why
 * (DEADLINE_EXCEEDED for its deadline or the idle timer, CANCELLED for its
 * client, UNAVAILABLE for the shutdown), also when what failed is the
 * backend reporting the abort (an AbortError).
 */
function statusOf(e: unknown, signal: AbortSignal): ConnectError {
  if (!(e instanceof ConnectError) && signal.aborted && (!isCastoreError(e) || e.code === "ABORTED")) {
    return ConnectError.from(signal.reason, Code.Canceled);
  }
  return toConnectError(e);
}

/**
 * Calls `abort` with DEADLINE_EXCEEDED once the client's deadline
 * (grpc-timeout, whole ms a timer can take) has passed; the timer stops when
 * the response closes. A timer rather than AbortSignal.timeout(), which
 * reports a TimeoutError (shown as CANCELLED) and keeps running after the call.
 */
function onDeadline(timeoutMs: number, res: http2.Http2ServerResponse, abort: (reason: ConnectError) => void): void {
  const timer = setTimeout(
    () =>
      abort(
        new ConnectError(
          `deadline exceeded: the call took longer than its grpc-timeout (${timeoutMs} ms)`,
          Code.DeadlineExceeded,
        ),
      ),
    timeoutMs,
  );
  res.once("close", () => clearTimeout(timer));
}

/** The request's messages in batches (one per received chunk), decompressed, each at most `maxBytes`. */
async function* requestMessages(
  body: AsyncIterable<Uint8Array> | unknown,
  compression: Compression | null,
  maxBytes: number,
): AsyncGenerator<Uint8Array[]> {
  const reader = new EnvelopeReader(maxBytes);
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    const envelopes = reader.push(chunk);
    if (envelopes.length === 0) continue;
    const batch: Uint8Array[] = [];
    for (const { flags, data } of envelopes) {
      if (!(flags & FLAG_COMPRESSED)) {
        batch.push(data);
      } else if (compression === null) {
        throw new ConnectError(
          "received a compressed message, but the request declared no grpc-encoding",
          Code.Internal,
        );
      } else {
        batch.push(await compression.decompress(data, maxBytes));
      }
    }
    yield batch;
  }
  reader.end();
}

/**
 * The request body, failing with DEADLINE_EXCEEDED (and calling `abort`, so
 * the call's signal tells the backend) when no chunk arrives for `timeoutMs`
 * (0: never), and with the reason of the call's `signal` as soon as it is
 * aborted (the deadline passed, the server shuts down): a client that sends
 * nothing is not waited for beyond either. The idle timer runs only while
 * waiting for the client, not while the server works on what it received.
 */
async function* watchedBody(
  body: AsyncIterable<Uint8Array>,
  timeoutMs: number,
  abort: (reason: ConnectError) => void,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const r = await nextOrStop(it.next(), timeoutMs, signal);
      if (r === "aborted") throw signal.reason;
      if (r === "idle") {
        const error = new ConnectError(`no request data for ${timeoutMs} ms: the call is idle`, Code.DeadlineExceeded);
        abort(error);
        throw error;
      }
      if (r.done) return;
      yield r.value;
    }
  } finally {
    // Stop reading the request (a no-op once it has ended).
    void Promise.resolve(it.return?.()).catch(() => {});
  }
}

/**
 * The next chunk, or "idle" after `timeoutMs` without one (0: never), or
 * "aborted" when `signal` is. The abort listener and the timer live for this
 * one wait only. (Racing every chunk against one promise that lives as long
 * as the call, as this once did, leaves a reaction on that promise per race,
 * each holding the race's result: every received chunk stayed reachable until
 * the call ended, and a 4 GiB upload held 4 GiB.)
 */
function nextOrStop<T>(next: Promise<T>, timeoutMs: number, signal: AbortSignal): Promise<T | "idle" | "aborted"> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const stop = (why: "idle" | "aborted") => {
      done();
      next.catch(() => {}); // settles later, unobserved
      resolve(why);
    };
    const onAbort = () => stop("aborted");
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs > 0) timer = setTimeout(() => stop("idle"), timeoutMs);
    next.then(
      (value) => {
        done();
        resolve(value);
      },
      (error: unknown) => {
        done();
        reject(error);
      },
    );
  });
}

/**
 * The one request message of a unary or server-streaming call. None or more than one is the client's
 * mistake: INVALID_ARGUMENT, as castore answers every malformed request.
 * (Others differ: tonic, behind tvix and snix, answers none with INTERNAL
 * "Missing request message." and silently drops extra ones; grpc-go and
 * grpc-java answer INTERNAL for both.)
 */
export async function singleMessage(
  batches: AsyncGenerator<Uint8Array[]>,
  rpc: string,
  messageName: string,
): Promise<Uint8Array> {
  const all: Uint8Array[] = [];
  for await (const batch of batches) all.push(...batch);
  if (all.length !== 1) {
    throw invalidArgument(`a ${rpc} takes exactly one ${messageName} message, got ${all.length}`);
  }
  return all[0];
}

/** The response's headers: a gRPC response with binary protobuf messages. */
const RESPONSE_HEADER: Readonly<Record<string, string>> = { [headerContentType]: "application/grpc+proto" };
/** The trailers of a call that succeeded. */
const OK_TRAILER: Readonly<Record<string, string>> = { "grpc-status": "0" };

/** The trailers for an error's status: grpc-status, grpc-message, and any details. */
function statusTrailer(status: ConnectError): Record<string, string> {
  const trailer = new Headers();
  setTrailerStatus(trailer, status);
  // gRPC percent-encodes only what is not printable ASCII, and '%';
  // connect's encodeURIComponent also encodes ':' and '/', which
  // decodeURI-based clients (grpc-js) then show as "%3A".
  trailer.set(headerGrpcMessage, percentEncodeGrpcMessage(status.rawMessage));
  const out: Record<string, string> = {};
  trailer.forEach((v, k) => (out[k] = v));
  return out;
}

/** A response that is only a status (no messages): HEADERS, then trailers. */
function writeStatusOnly(res: http2.Http2ServerResponse, status: ConnectError): void {
  const trailer = new Headers();
  setTrailerStatus(trailer, status);
  const tail: Record<string, string> = {};
  trailer.forEach((v, k) => (tail[k] = v));
  res.writeHead(200, { ...RESPONSE_HEADER });
  res.addTrailers(tail);
  res.end();
}

/**
 * Calls `abort` when the client resets the request's stream (RST_STREAM,
 * lost connection): node's 'aborted' event, which comes before the request
 * body ends; onStreamClosed only follows on 'close'.
 */
function onClientAborted(req: http2.Http2ServerRequest, abort: (reason: ConnectError) => void): void {
  const cancelled = () => abort(new ConnectError("the client cancelled the call", Code.Canceled));
  if (req.stream.aborted) cancelled();
  else req.once("aborted", cancelled);
}
