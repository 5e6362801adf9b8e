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
import { ByteArena, DigestIndex, type DigestIndexed } from "@castore-ts/core/internal";

/** One stored directory: its digest, then its canonical bytes, in one view into the store's arena. */
class StoredDirectory implements DigestIndexed<StoredDirectory> {
  nextSamePrefix: StoredDirectory | undefined = undefined;
  constructor(
    public digestAndBytes: Uint8Array,
    /** When it was last stored (spec §10: an upload that carries it again counts as a use). */
    public usedAt: number,
  ) {}

  get bytes(): Uint8Array {
    return this.digestAndBytes.subarray(DIGEST_LENGTH);
  }
}

/** Uploads of at least this many canonical bytes are kept in the chunks core packed them into. */
const ADOPT_UPLOADS_FROM_BYTES = 64 * 1024;

/** Canonical directory bytes by digest. */
export class MemoryDirectoryStore implements DirectoryStore {
  readonly backend = "memory";
  /** putClosure checks and marks a partial upload's stored children in the same synchronous step as the commit. */
  readonly partialUploads = true;
  /** putClosure lands a closure in one synchronous step: order does not matter to it. */
  readonly unorderedClosures = true;
  private readonly directories = new DigestIndex<StoredDirectory>();
  /**
   * Small uploads' directories are copied in here: packed into shared chunks,
   * not a buffer each (fewer allocations for the garbage collector to track).
   * Keeping views of every upload's own chunks instead was measured to pin a
   * chunk per small upload: 1.9 GiB of RSS after a 20 s soak.
   */
  private arena = new ByteArena();

  async getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    throwIfAborted(signal);
    return digests.map((d) => this.directories.get(d.bytes)?.bytes);
  }

  /** Views of the stored bytes, for getRecursive (core copies each at once). */
  openReader(): (digest: Digest) => Uint8Array | undefined {
    return (digest) => this.directories.get(digest.bytes)?.bytes;
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
        (digest) => this.directories.get(digest)?.bytes,
        (digest) => (this.directories.get(digest)!.usedAt = now),
      );
    }
    let total = 0;
    for (const e of entries) total += (e.digestAndBytes ?? e.bytes).length;
    const adopt = total >= ADOPT_UPLOADS_FROM_BYTES;
    const now = monotonicNow();
    for (const e of entries) {
      // Either way the digest is the first 32 bytes: all the index compares.
      const stored = this.directories.get(e.digestAndBytes ?? e.digest.bytes);
      if (stored) stored.usedAt = now;
      else this.directories.add(new StoredDirectory(this.keep(e, adopt), now));
    }
  }

  /** The entry's digest and bytes as one view this store may hold on to. */
  private keep(e: ClosureEntry, adopt: boolean): Uint8Array {
    if (e.digestAndBytes) return adopt ? e.digestAndBytes : this.arena.copy(e.digestAndBytes);
    return this.arena.copyJoined(e.digest.bytes, e.bytes);
  }

  /** Overwrites the bytes of stored digests (core checked each entry); absent ones stay absent. One synchronous step. */
  async repair(entries: ClosureEntry[], signal?: AbortSignal): Promise<Digest[]> {
    throwIfAborted(signal);
    const replaced: Digest[] = [];
    for (const e of entries) {
      const stored = this.directories.get(e.digest.bytes);
      if (!stored) continue;
      stored.digestAndBytes = this.arena.copyJoined(e.digest.bytes, e.bytes);
      replaced.push(e.digest);
    }
    return replaced;
  }

  async *listDigests(signal?: AbortSignal): AsyncIterable<Digest> {
    for (const stored of [...this.directories.values()]) {
      throwIfAborted(signal);
      yield Digest.fromBytes(stored.digestAndBytes.subarray(0, DIGEST_LENGTH));
    }
  }

  /** Every stored directory with its size and when it was last used (for the collector). */
  *storedObjects(): Iterable<StoredObject> {
    for (const stored of [...this.directories.values()]) {
      const digest = Digest.fromBytes(stored.digestAndBytes.subarray(0, DIGEST_LENGTH));
      yield { digest, size: stored.digestAndBytes.length - DIGEST_LENGTH, usedAt: stored.usedAt };
    }
  }

  /** Marks stored directories used now; which are stored. */
  touch(digests: readonly Digest[]): boolean[] {
    const now = monotonicNow();
    return digests.map((d) => {
      const stored = this.directories.get(d.bytes);
      if (stored) stored.usedAt = now;
      return stored !== undefined;
    });
  }

  /** Deletes, in order, each directory still unused since `cutoff`; those deleted. (Their bytes stay in the arena's shared chunks.) */
  deleteUnusedSince(digests: readonly Digest[], cutoff: number): StoredObject[] {
    const deleted: StoredObject[] = [];
    for (const digest of digests) {
      const stored = this.directories.get(digest.bytes);
      if (!stored || stored.usedAt >= cutoff) continue;
      this.directories.delete(digest.bytes);
      deleted.push({ digest, size: stored.digestAndBytes.length - DIGEST_LENGTH, usedAt: stored.usedAt });
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
    const stored = this.directories.get(digest.bytes);
    if (stored) stored.digestAndBytes = joined;
    else this.directories.add(new StoredDirectory(joined, monotonicNow()));
  }

  async close(): Promise<void> {
    this.directories.clear();
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
