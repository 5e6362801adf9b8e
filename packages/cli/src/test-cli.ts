/** Helpers to run the built `castore` binary in tests (test-only). */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Starts `castore serve` and resolves once it prints where it listens. */
export function startServe(args: string[], opts: { cwd?: string } = {}): Promise<{ child: ChildProcess; url: string; stderr: () => string; stop(signal?: NodeJS.Signals): Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "serve", ...args], { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`castore serve did not start: ${err}`));
    }, 30_000);
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      const m = / at (grpc\+\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1],
          stderr: () => err,
          stop: (signal = "SIGTERM") =>
            new Promise((res) => {
              if (child.exitCode !== null) return res(child.exitCode);
              child.once("exit", (code) => res(code));
              child.kill(signal);
            }),
        });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`castore serve exited with ${code}: ${err}`));
    });
  });
}
