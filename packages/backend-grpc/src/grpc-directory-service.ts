/**
 * GrpcDirectoryService: a DirectoryService that talks to a remote castore,
 * tvix or snix server over gRPC (tvix.castore.v1 or snix.castore.v1), like
 * tvix's GRPCDirectoryService (the seed's grpc.rs), with the stream checks of
 * spec §5. All calls share one HTTP/2 connection (connect-node's
 * Http2SessionManager); the calls themselves are in grpc-stream-calls.ts.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AbortError,
  BackendError,
  type CallOptions,
  checkDirectoryShape,
  ClosureError,
  CorruptionError,
  Digest,
  type Directory,
  type DirectoryPutter,
  type DirectoryService,
  type EncodedDirectory,
  encodeDirectory,
  type PutMultipleOptions,
  hasDirectories,
  isCastoreError,
  requireDigest,
  requireDigests,
  RootToLeavesChecker,
  type SizeCheck,
  validateDirectory,
} from "@castore-ts/core";
import { PutDirectoryResponseSchema } from "@castore-ts/proto";
import { type CallTarget, serverStreamingCall } from "./grpc-stream-calls.js";
import type { GrpcTarget } from "./grpc-url.js";
import { type ClientConnectionOptions, GrpcClient, optionsFromUrl } from "./grpc-client-connection.js";
import { decodeReceived, type ReceivedDirectory } from "./wire-directory.js";
import { fromConnectError } from "./status.js";
import { UploadCall } from "./upload-call.js";
import { FindMissingClient } from "./grpc-find-missing.js";
import { PUT_PARTIAL_PATH } from "./sync-service-handler.js";

export interface GrpcDirectoryServiceOptions extends ClientConnectionOptions {
  /** Directories an upload holds in memory ahead of the network before put() waits (default 256). */
  putQueueLength?: number;
  /**
   * How this client re-checks the declared sizes of what getRecursive
   * receives (spec §1.1; default "exact"). Uploads are the server's to check.
   */
  sizeCheck?: SizeCheck;
}

const DEFAULT_PUT_QUEUE_LENGTH = 256;

/**
 * Why the gRPC client has no `repair` (DirectoryService.repair): the
 * tvix.castore.v1 protocol has Get and Put only, and a server's Put skips
 * digests its store holds, as every castore store does. Treating a re-upload
 * as a repair would cost the server a read per uploaded directory and would
 * not reach a tvix server. Repair the server's store itself: `castore verify
 * <the server's store URL> --repair <a good store>`.
 */
export const GRPC_REPAIR_UNSUPPORTED =
  "the tvix.castore.v1 protocol has no operation to replace stored bytes (Put skips stored digests): " +
  "repair the server's own store with castore verify --repair";

export class GrpcDirectoryService extends GrpcClient implements DirectoryService {
  private readonly findMissing: FindMissingClient;
  private readonly paths: { get: string; put: string };
  private readonly putQueueLength: number;
  private readonly sizeCheck: SizeCheck | undefined;

  /** Opens a client for a grpc+http://, grpc+https:// or grpc+unix:// URL (see grpc-url.ts for options). */
  static fromUrl(url: string | URL, options: GrpcDirectoryServiceOptions = {}): GrpcDirectoryService {
    const resolved = optionsFromUrl(url, options);
    return new GrpcDirectoryService(resolved.target, resolved.options);
  }

  constructor(target: GrpcTarget, options: GrpcDirectoryServiceOptions = {}) {
    super(target, options);
    this.findMissing = new FindMissingClient(this.target, this.address);
    this.putQueueLength = options.putQueueLength ?? DEFAULT_PUT_QUEUE_LENGTH;
    this.sizeCheck = options.sizeCheck;
    const service = `/${this.serviceName}.castore.v1.DirectoryService`;
    this.paths = { get: `${service}/Get`, put: `${service}/Put` };
  }

  private wrap(error: unknown, signal: AbortSignal | undefined): Error {
    return fromConnectError(error, this.address, signal);
  }

  private getCall(digest: Digest, recursive: boolean, signal: AbortSignal | undefined) {
    return serverStreamingCall(this.target, this.paths.get, getRequestBytes(digest, recursive), signal);
  }

  /** One FindMissing call per 50 000 digests; against a server without it, a Get of each, 8 at a time. */
  async has(digests: readonly Digest[], opts: CallOptions = {}): Promise<boolean[]> {
    requireDigests(digests, "has(): digests");
    this.checkOpen();
    let found: boolean[] | undefined;
    try {
      found = await this.findMissing.has("directories", digests, opts.signal);
    } catch (e) {
      throw this.wrap(e, opts.signal);
    }
    // The fallback: core's get-of-each over this service without its `has`.
    return found ?? hasDirectories({ get: (d, o) => this.get(d, o) }, digests, opts);
  }

  async get(digest: Digest, opts: CallOptions = {}): Promise<Directory | undefined> {
    requireDigest(digest, "get(): digest");
    this.checkOpen();
    const { signal } = opts;
    try {
      // Read to the end of the stream (status included), not just its one
      // message: leaving early would reset the stream (RST_STREAM CANCEL)
      // whenever the status has not arrived yet, and servers on nghttp2
      // (node's http2, grpc-js) close a connection with GOAWAY once it has
      // sent them 1000 resets beyond a refill of 33 a second.
      let found: Directory | undefined;
      for await (const batch of this.getCall(digest, false, signal)) {
        for (const message of batch) {
          if (found)
            throw new ConnectError(
              "protocol error: more than one directory in the answer to a non-recursive Get",
              Code.Unimplemented,
            );
          found = this.checkGot(digest, message);
        }
      }
      return found;
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.NotFound && !signal?.aborted) return undefined;
      throw this.wrap(e, signal);
    }
  }

  /** Decodes received bytes; anything but a valid Directory encoding is a CorruptionError. */
  private received(bytes: Uint8Array, what: string): ReceivedDirectory {
    try {
      return decodeReceived(bytes);
    } catch (e) {
      throw new CorruptionError(`${this.address}: ${what}: ${(e as Error).message}`);
    }
  }

  private checkGot(expected: Digest, message: Uint8Array): Directory {
    const { directory, bytes } = this.received(message, `directory ${expected}`);
    const actual = Digest.of(bytes);
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

  getRecursive(root: Digest, opts: CallOptions = {}): AsyncIterableIterator<Directory> {
    return this.recursiveRead(root, opts, directoryOnly);
  }

  /**
   * getRecursive with each directory's bytes as received (strictly decoded,
   * so canonical) and the digest they hashed to: for cache://'s fill, which
   * then need not encode and hash them again, and for a server in front of
   * this one, which sends them on as they are.
   */
  getRecursiveEncoded(root: Digest, opts: CallOptions = {}): AsyncIterableIterator<EncodedDirectory> {
    return this.recursiveRead(root, opts, withBytes);
  }

  private recursiveRead<T>(root: Digest, opts: CallOptions, emit: Emit<T>): AsyncIterableIterator<T> {
    requireDigest(root, "getRecursive(): root");
    const { signal } = opts;
    return new RecursiveRead(
      () => {
        this.checkOpen();
        return this.getCall(root, true, signal);
      },
      new RootToLeavesChecker(root, { sizeCheck: this.sizeCheck }),
      signal,
      (bytes, index) => this.received(bytes, `directory #${index} below root ${root}`),
      (e) => this.wrap(e, signal),
      emit,
    );
  }

  /**
   * With `partial`, the upload goes to castore.sync.v1's PutPartial (spec
   * §3.6): ask partialUploads() first, a server without it answers
   * UNIMPLEMENTED.
   */
  putMultipleStart(opts: PutMultipleOptions = {}): GrpcDirectoryPutter {
    this.checkOpen();
    const path = opts.partial ? `/${PUT_PARTIAL_PATH}` : this.paths.put;
    return new GrpcDirectoryPutter(this.target, path, this.address, this.putQueueLength, opts.signal);
  }

  /** Whether the server takes partial uploads: its FindMissing answer says (no for tvix, snix, older castore). */
  async partialUploads(opts: CallOptions = {}): Promise<boolean> {
    this.checkOpen();
    try {
      return await this.findMissing.partialUploads(opts.signal);
    } catch (e) {
      throw this.wrap(e, opts.signal);
    }
  }
}

/**
 * A GetDirectoryRequest's wire bytes, written out (field 1 `digest`, 32
 * bytes; field 2 `recursive` when true): what protobuf-es's create + toBinary
 * produce, for a fraction of their cost per call (wire.test.ts compares them).
 */
export function getRequestBytes(digest: Digest, recursive: boolean): Uint8Array {
  const out = new Uint8Array(recursive ? 36 : 34);
  out[0] = 0x0a; // field 1, length-delimited
  out[1] = 32;
  out.set(digest.bytes, 2);
  if (recursive) {
    out[34] = 0x10; // field 2, varint
    out[35] = 1;
  }
  return out;
}

/**
 * One Put call. Directories are queued (at most `queueLength` ahead of the
 * network) and streamed as they are put; a server error surfaces at the next
 * put() or at close(). Once the server has ended the call, put() fails.
 */
export class GrpcDirectoryPutter implements DirectoryPutter {
  private readonly upload: UploadCall<Digest>;
  private state: "open" | "closing" | "closed" | "aborted" = "open";

  constructor(target: CallTarget, path: string, address: string, queueLength: number, userSignal?: AbortSignal) {
    this.upload = new UploadCall(target, path, address, queueLength, userSignal, (response) => {
      try {
        return Digest.fromBytes(fromBinary(PutDirectoryResponseSchema, response).rootDigest);
      } catch (e) {
        throw new BackendError(address, `invalid root digest in PutDirectoryResponse: ${(e as Error).message}`);
      }
    });
  }

  /** True once the call is over: closed, aborted, or ended by the server (e.g. after a rejected directory). */
  isClosed(): boolean {
    return this.state !== "open" || this.upload.outcome !== undefined;
  }

  private checkOpen(): void {
    if (this.state === "aborted") throw new AbortError("upload was aborted");
    if (this.state !== "open") throw new ClosureError("upload already closed");
    const aborted = this.upload.aborted;
    if (aborted) throw new AbortError("upload was aborted", { cause: aborted.reason });
    const outcome = this.upload.outcome;
    if (outcome) {
      if (!outcome.ok) throw outcome.error;
      throw new ClosureError("the server already ended this upload");
    }
  }

  async put(directory: Directory, encoded?: Uint8Array): Promise<void> {
    this.checkOpen();
    if (encoded === undefined) {
      // A caller's object of the wrong shape would be encoded as something else: refused here, and the upload
      // with it (as core's putter fails the upload on a directory it refuses).
      try {
        checkDirectoryShape(directory);
      } catch (e) {
        await this.abort(e);
        throw e;
      }
    }
    await this.upload.send(encoded ?? encodeDirectory(directory));
  }

  async close(): Promise<Digest> {
    this.checkOpen();
    this.state = "closing";
    try {
      return await this.upload.finish();
    } finally {
      this.state = "closed";
    }
  }

  /**
   * Before close(): cancels the call; the server stores nothing. During
   * close(): waits for the server's answer instead (DirectoryPutter's closing
   * rules): resolves if it stored nothing, rejects with ClosureError if it
   * stored the upload. Once the end of the upload is on its way, cancelling
   * could not tell which happened: the server may be committing already.
   */
  async abort(reason?: unknown): Promise<void> {
    if (this.state === "closed" || this.state === "aborted") return;
    if (this.state === "closing") {
      let root: Digest;
      try {
        root = await this.upload.answer!;
      } catch {
        return;
      }
      throw new ClosureError(`abort() came too late: the upload was already committed as ${root}`);
    }
    this.state = "aborted";
    await this.upload.cancel(reason);
  }
}

const DONE: IteratorResult<never> = { done: true, value: undefined };

/** What a recursive read yields for each directory it checked. */
type Emit<T> = (directory: Directory, bytes: Uint8Array, digest: Digest) => T;
const directoryOnly: Emit<Directory> = (directory) => directory;
const withBytes: Emit<EncodedDirectory> = (directory, bytes, digest) => ({ directory, bytes, digest });

/**
 * The directories of one recursive Get, checked root to leaves as they are
 * taken: from the batch in hand (one received chunk's messages) at once, in
 * a settled promise, with an await only for the next batch. (An async
 * generator cost several promise turns per directory, about a tenth of the
 * client's time on a stream of small directories.) Leaving early, or a
 * failed check, cancels the call.
 */
class RecursiveRead<T> implements AsyncIterableIterator<T> {
  private batches: AsyncGenerator<Uint8Array[], void, undefined> | undefined;
  private batch: (Uint8Array | undefined)[] = [];
  private index = 0;
  private received = 0;
  private finished = false;
  /** The wait for the next batch, while one runs: a next() meanwhile waits its turn. */
  private waiting: Promise<IteratorResult<T>> | undefined;

  constructor(
    private readonly open: () => AsyncGenerator<Uint8Array[], void, undefined>,
    private readonly checker: RootToLeavesChecker,
    private readonly signal: AbortSignal | undefined,
    private readonly decode: (bytes: Uint8Array, index: number) => ReceivedDirectory,
    private readonly wrap: (e: unknown) => Error,
    private readonly emit: Emit<T>,
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.waiting) return this.waiting.then(() => this.next());
    if (this.finished) return Promise.resolve(DONE);
    if (this.index < this.batch.length) {
      try {
        return Promise.resolve({ done: false, value: this.take() });
      } catch (e) {
        return this.fail(e);
      }
    }
    const waiting = this.nextBatch();
    this.waiting = waiting;
    const settled = () => {
      if (this.waiting === waiting) this.waiting = undefined;
    };
    waiting.then(settled, settled); // the caller sees the rejection, not this reaction

    return waiting;
  }

  /** Checks and hands over the next message of the batch in hand. */
  private take(): T {
    const message = this.batch[this.index]!;
    this.batch[this.index++] = undefined; // the caller keeps the directory, not the batch's list
    // A batch may outlive an abort: nothing more after it.
    if (this.signal?.aborted) throw new AbortError("operation aborted", { cause: this.signal.reason });
    const { directory, bytes } = this.decode(message, this.received);
    const digest = this.checker.accept(directory, bytes);
    this.received++;
    return this.emit(directory, bytes, digest);
  }

  private async nextBatch(): Promise<IteratorResult<T>> {
    try {
      for (;;) {
        this.batches ??= this.open();
        const r = await this.batches.next();
        if (r.done) {
          this.finished = true;
          this.checker.finish();
          return DONE;
        }
        this.batch = r.value;
        this.index = 0;
        if (this.batch.length > 0) return { done: false, value: this.take() };
      }
    } catch (e) {
      return this.fail(e);
    }
  }

  /** Ends the read with `e` (the call cancelled if it still runs), as the caller should see it. */
  private async fail(e: unknown): Promise<IteratorResult<T>> {
    await this.stop();
    if (isCastoreError(e)) throw e;
    // tvix answers NOT_FOUND for an absent root; castore servers send an empty stream.
    if (e instanceof ConnectError && e.code === Code.NotFound && this.received === 0 && !this.signal?.aborted)
      return DONE;
    throw this.wrap(e);
  }

  private async stop(): Promise<void> {
    this.finished = true;
    this.batch = [];
    this.index = 0;
    // Ends serverStreamingCall, which cancels a call that has not completed.
    await this.batches?.return(undefined).catch(() => {});
  }

  async return(): Promise<IteratorResult<T>> {
    await this.stop();
    return DONE;
  }

  async throw(e?: unknown): Promise<IteratorResult<T>> {
    await this.stop();
    throw e;
  }
}
