/**
 * MemoryDirectoryService: castore in an in-process Map. Core's
 * StoreDirectoryService does validation, closure checks, re-hashing on read
 * and the breadth-first walk; this file only keeps canonical bytes by digest.
 */
import {
  type CallOptions,
  type ClosureEntry,
  Digest,
  DigestIndex,
  type DigestIndexed,
  type DirectoryStore,
  StoreDirectoryService,
  type StoreDirectoryServiceOptions,
  throwIfAborted,
} from "@castore/core";

/** One stored directory: its digest and canonical bytes. */
class StoredDirectory implements DigestIndexed<StoredDirectory> {
  nextSamePrefix: StoredDirectory | undefined = undefined;
  constructor(
    readonly digestBytes: Uint8Array,
    public bytes: Uint8Array,
  ) {}
}

/** Canonical directory bytes by digest. */
export class MemoryDirectoryStore implements DirectoryStore {
  readonly backend = "memory";
  private readonly directories = new DigestIndex<StoredDirectory>();

  async getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    throwIfAborted(signal);
    return digests.map((d) => this.directories.get(d.bytes)?.bytes);
  }

  /**
   * Called once per upload, after close() checked it: the whole closure lands
   * in one synchronous step. The entries' bytes are kept as they are: core's
   * upload already copied them into chunks of its own (never a view of a
   * received frame, which would keep all of it alive), and nothing else holds
   * them once the upload is done.
   */
  async putClosure(entries: ClosureEntry[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    for (const { digest, bytes } of entries) {
      if (!this.directories.get(digest.bytes)) this.directories.add(new StoredDirectory(digest.bytes, bytes));
    }
  }

  async *listDigests(signal?: AbortSignal): AsyncIterable<Digest> {
    for (const stored of [...this.directories.values()]) {
      throwIfAborted(signal);
      yield Digest.fromBytes(stored.digestBytes);
    }
  }

  /** How many directories are stored. */
  get size(): number {
    return this.directories.size;
  }

  /** Test hook: stores raw bytes under a digest, bypassing every check and replacing what is there. */
  injectCorruption(digest: Digest, bytes: Uint8Array): void {
    const stored = this.directories.get(digest.bytes);
    if (stored) stored.bytes = Uint8Array.from(bytes);
    else this.directories.add(new StoredDirectory(Uint8Array.from(digest.bytes), Uint8Array.from(bytes)));
  }

  async close(): Promise<void> {
    this.directories.clear();
  }
}

export class MemoryDirectoryService extends StoreDirectoryService {
  declare readonly store: MemoryDirectoryStore;
  declare listDigests: (opts?: CallOptions) => AsyncIterable<Digest>;

  constructor(opts: StoreDirectoryServiceOptions = {}) {
    super(new MemoryDirectoryStore(), opts);
  }

  /** Test hook: see MemoryDirectoryStore.injectCorruption. */
  injectCorruption(digest: Digest, bytes: Uint8Array): void {
    this.store.injectCorruption(digest, bytes);
  }
}
