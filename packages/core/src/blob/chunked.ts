/**
 * ChunkedBlobService: a BlobService over any BlobStore (spec §8).
 *
 * Writing: bytes are cut into content-defined chunks (FastCDC with snix's
 * parameters), each chunk hashed and stored as soon as it is complete, with
 * a bounded number of chunk puts in flight, while the whole blob is hashed
 * incrementally. The manifest (the chunk list) is stored last: a blob is
 * visible only once every chunk of it is.
 *
 * Reading: the manifest says which chunks cover the range; they are fetched
 * a bounded number ahead, each checked against its digest and size before a
 * byte of it is yielded, and a full read checks the blob's digest at the end.
 */
import { describeValue, isBytes, requireBytes } from "../argument-checks.js";
import { Digest, requireDigest, requireDigests } from "../digest.js";
import {
  AbortError,
  BlobDigestMismatchError,
  ClosureError,
  CorruptionError,
  ValidationError,
  forwardAbort,
  throwIfAborted,
} from "../errors.js";
import { createBlake3Hasher, type Blake3Hasher } from "../hash.js";
import type { CallOptions } from "../service.js";
import { FastCdcChunker, SNIX_CHUNKING, type ChunkingOptions } from "./fastcdc.js";
import type {
  BlobReadOptions,
  BlobService,
  BlobStat,
  BlobStatOptions,
  BlobStore,
  BlobWriter,
  OpenWriterOptions,
  PutManyOptions,
  BlobWritten,
  ChunkMeta,
  StoreBlob,
} from "./service.js";

/** The digest of zero bytes: the empty blob, present in every store. */
export const EMPTY_BLOB_DIGEST: Digest = Digest.parse(
  "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
);

export interface ChunkedBlobServiceOptions {
  /** Chunk boundaries (default: snix's 128 / 256 / 512 KiB). */
  chunking?: ChunkingOptions;
  /** Chunk puts in flight per writer, and chunks fetched ahead per reader (default 4). */
  parallelism?: number;
  /**
   * Chunk puts in flight per writer, where the store wants another number
   * than it fetches ahead (default: `parallelism`). A store that commits the
   * puts waiting together as one transaction (LMDB) takes more, so that a
   * commit, and its flush to disk, carries more bytes.
   */
  putParallelism?: number;
}

export class ChunkedBlobService implements BlobService {
  private readonly chunking: ChunkingOptions;
  private readonly parallelism: number;
  private readonly putParallelism: number;

  constructor(
    /** Where chunks and manifests live. Closed by close(). */
    readonly store: BlobStore,
    opts: ChunkedBlobServiceOptions = {},
  ) {
    this.chunking = opts.chunking ?? SNIX_CHUNKING;
    this.parallelism = opts.parallelism ?? 4;
    if (!Number.isInteger(this.parallelism) || this.parallelism < 1)
      throw new RangeError(`parallelism must be a positive integer, got ${opts.parallelism}`);
    this.putParallelism = opts.putParallelism ?? this.parallelism;
    if (!Number.isInteger(this.putParallelism) || this.putParallelism < 1)
      throw new RangeError(`putParallelism must be a positive integer, got ${opts.putParallelism}`);
  }

  openWriter(opts: OpenWriterOptions = {}): BlobWriter {
    if (opts.expectDigest !== undefined) requireDigest(opts.expectDigest, "openWriter(): expectDigest");
    return new ChunkedBlobWriter(
      this.store,
      new FastCdcChunker(this.chunking),
      this.putParallelism,
      opts.signal,
      opts.syncLater ?? false,
      opts.expectDigest,
    );
  }

  /**
   * Whole blobs in memory: each hashed (unless its digest is given) and
   * chunked here (a blob no longer than the minimum chunk size is one chunk,
   * its own bytes: no copy, no second hash), then stored by the store's
   * putBlobs in one call where it has one, or chunk by chunk and manifest
   * last, blob after blob.
   */
  async putMany(blobs: readonly Uint8Array[], opts: PutManyOptions = {}): Promise<BlobWritten[]> {
    throwIfAborted(opts.signal);
    if (!Array.isArray(blobs))
      throw new ValidationError(`putMany(): blobs is ${describeValue(blobs)}, expected an array of Uint8Arrays`);
    // The element's name is built only for a failure: an import's batch checks hundreds.
    for (let i = 0; i < blobs.length; i++) if (!isBytes(blobs[i])) requireBytes(blobs[i], `putMany(): blobs[${i}]`);
    if (opts.digests) requireDigests(opts.digests, "putMany(): digests");
    if (opts.digests && opts.digests.length !== blobs.length)
      throw new ValidationError(`putMany: ${blobs.length} blobs but ${opts.digests.length} digests`);
    const stored: StoreBlob[] = [];
    const written: BlobWritten[] = [];
    for (let i = 0; i < blobs.length; i++) {
      const bytes = blobs[i]!;
      const digest = opts.digests?.[i] ?? Digest.of(bytes);
      written.push({ digest, size: bytes.length });
      if (bytes.length === 0) continue; // the empty blob is present in every store
      if (bytes.length <= this.chunking.minSize) {
        stored.push({ digest, chunks: [{ digest, bytes }] });
        continue;
      }
      const chunker = new FastCdcChunker(this.chunking);
      const pieces = [...chunker.push(bytes), ...chunker.finish()];
      stored.push({ digest, chunks: pieces.map((piece) => ({ digest: Digest.of(piece), bytes: piece })) });
    }
    if (this.store.putBlobs) await this.store.putBlobs(stored, opts);
    else {
      for (const blob of stored) {
        for (let i = 0; i < blob.chunks.length; i += this.putParallelism)
          await Promise.all(
            blob.chunks.slice(i, i + this.putParallelism).map((c) => this.store.putChunk(c.digest, c.bytes, opts)),
          );
        // A blob of one chunk is that chunk: no manifest (see BlobStore.putManifest).
        if (blob.chunks.length === 1) continue;
        const manifest = blob.chunks.map((c) => ({ digest: c.digest, size: c.bytes.length }));
        await this.store.putManifest(blob.digest, manifest, opts);
      }
      if (!opts.syncLater) await this.store.sync?.(opts);
    }
    return written;
  }

  /** The store's sync, when it defers durability at all (see BlobWriteOptions). */
  async sync(opts: CallOptions = {}): Promise<void> {
    await this.store.sync?.(opts);
  }

  async stat(digest: Digest, opts: BlobStatOptions = {}): Promise<BlobStat | undefined> {
    requireDigest(digest, "stat(): digest");
    const chunks = await this.chunksOf(digest, opts);
    if (!chunks) return undefined;
    const size = chunks.reduce((sum, c) => sum + c.size, 0);
    return opts.chunks ? { size, chunks } : { size };
  }

  async has(digests: readonly Digest[], opts: CallOptions = {}): Promise<boolean[]> {
    requireDigests(digests, "has(): digests");
    const stored = await this.store.has(digests, opts);
    return digests.map((d, i) => stored[i] || d.equals(EMPTY_BLOB_DIGEST));
  }

  async read(digest: Digest, opts: BlobReadOptions = {}): Promise<AsyncIterable<Uint8Array> | undefined> {
    requireDigest(digest, "read(): digest");
    const offset = opts.offset ?? 0;
    const length = opts.length ?? Infinity;
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new ValidationError(`read offset must be a non-negative integer, got ${opts.offset}`);
    if (length !== Infinity && (!Number.isSafeInteger(length) || length < 0))
      throw new ValidationError(`read length must be a non-negative integer, got ${opts.length}`);
    const manifest = await this.manifestOf(digest, opts);
    if (manifest) return this.readChunks(digest, manifest, offset, length, opts.signal);
    // No manifest: a blob of one chunk, or a chunk, read by its digest. One fetch: its size is its length.
    const bytes = await this.store.getChunk(digest, opts);
    return bytes === undefined ? undefined : oneChunk(digest, bytes, offset, length);
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** A blob's manifest, checked; the empty blob's is empty; undefined when none is stored (a chunk, or absent). */
  private async manifestOf(digest: Digest, opts: CallOptions): Promise<readonly ChunkMeta[] | undefined> {
    const manifest = await this.store.getManifest(digest, opts);
    if (manifest) {
      checkManifest(digest, manifest);
      return manifest;
    }
    return digest.equals(EMPTY_BLOB_DIGEST) ? [] : undefined;
  }

  /**
   * A blob's chunk list: its manifest; else, for a digest that is a chunk
   * (readable on its own, as in tvix; a blob of one chunk is one), that one chunk.
   */
  private async chunksOf(digest: Digest, opts: CallOptions): Promise<readonly ChunkMeta[] | undefined> {
    const manifest = await this.manifestOf(digest, opts);
    if (manifest) return manifest;
    const size = this.store.chunkSize
      ? await this.store.chunkSize(digest, opts)
      : (await this.store.getChunk(digest, opts))?.length;
    return size === undefined ? undefined : [{ digest, size }];
  }

  private async *readChunks(
    blob: Digest,
    chunks: readonly ChunkMeta[],
    offset: number,
    length: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    const total = chunks.reduce((sum, c) => sum + c.size, 0);
    const end = Math.min(total, offset + length);
    const whole = offset === 0 && end === total;
    // The chunks that overlap [offset, end), with where each starts in the blob.
    const wanted: { chunk: ChunkMeta; start: number }[] = [];
    let start = 0;
    for (const chunk of chunks) {
      if (start + chunk.size > offset && start < end) wanted.push({ chunk, start });
      start += chunk.size;
    }
    // A blob of one chunk is that chunk: its check covers the blob. Otherwise a full read re-hashes the whole.
    const oneChunk = chunks.length === 1 && chunks[0].digest.equals(blob);
    const hasher = whole && chunks.length > 0 && !oneChunk ? createBlake3Hasher() : undefined;
    const fetches: Promise<Uint8Array>[] = [];
    const fetchAhead = (i: number) => {
      while (fetches.length < Math.min(wanted.length, i + this.parallelism)) {
        const fetch = this.fetchChunk(wanted[fetches.length].chunk, blob, signal);
        fetch.catch(() => {}); // awaited in order below; an early failure must not be unhandled meanwhile
        fetches.push(fetch);
      }
    };
    for (let i = 0; i < wanted.length; i++) {
      fetchAhead(i);
      if (signal?.aborted) throw new AbortError("blob read was aborted", { cause: signal.reason });
      const bytes = await fetches[i];
      fetches[i] = DONE; // let it be collected
      hasher?.update(bytes);
      const { start: at } = wanted[i];
      yield bytes.subarray(Math.max(0, offset - at), Math.min(bytes.length, end - at));
    }
    if (hasher && !Digest.fromBytes(hasher.digest()).equals(blob))
      throw new CorruptionError(`blob ${blob.hex}: its chunks are intact but together hash to another digest`);
  }

  private async fetchChunk(chunk: ChunkMeta, blob: Digest, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const bytes = await this.store.getChunk(chunk.digest, { signal });
    const where = chunk.digest.equals(blob) ? `blob ${blob.hex}` : `chunk ${chunk.digest.hex} of blob ${blob.hex}`;
    if (!bytes) throw new CorruptionError(`${where} is missing from the store`);
    if (bytes.length !== chunk.size)
      throw new CorruptionError(`${where}: stored ${bytes.length} bytes, the manifest says ${chunk.size}`);
    checkChunkHash(where, bytes, chunk.digest);
    return bytes;
  }
}

const DONE: Promise<Uint8Array> = Promise.resolve(new Uint8Array(0));

/** Corruption unless the bytes read under `digest` hash to it; `where` names them in the message. */
function checkChunkHash(where: string, bytes: Uint8Array, digest: Digest): void {
  if (!Digest.of(bytes).equals(digest))
    throw new CorruptionError(`${where}: the stored bytes do not hash to its digest`);
}

/** The bytes of [offset, offset + length) of a blob that is one chunk, checked against its digest first. */
async function* oneChunk(
  digest: Digest,
  bytes: Uint8Array,
  offset: number,
  length: number,
): AsyncGenerator<Uint8Array> {
  checkChunkHash(`blob ${digest.hex}`, bytes, digest);
  const end = Math.min(bytes.length, offset + length);
  if (offset < end) yield bytes.subarray(offset, end);
}

/** A manifest read from a store is data too: sizes must be sane before they are summed or sliced. */
function checkManifest(blob: Digest, manifest: readonly ChunkMeta[]): void {
  for (const c of manifest) {
    if (!Number.isSafeInteger(c.size) || c.size <= 0)
      throw new CorruptionError(`blob ${blob.hex}: manifest lists chunk ${c.digest.hex} with size ${c.size}`);
  }
}

type WriterState = "open" | "closing" | "closed" | "aborted";

class ChunkedBlobWriter implements BlobWriter {
  private state: WriterState = "open";
  private readonly hasher: Blake3Hasher = createBlake3Hasher();
  private size = 0;
  private readonly chunks: ChunkMeta[] = [];
  /** Chunk puts in flight; at most `parallelism`. */
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  /** Aborts the chunk puts in flight on abort() or failure, and on the caller's signal (see stopForwarding). */
  private readonly controller = new AbortController();
  /** Stops the caller's signal reaching `controller`: set while chunk puts are in flight (see storeChunk). */
  private stopForwarding: (() => void) | undefined;

  constructor(
    private readonly store: BlobStore,
    private readonly chunker: FastCdcChunker,
    private readonly parallelism: number,
    private readonly signal: AbortSignal | undefined,
    private readonly syncLater: boolean,
    private readonly expectDigest: Digest | undefined,
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    this.checkOpen("write");
    requireBytes(bytes, "write(): bytes");
    this.hasher.update(bytes);
    this.size += bytes.length;
    // The chunker returns copies: a put that outlives this call holds no view of the caller's piece.
    for (const chunk of this.chunker.push(bytes)) await this.storeChunk(chunk);
  }

  async close(): Promise<BlobWritten> {
    this.checkOpen("close");
    this.state = "closing";
    try {
      const digest = Digest.fromBytes(this.hasher.digest());
      // Before the last chunk or the manifest is stored, which would make the blob visible; the chunks stored
      // so far are orphans, as after an abort. No put is left running once close() has failed.
      if (this.expectDigest !== undefined && !digest.equals(this.expectDigest)) {
        const mismatch = new BlobDigestMismatchError(this.expectDigest, digest, this.size);
        this.controller.abort(mismatch);
        await Promise.allSettled(this.inFlight);
        throw mismatch;
      }
      const last = this.chunker.finish();
      // A blob of one chunk (most files) is that chunk: its digest is the blob's, not hashed twice.
      if (this.chunks.length === 0 && last.length === 1) await this.storeChunk(last[0], digest);
      else for (const chunk of last) await this.storeChunk(chunk);
      await this.drain();
      this.checkSignal();
      // One chunk is the blob itself, readable by its digest: no manifest. Durable as a manifest would be.
      if (this.chunks.length > 1)
        await this.store.putManifest(digest, this.chunks, { signal: this.signal, syncLater: this.syncLater });
      else if (this.size > 0 && !this.syncLater) await this.store.sync?.({ signal: this.signal });
      this.state = "closed";
      return { digest, size: this.size };
    } catch (error) {
      this.state = "aborted";
      this.controller.abort(error);
      throw error;
    }
  }

  async abort(reason?: unknown): Promise<void> {
    if (this.state === "closed" || this.state === "aborted") return;
    this.state = "aborted";
    this.controller.abort(reason);
    await Promise.allSettled(this.inFlight);
  }

  private checkOpen(what: string): void {
    if (this.state === "aborted") throw new AbortError(`blob write was aborted; ${what}() refused`);
    if (this.state !== "open") throw new ClosureError(`blob write is ${this.state}; ${what}() refused`);
    this.checkSignal();
    if (this.failure !== undefined) throw this.failure;
  }

  private checkSignal(): void {
    if (this.signal?.aborted) {
      this.state = "aborted";
      this.controller.abort(this.signal.reason);
      throw new AbortError("blob write was aborted", { cause: this.signal.reason });
    }
  }

  /** Hashes (unless given its digest) and stores one chunk, waiting while `parallelism` puts are in flight (the bound on memory). */
  private async storeChunk(bytes: Uint8Array, digest = Digest.of(bytes)): Promise<void> {
    this.chunks.push({ digest, size: bytes.length });
    while (this.inFlight.size >= this.parallelism) await Promise.race(this.inFlight);
    if (this.failure !== undefined) throw this.failure;
    // The caller's signal reaches the puts only while some are in flight (between them, checkSignal looks at
    // it), so a writer that is idle, done or left unclosed holds nothing on it.
    if (this.inFlight.size === 0) this.stopForwarding = forwardAbort(this.signal, this.controller);
    const settled = () => {
      this.inFlight.delete(put);
      if (this.inFlight.size === 0) this.stopForwarding?.();
    };
    const put: Promise<void> = this.store
      .putChunk(digest, bytes, { signal: this.controller.signal })
      .then(settled, (error: unknown) => {
        settled();
        this.failure ??= error;
      });
    this.inFlight.add(put);
  }

  private async drain(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.failure !== undefined) throw this.failure;
  }
}
