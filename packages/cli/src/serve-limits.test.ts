/**
 * `castore serve` limit flags, set through their CASTORE_* environment
 * variables, reach the server: entries per directory, idle timeout,
 * concurrent streams per connection.
 */
import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { fixtures, makeDirectory, makeFileNode, openDirectoryService } from "@castore/core";

const { EMPTY_BLOB_DIGEST } = fixtures;
import "@castore/backend-grpc";
import { grpcCodeOf } from "@castore/backend-grpc";
import { CLI } from "./test-cli.js";

const RESOURCE_EXHAUSTED = 8;
const DEADLINE_EXCEEDED = 4;

describe("castore serve limits from the environment", () => {
  it("CASTORE_MAX_DIRECTORY_ENTRIES, CASTORE_IDLE_TIMEOUT_MS, CASTORE_MAX_CONCURRENT_STREAMS", async () => {
    const child = spawn(process.execPath, [CLI, "serve", "--listen", "127.0.0.1:0", "--store", "memory://"], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, CASTORE_MAX_DIRECTORY_ENTRIES: "2", CASTORE_IDLE_TIMEOUT_MS: "300", CASTORE_MAX_CONCURRENT_STREAMS: "3" },
    });
    let err = "";
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`castore serve did not start: ${err}`)), 30_000);
        child.stderr.on("data", (c: Buffer) => {
          err += c.toString();
          const m = / at (grpc\+\S+)/.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
        void exited.then((code) => reject(new Error(`castore serve exited with ${code}: ${err}`)));
      });
      const client = await openDirectoryService(url);
      const files = (n: number) => makeDirectory({ files: Array.from({ length: n }, (_, i) => makeFileNode(`f${i}`, EMPTY_BLOB_DIGEST, 0n, false)) });
      await client.put(files(2));
      const e = await client.put(files(3)).catch((x: unknown) => x);
      expect(grpcCodeOf(e)).toBe(RESOURCE_EXHAUSTED);
      expect(String((e as Error).message)).toMatch(/3 entries, more than the limit of 2/);
      await client.close();

      const session = http2.connect(`http://${new URL(url).host}`);
      session.on("error", () => {});
      try {
        await new Promise((r) => session.once("remoteSettings", r));
        expect(session.remoteSettings.maxConcurrentStreams).toBe(3);
        const stream = session.request({ ":method": "POST", ":path": "/tvix.castore.v1.DirectoryService/Put", "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => {});
        stream.resume();
        const started = Date.now();
        const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
        expect(trailers["grpc-status"]).toBe(String(DEADLINE_EXCEEDED));
        expect(Date.now() - started).toBeLessThan(5000);
      } finally {
        session.destroy();
      }
    } finally {
      if (child.exitCode === null) child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  }, 60_000);
});
