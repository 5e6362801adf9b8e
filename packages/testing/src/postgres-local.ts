import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { getFreePort } from "./free-port.js";
import { ENV } from "./runtime.js";

const execFileAsync = promisify(execFile);

/**
 * Folder holding initdb, postgres, pg_ctl and createdb: $CASTORE_TEST_POSTGRES_BIN,
 * else Debian's /usr/lib/postgresql/15/bin, else the newest
 * /usr/lib/postgresql/N/bin. Undefined when none exists.
 */
export function findLocalPostgresBinDir(): string | undefined {
  const fromEnv = process.env[ENV.postgresBin];
  if (fromEnv) return fromEnv;
  const root = "/usr/lib/postgresql";
  if (existsSync(`${root}/15/bin/postgres`)) return `${root}/15/bin`;
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(`${root}/${v}/bin/postgres`))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : `${root}/${versions[0]}/bin`;
}

/**
 * A PostgreSQL server run from the machine's own binaries in a temporary
 * folder: the fallback when no container runtime is reachable. As root the
 * server runs as the `postgres` user (`runuser -u postgres --`): PostgreSQL
 * refuses to run as root.
 */
export class LocalPostgresServer {
  private process: ChildProcess | undefined;
  private output: string[] = [];

  private constructor(
    readonly binDir: string,
    readonly dataDir: string,
    readonly port: number,
    readonly database: string,
    private readonly asUser: string | undefined,
    private readonly settings: Record<string, string>,
  ) {}

  static async start(options: {
    binDir: string;
    database: string;
    port?: number;
    settings?: Record<string, string>;
    startupTimeoutMs?: number;
  }): Promise<LocalPostgresServer> {
    const asRoot = process.getuid?.() === 0;
    const asUser = asRoot ? "postgres" : undefined;
    const dataDir = await mkdtemp(join(tmpdir(), "castore-pg-"));
    try {
      if (asUser) {
        const { uid, gid } = await lookupUser(asUser);
        await chown(dataDir, uid, gid);
      }
      const server = new LocalPostgresServer(
        options.binDir,
        dataDir,
        options.port ?? (await getFreePort()),
        options.database,
        asUser,
        options.settings ?? {},
      );
      await server.run("initdb", [
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-locale",
        "-D",
        join(dataDir, "data"),
      ]);
      await server.startServer(options.startupTimeoutMs ?? 60_000);
      await server.run("createdb", ["-h", "127.0.0.1", "-p", String(server.port), "-U", "postgres", options.database]);
      return server;
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  }

  private command(tool: string, args: string[]): [string, string[]] {
    const bin = join(this.binDir, tool);
    return this.asUser ? ["runuser", ["-u", this.asUser, "--", bin, ...args]] : [bin, args];
  }

  private async run(tool: string, args: string[]): Promise<void> {
    const [file, argv] = this.command(tool, args);
    try {
      await execFileAsync(file, argv, { cwd: this.dataDir, timeout: 120_000 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${tool} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
    }
  }

  private async startServer(timeoutMs: number): Promise<void> {
    const args = [
      "-D",
      join(this.dataDir, "data"),
      "-p",
      String(this.port),
      "-k",
      this.dataDir,
      "-c",
      "listen_addresses=127.0.0.1",
      ...Object.entries(this.settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    ];
    const [file, argv] = this.command("postgres", args);
    const child = spawn(file, argv, { cwd: this.dataDir, stdio: ["ignore", "pipe", "pipe"] });
    this.process = child;
    this.output = [];
    trackForExit(this);
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () => finish(new Error(`postgres not ready after ${timeoutMs} ms:\n${this.output.join("")}`)),
        timeoutMs,
      );
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        this.output.push(text);
        if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
        if (/ready to accept connections/.test(text)) finish();
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("error", (err) => finish(err));
      child.once("exit", (code, signal) =>
        finish(new Error(`postgres exited during startup (code ${code}, signal ${signal}):\n${this.output.join("")}`)),
      );
    }).catch(async (err) => {
      await this.stopServer().catch(() => undefined);
      throw err;
    });
  }

  /** Fast shutdown (clients are disconnected), waits for the server to exit. */
  async stopServer(timeoutMs = 30_000): Promise<void> {
    const child = this.process;
    if (!child) return;
    this.process = undefined;
    untrackForExit(this);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // pg_ctl signals the postmaster itself (runuser would turn signals into SIGTERM = smart shutdown).
    await this.run("pg_ctl", [
      "stop",
      "-D",
      join(this.dataDir, "data"),
      "-m",
      "fast",
      "-w",
      "-t",
      String(Math.ceil(timeoutMs / 1000)),
    ]).catch(() => this.signalPostmaster("SIGQUIT"));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops and starts the server on the same port with the same data. */
  async restart(options: { downtimeMs?: number } = {}): Promise<void> {
    await this.stopServer();
    if (options.downtimeMs) await new Promise((r) => setTimeout(r, options.downtimeMs));
    await this.startServer(60_000);
  }

  /** Stops the server and deletes its folder. */
  async stop(): Promise<void> {
    try {
      await this.stopServer();
    } finally {
      await rm(this.dataDir, { recursive: true, force: true });
    }
  }

  private postmasterPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dataDir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  private signalPostmaster(signal: NodeJS.Signals): void {
    const pid = this.postmasterPid();
    if (pid !== undefined) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /** Last resort when the test process exits without stop(): immediate shutdown, delete the folder. */
  killSync(): void {
    this.signalPostmaster("SIGQUIT");
    try {
      rmSync(this.dataDir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
}

/** Servers still running: shut down when the test process exits without stop(). */
const running = new Set<LocalPostgresServer>();
let exitHookInstalled = false;

function trackForExit(server: LocalPostgresServer): void {
  running.add(server);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const s of running) s.killSync();
    });
  }
}

function untrackForExit(server: LocalPostgresServer): void {
  running.delete(server);
}

async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([
    execFileAsync("id", ["-u", name]).then((r) => Number(r.stdout.trim())),
    execFileAsync("id", ["-g", name]).then((r) => Number(r.stdout.trim())),
  ]).catch(() => {
    throw new Error(`running as root, but there is no "${name}" user to run PostgreSQL as`);
  });
  return { uid, gid };
}
