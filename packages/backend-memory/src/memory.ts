/**
 * MemoryDirectoryService: castore in an in-process Map. Core's
 * StoreDirectoryService does validation, closure checks, re-hashing on read
 * and the breadth-first walk; this file only keeps canonical bytes by digest.
 */
import {
  ByteArena,
  type CallOptions,
  type ClosureEntry,
  Digest,
  type DirectoryStore,
  StoreDirectoryService,
  type StoreDirectoryServiceOptions,
  throwIfAborted,
} from "@castore/core";

/** Canonical directory bytes by lowercase hex digest. */
export class MemoryDirectoryStore implements DirectoryStore {
  readonly backend = "memory";
  private readonly bytes = new Map<string, Uint8Array>();
  /**
   * Every stored directory is copied in here: packed into shared chunks, not
   * a buffer each (fewer allocations for the garbage collector to track),
   * and never a view of the caller's larger buffer (a received frame, say),
   * which would keep all of it alive.
   */
  private arena = new ByteArena();

  async getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    throwIfAborted(signal);
    return digests.map((d) => this.bytes.get(d.hex));
  }

  /** Called once per upload, after close() checked it: the whole closure lands in one synchronous step. */
  async putClosure(entries: ClosureEntry[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    for (const { digest, bytes } of entries) {
      if (!this.bytes.has(digest.hex)) this.bytes.set(digest.hex, this.arena.copy(bytes));
    }
  }

  async *listDigests(signal?: AbortSignal): AsyncIterable<Digest> {
    for (const hex of [...this.bytes.keys()]) {
      throwIfAborted(signal);
      yield Digest.parse(hex);
    }
  }

  /** How many directories are stored. */
  get size(): number {
    return this.bytes.size;
  }

  /** Test hook: stores raw bytes under a digest, bypassing every check and replacing what is there. */
  injectCorruption(digest: Digest, bytes: Uint8Array): void {
    this.bytes.set(digest.hex, Uint8Array.from(bytes));
  }

  async close(): Promise<void> {
    this.bytes.clear();
    this.arena = new ByteArena();
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
