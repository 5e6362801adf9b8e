/**
 * One in-memory store with every layer over the same objects: directories,
 * blobs, refs, and the garbage collector that collects them (spec §10).
 */
import {
  type CallOptions,
  type CollectableParts,
  type CollectableStore,
  COLLECTION_STARTED,
  type Digest,
  fencedSet,
  type GarbageCollector,
  InProcessCollector,
  MapRefStore,
  monotonicNow,
  type ObjectKind,
  type RefExpectation,
  protectClosure,
  RefService,
  type StoredObject,
  type SwapResult,
  type StoreDirectoryServiceOptions,
  throwIfAborted,
} from "@castore-ts/core";
import { MemoryBlobService, MemoryBlobStore } from "./memory-blobs.js";
import { MemoryDirectoryService, MemoryDirectoryStore } from "./memory.js";

/** The objects of one memory store as core's collector sees them. */
export class MemoryCollectableStore implements CollectableStore {
  readonly backend = "memory";

  /** Collections started so far: what a ref's set is fenced against (core's fencedSet). */
  collectionsStarted = 0;

  constructor(
    private readonly directories: MemoryDirectoryStore,
    private readonly blobs: MemoryBlobStore,
  ) {}

  async startCollection(): Promise<number> {
    this.collectionsStarted++;
    return monotonicNow();
  }

  async *listObjects(kind: ObjectKind, signal?: AbortSignal): AsyncIterable<StoredObject> {
    const objects = kind === "directory" ? this.directories.storedObjects() : this.blobs.storedObjects(kind);
    for (const o of objects) {
      throwIfAborted(signal);
      yield o;
    }
  }

  async deleteUnusedSince(
    kind: ObjectKind,
    digests: readonly Digest[],
    cutoff: number,
    signal?: AbortSignal,
  ): Promise<StoredObject[]> {
    throwIfAborted(signal);
    return kind === "directory"
      ? this.directories.deleteUnusedSince(digests, cutoff)
      : this.blobs.deleteUnusedSince(kind, digests, cutoff);
  }

  async touch(kind: ObjectKind, digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]> {
    throwIfAborted(signal);
    return kind === "directory" ? this.directories.touch(digests) : this.blobs.touch(kind, digests);
  }
}

/**
 * The refs of a memory store: a set protects its tree first, fenced against
 * collections starting meanwhile (core's fencedSet). JavaScript runs one
 * thing at a time, so the count's check and the write, with no await
 * between them, are one atomic step.
 */
class MemoryRefStore extends MapRefStore {
  readonly checksClosure = true;

  constructor(private readonly parts: CollectableParts & { objects: MemoryCollectableStore }) {
    super();
  }

  override async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts: CallOptions = {},
  ): Promise<SwapResult> {
    if (digest === null) return super.compareAndSetRef(name, digest, expect, opts);
    const { objects } = this.parts;
    return fencedSet("memory", name, {
      collectionsStarted: async () => objects.collectionsStarted,
      protect: () => protectClosure(this.parts, digest, opts),
      swap: async (started) =>
        objects.collectionsStarted === started
          ? super.compareAndSetRef(name, digest, expect, opts)
          : COLLECTION_STARTED,
    });
  }
}

export interface MemoryStore {
  directories: MemoryDirectoryService;
  blobs: MemoryBlobService;
  refs: RefService;
  gc: GarbageCollector;
}

/** A new, empty store: its refs protect what they name, and its collector sees all three layers. */
export function openMemoryStore(opts: StoreDirectoryServiceOptions = {}): MemoryStore {
  const directories = new MemoryDirectoryService(opts);
  const blobs = new MemoryBlobService();
  const objects = new MemoryCollectableStore(directories.store, blobs.store);
  const parts = { objects, directories: directories.store, blobs: blobs.store };
  const refStore = new MemoryRefStore(parts);
  const refs = new RefService(refStore, directories, blobs);
  const gc = new InProcessCollector({ ...parts, refs: refStore });
  return { directories, blobs, refs, gc };
}
