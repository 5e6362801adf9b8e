/**
 * `castore serve` operations endpoints: --metrics-listen serves Prometheus
 * metrics that follow the calls made.
 */
import { spawn } from "node:child_process";
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import {
  directoryDigest,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  directorySize,
  openDirectoryService,
} from "@castore-ts/core";
import "@castore-ts/backend-grpc";
import { CASTORE_CLI } from "./test-castore-cli.js";

const { EMPTY_BLOB_DIGEST } = fixtures;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The value of one sample line (name and labels exactly as given), or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe("castore serve --metrics-listen", () => {
  it("serves /metrics; calls, directories and bytes counters follow an upload and a recursive get", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [CASTORE_CLI, "serve", "--listen", "127.0.0.1:0", "--store", "memory://"], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, CASTORE_METRICS_LISTEN: `127.0.0.1:${port}` },
    });
    let err = "";
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      const [url, metricsUrl] = await new Promise<[string, string]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`castore serve did not start: ${err}`)), 30_000);
        child.stderr.on("data", (c: Buffer) => {
          err += c.toString();
          const m = / at (grpc\+\S+)/.exec(err);
          const mm = /metrics at (http:\S+)/.exec(err);
          if (m && mm) {
            clearTimeout(timer);
            resolve([m[1]!, mm[1]!]);
          }
        });
        void exited.then((code) => reject(new Error(`castore serve exited with ${code}: ${err}`)));
      });
      expect(metricsUrl).toBe(`http://127.0.0.1:${port}/metrics`);

      const leaf = makeDirectory({ files: [makeFileNode("f", EMPTY_BLOB_DIGEST, 0n, false)] });
      const mid = makeDirectory({
        directories: [makeDirectoryNode("leaf", directoryDigest(leaf).bytes, directorySize(leaf))],
      });
      const root = makeDirectory({
        directories: [makeDirectoryNode("mid", directoryDigest(mid).bytes, directorySize(mid))],
      });
      const client = await openDirectoryService(url);
      try {
        const putter = client.putMultipleStart();
        for (const d of [leaf, mid, root]) await putter.put(d);
        const rootDigest = await putter.close();
        const got = [];
        for await (const d of client.getRecursive(rootDigest)) got.push(d);
        expect(got).toHaveLength(3);
      } finally {
        await client.close();
      }

      const res = await fetch(metricsUrl);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      const text = await res.text();
      const handled = (m: string) =>
        sample(
          text,
          `castore_grpc_server_handled_total{grpc_service="tvix.castore.v1.DirectoryService",grpc_method="${m}",grpc_code="OK"}`,
        );
      expect(handled("Put")).toBe(1);
      expect(handled("Get")).toBe(1);
      expect(sample(text, "castore_directories_received_total")).toBe(3);
      expect(sample(text, "castore_directories_sent_total")).toBe(3);
      expect(sample(text, "castore_grpc_server_received_bytes_total")).toBeGreaterThan(0);
      expect(sample(text, "castore_grpc_server_sent_bytes_total")).toBeGreaterThan(0);
      expect(sample(text, "castore_uploads_in_flight")).toBe(0);
      expect(
        sample(
          text,
          `castore_grpc_server_handling_seconds_count{grpc_service="tvix.castore.v1.DirectoryService",grpc_method="Put"}`,
        ),
      ).toBe(1);
      expect(text).toMatch(/^process_cpu_user_seconds_total /m);
      expect((await fetch(metricsUrl.replace("/metrics", "/other"))).status).toBe(404);
    } finally {
      if (child.exitCode === null) child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  }, 60_000);
});
