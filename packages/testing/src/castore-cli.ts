/**
 * The built `castore` command (packages/cli/dist/main.js) as a child process,
 * for tests that need a real server process to kill, restart or fault.
 * `pnpm test` builds every package first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Resolves from src/ and from dist/ alike: both sit one level below packages/testing. */
export const CASTORE_CLI = fileURLToPath(new URL("../../cli/dist/main.js", import.meta.url));

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

function spawnCastore(args: string[], opts: CastoreProcessOptions, stdout: "pipe" | "ignore"): ChildProcess {
  return spawn(process.execPath, [CASTORE_CLI, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", stdout, "pipe"],
  });
}

/** Starts `castore serve ARGS…` and resolves once it prints where it listens. */
export function startCastoreServe(args: string[], opts: CastoreProcessOptions = {}): Promise<CastoreServeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawnCastore(["serve", ...args], opts, "ignore");
    let err = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`castore serve did not start: ${err}`));
    }, 60_000);
    const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      const m = / at (grpc\+\S+)/.exec(err);
      if (m) {
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
  code: number | null;
  /** Bytes, as written: names in listings need not be UTF-8. */
  stdout: Buffer;
  stderr: string;
}

/** Runs `castore ARGS…` to completion (killed after `timeoutMs`, default 60 s). */
export function runCastore(args: string[], opts: CastoreProcessOptions & { timeoutMs?: number } = {}): Promise<CastoreRun> {
  return new Promise((resolve, reject) => {
    const child = spawnCastore(args, opts, "pipe");
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => stdout.push(c));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(stdout), stderr });
    });
  });
}
