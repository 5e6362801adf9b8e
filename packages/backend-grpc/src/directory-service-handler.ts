/**
 * The gRPC DirectoryService (tvix.castore.v1 and snix.castore.v1) on top of
 * any castore DirectoryService: request checks, limits, status mapping.
 *
 * Built from connect's pieces: connect-node's universal request/response
 * adapters (HTTP/2 request body and abort signal in; headers, body with
 * backpressure, and trailers out) and connect's gRPC protocol helpers
 * (content type, grpc-timeout, compression negotiation, trailer status).
 * What is not connect's is the per-message path. connect's handler runs every
 * response message through about six async generators (serialize, envelope,
 * compress, join, …), about 8–10 µs per message here, more than reading and
 * checking the directory itself; a recursive Get of 100 000 directories spent
 * most of its time there. Here a directory is encoded with core's codec,
 * framed, and joined with the others ready at the same time into one write
 * (messageBody): one Directory per gRPC message on the wire, several per
 * HTTP/2 DATA frame.
 */
import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
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
import { Digest, type Directory, type DirectoryService, encodeDirectory, isCastoreError } from "@castore-ts/core";
import { GetDirectoryRequestSchema, PutDirectoryResponseSchema } from "@castore-ts/proto";
import { type MessageSource, messageBody } from "./message-batcher.js";
import { EnvelopeReader, FLAG_COMPRESSED } from "./grpc-framing.js";
import { invalidArgument, resourceExhausted, toConnectError } from "./status.js";
import { decodeReceived } from "./wire-directory.js";
import { parseGrpcTimeout } from "./grpc-timeout.js";
import { CallSignal } from "./call-signal.js";
import { percentEncodeGrpcMessage } from "./status-response.js";
import type { BearerTokens } from "./auth.js";

/** A pino-compatible logger; the server is silent without one. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface HandlerOptions {
  /** Largest single request message (compressed and decompressed). */
  maxMessageBytes: number;
  /** Most directories in one Put stream. */
  maxDirectoriesPerUpload: number;
  /** Most bytes (canonical encodings summed) in one Put stream. */
  maxUploadBytes: number;
  /** Most entries (directories + files + symlinks) in one received Directory. */
  maxEntriesPerDirectory?: number;
  /**
   * A call whose request stream brings nothing new for this long (a Put or
   * Get that is opened and never sent, or stalls mid-upload) is ended with
   * DEADLINE_EXCEEDED; an upload is aborted. 0 or undefined: no timer.
   */
  idleTimeoutMs?: number;
  /** Accepted bearer tokens; without, calls are not authenticated. */
  authTokens?: BearerTokens;
  /** Service names served: "tvix" → /tvix.castore.v1.DirectoryService/…, "snix" → /snix.castore.v1.DirectoryService/…. */
  serviceNames: readonly ("tvix" | "snix")[];
  /** Aborting it cancels every running call (server shutdown). */
  shutdownSignal: AbortSignal;
  logger: Logger;
}

export const DEFAULT_MAX_DIRECTORIES_PER_UPLOAD = 1_000_000;
export const DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_ENTRIES_PER_DIRECTORY = 1_000_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** Most bytes of response messages joined into one write. */
const WRITE_BATCH_BYTES = 64 * 1024;
/** Request compressions accepted (responses are never compressed: directories are mostly digests). */
const ACCEPT_COMPRESSION: Compression[] = [compressionGzip, compressionBrotli];

type Method = "Get" | "Put";

/** The node request handler serving the DirectoryService methods (anything else is UNIMPLEMENTED). */
export function createDirectoryServiceHandler(
  service: DirectoryService,
  opts: HandlerOptions,
): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void {
  const routes = new Map<string, Method>();
  for (const name of opts.serviceNames) {
    routes.set(`/${name}.castore.v1.DirectoryService/Get`, "Get");
    routes.set(`/${name}.castore.v1.DirectoryService/Put`, "Put");
  }
  const { logger } = opts;

  return (req, res) => {
    const method = routes.get(req.url.split("?", 1)[0]);
    const header = new Headers({ [headerContentType]: "application/grpc+proto" });
    const trailer = new Headers();
    if (opts.authTokens && !opts.authTokens.accepts(req.headers.authorization)) {
      // Nothing of the request is read, and nothing of the header is logged.
      logger.debug(
        { path: method === undefined ? "unknown" : req.url.split("?", 1)[0] },
        "call refused: not authenticated",
      );
      setTrailerStatus(
        trailer,
        new ConnectError("missing or invalid bearer token (authorization: Bearer …)", Code.Unauthenticated),
      );
      writeStatusOnly(res, header, trailer);
      return;
    }
    if (method === undefined || req.method !== "POST") {
      setTrailerStatus(trailer, new ConnectError(`unknown method ${req.method} ${req.url}`, Code.Unimplemented));
      writeStatusOnly(res, header, trailer);
      return;
    }
    const contentType = parseContentType(req.headers["content-type"] ?? null);
    if (contentType === undefined || !contentType.binary) {
      res.writeHead(415).end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    const timeout = parseGrpcTimeout(uReq.header.get(headerTimeout));
    const compression = compressionNegotiate(
      ACCEPT_COMPRESSION,
      uReq.header.get(headerEncoding),
      uReq.header.get(headerAcceptEncoding),
      headerAcceptEncoding,
    );
    const idle = new AbortController();
    const callSignal = new CallSignal()
      .follow(uReq.signal)
      .follow(clientAbortedSignal(req))
      .follow(opts.shutdownSignal)
      .follow(idle.signal);
    if (timeout.timeoutMs !== undefined) callSignal.follow(deadlineSignal(timeout.timeoutMs, res));
    // Every call ends with its stream's close, whatever ended it.
    res.once("close", () => callSignal.end());
    const { signal } = callSignal;
    const call: Call = {
      method,
      signal,
      messages: () =>
        requestMessages(
          watchedBody(uReq.body as AsyncIterable<Uint8Array>, opts.idleTimeoutMs ?? 0, idle, signal),
          compression.request,
          opts.maxMessageBytes,
        ),
    };
    async function open(): Promise<MessageSource<Directory | Uint8Array>> {
      if (timeout.error) throw timeout.error;
      if (compression.error) throw compression.error;
      return method === "Get" ? openGet(call) : openPut(call);
    }
    function onEnd(error: unknown): void {
      if (error === undefined) {
        setTrailerStatus(trailer, undefined);
        return;
      }
      const status = statusOf(error, call.signal);
      if (status.code === Code.Internal || status.code === Code.Unavailable || status.code === Code.Unknown) {
        logger.warn({ rpc: method, code: Code[status.code], err: error }, "call failed");
      } else {
        logger.debug({ rpc: method, code: Code[status.code], msg: status.rawMessage }, "call refused");
      }
      setTrailerStatus(trailer, status);
      // gRPC percent-encodes only what is not printable ASCII, and '%';
      // connect's encodeURIComponent also encodes ':' and '/', which
      // decodeURI-based clients (grpc-js) then show as "%3A".
      trailer.set(headerGrpcMessage, percentEncodeGrpcMessage(status.rawMessage));
    }
    const body = messageBody(open, { maxBytes: WRITE_BATCH_BYTES, signal: call.signal, onEnd });
    universalResponseToNodeResponse({ status: 200, header, trailer, body }, res).catch((reason: unknown) => {
      const code = ConnectError.from(reason).code;
      // Aborted/Canceled: the client went away while we were writing.
      if (code !== Code.Aborted && code !== Code.Canceled) {
        logger.warn({ rpc: method, err: reason }, "writing the response failed");
      }
    });
  };

  interface Call {
    method: Method;
    signal: AbortSignal;
    messages(): AsyncGenerator<Uint8Array[]>;
  }

  /** Get: the response's directories, encoded as the body pulls them. */
  async function openGet(call: Call): Promise<MessageSource<Directory>> {
    const request = await singleMessage(call.messages());
    let parsed;
    try {
      parsed = fromBinary(GetDirectoryRequestSchema, request);
    } catch (e) {
      throw invalidArgument(`request is not a valid GetDirectoryRequest: ${(e as Error).message}`);
    }
    if (parsed.byWhat.case !== "digest") {
      throw invalidArgument("GetDirectoryRequest has no by_what: set digest");
    }
    const bytes = parsed.byWhat.value;
    if (bytes.length !== 32) {
      throw invalidArgument(
        `invalid digest length in GetDirectoryRequest: expected 32 bytes, got ${bytes.length}`,
        "INVALID_DIGEST",
      );
    }
    const digest = Digest.fromBytes(bytes);
    const { signal } = call;
    if (!parsed.recursive) {
      const directory = await service.get(digest, { signal });
      if (directory === undefined) throw new ConnectError(`directory ${digest} not found`, Code.NotFound);
      return { items: [directory], encode: encodeDirectory };
    }
    // One message per directory, as the backend yields them, pulled by the
    // body with backpressure (see message-batcher.ts): a slow client holds
    // the backend's read instead of making the server buffer the tree. An
    // absent root is an empty stream (as tvix).
    return { items: service.getRecursive(digest, { signal }), encode: encodeDirectory };
  }

  /** Put: the whole upload, then the response message. */
  async function openPut(call: Call): Promise<MessageSource<Uint8Array>> {
    const { signal } = call;
    const putter = service.putMultipleStart({ signal });
    let count = 0;
    let bytes = 0;
    const maxEntries = opts.maxEntriesPerDirectory ?? DEFAULT_MAX_ENTRIES_PER_DIRECTORY;
    let root: Digest;
    try {
      for await (const batch of call.messages()) {
        for (const message of batch) {
          count++;
          if (count > opts.maxDirectoriesPerUpload) {
            throw resourceExhausted(`upload exceeds the limit of ${opts.maxDirectoriesPerUpload} directories`);
          }
          let received;
          try {
            received = decodeReceived(message);
          } catch (e) {
            if (isCastoreError(e)) throw invalidArgument(`directory #${count - 1} of the upload: ${e.message}`);
            throw e;
          }
          const d = received.directory;
          const entries = d.directories.length + d.files.length + d.symlinks.length;
          if (entries > maxEntries) {
            throw resourceExhausted(
              `directory #${count - 1} of the upload has ${entries} entries, more than the limit of ${maxEntries} per directory`,
            );
          }
          bytes += received.bytes.length;
          if (bytes > opts.maxUploadBytes) {
            throw resourceExhausted(`upload exceeds the limit of ${opts.maxUploadBytes} bytes`);
          }
          // decoded strictly, so the received bytes are the canonical encoding: the putter may skip re-encoding
          await putter.put(received.directory, received.bytes);
        }
      }
      // A reset stream (the client cancelled or went away) ends the request
      // body like a clean end of stream in node's http2 compat layer; only
      // the 'aborted' event tells them apart. Never commit such an upload.
      if (signal.aborted) throw new ConnectError("the client cancelled the upload", Code.Canceled);
      root = await putter.close();
    } catch (e) {
      // A failed, refused or cancelled upload (the client went away, the
      // server is shutting down) stores nothing.
      await putter.abort(e).catch(() => {});
      throw e;
    }
    logger.debug({ rpc: "Put", root: root.hex, directories: count, bytes }, "upload stored");
    const response = toBinary(
      PutDirectoryResponseSchema,
      create(PutDirectoryResponseSchema, { rootDigest: root.bytes }),
    );
    return { items: [response], encode: (m) => m };
  }
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
 * Aborted with DEADLINE_EXCEEDED once the client's deadline (grpc-timeout,
 * whole ms a timer can take) has passed; the timer stops when the response
 * closes. A timer rather than AbortSignal.timeout(), which reports a
 * TimeoutError (shown as CANCELLED) and keeps running after the call.
 */
function deadlineSignal(timeoutMs: number, res: http2.Http2ServerResponse): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(
    () =>
      controller.abort(
        new ConnectError(
          `deadline exceeded: the call took longer than its grpc-timeout (${timeoutMs} ms)`,
          Code.DeadlineExceeded,
        ),
      ),
    timeoutMs,
  );
  res.once("close", () => clearTimeout(timer));
  return controller.signal;
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
 * The request body, failing with DEADLINE_EXCEEDED (and aborting `idle`, so
 * the call's signal tells the backend) when no chunk arrives for `timeoutMs`
 * (0: never), and with the reason of the call's `signal` as soon as it is
 * aborted (the deadline passed, the server shuts down): a client that sends
 * nothing is not waited for beyond either. The idle timer runs only while
 * waiting for the client, not while the server works on what it received.
 */
async function* watchedBody(
  body: AsyncIterable<Uint8Array>,
  timeoutMs: number,
  idle: AbortController,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: () => void = () => {};
  const aborted = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const next = it.next();
      const racers: Promise<IteratorResult<Uint8Array> | "idle" | "aborted">[] = [next, aborted];
      if (timeoutMs > 0) {
        racers.push(
          new Promise<"idle">((resolve) => {
            timer = setTimeout(() => resolve("idle"), timeoutMs);
          }),
        );
      }
      const r = await Promise.race(racers);
      clearTimeout(timer);
      if (r === "aborted") {
        next.catch(() => {});
        throw signal.reason;
      }
      if (r === "idle") {
        next.catch(() => {});
        const error = new ConnectError(`no request data for ${timeoutMs} ms: the call is idle`, Code.DeadlineExceeded);
        idle.abort(error);
        throw error;
      }
      if (r.done) return;
      yield r.value;
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    // Stop reading the request (a no-op once it has ended).
    void Promise.resolve(it.return?.()).catch(() => {});
  }
}

/**
 * The one request message of a Get. None or more than one is the client's
 * mistake: INVALID_ARGUMENT, as castore answers every malformed request.
 * (Others differ: tonic, behind tvix and snix, answers none with INTERNAL
 * "Missing request message." and silently drops extra ones; grpc-go and
 * grpc-java answer INTERNAL for both.)
 */
async function singleMessage(batches: AsyncGenerator<Uint8Array[]>): Promise<Uint8Array> {
  const all: Uint8Array[] = [];
  for await (const batch of batches) all.push(...batch);
  if (all.length !== 1) {
    throw invalidArgument(`a Get takes exactly one GetDirectoryRequest message, got ${all.length}`);
  }
  return all[0];
}

/** A response that is only a status (no messages): HEADERS, then trailers. */
function writeStatusOnly(res: http2.Http2ServerResponse, header: Headers, trailer: Headers): void {
  const head: Record<string, string> = {};
  header.forEach((v, k) => (head[k] = v));
  const tail: Record<string, string> = {};
  trailer.forEach((v, k) => (tail[k] = v));
  res.writeHead(200, head);
  res.addTrailers(tail);
  res.end();
}

/**
 * Aborted when the client resets the request's stream (RST_STREAM, lost
 * connection): node's 'aborted' event, which comes before the request body
 * ends; the universal request's signal only follows on 'close'.
 */
function clientAbortedSignal(req: http2.Http2ServerRequest): AbortSignal {
  const controller = new AbortController();
  const abort = () => controller.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  if (req.stream.aborted) abort();
  else req.once("aborted", abort);
  return controller.signal;
}
