/**
 * GrpcDirectoryService: a DirectoryService that talks to a remote castore,
 * tvix or snix server over gRPC (tvix.castore.v1 or snix.castore.v1), like
 * tvix's GRPCDirectoryService (the seed's grpc.rs), with the stream checks of
 * spec §5. All calls share one HTTP/2 connection.
 */
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, type Http2SessionManager } from "@connectrpc/connect-node";
import {
  AbortError,
  BackendError,
  type CallOptions,
  ClosureError,
  CorruptionError,
  Digest,
  type Directory,
  type DirectoryPutter,
  type DirectoryService,
  encodeDirectory,
  isCastoreError,
  RootToLeavesChecker,
  validateDirectory,
} from "@castore/core";
import { DirectoryService as TvixDirectoryService, SnixDirectoryService } from "@castore/proto";
import { BoundedQueue } from "./bounded-queue.js";
import { describeTarget, type GrpcTarget, parseGrpcUrl, type ServiceName } from "./grpc-url.js";
import { baseUrlOf, type ConnectionOptions, createSessionManager } from "./http2-connection.js";
import { unknownFieldProblem } from "./received-directory.js";
import { fromConnectError } from "./status.js";

type DirectoryClient = Client<typeof TvixDirectoryService>;

export interface GrpcDirectoryServiceOptions {
  /** Which service name to call (default "tvix"; snix servers want "snix"). */
  serviceName?: ServiceName;
  /** A connection not established within this time fails the call with a BackendError (default 10 s). */
  connectTimeoutMs?: number;
  /** Largest message accepted from the server (default 4 MiB). */
  maxMessageBytes?: number;
  /** Directories an upload holds in memory ahead of the network before put() waits (default 256). */
  putQueueLength?: number;
  /** HTTP/2 flow-control window for responses, per stream and per connection (default 1 MiB). */
  windowBytes?: number;
  /** TLS options for grpc+https (extra CA, client certificate). */
  tls?: ConnectionOptions["tls"];
  /** Keepalive PING interval in ms (default: none). */
  pingIntervalMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const DEFAULT_PUT_QUEUE_LENGTH = 256;
const DEFAULT_WINDOW_BYTES = 1024 * 1024;

export class GrpcDirectoryService implements DirectoryService {
  /** The server's address as a store URL, used in error messages. */
  readonly address: string;
  readonly serviceName: ServiceName;
  private readonly sessionManager: Http2SessionManager;
  private readonly client: DirectoryClient;
  private readonly putQueueLength: number;
  private closed = false;

  /** Opens a client for a grpc+http://, grpc+https:// or grpc+unix:// URL (see grpc-url.ts for options). */
  static fromUrl(url: string | URL, options: GrpcDirectoryServiceOptions = {}): GrpcDirectoryService {
    const parsed = parseGrpcUrl(typeof url === "string" ? new URL(url) : url);
    return new GrpcDirectoryService(parsed.target, {
      serviceName: parsed.serviceName,
      connectTimeoutMs: parsed.connectTimeoutMs,
      ...options,
      tls: parsed.ca ? { ca: parsed.ca, ...options.tls } : options.tls,
    });
  }

  constructor(target: GrpcTarget, options: GrpcDirectoryServiceOptions = {}) {
    this.address = describeTarget(target);
    this.serviceName = options.serviceName ?? "tvix";
    this.putQueueLength = options.putQueueLength ?? DEFAULT_PUT_QUEUE_LENGTH;
    this.sessionManager = createSessionManager(target, {
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      windowBytes: options.windowBytes ?? DEFAULT_WINDOW_BYTES,
      tls: options.tls,
      pingIntervalMs: options.pingIntervalMs,
    });
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const transport: Transport = createGrpcTransport({
      baseUrl: baseUrlOf(target),
      sessionManager: this.sessionManager,
      readMaxBytes: maxMessageBytes,
      writeMaxBytes: maxMessageBytes,
    });
    const desc = this.serviceName === "snix" ? SnixDirectoryService : TvixDirectoryService;
    // Both descriptors have the same methods and messages; only the path differs.
    this.client = createClient(desc, transport) as unknown as DirectoryClient;
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError(this.address, "client is closed");
  }

  private wrap(error: unknown, signal: AbortSignal | undefined): Error {
    return fromConnectError(error, this.address, signal);
  }

  async get(digest: Digest, opts: CallOptions = {}): Promise<Directory | undefined> {
    this.checkOpen();
    const { signal } = opts;
    try {
      const stream = this.client.get({ byWhat: { case: "digest", value: digest.bytes }, recursive: false }, { signal });
      // The first message only; leaving the loop cancels the call.
      for await (const directory of stream) {
        return this.checkGot(digest, directory);
      }
      return undefined;
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.NotFound && !signal?.aborted) return undefined;
      throw this.wrap(e, signal);
    }
  }

  private checkGot(expected: Digest, directory: Directory): Directory {
    const problem = unknownFieldProblem(directory);
    if (problem !== undefined) {
      throw new CorruptionError(`${this.address}: directory ${expected} received with unknown fields: ${problem}`);
    }
    const actual = Digest.of(encodeDirectory(directory));
    if (!actual.equals(expected)) {
      throw new CorruptionError(`${this.address}: requested directory ${expected}, but received ${actual}`);
    }
    try {
      validateDirectory(directory);
    } catch (e) {
      throw new CorruptionError(`${this.address}: directory ${expected} failed validation: ${(e as Error).message}`);
    }
    return directory;
  }

  async put(directory: Directory, opts: CallOptions = {}): Promise<Digest> {
    const putter = this.putMultipleStart(opts);
    try {
      await putter.put(directory);
    } catch (e) {
      await putter.abort(e);
      throw e;
    }
    return putter.close();
  }

  async *getRecursive(root: Digest, opts: CallOptions = {}): AsyncGenerator<Directory, void, undefined> {
    this.checkOpen();
    const { signal } = opts;
    const checker = new RootToLeavesChecker(root);
    let received = 0;
    try {
      const stream = this.client.get({ byWhat: { case: "digest", value: root.bytes }, recursive: true }, { signal });
      for await (const directory of stream) {
        const problem = unknownFieldProblem(directory);
        if (problem !== undefined) {
          throw new CorruptionError(`${this.address}: directory #${received} below root ${root} received with unknown fields: ${problem}`);
        }
        checker.accept(directory);
        received++;
        yield directory;
      }
    } catch (e) {
      if (isCastoreError(e)) throw e;
      // tvix answers NOT_FOUND for an absent root; castore servers send an empty stream.
      if (e instanceof ConnectError && e.code === Code.NotFound && received === 0 && !signal?.aborted) return;
      throw this.wrap(e, signal);
    }
    checker.finish();
  }

  putMultipleStart(opts: CallOptions = {}): GrpcDirectoryPutter {
    this.checkOpen();
    return new GrpcDirectoryPutter(this.client, this.address, this.putQueueLength, opts.signal);
  }

  /** Closes the HTTP/2 connection; running calls fail, later calls throw. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sessionManager.abort(new ConnectError("client closed", Code.Canceled));
  }
}

/**
 * One Put call. Directories are queued (at most `queueLength` ahead of the
 * network) and streamed as they are put; a server error surfaces at the next
 * put() or at close(). Once the server has ended the call, put() fails.
 */
export class GrpcDirectoryPutter implements DirectoryPutter {
  private readonly queue: BoundedQueue<Directory>;
  private readonly controller = new AbortController();
  private readonly signal: AbortSignal;
  private call: Promise<Digest> | undefined;
  private outcome: { ok: true; root: Digest } | { ok: false; error: Error } | undefined;
  private state: "open" | "closing" | "closed" | "aborted" = "open";

  constructor(
    private readonly client: DirectoryClient,
    private readonly address: string,
    queueLength: number,
    userSignal?: AbortSignal,
  ) {
    this.queue = new BoundedQueue(queueLength);
    this.signal = userSignal ? AbortSignal.any([userSignal, this.controller.signal]) : this.controller.signal;
  }

  /** True once the call is over: closed, aborted, or ended by the server (e.g. after a rejected directory). */
  isClosed(): boolean {
    return this.state !== "open" || this.outcome !== undefined;
  }

  private start(): void {
    if (this.call) return;
    this.call = this.client.put(this.queue, { signal: this.signal }).then(
      (response) => {
        let root: Digest;
        try {
          root = Digest.fromBytes(response.rootDigest);
        } catch (e) {
          const error = new BackendError(this.address, `invalid root digest in PutDirectoryResponse: ${(e as Error).message}`);
          this.outcome = { ok: false, error };
          throw error;
        }
        this.outcome = { ok: true, root };
        return root;
      },
      (e: unknown) => {
        const error = this.signal.aborted
          ? new AbortError("upload was aborted", { cause: this.signal.reason ?? e })
          : fromConnectError(e, this.address);
        this.outcome = { ok: false, error };
        this.queue.fail(error);
        throw error;
      },
    );
    // Errors are reported by put() or close(); never as an unhandled rejection.
    this.call.catch(() => {});
  }

  private checkOpen(): void {
    if (this.state === "aborted") throw new AbortError("upload was aborted");
    if (this.state !== "open") throw new ClosureError("upload already closed");
    if (this.signal.aborted) throw new AbortError("upload was aborted", { cause: this.signal.reason });
    if (this.outcome) {
      if (!this.outcome.ok) throw this.outcome.error;
      throw new ClosureError("the server already ended this upload");
    }
  }

  async put(directory: Directory): Promise<void> {
    this.checkOpen();
    this.start();
    await this.queue.push(directory);
  }

  async close(): Promise<Digest> {
    this.checkOpen();
    this.state = "closing";
    this.start();
    this.queue.end();
    try {
      return await this.call!;
    } finally {
      this.state = "closed";
    }
  }

  async abort(reason?: unknown): Promise<void> {
    if (this.state === "closed" || this.state === "aborted") return;
    this.state = "aborted";
    this.queue.fail(new AbortError("upload was aborted", { cause: reason }));
    // No reason: connect maps the plain abort to CANCELLED (RST_STREAM CANCEL).
    this.controller.abort();
    await this.call?.catch(() => {});
  }
}
