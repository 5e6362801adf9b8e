import {
  type ClosureEntry,
  type Digest,
  type DirectoryStore,
  StoreDirectoryService,
  throwIfAborted,
} from "@castore-ts/core";

/** The only part a backend writes: fetch bytes by digest, store a checked closure all at once. */
class MapStore implements DirectoryStore {
  readonly backend = "my-backend";
  readonly bytes = new Map<string, Uint8Array>();

  async getMany(digests: Digest[], signal?: AbortSignal) {
    throwIfAborted(signal);
    return digests.map((d) => this.bytes.get(d.hex));
  }

  async putClosure(entries: ClosureEntry[], signal?: AbortSignal) {
    throwIfAborted(signal);
    for (const e of entries) this.bytes.set(e.digest.hex, e.bytes.slice());
  }

  async close() {}
}

/** Core's StoreDirectoryService adds validation, closure checks, re-hashing on read and getRecursive. */
export class MyDirectoryService extends StoreDirectoryService {
  declare readonly store: MapStore;

  constructor() {
    super(new MapStore());
  }

  /** For the corruption scenario: raw bytes under a digest, no checks. */
  corrupt(digest: Digest, bytes: Uint8Array) {
    this.store.bytes.set(digest.hex, bytes.slice());
  }
}
