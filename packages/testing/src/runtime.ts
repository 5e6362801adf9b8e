import { getContainerRuntimeClient, ImageName, type ContainerRuntimeClient } from "testcontainers";

/** Environment variables read by @castore-ts/testing. */
export const ENV = {
  /** Use this PostgreSQL server instead of starting one (postgres://user@host:port/db). */
  postgresUrl: "CASTORE_TEST_POSTGRES_URL",
  /** Image for the PostgreSQL container (default castore-test/postgres:15). */
  postgresImage: "CASTORE_TEST_POSTGRES_IMAGE",
  /** Folder with initdb/postgres/createdb/pg_ctl for the local fallback. */
  postgresBin: "CASTORE_TEST_POSTGRES_BIN",
  /** Use this S3 endpoint instead of starting a server (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
  s3Url: "CASTORE_TEST_S3_URL",
  /** Image for the S3 container (default castore-test/s3:1); a name containing "minio" starts MinIO. */
  s3Image: "CASTORE_TEST_S3_IMAGE",
  /** "1": do not use docker even when reachable (forces the local fallbacks; refused when CI is set). */
  noDocker: "CASTORE_TEST_NO_DOCKER",
} as const;

/** Where a test server comes from: an env-var URL, a container, or a local process. */
export type TestServerKind = "env" | "container" | "local";

export const DEFAULT_POSTGRES_IMAGE = "castore-test/postgres:15";
export const DEFAULT_S3_IMAGE = "castore-test/s3:1";

/** Pull policy for locally built images: never contact a registry. */
export const NO_PULL = { shouldPull: () => false } as const;

function truthy(value: string | undefined): boolean {
  return value !== undefined && value !== "" && !["0", "false", "no", "off"].includes(value.toLowerCase());
}

/** True when running in CI (`CI` set to anything but empty/0/false): the container path is mandatory there. */
export function isCi(): boolean {
  return truthy(process.env.CI);
}

export function dockerDisabled(): boolean {
  return truthy(process.env[ENV.noDocker]);
}

/**
 * Settings every container here needs: containers use host networking, so the
 * host is loopback (testcontainers otherwise looks for the bridge gateway,
 * which does not exist with `dockerd --bridge=none`), and the reaper image
 * cannot be pulled (containers are stopped by their owners). Explicit values
 * in the environment win.
 */
export function applyTestcontainersDefaults(): void {
  process.env.TESTCONTAINERS_HOST_OVERRIDE ??= "127.0.0.1";
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";
}

export type DockerProbe = { ok: true; client: ContainerRuntimeClient } | { ok: false; reason: string };

let probe: Promise<DockerProbe> | undefined;

/**
 * Whether a container runtime answers, using testcontainers' own runtime
 * strategies (DOCKER_HOST, ~/.testcontainers.properties, /var/run/docker.sock,
 * ...). A success is remembered for the process; a failure is re-checked.
 */
export async function probeDocker(timeoutMs = 20_000): Promise<DockerProbe> {
  if (dockerDisabled()) return { ok: false, reason: `${ENV.noDocker} is set` };
  applyTestcontainersDefaults();
  probe ??= (async (): Promise<DockerProbe> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const client = await Promise.race([
        getContainerRuntimeClient(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          timer.unref();
        }),
      ]);
      return { ok: true, client };
    } catch (err) {
      return { ok: false, reason: `no container runtime reachable (${errorMessage(err)})` };
    } finally {
      clearTimeout(timer);
    }
  })();
  const result = await probe;
  if (!result.ok) probe = undefined;
  return result;
}

export async function imageExists(client: ContainerRuntimeClient, image: string): Promise<boolean> {
  try {
    await client.image.inspect(ImageName.fromString(image));
    return true;
  } catch {
    return false;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Error thrown when no test server could be started; lists every path that was tried. */
export class TestServerUnavailableError extends Error {
  constructor(
    what: string,
    readonly attempts: readonly string[],
    hint?: string,
  ) {
    super(
      `${what}: no server could be started.\n` + attempts.map((a) => `  - ${a}`).join("\n") + (hint ? `\n${hint}` : ""),
    );
    this.name = "TestServerUnavailableError";
  }
}

/** Label put on every container started here, unique per start, for cleanup after a failed start. */
export const INSTANCE_LABEL = "org.castore.testing.instance";

/**
 * Runs `start` for a container labelled `{INSTANCE_LABEL}=instanceId`; when
 * it fails after docker created the container (e.g. the entry point or user
 * does not exist), that container is removed: no reaper runs here.
 */
export async function removeOnFailedStart<T>(instanceId: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    try {
      const client = await getContainerRuntimeClient();
      const container = await client.container.fetchByLabel(INSTANCE_LABEL, instanceId);
      if (container) {
        await client.container.stop(container, { timeout: 0 }).catch(() => undefined);
        await client.container.remove(container, { removeVolumes: true });
      }
    } catch {
      // best effort: report the start error
    }
    throw err;
  }
}
