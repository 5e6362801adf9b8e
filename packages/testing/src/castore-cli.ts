/**
 * The built `castore` command as a child process, for tests that need a real
 * server process to kill, restart or fault. The caller names the entry point
 * (`cli`): this package does not know where the CLI lives, because the CLI's
 * own tests depend on it. The CLI's tests pass their package's dist/main.js;
 * everyone else resolves `@castore-ts/cli/bin`. `pnpm test` builds it first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The path (or file: URL) of the castore entry point to run, e.g. packages/cli/dist/main.js. */
export type CastoreEntryPoint = string | URL;

export interface CastoreServeProcess {
  child: ChildProcess;
  /** The store URL the server printed, e.g. grpc+http://127.0.0.1:PORT. */
  url: string;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  /** Sends `signal` (default SIGTERM) unless it has exited, and waits for the exit; resolves with its exit code (null after a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface CastoreProcessOptions {
  cwd?: string;
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
}

export interface CastoreServeOptions extends CastoreProcessOptions {
  /**
   * After the server listens, also copy what it writes to stderr (warnings,
   * errors) to this process's stderr, each chunk prefixed "[castore serve] ":
   * for long runs (benchmarks, the soak) where nobody reads stderr().
   */
  echoStderr?: boolean;
}

function spawnCastore(
  cli: CastoreEntryPoint,
  args: string[],
  opts: CastoreProcessOptions,
  stdout: "pipe" | "ignore",
): ChildProcess {
  const main = typeof cli === "string" ? cli : fileURLToPath(cli);
  return spawn(process.execPath, [main, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", stdout, "pipe"],
  });
}

/** Starts `castore serve ARGS…` and resolves once it prints where it listens. */
export function startCastoreServe(
  cli: CastoreEntryPoint,
  args: string[],
  opts: CastoreServeOptions = {},
): Promise<CastoreServeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawnCastore(cli, ["serve", ...args], opts, "ignore");
    let err = "";
    let listening = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`castore serve did not start: ${err}`));
    }, 60_000);
    const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      if (listening) {
        if (opts.echoStderr) process.stderr.write(`[castore serve] ${c.toString()}`);
        return;
      }
      const m = / at (grpc\+\S+)/.exec(err);
      if (m) {
        listening = true;
        clearTimeout(timer);
        resolve({
          child,
          url: m[1],
          stderr: () => err,
          stop: (signal = "SIGTERM") => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`castore serve exited with ${code}: ${err}`));
    });
  });
}

export interface CastoreRun {
  /** The exit code; null when a signal ended it (then `signal`). */
  code: number | null;
  /** The signal that ended it (SIGKILL: also when it outlived `timeoutMs`), else null. */
  signal: NodeJS.Signals | null;
  /** Bytes, as written: names in listings need not be UTF-8. */
  stdout: Buffer;
  stderr: string;
}

/** Runs `castore ARGS…` to completion (killed after `timeoutMs`, default 60 s). */
export function runCastore(
  cli: CastoreEntryPoint,
  args: string[],
  opts: CastoreProcessOptions & { timeoutMs?: number } = {},
): Promise<CastoreRun> {
  return new Promise((resolve, reject) => {
    const child = spawnCastore(cli, args, opts, "pipe");
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => stdout.push(c));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr });
    });
  });
}
