/**
 * The parts of one LMDB environment that a collection reads and deletes
 * from, and that a ref's set protects its tree through (core's
 * protectClosure): usedAt times, directories and blobs, one handle each.
 */
import { resolve } from "node:path";
import { LmdbBlobStore } from "./lmdb-blob-store.js";
import { LmdbCollectableStore } from "./lmdb-collectable.js";
import { LmdbDirectoryStore } from "./lmdb-store.js";
import type { LmdbStoreOptions } from "./lmdb-url.js";

export interface LmdbGcParts {
  objects: LmdbCollectableStore;
  directories: LmdbDirectoryStore;
  blobs: LmdbBlobStore;
  close(): Promise<void>;
}

/** Opens (creating if needed) the environment in directory `path` for collecting; one handle per part. */
export function openLmdbGcParts(path: string, opts: LmdbStoreOptions = {}): LmdbGcParts {
  const absolute = resolve(path);
  const objects = LmdbCollectableStore.open(absolute, opts);
  const directories = LmdbDirectoryStore.open(absolute, opts);
  const blobs = LmdbBlobStore.open(absolute, opts);
  return {
    objects,
    directories,
    blobs,
    close: async () => {
      await Promise.all([objects.close(), directories.close(), blobs.close()]);
    },
  };
}
