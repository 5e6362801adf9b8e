import { GenericContainer, getContainerRuntimeClient, Wait, type StartedTestContainer } from "testcontainers";
import { getFreePort } from "./free-port.js";
import { StartedLoopbackContainer } from "./loopback-container.js";
import { randomUUID } from "node:crypto";
import { DEFAULT_POSTGRES_IMAGE, INSTANCE_LABEL, NO_PULL, removeOnFailedStart, sleep } from "./runtime.js";

/** Where the image keeps the PostgreSQL 15 binaries (Debian layout). */
const PG_BIN = "/usr/lib/postgresql/15/bin";
/** Data folder inside the container: initialised on first start, kept across restarts. */
const PG_DATA = "/var/lib/postgresql/castore-data";

/**
 * Settings that trade durability against OS crashes for speed: a killed
 * server process still recovers every committed transaction (the data stays
 * in the page cache). synchronous_commit stays on: turning it off would lose
 * recent commits when the process is killed, which fault tests must not see.
 */
const FAST_SETTINGS: Record<string, string> = {
  fsync: "off",
  full_page_writes: "off",
  max_connections: "200",
};

/**
 * PostgreSQL from the locally built `castore-test/postgres:15` image
 * (scripts/images/build-images.sh), in the style of the testcontainers
 * modules. The container uses host networking and listens on 127.0.0.1 at a
 * port chosen by the helper (or {@link withPort}); the server trusts every
 * local connection, so the URL carries no password.
 */
export class PostgresTestContainer extends GenericContainer {
  private port: number | undefined;
  private database = "castore_test";
  private readonly settings: Record<string, string> = { ...FAST_SETTINGS };

  constructor(image: string = DEFAULT_POSTGRES_IMAGE) {
    super(image);
    this.withNetworkMode("host")
      .withUser("postgres")
      .withPullPolicy(NO_PULL)
      .withSharedMemorySize(256 * 1024 * 1024)
      .withWaitStrategy(Wait.forLogMessage(/ready to accept connections/))
      .withStartupTimeout(120_000);
    // Fast shutdown on stop/restart: SIGTERM would wait for clients to leave.
    this.createOpts.StopSignal = "SIGINT";
  }

  /** Port to listen on (default: a free port on 127.0.0.1). */
  withPort(port: number): this {
    this.port = port;
    return this;
  }

  /** Database created after start (default `castore_test`). */
  withDatabase(database: string): this {
    this.database = database;
    return this;
  }

  /** A `-c name=value` server setting (fsync=off etc. are preset). */
  withSetting(name: string, value: string): this {
    this.settings[name] = value;
    return this;
  }

  override async start(): Promise<StartedPostgresTestContainer> {
    const port = this.port ?? (await getFreePort());
    const args = Object.entries(this.settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
    // initdb only when the folder is empty, so that a restarted container keeps its data.
    const script = [
      "set -e",
      `D=${PG_DATA}`,
      `if [ ! -s "$D/PG_VERSION" ]; then ${PG_BIN}/initdb -A trust -U postgres -E UTF8 --no-locale -D "$D" >/dev/null; fi`,
      `exec ${PG_BIN}/postgres -D "$D" -p "$0" -k /tmp -c listen_addresses=127.0.0.1 "$@"`,
    ].join("\n");
    const instance = randomUUID();
    this.withCommand(["/bin/sh", "-c", script, String(port), ...args]).withLabels({ [INSTANCE_LABEL]: instance });
    const started = await removeOnFailedStart(instance, () => super.start());
    const container = new StartedPostgresTestContainer(started, port, this.database);
    try {
      await container.createDatabase(this.database);
    } catch (err) {
      await started.stop().catch(() => undefined);
      throw err;
    }
    return container;
  }
}

export class StartedPostgresTestContainer extends StartedLoopbackContainer {
  constructor(
    startedTestContainer: StartedTestContainer,
    port: number,
    private readonly database: string,
  ) {
    super(startedTestContainer, port);
  }

  getDatabase(): string {
    return this.database;
  }

  getUsername(): string {
    return "postgres";
  }

  /** postgres://postgres@127.0.0.1:PORT/DATABASE (trust authentication, no password). */
  getConnectionUri(database = this.database): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  async createDatabase(database: string): Promise<void> {
    const result = await this.exec(
      [`${PG_BIN}/createdb`, "-h", "127.0.0.1", "-p", String(this.port), "-U", "postgres", database],
      { user: "postgres" },
    );
    if (result.exitCode !== 0) {
      throw new Error(`createdb ${database} failed (exit ${result.exitCode}): ${result.output.trim()}`);
    }
  }

  /** Resolves once `pg_isready` answers inside the container. */
  async waitUntilReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      try {
        const result = await this.exec(
          [`${PG_BIN}/pg_isready`, "-q", "-h", "127.0.0.1", "-p", String(this.port), "-d", this.database],
          { user: "postgres" },
        );
        if (result.exitCode === 0) return;
        last = `pg_isready exit ${result.exitCode}`;
      } catch (err) {
        last = String(err); // the container may be between stop and start
      }
      await sleep(100);
    }
    throw new Error(`PostgreSQL on port ${this.port} not ready after ${timeoutMs} ms (${last})`);
  }

  /**
   * Stops the server (fast shutdown, SIGINT: clients are disconnected, a
   * checkpoint is written) and starts it again with the same data folder and
   * port. With `downtimeMs`, the server stays down that long before it is
   * started again. A server not down after `stopTimeoutMs` is killed.
   */
  async restartServer(options: { downtimeMs?: number; stopTimeoutMs?: number } = {}): Promise<void> {
    // testcontainers timeouts are in milliseconds (docker rounds to seconds; 0 = SIGKILL at once).
    const timeout = options.stopTimeoutMs ?? 30_000;
    if (!options.downtimeMs) {
      await this.restart({ timeout });
    } else {
      const client = await getContainerRuntimeClient();
      const container = client.container.getById(this.getId());
      await client.container.stop(container, { timeout });
      await sleep(options.downtimeMs);
      await client.container.start(container);
    }
    await this.waitUntilReady();
  }
}
