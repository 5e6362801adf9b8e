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
 * verifies every read and decides when a blob becomes visible.
 */
import { resolve } from "node:path";
import {
  BackendError,
  CorruptionError,
  Digest,
  throwIfAborted,
  type BlobStore,
  type CallOptions,
  type ChunkMeta,
} from "@castore-ts/core";
import type { Database, RootDatabase } from "lmdb";
import { openLmdbEnv } from "./lmdb-env.js";
import { type LmdbStoreOptions, parseLmdbUrl } from "./lmdb-url.js";

/** Name of the LMDB database that holds chunks by digest. */
export const BLOB_CHUNKS_DB = "blob-chunks";
/** Name of the LMDB database that holds blob manifests (chunk lists) by blob digest. */
export const BLOB_MANIFESTS_DB = "blob-manifests";

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
    const { env, dbs } = openLmdbEnv(absolute, [BLOB_CHUNKS_DB, BLOB_MANIFESTS_DB], opts);
    return new LmdbBlobStore(absolute, env, dbs[BLOB_CHUNKS_DB], dbs[BLOB_MANIFESTS_DB], opts.noSync ?? false);
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
   * of the same chunk race harmlessly. Resolves once committed, without
   * waiting for the disk: only putManifest, which makes a blob visible,
   * waits for that (LMDB makes commits durable in order, so flushing the
   * manifest's commit flushes its chunks' too).
   */
  async putChunk(digest: Digest, bytes: Uint8Array, opts?: CallOptions): Promise<void> {
    this.check(opts);
    const db = this.chunks;
    // Already stored: no write transaction at all (a local read; re-importing an edited file stores only its
    // changed chunks without a commit per unchanged one). A stale snapshot can only miss it: then noOverwrite.
    if (db.doesExist(digest.bytes)) return;
    await db.childTransaction(() => {
      db.putSync(digest.bytes, bytes, { noOverwrite: true });
    });
  }

  async getChunk(digest: Digest, opts?: CallOptions): Promise<Uint8Array | undefined> {
    this.check(opts);
    // The newest committed snapshot (see LmdbDirectoryStore.getMany); getBinary copies the value out of the map.
    this.env.resetReadTxn();
    return this.chunks.getBinary(digest.bytes);
  }

  // No chunkSize: lmdb-js's public API gives a value's length only with a
  // copy of its bytes (getBinaryFast's buffer is a shared one whose length is
  // not the value's), which is what getChunk costs anyway.

  /**
   * Records the chunk list in one write transaction and resolves once it is
   * on disk (unless noSync). A manifest already stored is kept: the same
   * digest means the same bytes, and the first list written stays the one
   * readers see.
   */
  async putManifest(digest: Digest, chunks: readonly ChunkMeta[], opts?: CallOptions): Promise<void> {
    this.check(opts);
    const value = encodeManifest(chunks);
    const db = this.manifests;
    await db.childTransaction(() => {
      db.putSync(digest.bytes, value, { noOverwrite: true });
    });
    if (!this.noSync) await this.env.flushed;
  }

  async getManifest(digest: Digest, opts?: CallOptions): Promise<readonly ChunkMeta[] | undefined> {
    this.check(opts);
    this.env.resetReadTxn();
    const value = this.manifests.getBinary(digest.bytes);
    return value === undefined ? undefined : decodeManifest(value, this.backend, digest);
  }

  /**
   * One read transaction: synchronous reads after resetReadTxn all see the
   * same snapshot, across both databases of the environment.
   */
  async has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    this.check(opts);
    this.env.resetReadTxn();
    return digests.map((d) => this.manifests.doesExist(d.bytes) || this.chunks.doesExist(d.bytes));
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
