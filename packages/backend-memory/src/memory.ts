/**
 * MemoryDirectoryService: castore in an in-process Map. Core's
 * StoreDirectoryService does validation, closure checks, re-hashing on read
 * and the breadth-first walk; this file only keeps canonical bytes by digest.
 */
import {
  type CallOptions,
  type ClosureEntry,
  Digest,
  DIGEST_LENGTH,
  type Directory,
  type DirectoryStore,
  monotonicNow,
  StoreDirectoryService,
  type StoredObject,
  type StoreDirectoryServiceOptions,
  throwIfAborted,
  visitStoredClosures,
} from "@castore-ts/core";
// castore's own speed internals (not part of core's API), shared with core's upload checks.
import { ByteArena, PackedRecords, grownTo } from "@castore-ts/core/internal";

/** Uploads of at least this many canonical bytes are kept in the chunks core packed them into. */
const ADOPT_UPLOADS_FROM_BYTES = 64 * 1024;

/** Canonical directory bytes by digest. */
export class MemoryDirectoryStore implements DirectoryStore {
  readonly backend = "memory";
  /** putClosure checks and marks a partial upload's stored children in the same synchronous step as the commit. */
  readonly partialUploads = true;
  /** putClosure lands a closure in one synchronous step: order does not matter to it. */
  readonly unorderedClosures = true;
  /** Each directory's digest and canonical bytes: no object per directory (see PackedRecords). */
  private directories = new PackedRecords();
  /** By record number: when each was last stored (spec §10: an upload that carries it again counts as a use). */
  private usedAt = new Float64Array(16);
  /**
   * Small uploads' directories are copied in here: packed into shared chunks,
   * not a buffer each (fewer allocations for the garbage collector to track).
   * Keeping views of every upload's own chunks instead was measured to pin a
   * chunk per small upload: 1.9 GiB of RSS after a 20 s soak.
   */
  private arena = new ByteArena();

  async getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    throwIfAborted(signal);
    return digests.map((d) => this.bytesOf(d.bytes));
  }

  /** Stores a directory not stored yet (`digestAndBytes`: kept as it is), used at `usedAt`. */
  private add(digestAndBytes: Uint8Array, usedAt: number): void {
    const record = this.directories.add(digestAndBytes);
    if (record >= this.usedAt.length) this.usedAt = grownTo(this.usedAt, this.directories.capacity);
    this.usedAt[record] = usedAt;
  }

  /** The stored canonical bytes of a digest (a view into the store's buffers), or undefined. */
  private bytesOf(digest: Uint8Array): Uint8Array | undefined {
    const record = this.directories.find(digest);
    return record < 0 ? undefined : this.directories.bytesOf(record);
  }

  /** Views of the stored bytes, for getRecursive (core copies each at once). */
  openReader(): (digest: Digest) => Uint8Array | undefined {
    return (digest) => this.bytesOf(digest.bytes);
  }

  /**
   * Called once per upload, after close() checked it: the whole closure lands
   * in one synchronous step. A large upload's bytes are kept where core's
   * upload packed them (no copy, no new view per directory: most of this
   * store's commit time otherwise); they then hold at most the upload's own
   * chunks, mostly full. A small upload's are copied into this store's
   * chunks, so many small uploads do not each hold a chunk.
   */
  async putClosure(entries: ClosureEntry[], signal?: AbortSignal, external?: readonly Digest[]): Promise<void> {
    throwIfAborted(signal);
    if (external && external.length > 0) {
      // One synchronous step with the commit below: no collection runs in between.
      const now = monotonicNow();
      visitStoredClosures(
        external,
        (digest) => this.bytesOf(digest),
        (digest) => (this.usedAt[this.directories.find(digest)] = now),
      );
    }
    // Core's entries make a view each time they are asked for one: asked once here.
    const views = entries.map((e) => e.digestAndBytes);
    let total = 0;
    for (let i = 0; i < entries.length; i++) total += (views[i] ?? entries[i].bytes).length;
    const adopt = total >= ADOPT_UPLOADS_FROM_BYTES;
    this.directories.reserve(entries.length);
    const now = monotonicNow();
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const view = views[i];
      // Either way the digest is the first 32 bytes: all the index compares.
      const stored = this.directories.find(view ?? e.digest.bytes);
      if (stored >= 0) this.usedAt[stored] = now;
      else if (view) this.add(adopt ? view : this.arena.copy(view), now);
      else this.add(this.arena.copyJoined(e.digest.bytes, e.bytes), now);
    }
  }

  /** Overwrites the bytes of stored digests (core checked each entry); absent ones stay absent. One synchronous step. */
  async repair(entries: ClosureEntry[], signal?: AbortSignal): Promise<Digest[]> {
    throwIfAborted(signal);
    const replaced: Digest[] = [];
    for (const e of entries) {
      const stored = this.directories.find(e.digest.bytes);
      if (stored < 0) continue;
      this.directories.replace(stored, this.arena.copyJoined(e.digest.bytes, e.bytes));
      replaced.push(e.digest);
    }
    return replaced;
  }

  async *listDigests(signal?: AbortSignal): AsyncIterable<Digest> {
    for (const { digest } of this.storedObjects()) {
      throwIfAborted(signal);
      yield digest;
    }
  }

  /** Every stored directory with its size and when it was last used (for the collector). */
  *storedObjects(): Iterable<StoredObject> {
    for (const record of this.directories.recordNumbers()) {
      const view = this.directories.viewOf(record);
      const digest = Digest.fromBytes(view.subarray(0, DIGEST_LENGTH));
      // Deleted meanwhile (a collection, while the caller held this iterator): its record may hold another directory.
      if (this.directories.find(digest.bytes) !== record) continue;
      yield { digest, size: view.length - DIGEST_LENGTH, usedAt: this.usedAt[record] };
    }
  }

  /** Marks stored directories used now; which are stored. */
  touch(digests: readonly Digest[]): boolean[] {
    const now = monotonicNow();
    return digests.map((d) => {
      const stored = this.directories.find(d.bytes);
      if (stored >= 0) this.usedAt[stored] = now;
      return stored >= 0;
    });
  }

  /** Deletes, in order, each directory still unused since `cutoff`; those deleted. (Their bytes stay in the arena's shared chunks.) */
  deleteUnusedSince(digests: readonly Digest[], cutoff: number): StoredObject[] {
    const deleted: StoredObject[] = [];
    for (const digest of digests) {
      const stored = this.directories.find(digest.bytes);
      if (stored < 0 || this.usedAt[stored] >= cutoff) continue;
      const size = this.directories.viewOf(stored).length - DIGEST_LENGTH;
      const usedAt = this.usedAt[stored];
      this.directories.delete(digest.bytes);
      deleted.push({ digest, size, usedAt });
    }
    return deleted;
  }

  /** How many directories are stored. */
  get size(): number {
    return this.directories.size;
  }

  /** Test hook: stores raw bytes under a digest, bypassing every check and replacing what is there. */
  injectCorruption(digest: Digest, bytes: Uint8Array): void {
    const joined = this.arena.copyJoined(digest.bytes, bytes);
    const stored = this.directories.find(digest.bytes);
    if (stored >= 0) this.directories.replace(stored, joined);
    else this.add(joined, monotonicNow());
  }

  async close(): Promise<void> {
    this.directories = new PackedRecords();
    this.usedAt = new Float64Array(16);
    this.arena = new ByteArena();
  }
}

export class MemoryDirectoryService extends StoreDirectoryService {
  declare readonly store: MemoryDirectoryStore;
  declare listDigests: (opts?: CallOptions) => AsyncIterable<Digest>;
  declare repair: (directories: Directory[], opts?: CallOptions) => Promise<Digest[]>;

  constructor(opts: StoreDirectoryServiceOptions = {}) {
    super(new MemoryDirectoryStore(), opts);
  }

  /** Test hook: see MemoryDirectoryStore.injectCorruption. */
  injectCorruption(digest: Digest, bytes: Uint8Array): void {
    this.store.injectCorruption(digest, bytes);
  }
}
