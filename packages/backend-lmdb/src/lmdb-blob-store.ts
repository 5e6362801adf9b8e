/**
 * LmdbBlobStore: castore's BlobStore in the same LMDB environment as the
 * directory store of a path, so one `lmdb:` directory holds both layers.
 * Two more named databases:
 * - "blob-chunks": key = the chunk's 32 digest bytes, value = its bytes
 *   (at most 512 KiB with core's chunking);
 * - "blob-manifests": key = the blob's 32 digest bytes, value = its chunk
 *   list, one 36-byte record per chunk in order (32 digest bytes, then the
 *   chunk's size as uint32 little endian); the empty blob's list is empty.
 *
 * It only stores and fetches bytes: ChunkedBlobService (core) chunks, hashes,
 * verifies every read and decides when a blob becomes visible. Every write,
 * and every `has` that finds something, also marks what it wrote or found as
 * used now in the "used" database (lmdb-used.ts), in the same write
 * transaction: the touch rules (b) to (d) of spec §10.2, which keep a
 * collection from deleting what an upload relies on.
 */
import { resolve } from "node:path";
import {
  BackendError,
  CorruptionError,
  Digest,
  throwIfAborted,
  type BlobStore,
  type BlobWriteOptions,
  type CallOptions,
  type ChunkMeta,
  type StoreBlob,
} from "@castore-ts/core";
import type { Database, RootDatabase } from "lmdb";
import { openLmdbEnv } from "./lmdb-env.js";
import { issueUsedAt, markUsed, storedSize, touchStored, USED_DB } from "./lmdb-used.js";
import { type LmdbStoreOptions, parseLmdbUrl } from "./lmdb-url.js";

/** Name of the LMDB database that holds chunks by digest. */
export const BLOB_CHUNKS_DB = "blob-chunks";
/** Name of the LMDB database that holds blob manifests (chunk lists) by blob digest. */
export const BLOB_MANIFESTS_DB = "blob-manifests";

/**
 * Chunk puts a blob writer keeps in flight on LMDB (core's default is 4).
 * lmdb-js commits the write transactions that wait together as one, and
 * each commit is flushed to disk (one fdatasync): with 4 puts in flight a
 * commit carried about 5 chunks (~1.3 MiB), and a 1 GiB write made ~800
 * fdatasyncs while the writing thread sat idle waiting for them. 16 puts
 * make commits of ~20 chunks (~5 MiB): a quarter of the flushes, at most
 * 16 × 512 KiB held by the writer.
 */
export const LMDB_CHUNK_PUTS_IN_FLIGHT = 16;

/** Bytes per chunk record in a stored manifest: digest, then uint32 LE size. */
const MANIFEST_RECORD = 36;

/** A manifest as stored: the chunk records one after another. */
export function encodeManifest(chunks: readonly ChunkMeta[]): Uint8Array {
  const out = Buffer.alloc(chunks.length * MANIFEST_RECORD);
  chunks.forEach((chunk, i) => {
    if (!Number.isInteger(chunk.size) || chunk.size < 0 || chunk.size > 0xffffffff) {
      throw new RangeError(`chunk ${i} of the manifest has size ${chunk.size}, not a uint32`);
    }
    out.set(chunk.digest.bytes, i * MANIFEST_RECORD);
    out.writeUInt32LE(chunk.size, i * MANIFEST_RECORD + 32);
  });
  return out;
}

/** The chunk list of a stored manifest value; `backend` and `blob` name it in errors. */
export function decodeManifest(bytes: Uint8Array, backend: string, blob: Digest): ChunkMeta[] {
  if (bytes.length % MANIFEST_RECORD !== 0) {
    throw new CorruptionError(
      `${backend}: the stored manifest of blob ${blob.hex} is ${bytes.length} bytes, not a whole number of ${MANIFEST_RECORD}-byte chunk records`,
    );
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: ChunkMeta[] = [];
  for (let at = 0; at < view.length; at += MANIFEST_RECORD) {
    // Digest.fromBytes copies, so the list does not pin the value's buffer.
    chunks.push({ digest: Digest.fromBytes(view.subarray(at, at + 32)), size: view.readUInt32LE(at + 32) });
  }
  return chunks;
}

/** The databases a blob's touch reads and writes. */
export interface BlobDbs {
  chunks: Database<Uint8Array, Uint8Array>;
  manifests: Database<Uint8Array, Uint8Array>;
  used: Database<Uint8Array, Uint8Array>;
}

/**
 * In a write transaction: marks the blob stored under `digest` as used at
 * `now`, with its chunks (spec §10.2 (d)): the manifest and every chunk it
 * lists, or, when no manifest has this digest, the chunk that has (a blob is
 * also readable as the chunk of its bytes). Answers whether either is stored.
 */
export function touchBlob(dbs: BlobDbs, digest: Digest, now: number, backend: string): boolean {
  const manifest = dbs.manifests.getBinary(digest.bytes);
  if (manifest === undefined) return touchStored(dbs.used, dbs.chunks, "chunk", digest.bytes, now);
  for (const chunk of decodeManifest(manifest, backend, digest))
    touchStored(dbs.used, dbs.chunks, "chunk", chunk.digest.bytes, now);
  markUsed(dbs.used, "blob", digest.bytes, now, manifest.length);
  return true;
}

/**
 * lmdb-js's asynchronous put with MDB_NOOVERWRITE (resolves false when the
 * key was stored already). Its runtime takes `{ noOverwrite }` as the third
 * argument of put() as of putSync(); its type declarations list only a
 * version there.
 */
function putIfAbsent(db: Database<Uint8Array, Uint8Array>, key: Uint8Array, value: Uint8Array): Promise<boolean> {
  const put = db.put as unknown as (k: Uint8Array, v: Uint8Array, o: { noOverwrite: boolean }) => Promise<boolean>;
  return put.call(db, key, value, { noOverwrite: true });
}

export class LmdbBlobStore implements BlobStore {
  readonly backend: string;
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    /** Absolute path of the environment's directory. */
    readonly path: string,
    /** The LMDB environment (its root database), shared with the directory store of the same path. */
    readonly env: RootDatabase<Uint8Array, Uint8Array>,
    /** "blob-chunks": chunk digest → bytes. Exposed for tests that inject corruption. */
    readonly chunks: Database<Uint8Array, Uint8Array>,
    /** "blob-manifests": blob digest → chunk records. */
    readonly manifests: Database<Uint8Array, Uint8Array>,
    /** "used": when each chunk and manifest was last written or used (lmdb-used.ts). */
    readonly used: Database<Uint8Array, Uint8Array>,
    private readonly noSync: boolean,
  ) {
    this.backend = `lmdb:${path}`;
  }

  /**
   * Opens (creating if needed) the environment in directory `path`; a
   * relative path resolves against the working directory. Failures are
   * BackendErrors naming the path, as for the directory store.
   */
  static open(path: string, opts: LmdbStoreOptions = {}): LmdbBlobStore {
    const absolute = resolve(path);
    const { env, dbs } = openLmdbEnv(absolute, [BLOB_CHUNKS_DB, BLOB_MANIFESTS_DB, USED_DB], opts);
    return new LmdbBlobStore(
      absolute,
      env,
      dbs[BLOB_CHUNKS_DB],
      dbs[BLOB_MANIFESTS_DB],
      dbs[USED_DB],
      opts.noSync ?? false,
    );
  }

  /** Opens the store an `lmdb:` URL names (see parseLmdbUrl for the forms). */
  static openUrl(url: URL | string): LmdbBlobStore {
    const { path, options } = parseLmdbUrl(url);
    return LmdbBlobStore.open(path, options);
  }

  private check(opts: CallOptions | undefined): void {
    if (this.closed) throw new BackendError(this.backend, "store is closed");
    throwIfAborted(opts?.signal);
  }

  /**
   * One write transaction (lmdb-js batches concurrent ones into one commit).
   * A chunk already stored is left alone: content addressed, and two writers
   * of the same chunk race harmlessly. Either way the chunk is marked used
   * now (spec §10.2 (b)): an upload that found its chunk stored relies on it
   * staying, so even an unchanged chunk costs a write (batched with its
   * neighbours' into one commit). Resolves once committed, without waiting
   * for the disk: only putManifest, which makes a blob visible, waits for
   * that (LMDB makes commits durable in order, so flushing the manifest's
   * commit flushes its chunks' too).
   */
  async putChunk(digest: Digest, bytes: Uint8Array, opts?: CallOptions): Promise<void> {
    this.check(opts);
    const { chunks, used } = this;
    await chunks.childTransaction(() => {
      chunks.putSync(digest.bytes, bytes, { noOverwrite: true });
      markUsed(used, "chunk", digest.bytes, issueUsedAt(used), bytes.length);
    });
  }

  async getChunk(digest: Digest, opts?: CallOptions): Promise<Uint8Array | undefined> {
    this.check(opts);
    // The newest committed snapshot (see LmdbDirectoryStore.getMany); getBinary copies the value out of the map.
    this.env.resetReadTxn();
    return this.chunks.getBinary(digest.bytes);
  }

  /** The chunk's length from the newest snapshot, without copying its bytes (a blob of one chunk: its stat). */
  async chunkSize(digest: Digest, opts?: CallOptions): Promise<number | undefined> {
    this.check(opts);
    this.env.resetReadTxn();
    return storedSize(this.chunks, digest.bytes);
  }

  /**
   * Records the chunk list in one write transaction and resolves once it is
   * on disk (unless noSync, or `syncLater`: then once committed, and sync()
   * waits for the disk). A manifest already stored is kept: the same
   * digest means the same bytes, and the first list written stays the one
   * readers see. Marks the manifest used now, stored before or not (spec
   * §10.2 (c)).
   */
  async putManifest(digest: Digest, chunks: readonly ChunkMeta[], opts?: BlobWriteOptions): Promise<void> {
    this.check(opts);
    const value = encodeManifest(chunks);
    const { manifests, used } = this;
    await manifests.childTransaction(() => {
      manifests.putSync(digest.bytes, value, { noOverwrite: true });
      markUsed(used, "blob", digest.bytes, issueUsedAt(used), value.length);
    });
    if (!this.noSync && !opts?.syncLater) await this.env.flushed;
  }

  /**
   * Whole blobs at once. The chunks' bytes go in as lmdb-js's asynchronous
   * puts (`noOverwrite`): its write thread copies them into the map, not
   * this one, so storing overlaps the import's reading and hashing on the
   * other core. Then one write transaction, queued after them (lmdb-js runs
   * writes in the order queued: it commits with them or after them) marks
   * each chunk used now and writes the manifests, so a blob is never
   * visible without its chunks. A chunk found stored is thus marked used
   * just after its put rather than in the same transaction: spec §10.2 (2)
   * asks only that it be marked, the manifest after it; the moments between
   * are far inside a collection's grace period, which is what protects an
   * upload in flight. Resolves once on disk, or with `syncLater` (or
   * noSync) once committed.
   */
  async putBlobs(blobs: readonly StoreBlob[], opts?: BlobWriteOptions): Promise<void> {
    this.check(opts);
    const { chunks, manifests, used } = this;
    const puts: Promise<boolean>[] = [];
    for (const blob of blobs)
      for (const chunk of blob.chunks) puts.push(putIfAbsent(chunks, chunk.digest.bytes, chunk.bytes));
    const marked = manifests.childTransaction(() => {
      throwIfAborted(opts?.signal); // it may have been aborted while waiting for the write lock
      const now = issueUsedAt(used);
      for (const blob of blobs) {
        for (const chunk of blob.chunks) markUsed(used, "chunk", chunk.digest.bytes, now, chunk.bytes.length);
        if (blob.chunks.length === 1) continue; // the blob is its chunk: no manifest (BlobStore.putManifest)
        const manifest = encodeManifest(blob.chunks.map((c) => ({ digest: c.digest, size: c.bytes.length })));
        manifests.putSync(blob.digest.bytes, manifest, { noOverwrite: true });
        markUsed(used, "blob", blob.digest.bytes, now, manifest.length);
      }
    });
    await Promise.all([...puts, marked]);
    if (!this.noSync && !opts?.syncLater) await this.env.flushed;
  }

  /**
   * Every commit so far is on disk once this resolves: lmdb-js's `flushed`
   * (LMDB makes commits durable in order, one fsync covers them all).
   */
  async sync(opts?: CallOptions): Promise<void> {
    this.check(opts);
    if (!this.noSync) await this.env.flushed;
  }

  async getManifest(digest: Digest, opts?: CallOptions): Promise<readonly ChunkMeta[] | undefined> {
    this.check(opts);
    this.env.resetReadTxn();
    const value = this.manifests.getBinary(digest.bytes);
    return value === undefined ? undefined : decodeManifest(value, this.backend, digest);
  }

  /**
   * A caller asks because it is about to rely on what is stored (an upload
   * naming a file blob, a ref's closure check), so each blob found is marked
   * used now with its chunks (spec §10.2 (d)): one write transaction for the
   * whole call, whose answers are the ones returned. When a read of the
   * newest snapshot finds nothing, no write transaction is opened.
   */
  async has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    this.check(opts);
    this.env.resetReadTxn();
    if (!digests.some((d) => this.manifests.doesExist(d.bytes) || this.chunks.doesExist(d.bytes)))
      return digests.map(() => false);
    return this.manifests.childTransaction(() => {
      throwIfAborted(opts?.signal); // it may have been aborted while waiting for the write lock
      const now = issueUsedAt(this.used);
      return digests.map((d) => touchBlob(this, d, now, this.backend));
    });
  }

  /** Waits for pending commits, then closes this handle on the environment. Closing twice is fine. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = this.env.close();
    }
    return this.closing;
  }
}
