/**
 * What the gRPC clients (GrpcDirectoryService, GrpcBlobService, GrpcRefStore)
 * share: the store URL's options, and one HTTP/2 connection per client
 * (connect-node's Http2SessionManager, http2-connection.ts) with the call
 * target the calls of grpc-stream-calls.ts go to, closed once (GrpcClient).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { BackendError } from "@castore-ts/core";
import { type CallTarget, callTarget } from "./grpc-stream-calls.js";
import { describeTarget, type GrpcTarget, parseGrpcUrl, type ServiceName } from "./grpc-url.js";
import { type ConnectionOptions, createSessionManager } from "./http2-connection.js";

export interface ClientConnectionOptions {
  /** Which service name to call (default "tvix"; snix servers want "snix"). */
  serviceName?: ServiceName;
  /** A connection not established within this time fails the call with a BackendError (default 10 s). */
  connectTimeoutMs?: number;
  /** Largest message accepted from the server (default 4 MiB; fromUrl takes `?maxMessageBytes=`). */
  maxMessageBytes?: number;
  /** HTTP/2 flow-control window for responses, per stream and per connection (default 1 MiB). */
  windowBytes?: number;
  /** TLS options for grpc+https (extra CA, client certificate). */
  tls?: ConnectionOptions["tls"];
  /** Keepalive PING interval in ms (default: none). */
  pingIntervalMs?: number;
  /**
   * Bearer token sent with every call (`authorization: Bearer …`). fromUrl
   * takes it from the URL's `?token=`, else from CASTORE_AUTH_TOKEN.
   */
  authToken?: string;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const DEFAULT_WINDOW_BYTES = 1024 * 1024;

/** A store URL's target, and the options it sets under those given in code (which win). */
export function optionsFromUrl<T extends ClientConnectionOptions>(
  url: string | URL,
  options: T,
): { target: GrpcTarget; options: T } {
  const parsed = parseGrpcUrl(typeof url === "string" ? new URL(url) : url);
  return {
    target: parsed.target,
    options: {
      serviceName: parsed.serviceName,
      connectTimeoutMs: parsed.connectTimeoutMs,
      maxMessageBytes: parsed.maxMessageBytes,
      ...options,
      authToken: options.authToken ?? parsed.token ?? (process.env.CASTORE_AUTH_TOKEN || undefined),
      tls: parsed.ca ? { ca: parsed.ca, ...options.tls } : options.tls,
    },
  };
}

export interface ClientConnection {
  /** The server's address as a store URL, used in error messages. */
  readonly address: string;
  readonly serviceName: ServiceName;
  readonly sessionManager: Http2SessionManager;
  readonly target: CallTarget;
}

/** One HTTP/2 connection (opened at the first call, reopened when it drops) and the calls' target. */
export function openClientConnection(target: GrpcTarget, options: ClientConnectionOptions): ClientConnection {
  const sessionManager = createSessionManager(target, {
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    windowBytes: options.windowBytes ?? DEFAULT_WINDOW_BYTES,
    tls: options.tls,
    pingIntervalMs: options.pingIntervalMs,
  });
  return {
    address: describeTarget(target),
    serviceName: options.serviceName ?? "tvix",
    sessionManager,
    target: callTarget(sessionManager, options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, options.authToken),
  };
}

/** A client's connection, and its close: later calls throw, running ones fail. */
export abstract class GrpcClient {
  /** The server's address as a store URL, used in error messages. */
  readonly address: string;
  /** The proto package the calls go to ("tvix" or "snix"). */
  readonly serviceName: ServiceName;
  protected readonly sessionManager: Http2SessionManager;
  protected readonly target: CallTarget;
  private closed = false;

  constructor(target: GrpcTarget, options: ClientConnectionOptions) {
    const connection = openClientConnection(target, options);
    this.address = connection.address;
    this.serviceName = connection.serviceName;
    this.sessionManager = connection.sessionManager;
    this.target = connection.target;
  }

  /** Throws once the client is closed. */
  protected checkOpen(): void {
    if (this.closed) throw new BackendError(this.address, "client is closed");
  }

  /** Closes the HTTP/2 connection; running calls fail, later calls throw. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sessionManager.abort(new ConnectError("client closed", Code.Canceled));
  }
}
