/**
 * @castore-ts/backend-grpc: a gRPC server for any castore DirectoryService
 * (and BlobService), and DirectoryService and BlobService clients for remote
 * castore, tvix and snix servers (tvix.castore.v1 / snix.castore.v1).
 * Importing this module registers the grpc+http, grpc+https and grpc+unix
 * store URL schemes, for directories, blobs and refs (castore's refs
 * extension service, castore.refs.v1).
 */
import { registerBlobServiceScheme, registerDirectoryServiceScheme, registerRefStoreScheme } from "@castore-ts/core";
import { GrpcRefStore } from "./grpc-ref-store.js";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { GrpcBlobService } from "./grpc-blob-service.js";

export {
  GrpcDirectoryService,
  GrpcDirectoryPutter,
  GRPC_REPAIR_UNSUPPORTED,
  type GrpcDirectoryServiceOptions,
} from "./grpc-directory-service.js";
export { GrpcBlobService, GrpcBlobWriter, type GrpcBlobServiceOptions } from "./grpc-blob-service.js";
export { GrpcRefStore } from "./grpc-ref-store.js";
export { REF_SERVICE } from "./ref-service-handler.js";
export { MAX_SENT_BLOB_CHUNK_BYTES } from "./blob-service-handler.js";
export {
  createDirectoryServiceServer,
  DEFAULT_CONNECTION_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONCURRENT_STREAMS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_MESSAGE_BYTES,
  type DirectoryServiceServer,
  type DirectoryServiceServerOptions,
  type ListenTarget,
  type ServerAddress,
} from "./server.js";
export {
  createDirectoryServiceHandler,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_DIRECTORIES_PER_UPLOAD,
  DEFAULT_MAX_ENTRIES_PER_DIRECTORY,
  DEFAULT_MAX_UPLOAD_BYTES,
  type HandlerOptions,
  type Logger,
} from "./directory-service-handler.js";
export { parseGrpcUrl, describeTarget, type GrpcTarget, type ParsedGrpcUrl, type ServiceName } from "./grpc-url.js";
export { BearerTokens, parseAuthTokens } from "./auth.js";
export { CASTORE_ERROR_CODE_TRAILER, castoreCodeOf, grpcCodeOf, transportFailureOf } from "./status.js";
export {
  HealthStatus,
  DEFAULT_HEALTH_POLL_MS,
  probeBackend,
  probeBlobBackend,
  healthRoutes,
  type HealthOptions,
} from "./health.js";
export { createServerMetrics, type ServerMetrics, type ServerMetricsOptions } from "./metrics.js";

registerDirectoryServiceScheme("grpc+http", "grpc+http://host:port", (url, opts) =>
  GrpcDirectoryService.fromUrl(url, { sizeCheck: opts.sizeCheck }),
);
registerDirectoryServiceScheme("grpc+https", "grpc+https://host:port", (url, opts) =>
  GrpcDirectoryService.fromUrl(url, { sizeCheck: opts.sizeCheck }),
);
registerDirectoryServiceScheme("grpc+unix", "grpc+unix:///path/to/socket", (url, opts) =>
  GrpcDirectoryService.fromUrl(url, { sizeCheck: opts.sizeCheck }),
);
registerBlobServiceScheme("grpc+http", (url) => GrpcBlobService.fromUrl(url));
registerBlobServiceScheme("grpc+https", (url) => GrpcBlobService.fromUrl(url));
registerBlobServiceScheme("grpc+unix", (url) => GrpcBlobService.fromUrl(url));
registerRefStoreScheme("grpc+http", (url) => GrpcRefStore.fromUrl(url));
registerRefStoreScheme("grpc+https", (url) => GrpcRefStore.fromUrl(url));
registerRefStoreScheme("grpc+unix", (url) => GrpcRefStore.fromUrl(url));
