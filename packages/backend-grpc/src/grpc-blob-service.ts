/**
 * GrpcBlobService: a BlobService that talks to a remote castore, tvix or
 * snix server over gRPC (tvix.castore.v1.BlobService or snix.), on the same
 * grpc+http / grpc+https / grpc+unix URLs as GrpcDirectoryService, with the
 * same connection handling (http2-connection.ts) and calls
 * (grpc-stream-calls.ts).
 *
 * Every byte `read` yields has been verified: it asks Stat for the chunk
 * list, and checks each chunk against its digest before yielding any of it;
 * a full read also checks the blob's digest at the end. A read that needs
 * every chunk (a full read) reads the blob in one Read call and cuts the
 * bytes at the listed chunk boundaries as they arrive, holding at most one
 * chunk until it is verified; a ranged read that needs fewer reads each of
 * its chunks by the chunk's digest (tvix and castore serve chunks by
 * digest). Only when the server sends no chunk list is the blob streamed as
 * it comes and checked at the end (a mismatch still ends the stream with
 * CorruptionError, never a clean end).
 *
 * Calls per operation, for one blob of n chunks (k of them in a range):
 * - openWriter … close: one Put call (one round trip, streamed);
 * - read: one Stat, then one Read of the blob when the read needs every
 *   chunk, else one Read per chunk read (k), `readAheadChunks` of them in
 *   flight at once; 1 + 1 without a chunk list;
 * - stat: one Stat (plus one Read of the whole blob when the server sends
 *   no chunk list: the size is only known by reading it);
 * - has(N digests): N Stat calls, `hasConcurrency` at a time.
 * The empty blob exists in every store: its read, stat and has cost nothing.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AbortError,
  BackendError,
  BlobDigestMismatchError,
  type BlobReadOptions,
  type BlobService,
  type BlobStat,
  type BlobStatOptions,
  type BlobWriter,
  type BlobWritten,
  type CallOptions,
  type ChunkMeta,
  type OpenWriterOptions,
  CorruptionError,
  createBlake3Hasher,
  Digest,
  isCastoreError,
  requireBytes,
  requireDigest,
  requireDigests,
  NotFoundError,
  ValidationError,
} from "@castore-ts/core";
import {
  BlobChunkSchema,
  PutBlobResponseSchema,
  ReadBlobRequestSchema,
  StatBlobRequestSchema,
  StatBlobResponseSchema,
} from "@castore-ts/proto";
import { type CallTarget, serverStreamingCall } from "./grpc-stream-calls.js";
import type { GrpcTarget } from "./grpc-url.js";
import { type ClientConnectionOptions, GrpcClient, optionsFromUrl } from "./grpc-client-connection.js";
import { fromConnectError } from "./status.js";
import { UploadCall } from "./upload-call.js";
import { CallSignal } from "./call-signal.js";
import { FindMissingClient } from "./grpc-find-missing.js";
import { encodeBlobChunk, MAX_SENT_BLOB_CHUNK_BYTES } from "./blob-service-handler.js";

export interface GrpcBlobServiceOptions extends ClientConnectionOptions {
  /** BlobChunk messages (≤ 1 MiB each) an upload holds ahead of the network before write() waits (default 4). */
  putQueueMessages?: number;
  /** Chunks a read fetches ahead of the one it yields (default 2; memory: that many chunks). */
  readAheadChunks?: number;
  /** Stat calls has() keeps in flight (default 16). */
  hasConcurrency?: number;
}

const DEFAULT_PUT_QUEUE_MESSAGES = 4;
const DEFAULT_READ_AHEAD_CHUNKS = 2;
const DEFAULT_HAS_CONCURRENCY = 16;
/**
 * A chunk is held whole until it is verified: a chunk list naming a larger
 * chunk is not used (the blob is streamed and checked at its end instead),
 * so a server cannot make the client buffer what it likes.
 */
const MAX_VERIFIED_CHUNK_BYTES = 16 * 1024 * 1024;

const EMPTY_BLOB = Digest.of(new Uint8Array(0));

/** How a blob will be read: its verified-chunk plan, or streamed whole (no usable chunk list). */
type ReadPlan = { kind: "chunks"; chunks: readonly ChunkMeta[] } | { kind: "whole" };

export class GrpcBlobService extends GrpcClient implements BlobService {
  private readonly findMissing: FindMissingClient;
  private readonly paths: { stat: string; read: string; put: string };
  private readonly putQueueMessages: number;
  private readonly readAheadChunks: number;
  private readonly hasConcurrency: number;

  /** Opens a client for a grpc+http://, grpc+https:// or grpc+unix:// URL (see grpc-url.ts for options). */
  static fromUrl(url: string | URL, options: GrpcBlobServiceOptions = {}): GrpcBlobService {
    const resolved = optionsFromUrl(url, options);
    return new GrpcBlobService(resolved.target, resolved.options);
  }

  constructor(target: GrpcTarget, options: GrpcBlobServiceOptions = {}) {
    super(target, options);
    this.findMissing = new FindMissingClient(this.target, this.address);
    this.putQueueMessages = positive("putQueueMessages", options.putQueueMessages ?? DEFAULT_PUT_QUEUE_MESSAGES);
    this.readAheadChunks = positive("readAheadChunks", options.readAheadChunks ?? DEFAULT_READ_AHEAD_CHUNKS);
    this.hasConcurrency = positive("hasConcurrency", options.hasConcurrency ?? DEFAULT_HAS_CONCURRENCY);
    const service = `/${this.serviceName}.castore.v1.BlobService`;
    this.paths = { stat: `${service}/Stat`, read: `${service}/Read`, put: `${service}/Put` };
  }

  private wrap(error: unknown, signal: AbortSignal | undefined): Error {
    if (isCastoreError(error)) return error;
    return fromConnectError(error, this.address, signal);
  }

  openWriter(opts: OpenWriterOptions = {}): BlobWriter {
    this.checkOpen();
    if (opts.expectDigest !== undefined) requireDigest(opts.expectDigest, "openWriter(): expectDigest");
    return new GrpcBlobWriter(
      this.target,
      this.paths.put,
      this.address,
      this.putQueueMessages,
      opts.signal,
      opts.expectDigest,
    );
  }

  /** The Stat answer's chunk list (checked), or undefined when the blob is absent (NOT_FOUND). */
  private async statCall(digest: Digest, sendChunks: boolean, signal?: AbortSignal): Promise<ChunkMeta[] | undefined> {
    const request = toBinary(
      StatBlobRequestSchema,
      create(StatBlobRequestSchema, { digest: digest.bytes, sendChunks }),
    );
    let message: Uint8Array | undefined;
    try {
      for await (const batch of serverStreamingCall(this.target, this.paths.stat, request, signal)) {
        for (const m of batch) {
          if (message !== undefined) {
            throw new ConnectError("protocol error: more than one message in the answer to Stat", Code.Unimplemented);
          }
          message = m;
        }
      }
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.NotFound && !signal?.aborted) return undefined;
      throw this.wrap(e, signal);
    }
    if (message === undefined) throw new BackendError(this.address, "protocol error: Stat answered no message");
    let response;
    try {
      response = fromBinary(StatBlobResponseSchema, message);
    } catch (e) {
      throw new CorruptionError(
        `${this.address}: Stat of ${digest}: invalid StatBlobResponse: ${(e as Error).message}`,
      );
    }
    return response.chunks.map((c, i) => {
      const size = Number(c.size);
      if (c.digest.length !== 32 || !Number.isSafeInteger(size) || size <= 0) {
        throw new CorruptionError(
          `${this.address}: Stat of ${digest}: chunk #${i} has a ${c.digest.length}-byte digest and size ${c.size}`,
        );
      }
      return { digest: Digest.fromBytes(c.digest), size };
    });
  }

  /** The read plan, or undefined when the blob is absent. */
  private async plan(digest: Digest, signal?: AbortSignal): Promise<ReadPlan | undefined> {
    const chunks = await this.statCall(digest, true, signal);
    if (chunks === undefined) return undefined;
    if (chunks.length === 0 || chunks.some((c) => c.size > MAX_VERIFIED_CHUNK_BYTES)) return { kind: "whole" };
    return { kind: "chunks", chunks };
  }

  async stat(digest: Digest, opts: BlobStatOptions = {}): Promise<BlobStat | undefined> {
    requireDigest(digest, "stat(): digest");
    this.checkOpen();
    if (digest.equals(EMPTY_BLOB)) return opts.chunks ? { size: 0, chunks: [] } : { size: 0 };
    const chunks = await this.statCall(digest, true, opts.signal);
    if (chunks === undefined) return undefined;
    if (chunks.length > 0) {
      const size = chunks.reduce((n, c) => n + c.size, 0);
      return opts.chunks ? { size, chunks } : { size };
    }
    // No chunk list (a tvix server for a small blob, or a chunk's digest):
    // StatBlobResponse has no size, so the only way to know it is to read it
    // (one Read, checked against the digest like any read).
    let size = 0;
    try {
      for await (const piece of this.readWhole(digest, 0, Infinity, opts.signal)) size += piece.length;
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
    return { size };
  }

  /** One FindMissing call per 50 000 digests; against a server without it, a Stat per digest. */
  async has(digests: readonly Digest[], opts: CallOptions = {}): Promise<boolean[]> {
    requireDigests(digests, "has(): digests");
    this.checkOpen();
    let found: boolean[] | undefined;
    try {
      found = await this.findMissing.has("blobs", digests, opts.signal);
    } catch (e) {
      throw this.wrap(e, opts.signal);
    }
    if (found) return found.map((present, i) => present || digests[i].equals(EMPTY_BLOB));
    const out = new Array<boolean>(digests.length);
    let next = 0;
    const worker = async () => {
      while (next < digests.length) {
        const i = next++;
        const d = digests[i]!;
        out[i] = d.equals(EMPTY_BLOB) || (await this.statCall(d, false, opts.signal)) !== undefined;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.hasConcurrency, digests.length) }, worker));
    return out;
  }

  async read(digest: Digest, opts: BlobReadOptions = {}): Promise<AsyncIterable<Uint8Array> | undefined> {
    requireDigest(digest, "read(): digest");
    this.checkOpen();
    const { signal } = opts;
    const offset = opts.offset ?? 0;
    const length = opts.length ?? Infinity;
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new ValidationError(`read offset must be a non-negative integer, got ${opts.offset}`);
    if (length !== Infinity && (!Number.isSafeInteger(length) || length < 0)) {
      throw new ValidationError(`read length must be a non-negative integer, got ${opts.length}`);
    }
    if (digest.equals(EMPTY_BLOB)) return (async function* () {})();
    const plan = await this.plan(digest, signal);
    if (plan === undefined) return undefined;
    if (plan.kind === "whole") return this.readWhole(digest, offset, length, signal);
    const total = plan.chunks.reduce((n, c) => n + c.size, 0);
    const full = offset === 0 && length >= total;
    // Every chunk needed (the range starts in the first and ends in the last): one call for them all.
    const lastStart = total - plan.chunks[plan.chunks.length - 1]!.size;
    const everyChunk = offset < plan.chunks[0]!.size && offset + length > lastStart;
    return everyChunk
      ? this.readCutting(digest, plan.chunks, offset, length, full, signal)
      : this.readChunks(digest, plan.chunks, offset, length, full, signal);
  }

  /**
   * The blob in one Read call, cut at the chunk boundaries Stat listed as the
   * bytes arrive: each chunk checked against its digest before any of it is
   * yielded (the part of it in [offset, offset + length)), the blob's digest
   * checked at the end of a full read. A chunk that arrives whole within one
   * received message is checked and yielded in place; one split across
   * messages is gathered first, so at most one chunk is held.
   */
  private async *readCutting(
    blob: Digest,
    chunks: readonly ChunkMeta[],
    offset: number,
    length: number,
    full: boolean,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    const end = offset + length;
    const oneChunk = chunks.length === 1 && chunks[0]!.digest.equals(blob);
    const hasher = full && !oneChunk ? createBlake3Hasher() : undefined;
    let index = 0; // the chunk being received
    let start = 0; // where it starts in the blob
    let gathering: Uint8Array | undefined; // its bytes so far, when split across messages
    let gathered = 0;
    try {
      for await (const piece of this.readCall(blob, signal)) {
        for (let at = 0; at < piece.length;) {
          const chunk = chunks[index];
          if (chunk === undefined) {
            throw new CorruptionError(`${this.address}: blob ${blob} is longer than the ${start} bytes Stat listed`);
          }
          let bytes: Uint8Array;
          if (gathered === 0 && piece.length - at >= chunk.size) {
            bytes = piece.subarray(at, at + chunk.size);
            at += chunk.size;
          } else {
            gathering ??= new Uint8Array(chunk.size);
            const take = Math.min(chunk.size - gathered, piece.length - at);
            gathering.set(piece.subarray(at, at + take), gathered);
            gathered += take;
            at += take;
            if (gathered < chunk.size) continue;
            bytes = gathering;
            gathering = undefined;
            gathered = 0;
          }
          const actual = Digest.fromBytes(hashOf(bytes));
          if (!actual.equals(chunk.digest)) {
            throw new CorruptionError(
              `${this.address}: chunk ${chunk.digest} of blob ${blob}: received bytes hash to ${actual}`,
            );
          }
          hasher?.update(bytes);
          const from = Math.max(0, offset - start);
          const to = Math.min(chunk.size, end - start);
          index++;
          start += chunk.size;
          if (from < to) yield from === 0 && to === chunk.size ? bytes : bytes.subarray(from, to);
        }
      }
    } catch (e) {
      throw this.wrap(e, signal);
    }
    if (index < chunks.length) {
      const listed = chunks.reduce((n, c) => n + c.size, 0);
      throw new CorruptionError(
        `${this.address}: blob ${blob} ended after ${start + gathered} bytes, Stat listed ${listed}`,
      );
    }
    if (hasher) {
      const actual = Digest.fromBytes(hasher.digest());
      if (!actual.equals(blob)) {
        throw new CorruptionError(`${this.address}: the chunks Stat listed for blob ${blob} hash to ${actual}`);
      }
    }
  }

  /** The range, chunk by chunk: each fetched by its digest and verified before any of it is yielded. */
  private async *readChunks(
    blob: Digest,
    chunks: readonly ChunkMeta[],
    offset: number,
    length: number,
    full: boolean,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    const end = offset + length;
    // The chunks overlapping [offset, end), with where each starts in the blob.
    const needed: { chunk: ChunkMeta; start: number }[] = [];
    let at = 0;
    for (const chunk of chunks) {
      if (at + chunk.size > offset && at < end) needed.push({ chunk, start: at });
      at += chunk.size;
    }
    // A blob of one chunk is that chunk: its check covers the blob. Otherwise a full read hashes the whole again.
    const oneChunk = chunks.length === 1 && chunks[0]!.digest.equals(blob);
    const hasher = full && !oneChunk ? createBlake3Hasher() : undefined;
    // The fetches' signal: the caller's, and aborted when this read ends (CallSignal, not
    // AbortSignal.any(), which on Node 20 left every read on a long-lived caller's signal).
    const fetches = new CallSignal();
    if (signal) fetches.follow(signal);
    const callSignal = fetches.signal;
    const inFlight: Promise<Uint8Array>[] = [];
    let fetched = 0;
    const fill = () => {
      while (fetched < needed.length && inFlight.length <= this.readAheadChunks) {
        const p = this.fetchChunk(blob, needed[fetched]!.chunk, callSignal);
        p.catch(() => {}); // reported when its turn comes
        inFlight.push(p);
        fetched++;
      }
    };
    try {
      for (const { chunk, start } of needed) {
        fill();
        const bytes = await inFlight.shift()!;
        hasher?.update(bytes);
        const from = Math.max(0, offset - start);
        const to = Math.min(chunk.size, end - start);
        yield from === 0 && to === chunk.size ? bytes : bytes.subarray(from, to);
      }
      if (hasher) {
        const actual = Digest.fromBytes(hasher.digest());
        if (!actual.equals(blob)) {
          throw new CorruptionError(`${this.address}: the chunks Stat listed for blob ${blob} hash to ${actual}`);
        }
      }
    } finally {
      // Stops the fetches still running when the reader leaves early or one failed; detaches from the caller's signal.
      fetches.abort(undefined);
    }
  }

  /** One chunk, read whole by its digest and checked against its digest and size. */
  private async fetchChunk(blob: Digest, chunk: ChunkMeta, signal: AbortSignal): Promise<Uint8Array> {
    const out = new Uint8Array(chunk.size);
    let got = 0;
    const what = `chunk ${chunk.digest} of blob ${blob}`;
    try {
      for await (const piece of this.readCall(chunk.digest, signal)) {
        if (got + piece.length > chunk.size) {
          throw new CorruptionError(`${this.address}: ${what} is longer than the ${chunk.size} bytes Stat listed`);
        }
        out.set(piece, got);
        got += piece.length;
      }
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.NotFound && !signal.aborted) {
        throw new CorruptionError(`${this.address}: ${what}, listed by Stat, is not found`);
      }
      throw this.wrap(e, signal);
    }
    if (got !== chunk.size) {
      throw new CorruptionError(`${this.address}: ${what} has ${got} bytes, Stat listed ${chunk.size}`);
    }
    const actual = Digest.fromBytes(hashOf(out));
    if (!actual.equals(chunk.digest)) {
      throw new CorruptionError(`${this.address}: ${what}: received bytes hash to ${actual}`);
    }
    return out;
  }

  /** The blob streamed as the server sends it (no chunk list), checked against its digest at the end. */
  private async *readWhole(
    blob: Digest,
    offset: number,
    length: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    const end = offset + length;
    const hasher = createBlake3Hasher();
    let at = 0;
    try {
      for await (const piece of this.readCall(blob, signal)) {
        hasher.update(piece);
        const from = Math.max(0, offset - at);
        const to = Math.min(piece.length, end - at);
        at += piece.length;
        if (from < to) yield from === 0 && to === piece.length ? piece : piece.subarray(from, to);
      }
    } catch (e) {
      throw this.wrap(e, signal);
    }
    const actual = Digest.fromBytes(hasher.digest());
    if (!actual.equals(blob)) {
      throw new CorruptionError(`${this.address}: requested blob ${blob}, but the received bytes hash to ${actual}`);
    }
  }

  /** A Read call's data, piece by piece (ConnectErrors pass through unwrapped). */
  private async *readCall(digest: Digest, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const request = toBinary(ReadBlobRequestSchema, create(ReadBlobRequestSchema, { digest: digest.bytes }));
    for await (const batch of serverStreamingCall(this.target, this.paths.read, request, signal)) {
      for (const message of batch) yield decodeBlobChunk(message, this.address);
    }
  }
}

function positive(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer, got ${n}`);
  return n;
}

function hashOf(bytes: Uint8Array): Uint8Array {
  const h = createBlake3Hasher();
  h.update(bytes);
  return h.digest();
}

/** A received BlobChunk's data (protobuf-es returns a view, no copy); anything else is a CorruptionError. */
function decodeBlobChunk(message: Uint8Array, address: string): Uint8Array {
  try {
    return fromBinary(BlobChunkSchema, message).data;
  } catch (e) {
    throw new CorruptionError(`${address}: invalid BlobChunk: ${(e as Error).message}`);
  }
}

/**
 * One Put call. write() splits its bytes into BlobChunk messages of at most
 * 1 MiB (copied, so the caller may reuse its buffer once write resolves),
 * queued at most `queueMessages` ahead of the network; the bytes are hashed
 * as they go, and close() checks that the digest the server answers is the
 * digest of what was sent. A server error surfaces at the next write() or
 * at close(). abort() before close() cancels the call: the server stores
 * nothing.
 */
export class GrpcBlobWriter implements BlobWriter {
  private readonly upload: UploadCall<Digest>;
  private readonly hasher = createBlake3Hasher();
  private size = 0;
  private state: "open" | "closing" | "closed" | "aborted" = "open";

  constructor(
    target: CallTarget,
    path: string,
    private readonly address: string,
    queueMessages: number,
    userSignal?: AbortSignal,
    private readonly expectDigest?: Digest,
  ) {
    this.upload = new UploadCall(target, path, address, queueMessages, userSignal, (response) => {
      try {
        return Digest.fromBytes(fromBinary(PutBlobResponseSchema, response).digest);
      } catch (e) {
        throw new BackendError(address, `invalid digest in PutBlobResponse: ${(e as Error).message}`);
      }
    });
  }

  private checkOpen(): void {
    if (this.state === "aborted") throw new AbortError("upload was aborted");
    if (this.state !== "open") throw new BackendError(this.address, "blob writer already closed");
    const aborted = this.upload.aborted;
    if (aborted) throw new AbortError("upload was aborted", { cause: aborted.reason });
    const outcome = this.upload.outcome;
    if (outcome && !outcome.ok) throw outcome.error;
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    requireBytes(bytes, "write(): bytes");
    this.hasher.update(bytes);
    this.size += bytes.length;
    for (let at = 0; at < bytes.length; at += MAX_SENT_BLOB_CHUNK_BYTES) {
      await this.upload.send(
        encodeBlobChunk(bytes.subarray(at, Math.min(bytes.length, at + MAX_SENT_BLOB_CHUNK_BYTES))),
      );
    }
  }

  async close(): Promise<BlobWritten> {
    this.checkOpen();
    this.state = "closing";
    try {
      const expected = Digest.fromBytes(this.hasher.digest());
      // Before the request stream ends: a server commits a blob only at its end, so a cancel stores nothing
      // (tvix and snix servers as well as castore's).
      if (this.expectDigest !== undefined && !expected.equals(this.expectDigest)) {
        const mismatch = new BlobDigestMismatchError(this.expectDigest, expected, this.size);
        await this.upload.cancel(mismatch);
        throw mismatch;
      }
      const digest = await this.upload.finish();
      if (!digest.equals(expected)) {
        throw new CorruptionError(
          `${this.address}: uploaded a blob with digest ${expected}, the server answered ${digest}`,
        );
      }
      return { digest, size: this.size };
    } finally {
      this.state = "closed";
    }
  }

  async abort(reason?: unknown): Promise<void> {
    if (this.state === "closed" || this.state === "aborted") return;
    this.state = "aborted";
    // The server aborts its writer on the cancel.
    await this.upload.cancel(reason);
  }
}
