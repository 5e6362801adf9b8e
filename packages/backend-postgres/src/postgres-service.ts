/**
 * PostgresDirectoryService: a whole DirectoryService (validation, closure
 * checks, re-hashing reads, breadth-first getRecursive — all from core's
 * StoreDirectoryService) over a PostgresDirectoryStore. getRecursive reads
 * each level of the tree with one query per `batchSize` digests, so a tree of
 * depth d whose levels are at most `batchSize` wide takes d + 1 queries.
 */
import { StoreDirectoryService, type StoreDirectoryServiceOptions } from "@castore-ts/core";
import { PostgresDirectoryStore, type PostgresStoreConfig } from "./postgres-store.js";
import { parsePostgresUrl } from "./postgres-url.js";

export type PostgresDirectoryServiceOptions = PostgresStoreConfig & Omit<StoreDirectoryServiceOptions, "batchSize">;

export class PostgresDirectoryService extends StoreDirectoryService {
  declare readonly store: PostgresDirectoryStore;

  constructor(store: PostgresDirectoryStore, opts: Omit<StoreDirectoryServiceOptions, "batchSize"> = {}) {
    super(store, { ...opts, batchSize: store.batchSize });
  }

  /**
   * Opens the store a `postgres:` or `postgresql:` URL names (see parsePostgresUrl).
   * No connection is made yet: the first call connects and creates the schema if
   * needed (`await service.store.init()` does that now). Options given here win
   * over the URL's.
   */
  static open(url: URL | string, opts: PostgresDirectoryServiceOptions = {}): PostgresDirectoryService {
    const { connectionString, options } = parsePostgresUrl(url);
    const { sizeCheck, ...storeOpts } = opts;
    const defined = Object.fromEntries(Object.entries(storeOpts).filter(([, v]) => v !== undefined));
    return new PostgresDirectoryService(new PostgresDirectoryStore(connectionString, { ...options, ...defined }), {
      sizeCheck,
    });
  }
}
