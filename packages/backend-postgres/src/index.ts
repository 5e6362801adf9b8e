/**
 * @castore/backend-postgres: the PostgreSQL DirectoryService. Importing this
 * module registers the `postgres:` and `postgresql:` URL schemes with core's
 * openDirectoryService.
 */
import { registerDirectoryServiceScheme } from "@castore/core";
import { PostgresDirectoryService } from "./postgres-service.js";
import { POSTGRES_URL_EXAMPLE } from "./postgres-url.js";

export { PostgresDirectoryService, type PostgresDirectoryServiceOptions } from "./postgres-service.js";
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
export { parsePostgresUrl, checkSchemaName, POSTGRES_URL_EXAMPLE, type PostgresStoreOptions, type PostgresUrl } from "./postgres-url.js";
export { isConnectionFailure } from "./postgres-errors.js";

for (const scheme of ["postgres", "postgresql"]) {
  registerDirectoryServiceScheme(scheme, POSTGRES_URL_EXAMPLE, (url, opts) =>
    PostgresDirectoryService.open(url, { sizeCheck: opts.sizeCheck }),
  );
}
