export * from "./gen/tvix/castore/v1/castore_pb.js";
export * from "./gen/tvix/castore/v1/rpc_directory_pb.js";
export * from "./gen/tvix/castore/v1/rpc_blobstore_pb.js";
export {
  DirectoryService as SnixDirectoryService,
  file_snix_castore_v1_rpc_directory,
} from "./gen/snix/castore/v1/rpc_directory_pb.js";
export {
  BlobService as SnixBlobService,
  file_snix_castore_v1_rpc_blobstore,
} from "./gen/snix/castore/v1/rpc_blobstore_pb.js";
export {
  file_grpc_health_v1_health,
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "./gen/grpc/health/v1/health_pb.js";
export {
  file_grpc_reflection_v1_reflection,
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "./gen/grpc/reflection/v1/reflection_pb.js";
export {
  file_grpc_reflection_v1alpha_reflection,
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as ServerReflectionV1alphaRequestSchema,
  ServerReflectionResponseSchema as ServerReflectionV1alphaResponseSchema,
} from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
export * from "./gen/castore/refs/v1/refs_pb.js";
export * from "./gen/castore/sync/v1/sync_pb.js";
