/**
 * @castore-ts/backend-lmdb: the embedded LMDB DirectoryService, castore's
 * default store, and its blobs in the same environment. Importing this
 * module registers the `lmdb:` URL scheme with core's openDirectoryService,
 * openBlobService, openRefStore / openRefService (refs whose `set` protects
 * the tree from a collection) and openGarbageCollector.
 */
import {
  ChunkedBlobService,
  registerBlobServiceScheme,
  registerCollectorScheme,
  registerDirectoryServiceScheme,
  registerRefStoreScheme,
} from "@castore-ts/core";
import { LMDB_CHUNK_PUTS_IN_FLIGHT, LmdbBlobStore } from "./lmdb-blob-store.js";
import { openLmdbCollectorUrl } from "./lmdb-gc.js";
import { LmdbRefStore } from "./lmdb-ref-store.js";
import { LmdbDirectoryService } from "./lmdb-service.js";
import { LMDB_URL_EXAMPLE } from "./lmdb-url.js";

export { LmdbDirectoryService, type LmdbDirectoryServiceOptions } from "./lmdb-service.js";
export { LmdbDirectoryStore, DIRECTORIES_DB } from "./lmdb-store.js";
export { LmdbBlobStore, BLOB_CHUNKS_DB, BLOB_MANIFESTS_DB, LMDB_CHUNK_PUTS_IN_FLIGHT } from "./lmdb-blob-store.js";
export { LmdbRefStore, REFS_DB } from "./lmdb-ref-store.js";
export { LmdbCollectableStore } from "./lmdb-collectable.js";
export { USED_DB } from "./lmdb-used.js";
export { openLmdbCollector, openLmdbCollectorUrl } from "./lmdb-gc.js";
export { openLmdbGcParts, type LmdbGcParts } from "./lmdb-gc-parts.js";
export { parseLmdbUrl, LMDB_URL_EXAMPLE, type LmdbStoreOptions, type LmdbUrl } from "./lmdb-url.js";

registerDirectoryServiceScheme("lmdb", LMDB_URL_EXAMPLE, (url, opts) =>
  LmdbDirectoryService.openUrl(url, { sizeCheck: opts.sizeCheck }),
);
registerBlobServiceScheme(
  "lmdb",
  (url) => new ChunkedBlobService(LmdbBlobStore.openUrl(url), { putParallelism: LMDB_CHUNK_PUTS_IN_FLIGHT }),
);
registerRefStoreScheme("lmdb", (url) => LmdbRefStore.openUrl(url));
registerCollectorScheme("lmdb", (url) => openLmdbCollectorUrl(url));
