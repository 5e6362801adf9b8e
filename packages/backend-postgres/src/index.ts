/**
 * @castore-ts/backend-postgres: the PostgreSQL DirectoryService. Importing this
 * module registers the `postgres:` and `postgresql:` URL schemes with core's
 * openDirectoryService, openBlobService, openRefStore and openGarbageCollector.
 */
import {
  type BlobServiceOpener,
  ChunkedBlobService,
  type DirectoryServiceOpener,
  registerBlobServiceScheme,
  registerCollectorScheme,
  registerDirectoryServiceScheme,
  registerRefStoreScheme,
} from "@castore-ts/core";
import { PostgresGarbageCollector } from "./postgres-collector.js";
import { PostgresRefStore } from "./postgres-ref-store.js";
import { PostgresBlobStore } from "./postgres-blob-store.js";
import { PostgresDirectoryService } from "./postgres-service.js";
import { POSTGRES_URL_EXAMPLE } from "./postgres-url.js";

export { PostgresDirectoryService, type PostgresDirectoryServiceOptions } from "./postgres-service.js";
export { PostgresBlobStore } from "./postgres-blob-store.js";
export { PostgresRefStore, postgresRefService, openPostgresRefService } from "./postgres-ref-store.js";
export { PostgresCollectableStore } from "./postgres-collectable.js";
export { PostgresGarbageCollector, DELETE_BATCH } from "./postgres-collector.js";
export {
  PostgresDirectoryStore,
  SCHEMA_VERSION,
  DEFAULT_SCHEMA,
  DEFAULT_BATCH_SIZE,
  DEFAULT_POOL_MAX,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type PostgresEndpoint,
  type PostgresStoreConfig,
  type UploadMethod,
} from "./postgres-store.js";
export {
  parsePostgresUrl,
  checkSchemaName,
  POSTGRES_URL_EXAMPLE,
  type PostgresStoreOptions,
  type PostgresUrl,
} from "./postgres-url.js";
export { isConnectionFailure } from "./postgres-errors.js";

const open: DirectoryServiceOpener = (url, opts) => PostgresDirectoryService.open(url, { sizeCheck: opts.sizeCheck });
registerDirectoryServiceScheme("postgres", POSTGRES_URL_EXAMPLE, open);
registerDirectoryServiceScheme("postgresql", "postgresql://… (the same as postgres://)", open);

const openBlobs: BlobServiceOpener = (url) => new ChunkedBlobService(PostgresBlobStore.open(url));
registerBlobServiceScheme("postgres", openBlobs);
registerBlobServiceScheme("postgresql", openBlobs);

for (const scheme of ["postgres", "postgresql"]) {
  registerRefStoreScheme(scheme, (url) => PostgresRefStore.open(url));
  registerCollectorScheme(scheme, (url) => PostgresGarbageCollector.open(url));
}
