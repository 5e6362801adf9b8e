/**
 * createDirectoryServiceServer: serves any castore DirectoryService over gRPC
 * (HTTP/2; h2c without TLS, or TLS when a certificate and key are given) on
 * TCP or a Unix socket, under both tvix.castore.v1.DirectoryService and
 * snix.castore.v1.DirectoryService, and, when given a BlobService, the
 * BlobService under both names beside it, so any gRPC client (grpc-go,
 * tonic, grpcio, @grpc/grpc-js, connect-es) can call it.
 */
import { setMaxListeners } from "node:events";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import type { BlobService, DirectoryService, RefService } from "@castore-ts/core";
import { REF_SERVICE, refRoutes } from "./ref-service-handler.js";
import { SYNC_SERVICE, syncRoutes } from "./sync-service-handler.js";
import {
  directoryRoutes,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_DIRECTORIES_PER_UPLOAD,
  DEFAULT_MAX_ENTRIES_PER_DIRECTORY,
  DEFAULT_MAX_UPLOAD_BYTES,
  type Logger,
  silentLogger,
} from "./directory-service-handler.js";
import { createCallHandler } from "./grpc-call-handler.js";
import { blobPaths, blobRoutes } from "./blob-service-handler.js";
import { BearerTokens } from "./auth.js";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { healthRoutes } from "./health.js";
import { REFLECTION_SERVICE_NAMES, reflectionRoutes } from "./reflection.js";
import { parseGrpcTimeout } from "./grpc-timeout.js";
import { respondWithStatus } from "./status-response.js";
import { guardRequestHandler } from "./guarded-request-handler.js";
import {
  createServerMetrics,
  instrumentBlobService,
  instrumentCall,
  instrumentService,
  type ServerMetrics,
  type ServerMetricsOptions,
} from "./metrics.js";

/** Where to listen: TCP host and port (port 0 picks a free one), or a Unix socket path. */
export type ListenTarget = { host?: string; port: number } | { path: string };

export type ServerAddress =
  { kind: "tcp"; host: string; port: number; tls: boolean } | { kind: "unix"; path: string; tls: boolean };

export interface DirectoryServiceServerOptions {
  listen: ListenTarget;
  /**
   * Blobs to serve as tvix.castore.v1.BlobService (and snix.): Stat, Read,
   * Put. Without, BlobService calls answer UNIMPLEMENTED.
   */
  blobs?: BlobService;
  /**
   * Refs to serve as castore.refs.v1.RefService (castore's extension: Get,
   * Set, Delete, List), over the same store as `service` and `blobs`.
   * Without, its calls answer UNIMPLEMENTED.
   */
  refs?: RefService;
  /** PEM certificate and key: serve gRPC over TLS (ALPN h2) instead of h2c. */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /** Largest single message accepted (default 4 MiB, the usual gRPC limit); larger is RESOURCE_EXHAUSTED. */
  maxMessageBytes?: number;
  /** Most directories in one Put (default 1 000 000); more is RESOURCE_EXHAUSTED. */
  maxDirectoriesPerUpload?: number;
  /** Most bytes in one Put, canonical encodings summed (default 256 MiB); more is RESOURCE_EXHAUSTED. */
  maxUploadBytes?: number;
  /** Most entries (directories + files + symlinks) in one received Directory (default 1 000 000); more is RESOURCE_EXHAUSTED. */
  maxEntriesPerDirectory?: number;
  /** Most concurrent streams (calls) per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS, default 100). */
  maxConcurrentStreams?: number;
  /**
   * Most connections open at once (default 1000). A connection beyond it is
   * closed as soon as it is accepted, before any HTTP/2 (the client sees the
   * connection reset: UNAVAILABLE), and counted in
   * castore_grpc_server_connections_refused_total; open ones are not touched.
   */
  maxConnections?: number;
  /**
   * A connection with no open call for this long is closed gracefully
   * (GOAWAY, NO_ERROR), so its client reconnects for its next call (default
   * 5 min; 0 turns it off). PINGs do not count as use.
   */
  connectionIdleTimeoutMs?: number;
  /**
   * A call whose request brings no data for this long (opened and never
   * sent, or stalled mid-upload) ends with DEADLINE_EXCEEDED and its upload
   * is aborted (default 60 s; 0 turns the timer off).
   */
  idleTimeoutMs?: number;
  /**
   * Bearer tokens: when given, every call must carry `authorization: Bearer
   * <one of them>`, else UNAUTHENTICATED. Compared in constant time (SHA-256
   * hashes, crypto.timingSafeEqual); never logged.
   */
  authTokens?: readonly string[];
  /** Service names to serve (default both). */
  serviceNames?: ("tvix" | "snix")[];
  /** Whether close() also closes the backend (default true), the blob service too. */
  closeBackend?: boolean;
  /** Default deadline for close() to let running calls finish (default 10 s). */
  shutdownDeadlineMs?: number;
  /** HTTP/2 flow-control window per stream and per connection (default 1 MiB). */
  windowBytes?: number;
  logger?: Logger;
  /** How often a grpc.health.v1.Health/Watch stream probes the backend (default 5 s). */
  healthPollMs?: number;
  /**
   * Prometheus metrics (prom-client): pass a ServerMetrics from
   * createServerMetrics(), or options for one; read them from `server.metrics.registry`.
   */
  metrics?: ServerMetrics | ServerMetricsOptions;
}

export interface DirectoryServiceServer {
  /** Binds and starts accepting connections. Resolves to the bound address. */
  listen(): Promise<ServerAddress>;
  /** The bound address once listening. */
  readonly address: ServerAddress | undefined;
  /** A store URL for this server (grpc+http://, grpc+https:// or grpc+unix://) once listening. */
  readonly url: string | undefined;
  /** Calls currently running. */
  readonly activeCalls: number;
  /** HTTP/2 connections currently open. */
  readonly openConnections: number;
  /** The metrics, when the `metrics` option was given. */
  readonly metrics: ServerMetrics | undefined;
  /**
   * Stops accepting connections and calls, lets running calls finish for at
   * most `deadlineMs`, cancels what is left, then closes the backend
   * (unless `closeBackend: false`).
   */
  close(opts?: { deadlineMs?: number }): Promise<void>;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_CONCURRENT_STREAMS = 100;
export const DEFAULT_MAX_CONNECTIONS = 1000;
export const DEFAULT_CONNECTION_IDLE_TIMEOUT_MS = 5 * 60 * 1000;
/** After a refused connection is logged, further refusals are only counted for this long. */
const REFUSED_LOG_INTERVAL_MS = 60_000;
const DEFAULT_WINDOW_BYTES = 1024 * 1024;
const GRPC_TIMEOUT = "grpc-timeout";

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export function createDirectoryServiceServer(
  service: DirectoryService,
  options: DirectoryServiceServerOptions,
): DirectoryServiceServer {
  const logger = options.logger ?? silentLogger;
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const serviceNames = options.serviceNames ?? ["tvix", "snix"];
  const windowBytes = options.windowBytes ?? DEFAULT_WINDOW_BYTES;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const connectionIdleTimeoutMs = options.connectionIdleTimeoutMs ?? DEFAULT_CONNECTION_IDLE_TIMEOUT_MS;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1)
    throw new RangeError(`maxConnections must be a positive integer, got ${maxConnections}`);
  if (!Number.isSafeInteger(connectionIdleTimeoutMs) || connectionIdleTimeoutMs < 0) {
    throw new RangeError(`connectionIdleTimeoutMs must be a non-negative integer, got ${connectionIdleTimeoutMs}`);
  }
  const shutdown = new AbortController();
  // Every running call listens to it (CallSignal: one listener per call, removed when the call ends), so more than
  // Node's default of 10 is the normal case, not a leak: no MaxListenersExceededWarning on the server's stderr.
  setMaxListeners(0, shutdown.signal);
  const metrics =
    options.metrics === undefined
      ? undefined
      : "calls" in options.metrics
        ? options.metrics
        : createServerMetrics(options.metrics);
  const { blobs } = options;
  const knownPaths = new Set<string>([
    ...serviceNames.flatMap((n) => [`/${n}.castore.v1.DirectoryService/Get`, `/${n}.castore.v1.DirectoryService/Put`]),
    ...(blobs ? blobPaths(serviceNames) : []),
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  ]);
  const authTokens = options.authTokens ? new BearerTokens(options.authTokens) : undefined;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const directoryOptions = {
    maxMessageBytes,
    maxDirectoriesPerUpload: options.maxDirectoriesPerUpload ?? DEFAULT_MAX_DIRECTORIES_PER_UPLOAD,
    maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    maxEntriesPerDirectory: options.maxEntriesPerDirectory ?? DEFAULT_MAX_ENTRIES_PER_DIRECTORY,
    idleTimeoutMs,
    authTokens,
    serviceNames,
    shutdownSignal: shutdown.signal,
    logger,
  };
  const routes = directoryRoutes(metrics ? instrumentService(service, metrics) : service, directoryOptions);
  if (blobs) {
    const served = metrics ? instrumentBlobService(blobs, metrics) : blobs;
    for (const [path, route] of blobRoutes(served, { serviceNames, logger, metrics })) routes.set(path, route);
  }
  if (options.refs) for (const [path, route] of refRoutes(options.refs)) routes.set(path, route);
  for (const [path, route] of syncRoutes(service, blobs)) routes.set(path, route);
  const handler = createCallHandler(routes, directoryOptions);
  // grpc.health.v1.Health (unauthenticated: probes send no credentials, and it tells only a status).
  const healthShutdown = new AbortController();
  setMaxListeners(0, healthShutdown.signal); // one listener per Watch call, as above
  const opsHandler = connectNodeAdapter({
    grpc: true,
    connect: false,
    grpcWeb: false,
    routes: (router) => {
      healthRoutes(service, {
        serviceNames,
        blobs,
        pollMs: options.healthPollMs,
        shutdownSignal: healthShutdown.signal,
      })(router);
      reflectionRoutes({
        services: [
          ...serviceNames.map((n) => `${n}.castore.v1.DirectoryService`),
          ...(blobs ? serviceNames.map((n) => `${n}.castore.v1.BlobService`) : []),
          ...(options.refs ? [REF_SERVICE] : []),
          SYNC_SERVICE,
          "grpc.health.v1.Health",
          ...REFLECTION_SERVICE_NAMES,
        ],
      })(router);
    },
  });
  // Health and reflection are unauthenticated: probes and tools send no credentials, and they tell no store content.
  const isOpsPath = (url: string) =>
    url.startsWith("/grpc.health.v1.Health/") ||
    url.startsWith("/grpc.reflection.v1.ServerReflection/") ||
    url.startsWith("/grpc.reflection.v1alpha.ServerReflection/");

  let activeCalls = 0;
  let draining = false;
  const onRequest = guardRequestHandler((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (draining) {
      // A stream opened after shutdown began (a GOAWAY was in flight).
      res.writeHead(200, { "content-type": "application/grpc" });
      res.addTrailers({ "grpc-status": String(Code.Unavailable), "grpc-message": "server is shutting down" });
      res.end();
      return;
    }
    activeCalls++;
    res.once("close", () => activeCalls--);
    if (metrics) instrumentCall(metrics, knownPaths, req, res);
    // A response that ends before the request (an error mid-upload, a message
    // over the limit) leaves the request side open and unread data holding
    // the stream. As RFC 9113 §8.1 suggests, reset it with NO_ERROR after the
    // response, so the client stops sending and both ends release it.
    // (After the trailers: node's compat layer sends them from its own,
    // earlier, 'wantTrailers' listener.)
    req.stream.once("wantTrailers", () =>
      setImmediate(() => {
        if (req.readableEnded || req.stream.destroyed) return;
        // close() submits RST_STREAM(NO_ERROR) behind the trailers; destroy()
        // then drops the unread data, which would otherwise keep the stream.
        if (!req.stream.closed) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
        req.stream.destroy();
      }),
    );
    if (isOpsPath(req.url)) {
      // connect arms its own deadline timer for health and reflection: answer
      // a malformed grpc-timeout as the DirectoryService does (INTERNAL), and
      // drop one longer than a timer can wait, which connect's setTimeout
      // would cut to 1 ms.
      const raw = req.headers[GRPC_TIMEOUT];
      const timeout = parseGrpcTimeout(Array.isArray(raw) ? raw.join(", ") : raw);
      if (timeout.error) return respondWithStatus(res, timeout.error);
      if (timeout.timeoutMs === undefined) delete req.headers[GRPC_TIMEOUT];
      opsHandler(req, res);
    } else {
      handler(req, res);
    }
  }, logger);

  const settings: http2.Settings = {
    initialWindowSize: windowBytes,
    maxConcurrentStreams: options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
  };
  const server = options.tls
    ? http2.createSecureServer(
        { cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca, allowHTTP1: false, settings },
        onRequest,
      )
    : http2.createServer({ settings }, onRequest);

  // Small messages (one directory, a status) must not wait for Nagle's algorithm.
  server.on("connection", (socket: net.Socket) => socket.setNoDelay(true));
  server.on("secureConnection", (socket: net.Socket) => socket.setNoDelay(true));

  // Connections over the limit: node closes them as it accepts them (counting
  // TCP connections, TLS handshakes included) and emits 'drop'.
  server.maxConnections = maxConnections;
  let refusedSinceLog = 0;
  let refusedLoggedAt = -Infinity;
  server.on("drop", (data?: { remoteAddress?: string; remotePort?: number }) => {
    metrics?.connectionsRefused.inc();
    refusedSinceLog++;
    // One warning a minute at most: a flood must not flood the log too.
    if (Date.now() - refusedLoggedAt >= REFUSED_LOG_INTERVAL_MS) {
      logger.warn(
        { maxConnections, refused: refusedSinceLog, remoteAddress: data?.remoteAddress, remotePort: data?.remotePort },
        "connection refused: maxConnections are open",
      );
      refusedLoggedAt = Date.now();
      refusedSinceLog = 0;
    }
  });

  /**
   * Closes a connection that has had no call for connectionIdleTimeoutMs:
   * GOAWAY (NO_ERROR) and close. A call the client sent meanwhile is refused
   * unprocessed (REFUSED_STREAM by the GOAWAY's last stream id), which
   * clients retry on a new connection; ours does (grpc-stream-calls.ts).
   * (A first GOAWAY admitting every stream, RFC 9113 §6.8, does not help
   * with node: nghttp2 takes no new stream after any GOAWAY it sent.)
   */
  function closeIdle(session: http2.ServerHttp2Session): void {
    if (session.closed || session.destroyed) return;
    metrics?.connectionsIdleClosed.inc();
    logger.debug({ connectionIdleTimeoutMs }, "closing idle connection (GOAWAY)");
    session.close();
  }

  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    metrics?.connectionsOpen.inc();
    // The idle timer runs while the connection has no open stream.
    let openStreams = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdleTimer = () => {
      if (connectionIdleTimeoutMs === 0 || draining) return;
      idleTimer = setTimeout(() => closeIdle(session), connectionIdleTimeoutMs);
      idleTimer.unref();
    };
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      openStreams++;
      clearTimeout(idleTimer);
      stream.once("close", () => {
        if (--openStreams === 0 && !session.closed && !session.destroyed) armIdleTimer();
      });
    });
    armIdleTimer();
    session.once("close", () => {
      clearTimeout(idleTimer);
      sessions.delete(session);
      metrics?.connectionsOpen.dec();
    });
    session.on("error", (err) => logger.debug({ err }, "http2 session error"));
    // The connection-level window (not covered by SETTINGS) to match the per-stream one.
    session.once("localSettings", () => {
      try {
        session.setLocalWindowSize(windowBytes);
      } catch {
        /* the session died already */
      }
    });
    if (draining) session.close();
  });
  server.on("sessionError", (err) => logger.debug({ err }, "http2 session error"));

  let address: ServerAddress | undefined;
  let closing: Promise<void> | undefined;

  async function bind(target: ListenTarget): Promise<void> {
    const attempt = () =>
      new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => {
          server.off("listening", onListening);
          reject(err);
        };
        const onListening = () => {
          server.off("error", onError);
          resolve();
        };
        server.once("error", onError);
        server.once("listening", onListening);
        if ("path" in target) server.listen(target.path);
        else server.listen(target.port, target.host ?? "127.0.0.1");
      });
    try {
      await attempt();
    } catch (err) {
      // A socket file left by a crashed server: remove it if nobody answers on it.
      if (
        "path" in target &&
        (err as NodeJS.ErrnoException).code === "EADDRINUSE" &&
        (await isStaleSocket(target.path))
      ) {
        fs.unlinkSync(target.path);
        await attempt();
        return;
      }
      throw err;
    }
  }

  return {
    async listen() {
      if (address) return address;
      await bind(options.listen);
      const tls = options.tls !== undefined;
      if ("path" in options.listen) {
        address = { kind: "unix", path: options.listen.path, tls };
      } else {
        const info = server.address() as net.AddressInfo;
        address = { kind: "tcp", host: info.address, port: info.port, tls };
      }
      logger.info({ address }, "castore gRPC server listening");
      return address;
    },
    get address() {
      return address;
    },
    get url() {
      if (!address) return undefined;
      if (address.kind === "unix") return `grpc+unix://${address.path}`;
      return `grpc+${address.tls ? "https" : "http"}://${formatHost(address.host)}:${address.port}`;
    },
    get activeCalls() {
      return activeCalls;
    },
    get openConnections() {
      return sessions.size;
    },
    get metrics() {
      return metrics;
    },
    close(opts = {}) {
      closing ??= (async () => {
        const deadlineMs = opts.deadlineMs ?? options.shutdownDeadlineMs ?? 10_000;
        draining = true;
        healthShutdown.abort();
        const closed = new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          server.close(() => resolve());
        });
        // GOAWAY: no new streams; running calls go on.
        for (const session of sessions) session.close();
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          closed.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), deadlineMs);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          logger.warn({ activeCalls, deadlineMs }, "shutdown deadline passed: cancelling running calls");
          shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
          // Give handlers a moment to send their status, then cut the connections.
          await new Promise((resolve) => setTimeout(resolve, 50));
          for (const session of sessions) session.destroy();
          await closed;
        }
        if (options.closeBackend ?? true)
          await Promise.all([service.close(), blobs?.close(), options.refs?.store.close()]);
        logger.info({}, "castore gRPC server closed");
      })();
      return closing;
    },
  };
}

function isStaleSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(path);
    } catch {
      return resolve(false);
    }
    if (!stat.isSocket()) return resolve(false);
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(false);
    });
    probe.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}
