/**
 * One in-memory store with every layer over the same objects: directories,
 * blobs, refs, and the garbage collector that collects them (spec §10).
 */
import {
  type CollectableStore,
  type Digest,
  type GarbageCollector,
  InProcessCollector,
  MapRefStore,
  monotonicNow,
  type ObjectKind,
  protectClosure,
  RefService,
  type StoredObject,
  type StoreDirectoryServiceOptions,
  throwIfAborted,
} from "@castore-ts/core";
import { MemoryBlobService, MemoryBlobStore } from "./memory-blobs.js";
import { MemoryDirectoryService, MemoryDirectoryStore } from "./memory.js";

/** The objects of one memory store as core's collector sees them. */
export class MemoryCollectableStore implements CollectableStore {
  readonly backend = "memory";

  constructor(
    private readonly directories: MemoryDirectoryStore,
    private readonly blobs: MemoryBlobStore,
  ) {}

  async now(): Promise<number> {
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
  const refStore = new MapRefStore();
  const objects = new MemoryCollectableStore(directories.store, blobs.store);
  const parts = { objects, directories: directories.store, blobs: blobs.store };
  const refs = new RefService(refStore, directories, blobs, {
    protect: (root, callOpts) => protectClosure(parts, root, callOpts),
  });
  const gc = new InProcessCollector({ ...parts, refs: refStore });
  return { directories, blobs, refs, gc };
}
