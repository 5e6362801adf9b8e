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
  /** Sends `signal` (default SIGTERM) unless it has exited, and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `castore serve ARGS…` and resolves once it prints where it listens. */
export function startCastoreServe(args: string[]): Promise<CastoreServeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CASTORE_CLI, "serve", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`castore serve did not start: ${err}`));
    }, 60_000);
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      const m = / at (grpc\+\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1],
          stderr: () => err,
          stop: async (signal = "SIGTERM") => {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            await exited;
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

/** Runs `castore ARGS…` to completion (killed after 60 s). */
export function runCastore(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CASTORE_CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
