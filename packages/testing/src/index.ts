export { getFreePort } from "./free-port.js";
export {
  startPostgresTestServer,
  type PostgresTestServer,
  type PostgresTestServerOptions,
  type TestServerKind,
} from "./postgres-server.js";
export { PostgresTestContainer, StartedPostgresTestContainer } from "./postgres-container.js";
export { LocalPostgresServer, findLocalPostgresBinDir } from "./postgres-local.js";
export { startS3TestServer, type S3TestServer, type S3TestServerOptions } from "./s3-server.js";
export {
  HostNetworkMinioContainer,
  S3RVER_CREDENTIALS,
  S3rverTestContainer,
  StartedS3rverTestContainer,
} from "./s3-container.js";
export { LocalS3rver } from "./s3-local.js";
export {
  DEFAULT_POSTGRES_IMAGE,
  DEFAULT_S3_IMAGE,
  ENV,
  TestServerUnavailableError,
  applyTestcontainersDefaults,
  isCi,
  probeDocker,
} from "./runtime.js";
export {
  type CastoreEntryPoint,
  type CastoreProcessOptions,
  type CastoreServeOptions,
  type CastoreRun,
  type CastoreServeProcess,
  runCastore,
  startCastoreServe,
} from "./castore-cli.js";
export {
  encodeGetRequest,
  frameGrpcMessages,
  rawGrpcCall,
  type RawGrpcAnswer,
  type RawGrpcCallOptions,
} from "./raw-grpc.js";
export { type Fault, FaultProxy, type FaultProxyOptions, type ProxiedRequest, everyThirdFails } from "./fault-proxy.js";
export { waitFor } from "./wait.js";
export { scrapeMetric } from "./metrics.js";
export { heldBy } from "./signal-holders.js";
