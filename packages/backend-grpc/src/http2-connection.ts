/**
 * The client's HTTP/2 connection: one session (connect-node's
 * Http2SessionManager) shared by every call, opened on TCP, TLS or a Unix
 * socket, with a connect timeout so a dead or black-holed server fails the
 * call instead of hanging it.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { addAbortSignal, Readable } from "node:stream";
import * as tls from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import type { GrpcTarget } from "./grpc-url.js";

export interface ConnectionOptions {
  connectTimeoutMs: number;
  /** TLS: extra trusted CA(s), client certificate, or `rejectUnauthorized: false` for tests. */
  tls?: Pick<tls.ConnectionOptions, "ca" | "cert" | "key" | "rejectUnauthorized" | "servername">;
  /** HTTP/2 flow-control window per stream and per connection, for responses. */
  windowBytes: number;
  /** Keepalive PING interval (default: none, as in connect-node). */
  pingIntervalMs?: number;
}

/** The base URL for requests: its authority is sent as :authority, its scheme as :scheme. */
export function baseUrlOf(target: GrpcTarget): string {
  if (target.kind === "unix") return "http://localhost";
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return `${target.tls ? "https" : "http"}://${host}:${target.port}`;
}

function connectSocket(target: GrpcTarget, opts: ConnectionOptions): net.Socket {
  let socket: net.Socket;
  let connectEvent: string;
  if (target.kind === "unix") {
    socket = net.connect({ path: target.path });
    connectEvent = "connect";
  } else if (target.tls) {
    socket = tls.connect({
      host: target.host,
      port: target.port,
      servername: net.isIP(target.host) ? undefined : target.host,
      ALPNProtocols: ["h2"],
      ...opts.tls,
    });
    connectEvent = "secureConnect";
  } else {
    socket = net.connect({ host: target.host, port: target.port });
    connectEvent = "connect";
  }
  socket.setNoDelay(true);
  const timer = setTimeout(() => {
    const err = Object.assign(new Error(`connect timeout: no connection within ${opts.connectTimeoutMs} ms`), {
      code: "ETIMEDOUT",
    });
    socket.destroy(err);
  }, opts.connectTimeoutMs);
  const clear = () => clearTimeout(timer);
  socket.once(connectEvent, clear);
  socket.once("close", clear);
  return socket;
}

export function createSessionManager(target: GrpcTarget, opts: ConnectionOptions): Http2SessionManager {
  const nodeOptions: http2.ClientSessionOptions = {
    createConnection: () => connectSocket(target, opts),
    settings: { initialWindowSize: opts.windowBytes },
  };
  return new ClientSessionManager(baseUrlOf(target), { pingIntervalMs: opts.pingIntervalMs }, nodeOptions, opts);
}

/**
 * Additions to connect-node's manager, on each new session at its first
 * request:
 * - the connection-level flow-control window (SETTINGS only sets the
 *   per-stream one) is raised with setLocalWindowSize;
 * - a PING must be answered within the connect timeout, so a peer that
 *   accepts TCP but does not speak HTTP/2 fails the call instead of hanging it;
 * - a connection the server closes before its HTTP/2 SETTINGS (as a server at
 *   its connection limit does) fails the calls on it as UNAVAILABLE
 *   ("connection refused"), not as CANCELLED (node closes them with CANCEL);
 * - a stream that fails because the server sent GOAWAY fails with a
 *   GoawayStreamError saying whether the server processed it, so the call
 *   can be sent again on a new connection (grpc-stream-calls.ts).
 */
class ClientSessionManager extends Http2SessionManager {
  private readonly tuned = new WeakSet<http2.Http2Session>();
  /** Sessions whose server sent its SETTINGS: it spoke HTTP/2. */
  private readonly spoke = new WeakSet<http2.Http2Session>();
  /** The last stream id of the GOAWAY a session received: streams above it were not processed. */
  private readonly goawayLastStreamId = new WeakMap<http2.Http2Session, number>();

  constructor(
    url: string,
    pingOptions: { pingIntervalMs?: number },
    nodeOptions: http2.ClientSessionOptions,
    private readonly opts: ConnectionOptions,
  ) {
    super(url, pingOptions, nodeOptions);
  }

  private tune(session: http2.Http2Session): void {
    // The manager listens for errors only while the session is its current
    // one; an error after that (e.g. our timeout below) must not go unhandled.
    session.on("error", () => {});
    session.once("remoteSettings", () => this.spoke.add(session));
    // Emitted before node acts on it: on any code but NO_ERROR node destroys
    // the session at once, failing the streams still open on it.
    session.on("goaway", (_code: number, lastStreamId: number) => {
      const previous = this.goawayLastStreamId.get(session);
      this.goawayLastStreamId.set(session, previous === undefined ? lastStreamId : Math.min(previous, lastStreamId));
    });
    try {
      session.setLocalWindowSize(this.opts.windowBytes);
    } catch {
      /* the session died already; the call will report it */
    }
    const timer = setTimeout(() => {
      const err = Object.assign(
        new Error(`connect timeout: the server did not answer an HTTP/2 PING within ${this.opts.connectTimeoutMs} ms`),
        { code: "ETIMEDOUT" },
      );
      session.destroy(err);
    }, this.opts.connectTimeoutMs);
    timer.unref();
    try {
      session.ping(() => clearTimeout(timer));
    } catch {
      clearTimeout(timer);
    }
    session.once("close", () => clearTimeout(timer));
  }

  override async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = await super.request(method, path, headers, options);
    } catch (e) {
      // A connection reset while it was being set up: the server did not take it.
      if (hasCode(e, "ECONNRESET")) throw new ConnectError(REFUSED_MESSAGE, Code.Unavailable, undefined, undefined, e);
      throw e;
    }
    const session = stream.session;
    resetWithoutHalfClose(stream, (code, cause) => {
      if (!session) return undefined;
      // A stream above a GOAWAY's last stream id was refused unprocessed
      // (RFC 9113 §6.8), whatever the GOAWAY's error code: safe to send again.
      // (Only for a stream node destroys with an error, as it does them all
      // on a GOAWAY's error code; a cancel of ours stays a cancel.)
      const lastStreamId = this.goawayLastStreamId.get(session);
      if (lastStreamId !== undefined && cause !== undefined) {
        return new GoawayStreamError(stream.id === undefined || stream.id > lastStreamId, lastStreamId, cause);
      }
      if (this.spoke.has(session)) return undefined;
      // node closes the streams with CANCEL when the socket ends, or destroys them with the socket's ECONNRESET
      const closedByPeer =
        (code === http2.constants.NGHTTP2_CANCEL && socketClosed(session)) ||
        (cause as NodeJS.ErrnoException | undefined)?.code === "ECONNRESET";
      if (!closedByPeer) return undefined;
      // Not with the ECONNRESET as its cause: connect-node would make that ABORTED.
      return Object.assign(new Error(REFUSED_MESSAGE), { code: "ECONNREFUSED" });
    });
    if (session && !this.tuned.has(session)) {
      this.tuned.add(session);
      this.tune(session);
    }
    return stream;
  }
}

/**
 * node's `Http2Stream.close(code)` half-closes the stream (END_STREAM) before
 * it sends RST_STREAM, so a server sees a cancelled upload end cleanly first
 * and may commit it. connect-node cancels calls with `close(CANCEL)` (or
 * INTERNAL_ERROR); for a stream whose request side is still open this sends
 * the RST_STREAM alone instead, through `destroy()` (with node's own
 * AbortError, which `destroy` maps to CANCEL).
 */
function resetWithoutHalfClose(
  stream: http2.ClientHttp2Stream,
  errorFor: (code: number | undefined, cause: Error | undefined) => Error | undefined,
): void {
  const destroy = stream.destroy.bind(stream);
  stream.destroy = (error?: Error) => destroy((error && errorFor(undefined, error)) ?? error);
  const close = stream.close.bind(stream);
  stream.close = (code?: number, callback?: () => void) => {
    const error = errorFor(code, undefined);
    if (error && !stream.destroyed) {
      if (callback) stream.once("close", callback);
      stream.destroy(error);
      return;
    }
    if (code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR && !stream.writableEnded && !stream.destroyed) {
      if (callback) stream.once("close", callback);
      // destroy() sends CANCEL for node's AbortError and INTERNAL_ERROR for any other error
      stream.destroy(
        code === http2.constants.NGHTTP2_CANCEL ? nodeAbortError() : new Error(`stream reset with code ${code}`),
      );
      return;
    }
    close(code, callback);
  };
}

/**
 * A stream that ended without its response because the server sent GOAWAY
 * (with any error code; on any but NO_ERROR node destroys the session and
 * every stream on it). `refused`: the stream's id is above the GOAWAY's last
 * stream id, so the server did not process it (RFC 9113 §6.8).
 */
export class GoawayStreamError extends Error {
  readonly code = "ERR_CASTORE_HTTP2_GOAWAY";

  constructor(
    readonly refused: boolean,
    lastStreamId: number,
    cause: Error | undefined,
  ) {
    super(
      refused
        ? `the server refused the stream unprocessed (GOAWAY with last stream id ${lastStreamId}; REFUSED_STREAM)`
        : `the server closed the connection with GOAWAY (last stream id ${lastStreamId})${cause ? `: ${cause.message}` : ""}`,
      { cause },
    );
    this.name = "GoawayStreamError";
  }
}

const REFUSED_MESSAGE =
  "connection refused: the server closed the connection before speaking HTTP/2 (is it at its connection limit?)";

function hasCode(e: unknown, code: string): boolean {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    if ((c as NodeJS.ErrnoException).code === code) return true;
  }
  return false;
}

/** Whether the session's socket is closed (node closes the streams with CANCEL from the socket's 'close'). */
function socketClosed(session: http2.Http2Session): boolean {
  try {
    return session.destroyed || session.socket === undefined || session.socket.destroyed;
  } catch {
    return true;
  }
}

/** An instance of node's internal AbortError, which http2 maps to RST_STREAM CANCEL. */
function nodeAbortError(): Error {
  const probe = new Readable({ read() {} });
  probe.on("error", () => {});
  addAbortSignal(AbortSignal.abort(), probe);
  return probe.errored ?? Object.assign(new Error("The operation was aborted"), { name: "AbortError" });
}
