/**
 * Garbage collection of an `lmdb:` store (spec §10): core's mark and sweep
 * (InProcessCollector) over the environment's directories, blobs, refs and
 * usedAt times, and the `protect` its refs' `set` goes through so that a
 * collection running meanwhile cannot take the tree a ref is set to.
 *
 * Memory of a collection: core's InProcessCollector holds a key per live
 * object and the digest and size of each garbage object of the kind being
 * swept; this package adds a page of listed keys (4096) at a time.
 */
import { resolve } from "node:path";
import { InProcessCollector, type OpenedRefStore, protectClosure } from "@castore-ts/core";
import { LmdbBlobStore } from "./lmdb-blob-store.js";
import { LmdbCollectableStore } from "./lmdb-collectable.js";
import { LmdbRefStore } from "./lmdb-ref-store.js";
import { LmdbDirectoryStore } from "./lmdb-store.js";
import { type LmdbStoreOptions, parseLmdbUrl } from "./lmdb-url.js";

/** The parts of one environment that a collection, or a ref's protect, reads and marks. */
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

/** The garbage collector of the store in directory `path`; closing it closes what it opened. */
export function openLmdbCollector(path: string, opts: LmdbStoreOptions = {}): InProcessCollector {
  const parts = openLmdbGcParts(path, opts);
  const refs = LmdbRefStore.open(path, opts, [parts]);
  const { objects, directories, blobs } = parts;
  return new InProcessCollector({ objects, directories, blobs, refs }, () => refs.close());
}

/** The garbage collector of the store an `lmdb:` URL names (see parseLmdbUrl for the forms). */
export function openLmdbCollectorUrl(url: URL | string): InProcessCollector {
  const { path, options } = parseLmdbUrl(url);
  return openLmdbCollector(path, options);
}

/**
 * The refs of the store an `lmdb:` URL names, with the `protect` a
 * RefService over them must use (core's protectClosure over this
 * environment: checks the tree is wholly stored and marks all of it used).
 * Closing the ref store closes what protect reads.
 */
export function openLmdbRefsUrl(url: URL | string): OpenedRefStore {
  const { path, options } = parseLmdbUrl(url);
  const parts = openLmdbGcParts(path, options);
  const store = LmdbRefStore.open(path, options, [parts]);
  return { store, protect: (root, opts) => protectClosure(parts, root, opts) };
}
