import { PostgresTestContainer, type StartedPostgresTestContainer } from "./postgres-container.js";
import { findLocalPostgresBinDir, LocalPostgresServer } from "./postgres-local.js";
import { tryContainerPath } from "./container-path.js";
import {
  DEFAULT_POSTGRES_IMAGE,
  ENV,
  errorMessage,
  TestServerUnavailableError,
  type TestServerKind,
} from "./runtime.js";

export type { TestServerKind };

export interface PostgresTestServer extends AsyncDisposable {
  /** postgres://postgres@127.0.0.1:PORT/castore_test (no password: trust authentication). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** Where the server comes from: $CASTORE_TEST_POSTGRES_URL, a container, or local binaries. */
  readonly kind: TestServerKind;
  /** False for "env" servers, which this helper does not control. */
  readonly canRestart: boolean;
  /**
   * Stops the server and starts it again on the same port with the same data
   * (fault tests: open connections are cut). `downtimeMs` keeps it down that
   * long. Throws for "env" servers.
   */
  restart(options?: { downtimeMs?: number }): Promise<void>;
  /** Stops the server and discards its data (no-op for "env"). Safe to call twice. */
  stop(): Promise<void>;
}

export interface PostgresTestServerOptions {
  /** Database created in a started server (default castore_test). */
  database?: string;
  /** Container image (default $CASTORE_TEST_POSTGRES_IMAGE or castore-test/postgres:15). */
  image?: string;
  /** Extra `-c name=value` settings for a started server. */
  settings?: Record<string, string>;
  /** Container / process startup timeout (default 120 s). */
  startupTimeoutMs?: number;
}

const BUILD_HINT =
  "Build the image with scripts/images/build-postgres-image.sh (needs a docker engine: source .ci/lib/docker.sh).";

/**
 * Starts (or finds) a PostgreSQL server for a test. In order:
 *  1. $CASTORE_TEST_POSTGRES_URL: that server is used as is (stop is a no-op);
 *  2. a reachable container runtime: `castore-test/postgres:15` through
 *     testcontainers (host network, free port, never pulled);
 *  3. no container runtime (or $CASTORE_TEST_NO_DOCKER=1): the machine's
 *     PostgreSQL binaries in a temporary folder.
 * With CI set, step 2 is mandatory: an error is thrown instead of falling back.
 */
export async function startPostgresTestServer(options: PostgresTestServerOptions = {}): Promise<PostgresTestServer> {
  const envUrl = process.env[ENV.postgresUrl];
  if (envUrl) return fromUrl(envUrl);

  const database = options.database ?? "castore_test";
  const image = options.image ?? process.env[ENV.postgresImage] ?? DEFAULT_POSTGRES_IMAGE;
  // Same speed settings as the container (see postgres-container.ts): crash-safe, not OS-crash-safe.
  const settings = { fsync: "off", full_page_writes: "off", ...options.settings };
  const startupTimeoutMs = options.startupTimeoutMs ?? 120_000;
  const attempts: string[] = [`${ENV.postgresUrl}: not set`];

  // 2. container
  const containerPath = await tryContainerPath({
    label: "PostgreSQL",
    image,
    buildHint: BUILD_HINT,
    attempts,
    start: async () => {
      let container = new PostgresTestContainer(image).withDatabase(database).withStartupTimeout(startupTimeoutMs);
      for (const [k, v] of Object.entries(settings)) container = container.withSetting(k, v);
      return fromContainer(await container.start());
    },
  });
  if (containerPath.started) return containerPath.started;

  // 3. local binaries
  const binDir = findLocalPostgresBinDir();
  if (binDir) {
    try {
      const local = await LocalPostgresServer.start({ binDir, database, settings, startupTimeoutMs });
      containerPath.warnFallback("local binaries");
      return fromLocal(local);
    } catch (err) {
      attempts.push(`local binaries in ${binDir}: ${errorMessage(err)}`);
    }
  } else {
    attempts.push(`local binaries: none found (set ${ENV.postgresBin} or apt-get install postgresql-15)`);
  }
  throw new TestServerUnavailableError("PostgreSQL test server", attempts);
}

function server(
  fields: Omit<PostgresTestServer, typeof Symbol.asyncDispose | "stop"> & { stop(): Promise<void> },
): PostgresTestServer {
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= fields.stop());
  return { ...fields, stop, [Symbol.asyncDispose]: stop };
}

function fromUrl(raw: string): PostgresTestServer {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new Error(`${ENV.postgresUrl} is not a URL: ${raw}`);
  }
  return server({
    url: raw,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, "")) || "postgres",
    kind: "env",
    canRestart: false,
    restart: async () => {
      throw new Error(`restart() is not available for the server given by ${ENV.postgresUrl}`);
    },
    stop: async () => undefined,
  });
}

function fromContainer(container: StartedPostgresTestContainer): PostgresTestServer {
  return server({
    url: container.getConnectionUri(),
    host: container.getHost(),
    port: container.getPort(),
    database: container.getDatabase(),
    kind: "container",
    canRestart: true,
    restart: (options) => container.restartServer(options),
    stop: async () => {
      await container.stop({ timeout: 0 });
    },
  });
}

function fromLocal(local: LocalPostgresServer): PostgresTestServer {
  return server({
    url: `postgres://postgres@127.0.0.1:${local.port}/${encodeURIComponent(local.database)}`,
    host: "127.0.0.1",
    port: local.port,
    database: local.database,
    kind: "local",
    canRestart: true,
    restart: (options) => local.restart(options),
    stop: () => local.stop(),
  });
}
