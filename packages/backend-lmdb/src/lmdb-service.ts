/**
 * LmdbDirectoryService: a whole DirectoryService (validation, closure checks,
 * re-hashing reads, breadth-first getRecursive — all from core's
 * StoreDirectoryService) over an LmdbDirectoryStore.
 */
import { resolve } from "node:path";
import { StoreDirectoryService, type StoreDirectoryServiceOptions } from "@castore-ts/core";
import { LmdbDirectoryStore } from "./lmdb-store.js";
import { type LmdbStoreOptions, parseLmdbUrl } from "./lmdb-url.js";

export type LmdbDirectoryServiceOptions = LmdbStoreOptions & StoreDirectoryServiceOptions;

export class LmdbDirectoryService extends StoreDirectoryService {
  declare readonly store: LmdbDirectoryStore;

  constructor(store: LmdbDirectoryStore, opts: StoreDirectoryServiceOptions = {}) {
    super(store, opts);
  }

  /** Opens (creating if needed) the store in directory `path`; a relative path resolves against the working directory. */
  static async open(path: string, opts: LmdbDirectoryServiceOptions = {}): Promise<LmdbDirectoryService> {
    const { mapSize, noSync, ...serviceOpts } = opts;
    return new LmdbDirectoryService(LmdbDirectoryStore.open(resolve(path), { mapSize, noSync }), serviceOpts);
  }

  /** Opens the store an `lmdb:` URL names (see parseLmdbUrl for the forms). */
  static async openUrl(url: URL | string, opts: StoreDirectoryServiceOptions = {}): Promise<LmdbDirectoryService> {
    const { path, options } = parseLmdbUrl(url);
    return new LmdbDirectoryService(LmdbDirectoryStore.open(path, options), opts);
  }
}
