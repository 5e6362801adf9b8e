/**
 * Garbage collection of an `lmdb:` store (spec §10): core's mark and sweep
 * (InProcessCollector) over the environment's directories, blobs, refs and
 * usedAt times. The refs protect what a set names themselves (LmdbRefStore).
 *
 * Memory of a collection: core's InProcessCollector holds a key per live
 * object and the digest and size of each garbage object of the kind being
 * swept; this package adds a page of listed keys (4096) at a time.
 */
import { InProcessCollector } from "@castore-ts/core";
import { LmdbRefStore } from "./lmdb-ref-store.js";
import { type LmdbStoreOptions, parseLmdbUrl } from "./lmdb-url.js";

/** The garbage collector of the store in directory `path`; closing it closes what it opened. */
export function openLmdbCollector(path: string, opts: LmdbStoreOptions = {}): InProcessCollector {
  const refs = LmdbRefStore.open(path, opts);
  const { objects, directories, blobs } = refs.parts;
  return new InProcessCollector({ objects, directories, blobs, refs }, () => refs.close());
}

/** The garbage collector of the store an `lmdb:` URL names (see parseLmdbUrl for the forms). */
export function openLmdbCollectorUrl(url: URL | string): InProcessCollector {
  const { path, options } = parseLmdbUrl(url);
  return openLmdbCollector(path, options);
}
