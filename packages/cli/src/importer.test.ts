/**
 * importTree in process: file digests and sizes at the read-path boundaries
 * (empty, one-shot hashing limit, read buffer size), the same through sync,
 * asynchronous and measured (auto) reads and through the spool's temporary file, and an
 * interruption.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBlake3Hasher, openDirectoryService } from "@castore/core";
import "@castore/backend-memory";
import { importTree } from "./importer.js";

const KiB = 1024;
const SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 1024 * KiB - 1, 1024 * KiB, 1024 * KiB + 1, 3 * 1024 * KiB + 7];

let dir: string;
let tree: string;
const contents = new Map<string, Buffer>();

function b3(bytes: Buffer): string {
  const h = createBlake3Hasher();
  h.update(bytes);
  return Buffer.from(h.digest()).toString("hex");
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-importer-"));
  tree = join(dir, "tree");
  mkdirSync(join(tree, "sub", "deeper"), { recursive: true });
  for (const size of SIZES) {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + size) & 0xff;
    const name = `f${size}`;
    contents.set(name, bytes);
    writeFileSync(join(tree, name), bytes);
  }
  chmodSync(join(tree, "f1"), 0o755);
  for (let i = 0; i < 300; i++) writeFileSync(join(tree, "sub", `s${i}`), `small ${i}\n`);
  writeFileSync(join(tree, "sub", "deeper", "x"), "x");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("importTree", () => {
  it("hashes files of every size right, sync or async reads, spool in memory or spilled", async () => {
    const roots = new Set<string>();
    for (const [syncIo, spoolMemoryBytes] of [
      [undefined, undefined],
      [true, undefined],
      [false, undefined],
      [true, 0],
      [false, 100],
    ] as const) {
      const service = await openDirectoryService("memory://");
      const { digest, progress } = await importTree(service, tree, { syncIo, spoolMemoryBytes, spoolDir: dir, concurrency: 3 });
      roots.add(digest.hex);
      expect(progress).toMatchObject({ files: SIZES.length + 301, directories: 3, uploaded: 3 });
      const root = (await service.get(digest))!;
      expect(root.files.map((f) => Buffer.from(f.name).toString())).toEqual([...contents.keys()].sort());
      for (const f of root.files) {
        const bytes = contents.get(Buffer.from(f.name).toString())!;
        expect(f.size).toBe(BigInt(bytes.length));
        expect(Buffer.from(f.digest).toString("hex"), `${Buffer.from(f.name)}`).toBe(b3(bytes));
        expect(f.executable).toBe(Buffer.from(f.name).toString() === "f1");
      }
      await service.close();
    }
    expect(roots.size).toBe(1);
  });

  it("stops with the signal's reason when interrupted", async () => {
    const service = await openDirectoryService("memory://");
    const controller = new AbortController();
    controller.abort(new Error("interrupted"));
    await expect(importTree(service, tree, { signal: controller.signal })).rejects.toThrow(/^interrupted$/);
    await service.close();
  });
});
