import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { randomUUID } from "node:crypto";
import { HostNetworkMinioContainer, S3RVER_CREDENTIALS, S3rverTestContainer } from "./s3-container.js";
import { LocalS3rver } from "./s3-local.js";
import type { TestServerKind } from "./runtime.js";
import { tryContainerPath } from "./container-path.js";
import { DEFAULT_S3_IMAGE, ENV, errorMessage, sleep, TestServerUnavailableError } from "./runtime.js";

export interface S3TestServer extends AsyncDisposable {
  /** http://127.0.0.1:PORT (or $CASTORE_TEST_S3_URL). */
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Always true: buckets are addressed as endpoint/bucket. */
  readonly forcePathStyle: true;
  readonly kind: TestServerKind;
  /** Image of a "container" server (castore-test/s3:1 or a MinIO image). */
  readonly image?: string;
  /** Settings for `new S3Client(...)` that reach this server. */
  clientConfig(): S3ClientConfig;
  /** Creates a bucket (a unique name when none is given) and returns its name. */
  createBucket(name?: string): Promise<string>;
  /** False for "env" servers. */
  readonly canRestart: boolean;
  /** Stops and starts the server on the same endpoint, keeping its buckets. */
  restart(options?: { downtimeMs?: number }): Promise<void>;
  /** Stops the server and discards its buckets (no-op for "env"). Safe to call twice. */
  stop(): Promise<void>;
}

export interface S3TestServerOptions {
  /** Container image (default $CASTORE_TEST_S3_IMAGE or castore-test/s3:1; a name containing "minio" starts MinIO). */
  image?: string;
  /** Container startup timeout (default 60 s). */
  startupTimeoutMs?: number;
}

const REGION = "us-east-1";
const BUILD_HINT =
  "Build the image with scripts/images/build-s3-image.sh (needs a docker engine: source .ci/lib/docker.sh).";

/**
 * Starts (or finds) an S3 server for a test. In order:
 *  1. $CASTORE_TEST_S3_URL: that endpoint, credentials from AWS_ACCESS_KEY_ID /
 *     AWS_SECRET_ACCESS_KEY (stop is a no-op);
 *  2. a reachable container runtime: `castore-test/s3:1` (s3rver) through
 *     testcontainers, or MinIO through @testcontainers/minio when
 *     $CASTORE_TEST_S3_IMAGE names a MinIO image (host network, free port, never pulled);
 *  3. no container runtime (or $CASTORE_TEST_NO_DOCKER=1): s3rver inside this process.
 * With CI set, step 2 is mandatory: an error is thrown instead of falling back.
 */
export async function startS3TestServer(options: S3TestServerOptions = {}): Promise<S3TestServer> {
  const envUrl = process.env[ENV.s3Url];
  if (envUrl) {
    return server({
      endpoint: envUrl.replace(/\/+$/, ""),
      region: process.env.AWS_REGION ?? REGION,
      accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? S3RVER_CREDENTIALS.accessKeyId,
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? S3RVER_CREDENTIALS.secretAccessKey,
      kind: "env",
      canRestart: false,
      restart: async () => {
        throw new Error(`restart() is not available for the server given by ${ENV.s3Url}`);
      },
      stop: async () => undefined,
    });
  }

  const image = options.image ?? process.env[ENV.s3Image] ?? DEFAULT_S3_IMAGE;
  const startupTimeoutMs = options.startupTimeoutMs ?? 60_000;
  const attempts: string[] = [`${ENV.s3Url}: not set`];

  const containerPath = await tryContainerPath({
    label: "S3",
    image,
    // Only the default image is built here; another one was named by the caller.
    buildHint: image === DEFAULT_S3_IMAGE ? BUILD_HINT : undefined,
    attempts,
    start: () =>
      /minio/i.test(image) ? startMinio(image, startupTimeoutMs) : startS3rverContainer(image, startupTimeoutMs),
  });
  if (containerPath.started) return containerPath.started;

  try {
    const local = await LocalS3rver.start();
    containerPath.warnFallback("in-process s3rver");
    return server({
      endpoint: `http://127.0.0.1:${local.port}`,
      region: REGION,
      ...S3RVER_CREDENTIALS,
      kind: "local",
      canRestart: true,
      restart: (o) => local.restart(o),
      stop: () => local.stop(),
    });
  } catch (err) {
    attempts.push(`in-process s3rver: ${errorMessage(err)}`);
  }
  throw new TestServerUnavailableError("S3 test server", attempts);
}

async function startS3rverContainer(image: string, startupTimeoutMs: number): Promise<S3TestServer> {
  const container = await new S3rverTestContainer(image).withStartupTimeout(startupTimeoutMs).start();
  const endpoint = container.getEndpoint();
  await waitForHttp(endpoint, 10_000).catch(async (err) => {
    await container.stop({ timeout: 0 });
    throw err;
  });
  return server({
    endpoint,
    region: REGION,
    ...S3RVER_CREDENTIALS,
    kind: "container",
    image,
    canRestart: true,
    restart: async (o) => {
      await container.restart({ timeout: 0 }); // s3rver (PID 1, no SIGTERM handler) has written every acknowledged object: kill it
      if (o?.downtimeMs)
        console.warn("[@castore-ts/testing] S3 restart: downtimeMs is not supported for containers, ignored");
      await waitForHttp(endpoint, 30_000);
    },
    stop: async () => {
      await container.stop({ timeout: 0 });
    },
  });
}

async function startMinio(image: string, startupTimeoutMs: number): Promise<S3TestServer> {
  const container = await new HostNetworkMinioContainer(image).withStartupTimeout(startupTimeoutMs).start();
  const endpoint = container.getEndpoint();
  await waitForHttp(`${endpoint}/minio/health/live`, 30_000).catch(async (err) => {
    await container.stop({ timeout: 0 });
    throw err;
  });
  return server({
    endpoint,
    region: REGION,
    accessKeyId: container.getUsername(),
    secretAccessKey: container.getPassword(),
    kind: "container",
    image,
    canRestart: true,
    restart: async () => {
      await container.restart({ timeout: 5_000 });
      await waitForHttp(`${endpoint}/minio/health/live`, 30_000);
    },
    stop: async () => {
      await container.stop({ timeout: 0 });
    },
  });
}

/** Resolves once `url` answers HTTP at all (any status). */
async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      return;
    } catch (err) {
      last = err;
      await sleep(100);
    }
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms (${errorMessage(last)})`);
}

type ServerFields = Omit<
  S3TestServer,
  typeof Symbol.asyncDispose | "clientConfig" | "createBucket" | "forcePathStyle" | "stop"
> & { stop(): Promise<void> };

function server(fields: ServerFields): S3TestServer {
  let client: S3Client | undefined;
  let stopped: Promise<void> | undefined;
  const clientConfig = (): S3ClientConfig => ({
    endpoint: fields.endpoint,
    region: fields.region,
    forcePathStyle: true,
    credentials: { accessKeyId: fields.accessKeyId, secretAccessKey: fields.secretAccessKey },
  });
  const stop = () =>
    (stopped ??= (async () => {
      client?.destroy();
      client = undefined;
      await fields.stop();
    })());
  return {
    ...fields,
    forcePathStyle: true,
    clientConfig,
    async createBucket(name?: string): Promise<string> {
      const bucket = name ?? `castore-test-${randomUUID()}`;
      // Loaded on first use: servers whose callers bring their own client do not load the SDK.
      const sdk = await import("@aws-sdk/client-s3");
      client ??= new sdk.S3Client(clientConfig());
      await client.send(new sdk.CreateBucketCommand({ Bucket: bucket }));
      return bucket;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
