/**
 * Prometheus metrics for a castore server (prom-client): calls by service,
 * method and gRPC status code, latency, directories and bytes in and out,
 * blob bytes, BlobChunk messages and blob requests by status, backend errors
 * by kind, uploads in flight, connections (open, refused over the limit,
 * closed when idle), and the process defaults.
 */
import type * as http2 from "node:http2";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type {
  BlobService,
  BlobWriter,
  CallOptions,
  Digest,
  Directory,
  DirectoryPutter,
  DirectoryService,
  ListDigestsOptions,
  OpenWriterOptions,
  PutMultipleOptions,
} from "@castore-ts/core";

export interface ServerMetrics {
  readonly registry: Registry;
  readonly calls: Counter<"grpc_service" | "grpc_method" | "grpc_code">;
  readonly latency: Histogram<"grpc_service" | "grpc_method">;
  readonly directoriesReceived: Counter;
  readonly directoriesSent: Counter;
  readonly bytesReceived: Counter;
  readonly bytesSent: Counter;
  readonly backendErrors: Counter<"kind">;
  readonly uploadsInFlight: Gauge;
  /** Blob bytes received in Put calls (the BlobChunk data, without framing). */
  readonly blobBytesReceived: Counter;
  /** Blob bytes sent in Read responses. */
  readonly blobBytesSent: Counter;
  /** BlobChunk messages received (Put). */
  readonly blobChunksReceived: Counter;
  /** BlobChunk messages sent (Read). */
  readonly blobChunksSent: Counter;
  /** BlobService calls completed, by method and status code. */
  readonly blobRequests: Counter<"grpc_method" | "grpc_code">;
  /** Blob uploads (BlobService Put calls) currently running. */
  readonly blobUploadsInFlight: Gauge;
  /** HTTP/2 connections currently open. */
  readonly connectionsOpen: Gauge;
  /** Connections refused because maxConnections were open. */
  readonly connectionsRefused: Counter;
  /** Connections closed (GOAWAY) after having no open call for connectionIdleTimeoutMs. */
  readonly connectionsIdleClosed: Counter;
}

export interface ServerMetricsOptions {
  /** Registry to register on (default: a new one). */
  registry?: Registry;
  /** Also collect prom-client's process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

/** gRPC status code names, by number. */
const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

export function createServerMetrics(opts: ServerMetricsOptions = {}): ServerMetrics {
  const registry = opts.registry ?? new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    calls: new Counter({
      name: "castore_grpc_server_handled_total",
      help: "gRPC calls completed, by service, method and status code",
      labelNames: ["grpc_service", "grpc_method", "grpc_code"],
      registers,
    }),
    latency: new Histogram({
      name: "castore_grpc_server_handling_seconds",
      help: "gRPC call duration until the response ended, by service and method",
      labelNames: ["grpc_service", "grpc_method"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    directoriesReceived: new Counter({
      name: "castore_directories_received_total",
      help: "Directories received in uploads (Put)",
      registers,
    }),
    directoriesSent: new Counter({
      name: "castore_directories_sent_total",
      help: "Directories read from the backend for Get responses",
      registers,
    }),
    bytesReceived: new Counter({
      name: "castore_grpc_server_received_bytes_total",
      help: "Request body bytes received (gRPC framing included)",
      registers,
    }),
    bytesSent: new Counter({
      name: "castore_grpc_server_sent_bytes_total",
      help: "Response body bytes sent (gRPC framing included)",
      registers,
    }),
    backendErrors: new Counter({
      name: "castore_backend_errors_total",
      help: "Errors thrown by the backend, by kind (the castore error code, e.g. BACKEND, NOT_CLOSED)",
      labelNames: ["kind"],
      registers,
    }),
    uploadsInFlight: new Gauge({
      name: "castore_uploads_in_flight",
      help: "Uploads (Put calls) currently running",
      registers,
    }),
    blobBytesReceived: new Counter({
      name: "castore_blob_received_bytes_total",
      help: "Blob bytes received in uploads (BlobService Put; BlobChunk data without framing)",
      registers,
    }),
    blobBytesSent: new Counter({
      name: "castore_blob_sent_bytes_total",
      help: "Blob bytes sent in BlobService Read responses (BlobChunk data without framing)",
      registers,
    }),
    blobChunksReceived: new Counter({
      name: "castore_blob_chunks_received_total",
      help: "BlobChunk messages received (BlobService Put)",
      registers,
    }),
    blobChunksSent: new Counter({
      name: "castore_blob_chunks_sent_total",
      help: "BlobChunk messages sent (BlobService Read)",
      registers,
    }),
    blobRequests: new Counter({
      name: "castore_blob_requests_total",
      help: "BlobService calls completed, by method and status code",
      labelNames: ["grpc_method", "grpc_code"],
      registers,
    }),
    blobUploadsInFlight: new Gauge({
      name: "castore_blob_uploads_in_flight",
      help: "Blob uploads (BlobService Put calls) currently running",
      registers,
    }),
    connectionsOpen: new Gauge({
      name: "castore_grpc_server_connections",
      help: "HTTP/2 connections currently open",
      registers,
    }),
    connectionsRefused: new Counter({
      name: "castore_grpc_server_connections_refused_total",
      help: "Connections refused (closed at once) because the maximum number of connections were open",
      registers,
    }),
    connectionsIdleClosed: new Counter({
      name: "castore_grpc_server_connections_idle_closed_total",
      help: "Connections closed with a GOAWAY after having no open call for the connection idle timeout",
      registers,
    }),
  };
}

/** "service/method" labels for the paths we serve; anything else is "unknown". */
function labelsOf(path: string, known: ReadonlySet<string>): { grpc_service: string; grpc_method: string } {
  if (!known.has(path)) return { grpc_service: "unknown", grpc_method: "unknown" };
  const [service, method] = path.slice(1).split("/", 2);
  return { grpc_service: service!, grpc_method: method! };
}

/** Measures one call: its status (from the grpc-status trailer), duration and body bytes. */
export function instrumentCall(
  metrics: ServerMetrics,
  knownPaths: ReadonlySet<string>,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
): void {
  const labels = labelsOf(req.url.split("?", 1)[0]!, knownPaths);
  const stopTimer = metrics.latency.startTimer(labels);
  let code: string | undefined;
  const addTrailers = res.addTrailers.bind(res);
  res.addTrailers = (headers) => {
    const status = (headers as Record<string, unknown>)["grpc-status"];
    if (status !== undefined) code = CODE_NAMES[Number(status)] ?? String(status);
    addTrailers(headers);
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  (res as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => {
    if (chunk instanceof Uint8Array || typeof chunk === "string") metrics.bytesSent.inc(Buffer.byteLength(chunk));
    return write(chunk, ...rest);
  };
  // The compat layer already reads the stream in flowing mode (pausing it for backpressure); another listener changes nothing.
  req.stream.on("data", (chunk: Buffer) => metrics.bytesReceived.inc(chunk.length));
  res.once("close", () => {
    stopTimer();
    const grpc_code = code ?? "CANCELLED";
    metrics.calls.inc({ ...labels, grpc_code });
    if (labels.grpc_service.endsWith(".castore.v1.BlobService")) {
      metrics.blobRequests.inc({ grpc_method: labels.grpc_method, grpc_code });
    }
  });
}

function countError(metrics: ServerMetrics, e: unknown): void {
  const kind = (e as { code?: unknown } | undefined)?.code;
  if (typeof kind === "string") metrics.backendErrors.inc({ kind });
  else if (!(e instanceof Error && e.name === "AbortError")) metrics.backendErrors.inc({ kind: "OTHER" });
}

/** `p`, counting its failure as a backend error. */
async function countErrors<T>(metrics: ServerMetrics, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    countError(metrics, e);
    throw e;
  }
}

/** Counts one upload in flight on `gauge` now; the returned release counts it out, once however often it is called. */
function inFlight(gauge: { inc(): void; dec(): void }): () => void {
  gauge.inc();
  let done = false;
  return () => {
    if (!done) gauge.dec();
    done = true;
  };
}

/** The service, counting directories in and out, backend errors and uploads in flight. */
export function instrumentService(service: DirectoryService, metrics: ServerMetrics): DirectoryService {
  const counted = <T>(p: Promise<T>) => countErrors(metrics, p);
  async function* countedSent<T>(items: AsyncIterable<T>): AsyncIterable<T> {
    try {
      for await (const item of items) {
        metrics.directoriesSent.inc();
        yield item;
      }
    } catch (e) {
      countError(metrics, e);
      throw e;
    }
  }
  return {
    put: (directory, opts) => counted(service.put(directory, opts)),
    close: () => service.close(),
    ...(service.listDigests ? { listDigests: (opts?: ListDigestsOptions) => service.listDigests!(opts) } : {}),
    ...(service.has
      ? { has: (digests: readonly Digest[], opts?: CallOptions) => counted(service.has!(digests, opts)) }
      : {}),
    ...(service.partialUploads ? { partialUploads: (opts?: CallOptions) => service.partialUploads!(opts) } : {}),
    async get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined> {
      const d = await counted(service.get(digest, opts));
      if (d !== undefined) metrics.directoriesSent.inc();
      return d;
    },
    getRecursive: (root: Digest, opts?: CallOptions) => countedSent(service.getRecursive(root, opts)),
    ...(service.getRecursiveEncoded
      ? {
          getRecursiveEncoded: (root: Digest, opts?: CallOptions) =>
            countedSent(service.getRecursiveEncoded!(root, opts)),
        }
      : {}),
    putMultipleStart(opts?: PutMultipleOptions): DirectoryPutter {
      const putter = service.putMultipleStart(opts);
      const finish = inFlight(metrics.uploadsInFlight);
      return {
        async put(directory: Directory, encoded?: Uint8Array): Promise<void> {
          await counted(putter.put(directory, encoded));
          metrics.directoriesReceived.inc();
        },
        async close(): Promise<Digest> {
          try {
            return await counted(putter.close());
          } finally {
            finish();
          }
        },
        async abort(reason?: unknown): Promise<void> {
          try {
            await putter.abort(reason);
          } finally {
            finish();
          }
        },
      };
    },
  };
}

/** The blob service, counting backend errors and uploads in flight (bytes and messages are counted on the wire). */
export function instrumentBlobService(blobs: BlobService, metrics: ServerMetrics): BlobService {
  const counted = <T>(p: Promise<T>) => countErrors(metrics, p);
  async function* countedStream(bytes: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    try {
      yield* bytes;
    } catch (e) {
      countError(metrics, e);
      throw e;
    }
  }
  return {
    stat: (digest, opts) => counted(blobs.stat(digest, opts)),
    has: (digests, opts) => counted(blobs.has(digests, opts)),
    close: () => blobs.close(),
    async read(digest, opts) {
      const bytes = await counted(blobs.read(digest, opts));
      return bytes === undefined ? undefined : countedStream(bytes);
    },
    openWriter(opts?: OpenWriterOptions): BlobWriter {
      const writer = blobs.openWriter(opts);
      const finish = inFlight(metrics.blobUploadsInFlight);
      return {
        write: (bytes) => counted(writer.write(bytes)),
        async close() {
          try {
            return await counted(writer.close());
          } finally {
            finish();
          }
        },
        async abort(reason?: unknown) {
          try {
            await writer.abort(reason);
          } finally {
            finish();
          }
        },
      };
    },
  };
}
