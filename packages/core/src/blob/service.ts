/**
 * The blob layer (spec §8): file contents, addressed by the BLAKE3-256 digest
 * of their bytes (the digest a FileNode holds).
 *
 * Two interfaces, as for directories:
 * - `BlobService` is what users and servers call (write, read, stat, has).
 * - `BlobStore` is the little a backend implements: chunks by digest and
 *   blob manifests (a blob's chunk list). Core's `ChunkedBlobService` turns a
 *   `BlobStore` into a `BlobService`: it chunks with FastCDC, hashes, checks
 *   every chunk it reads, and decides when a blob becomes visible.
 */
import type { Digest } from "../digest.js";
import type { CallOptions } from "../service.js";

/** One content-defined chunk of a blob: its BLAKE3 digest and length in bytes. */
export interface ChunkMeta {
  readonly digest: Digest;
  readonly size: number;
}

export interface BlobStat {
  /** The blob's length in bytes. */
  readonly size: number;
  /** The chunks, in order, when asked for (`stat(d, { chunks: true })`) and the store keeps them. */
  readonly chunks?: readonly ChunkMeta[];
}

export interface BlobReadOptions extends CallOptions {
  /** First byte to read (default 0). Past the end reads nothing. */
  offset?: number;
  /** How many bytes at most (default: to the end). */
  length?: number;
}

export interface BlobStatOptions extends CallOptions {
  /** Include the chunk list. */
  chunks?: boolean;
}

/** A blob for BlobStore.putBlobs: its digest and its chunks, in order, with their bytes (one chunk: the blob's own digest). */
export interface StoreBlob {
  readonly digest: Digest;
  readonly chunks: readonly { readonly digest: Digest; readonly bytes: Uint8Array }[];
}

/** What a finished write stored. */
export interface BlobWritten {
  readonly digest: Digest;
  readonly size: number;
}

/**
 * Options of a blob write. `syncLater`: the write resolves once the blob is
 * stored and visible, without waiting for the disk; the caller calls the
 * service's `sync()` before relying on it surviving an operating system
 * crash (castore import: before it commits the directories that name the
 * blobs). Without it (the default) a write resolves once durable. A store
 * whose every write is durable anyway ignores it.
 */
export interface BlobWriteOptions extends CallOptions {
  syncLater?: boolean;
}

export interface OpenWriterOptions extends BlobWriteOptions {
  /**
   * The digest the caller expects the bytes to hash to (computed when it
   * read them before, say). If they hash to another, close() fails with
   * BlobDigestMismatchError and makes the blob visible under neither
   * digest: "store exactly these bytes" holds, or nothing is stored.
   * Without it, close() answers the digest of whatever was written.
   */
  expectDigest?: Digest;
}

export interface PutManyOptions extends BlobWriteOptions {
  /**
   * The BLAKE3 digest of each blob, in order, as the caller computed it from
   * these very bytes (castore import hashes every file as it reads it): not
   * computed again where the service can do without. A wrong one would store
   * bytes under a digest they do not hash to; every read checks each chunk
   * against its digest, so it would fail there (CorruptionError), never
   * return wrong bytes.
   */
  digests?: readonly Digest[];
}

/**
 * One blob being written. `write` takes pieces of any size (the writer may
 * keep a reference to a piece until its promise resolves; it copies what it
 * keeps longer). Nothing is visible until `close()` resolves; `abort()` or a
 * failed write leaves no visible blob (orphan chunks may remain for GC).
 */
export interface BlobWriter {
  write(bytes: Uint8Array): Promise<void>;
  /** Ends the write; resolves once the blob is stored and visible. */
  close(): Promise<BlobWritten>;
  /** Abandons the write. Does nothing after close() settled. */
  abort(reason?: unknown): Promise<void>;
}

export interface BlobService {
  openWriter(opts?: OpenWriterOptions): BlobWriter;
  /**
   * Optional: writes whole blobs held in memory, as many writers would (the
   * same digests, each blob visible only once all its chunks are stored), in
   * as few store transactions as the store allows; answers in order. Each
   * array is handed over: the caller never changes it afterwards. On failure
   * some of them may be stored and visible, as with separate writers.
   */
  putMany?(blobs: readonly Uint8Array[], opts?: PutManyOptions): Promise<BlobWritten[]>;
  /**
   * Optional: once it resolves, every blob whose write resolved before the
   * call is durable (on disk, as the store promises). A service without it
   * makes every write durable before it resolves, `syncLater` or not.
   */
  sync?(opts?: CallOptions): Promise<void>;
  /**
   * The blob's bytes (or the requested range), or undefined when neither a
   * blob nor a chunk has this digest. Every byte yielded has been verified
   * against its chunk's digest; a full read also checks the blob's digest at
   * the end. A mismatch ends the stream with CorruptionError, never a clean end.
   * The arrays yielded are the reader's to keep: the service never changes one
   * after yielding it.
   */
  read(digest: Digest, opts?: BlobReadOptions): Promise<AsyncIterable<Uint8Array> | undefined>;
  stat(digest: Digest, opts?: BlobStatOptions): Promise<BlobStat | undefined>;
  /** Whether each digest is stored (as a blob or as a chunk), in order; one round trip where the backend allows. */
  has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]>;
  close(): Promise<void>;
}

/**
 * What a backend implements to store blobs; `ChunkedBlobService` does the rest.
 * A store never checks digests: the service verifies what it writes and
 * everything it reads.
 */
export interface BlobStore {
  /**
   * Stores a chunk under its digest. Idempotent: storing a chunk that is
   * present again is fine. `bytes` is handed over: the caller never reads or
   * changes it afterwards (ChunkedBlobService passes each chunk as a fresh
   * copy), so a store may keep it as it is.
   */
  putChunk(digest: Digest, bytes: Uint8Array, opts?: CallOptions): Promise<void>;
  /** The chunk's stored bytes, or undefined: the caller's to keep and change (never a view of the store's own). */
  getChunk(digest: Digest, opts?: CallOptions): Promise<Uint8Array | undefined>;
  /**
   * Makes a blob visible: records its chunk list. Called only after every
   * chunk of it was stored. Idempotent for the same list. Never called for a
   * blob of one chunk: that chunk is the blob (its digest is the blob's), and
   * a chunk is readable by its digest.
   */
  putManifest(digest: Digest, chunks: readonly ChunkMeta[], opts?: BlobWriteOptions): Promise<void>;
  /**
   * Optional: stores whole blobs at once, each its chunks then its manifest
   * (in one transaction where the store has them), with putChunk's and
   * putManifest's rules: a blob of one chunk gets no manifest. Chunk arrays
   * are handed over as with putChunk.
   */
  putBlobs?(blobs: readonly StoreBlob[], opts?: BlobWriteOptions): Promise<void>;
  /** Optional: every write that resolved before the call is durable once this resolves (see BlobService.sync). */
  sync?(opts?: CallOptions): Promise<void>;
  /** The blob's chunk list, or undefined when no blob has this digest. */
  getManifest(digest: Digest, opts?: CallOptions): Promise<readonly ChunkMeta[] | undefined>;
  /** For each digest, whether a manifest or a chunk is stored under it. */
  has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]>;
  /** The stored size of a chunk without reading it, where cheap; undefined when absent. Optional. */
  chunkSize?(digest: Digest, opts?: CallOptions): Promise<number | undefined>;
  close(): Promise<void>;
}
