/** A Map-backed DirectoryStore for core's own tests (test-only; excluded from the build). */
import type { ClosureEntry, ValidatedClosure } from "./closure.js";
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

/**
 * A MapStore that takes uploads while they are open (DirectoryStore.openUpload):
 * rows are staged per upload and merged at commit. `events` records the calls.
 */
export class StreamingMapStore extends MapStore implements DirectoryStore {
  readonly events: string[] = [];
  /** Set to make the next write fail like a broken engine. */
  failWrites = false;

  openUpload() {
    const staged = new Map<string, Uint8Array>();
    this.events.push("open");
    return {
      write: async (entries: ClosureEntry[]) => {
        this.events.push(`write ${entries.length}`);
        if (this.failWrites) throw new Error("disk on fire");
        for (const e of entries) staged.set(e.digest.hex, e.bytes);
      },
      commit: async ({ entries }: ValidatedClosure) => {
        this.events.push(`commit ${entries.length}`);
        if (entries.some((e) => !staged.has(e.digest.hex))) throw new Error("commit of rows never written");
        for (const [hex, bytes] of staged) this.map.set(hex, bytes);
      },
      abort: async () => {
        this.events.push("abort");
        staged.clear();
      },
    };
  }
}
