/**
 * `castore serve` in a child process, as a deployment runs it: the CLI's own
 * entry point, a store URL, a free loopback port. The child prints
 * "castore: serving STORE at URL" on stderr when it listens.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI_MAIN = fileURLToPath(new URL("./main.js", import.meta.resolve("@castore/cli")));

export interface ServeProcess {
  /** grpc+http://127.0.0.1:PORT */
  url: string;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<void>;
}

export async function startCastoreServe(storeUrl: string): Promise<ServeProcess> {
  const child: ChildProcess = spawn(process.execPath, [CLI_MAIN, "serve", "--listen", "127.0.0.1:0", "--store", storeUrl], {
    stdio: ["ignore", "inherit", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let ready = false;
  let early = "";
  child.stderr!.setEncoding("utf8");
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`castore serve did not start within 30 s; stderr: ${early}`));
    }, 30_000);
    child.stderr!.on("data", (chunk: string) => {
      if (ready) {
        process.stderr.write(`[castore serve] ${chunk}`); // warnings and errors after start
        return;
      }
      early += chunk;
      const m = /castore: serving .* at (grpc\+http:\/\/\S+)/.exec(early);
      if (m) {
        ready = true;
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`castore serve exited (${signal ?? code}) before listening; stderr: ${early}`));
    });
  });
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
