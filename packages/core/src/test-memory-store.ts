/** A Map-backed DirectoryStore for core's own tests (test-only; excluded from the build). */
import type { ClosureEntry } from "./closure.js";
import type { Digest } from "./digest.js";
import { type DirectoryStore, StoreDirectoryService } from "./store-service.js";

export class MapStore implements DirectoryStore {
  readonly backend = "test-map";
  readonly map = new Map<string, Uint8Array>();
  reads = 0;
  async getMany(digests: Digest[]) {
    this.reads++;
    return digests.map((d) => this.map.get(d.hex));
  }
  async putClosure(entries: ClosureEntry[]) {
    for (const e of entries) this.map.set(e.digest.hex, e.bytes);
  }
  async close() {}
}

export function mapService() {
  const store = new MapStore();
  return { store, service: new StoreDirectoryService(store) };
}
