/**
 * Re-importing a tree with one changed file through `castore serve` sends
 * only what changed (spec §3.5, §3.6): the directories from the changed
 * file up to the root and the file's blob, and asks about little else. What
 * the server receives, counted by its own metrics (request bodies, queries
 * included), stays under 2 % of what the first import of the tree sent.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getFreePort, runCastore, scrapeMetric, startCastoreServe } from "@castore-ts/testing";
import { openBlobService, openDirectoryService } from "@castore-ts/core";
import "@castore-ts/backend-memory";
import { importTree } from "./importer.js";
import { CASTORE_CLI } from "./test-castore-cli.js";

let dir: string;
let tree: string;
const TOP = 10;
const SUB = 10;
const FILES = 30;

/** Bytes of a small file: 0–4 KiB, distinct per path. */
function contents(i: number, j: number, k: number): Buffer {
  const size = (i * 7919 + j * 104729 + k * 1299709) % 4096;
  return Buffer.alloc(size, `${i}/${j}/${k} `);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-partial-import-"));
  tree = join(dir, "tree");
  for (let i = 0; i < TOP; i++)
    for (let j = 0; j < SUB; j++) {
      const sub = join(tree, `t${i}`, `s${j}`);
      mkdirSync(sub, { recursive: true });
      for (let k = 0; k < FILES; k++) writeFileSync(join(sub, `f${k}`), contents(i, j, k));
    }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("re-import in process", () => {
  it("of an unchanged tree sends no directory; with one file changed, depth + 1 directories and one blob", async () => {
    const directories = await openDirectoryService("memory://");
    const blobs = await openBlobService("memory://");
    const edited = join(tree, "t1", "s2", "f3");
    const original = readFileSync(edited);
    try {
      const first = await importTree(directories, tree, { blobs });
      expect(first.progress.uploaded).toBe(1 + TOP + TOP * SUB);
      const again = await importTree(directories, tree, { blobs });
      expect(again.digest.equals(first.digest)).toBe(true);
      expect(again.progress).toMatchObject({ uploaded: 0, directoriesPresent: 1 });
      writeFileSync(edited, "edited in process\n");
      const changed = await importTree(directories, tree, { blobs });
      // root, t1, t1/s2 sent; of the 20 directories asked about below them, 18 were stored
      expect(changed.progress).toMatchObject({ uploaded: 3, directoriesPresent: 2 * (TOP - 1) });
      expect(changed.progress.blobs).toMatchObject({ uploaded: 1, uploadedBytes: "edited in process\n".length });
      expect(await directories.get(changed.digest)).toBeDefined();
    } finally {
      writeFileSync(edited, original);
      await Promise.all([directories.close(), blobs.close()]);
    }
  });
});

describe("re-import through castore serve", () => {
  it("with one file changed sends its path's directories and its blob, and receives under 2 % of the first import", async () => {
    const port = await getFreePort();
    const server = await startCastoreServe(CASTORE_CLI, [
      "--listen",
      "127.0.0.1:0",
      "--store",
      "memory://",
      "--metrics-listen",
      `127.0.0.1:${port}`,
    ]);
    const metric = (name: string) => scrapeMetric(`http://127.0.0.1:${port}/metrics`, name);
    const counters = async () => ({
      bytes: await metric("castore_grpc_server_received_bytes_total"),
      directories: await metric("castore_directories_received_total"),
      calls: await metric("castore_grpc_server_handled_total"),
    });
    const importTree = async () => {
      const r = await runCastore(CASTORE_CLI, ["import", tree, "--store", server.url, "--no-progress"]);
      expect(r.code, `${r.signal ?? ""} ${r.stderr}`).toBe(0);
      return r;
    };
    try {
      const before = await counters();
      await importTree();
      const first = await counters();
      const firstBytes = first.bytes - before.bytes;
      expect(first.directories - before.directories).toBe(1 + TOP + TOP * SUB);
      // Dozens of calls at once (blob writes): a listener each on the server's shutdown signal is by design.
      expect(server.stderr()).not.toMatch(/MaxListenersExceededWarning/);

      const unchanged = await importTree();
      const again = await counters();
      expect(again.directories).toBe(first.directories);
      expect(unchanged.stderr.toString()).toMatch(/no blob uploaded/);

      writeFileSync(join(tree, "t3", "s4", "f5"), "changed\n");
      const changed = await importTree();
      const after = await counters();
      // Root, t3 and t3/s4: depth + 1 directories, and one blob of 8 bytes.
      expect(after.directories - again.directories).toBe(3);
      expect(changed.stderr.toString()).toMatch(/1 blob uploaded \(8 B\)/);
      const received = after.bytes - again.bytes;
      expect(received, `the re-import sent ${received} bytes, the first import ${firstBytes}`).toBeLessThan(
        0.02 * firstBytes,
      );
      expect(again.bytes - first.bytes).toBeLessThan(0.02 * firstBytes);
      // Fewer bytes than the tree's file digests alone: the questions do not carry every digest of the tree
      // (after a first batch of blobs all found stored, files are asked about only in directories it lacks).
      const digestBytes = TOP * SUB * FILES * 32;
      expect(again.bytes - first.bytes).toBeLessThan(digestBytes / 2);
      expect(received).toBeLessThan(digestBytes / 2);
      // A handful of calls, not one per file or per directory.
      expect(after.calls - again.calls).toBeLessThan(20);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
