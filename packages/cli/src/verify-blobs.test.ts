/**
 * verify --blobs and --rehash: every file's blob present with its declared
 * size (stat), and with --rehash read in full (every chunk and the whole
 * re-hashed); each problem names its kind, the blob's digest and the path.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Digest,
  directoryDigest,
  directorySize,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore-ts/core";
import { LmdbBlobStore } from "@castore-ts/backend-lmdb";
import { MemoryBlobService, MemoryDirectoryService } from "@castore-ts/backend-memory";
import { runCastore } from "@castore-ts/testing";
import { importTree } from "./importer.js";
import { CASTORE_CLI } from "./test-castore-cli.js";
import { type Problem, verifyRoots, verifyStore } from "./verify.js";

let dir: string;
let tree: string;
const big = Buffer.alloc(2 * 1024 * 1024);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-verify-blobs-"));
  tree = join(dir, "tree");
  mkdirSync(join(tree, "sub"), { recursive: true });
  writeFileSync(join(tree, "a.txt"), "a\n");
  writeFileSync(join(tree, "sub", "b.txt"), "b\n");
  writeFileSync(join(tree, "sub", "also-a.txt"), "a\n");
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  writeFileSync(join(tree, "sub", "big.bin"), big);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const digestOf = (bytes: string | Buffer) => Digest.of(typeof bytes === "string" ? Buffer.from(bytes) : bytes);

describe("verify --blobs", () => {
  it("in process: clean, then a missing blob, a wrong declared size and (rehash only) a corrupt chunk, each with path and digest", async () => {
    const directories = new MemoryDirectoryService();
    const blobs = new MemoryBlobService();
    const { digest: root } = await importTree(directories, tree, { blobs });
    const clean = await verifyRoots(directories, [root], { blobs, rehash: true });
    // a.txt and also-a.txt share a blob: checked once
    expect(clean).toEqual({ directories: 2, problems: 0, blobs: 3 });

    // a file whose node declares 3 bytes for a 2-byte blob, and one whose blob was never stored
    const odd = makeDirectory({
      files: [
        makeFileNode("ghost", digestOf("never stored"), 12n, false),
        makeFileNode("short", digestOf("a\n"), 3n, false),
      ],
    });
    const top = makeDirectory({
      directories: [makeDirectoryNode("odd", directoryDigest(odd).bytes, directorySize(odd))],
    });
    const putter = directories.putMultipleStart();
    await putter.put(odd);
    await putter.put(top);
    const topDigest = await putter.close();
    const problems: Problem[] = [];
    const r = await verifyRoots(directories, [topDigest], { blobs, onProblem: (p) => problems.push(p) });
    expect(r).toEqual({ directories: 2, problems: 2, blobs: 2 });
    expect(problems).toContainEqual({
      kind: "blob-missing",
      digest: digestOf("never stored").hex,
      path: "odd/ghost",
      message: "blob not stored",
    });
    expect(problems).toContainEqual({
      kind: "blob-size-mismatch",
      digest: digestOf("a\n").hex,
      path: "odd/short",
      message: "declared size 3, stored 2 bytes",
    });

    // a damaged chunk of big.bin: stat still sees the size, only a re-hash finds it
    const [firstChunk] = (await blobs.stat(digestOf(big), { chunks: true }))!.chunks!;
    blobs.store.corruptChunk(firstChunk!.digest, new Uint8Array(firstChunk!.size));
    expect((await verifyRoots(directories, [root], { blobs })).problems).toBe(0);
    const rehashed: Problem[] = [];
    await verifyRoots(directories, [root], { blobs, rehash: true, onProblem: (p) => rehashed.push(p) });
    expect(rehashed).toEqual([
      expect.objectContaining({ kind: "blob-corrupt", digest: digestOf(big).hex, path: "sub/big.bin" }),
    ]);
    // whole-store mode names the file and its directory instead of a path
    const whole: Problem[] = [];
    await verifyStore(directories, { blobs, onProblem: (p) => whole.push(p) });
    expect(whole).toContainEqual(
      expect.objectContaining({
        kind: "blob-missing",
        message: `file ghost of directory ${directoryDigest(odd).hex}: blob not stored`,
      }),
    );
  });

  it("the CLI: --blobs after --no-contents lists every missing blob and exits 1; --rehash finds a damaged chunk on lmdb", async () => {
    const bare = join(dir, "bare");
    const imported = await runCastore(CASTORE_CLI, ["import", tree, "--store", `lmdb://${bare}`, "--no-contents"]);
    const root = imported.stdout.toString().trim();
    const dirsOnly = await runCastore(CASTORE_CLI, ["verify", `lmdb://${bare}`, root, "--no-progress"]);
    expect(dirsOnly.code, dirsOnly.stderr.toString()).toBe(0);
    const missing = await runCastore(CASTORE_CLI, ["verify", `lmdb://${bare}`, root, "--blobs", "--no-progress"]);
    expect(missing.code).toBe(1);
    expect(missing.stdout.toString()).toContain(`blob-missing ${digestOf(big).hex} at /sub/big.bin: blob not stored`);
    expect(missing.stderr.toString()).toMatch(/2 directories, 3 blobs checked, 4 problems/);

    const full = join(dir, "full");
    await runCastore(CASTORE_CLI, ["import", tree, "--store", `lmdb://${full}`]);
    const ok = await runCastore(CASTORE_CLI, ["verify", `lmdb://${full}`, root, "--rehash", "--no-progress"]);
    expect(ok.code, ok.stdout.toString()).toBe(0);
    const store = LmdbBlobStore.open(full);
    try {
      const [first] = (await store.getManifest(digestOf(big)))!;
      await store.chunks.put(first!.digest.bytes, new Uint8Array(first!.size));
    } finally {
      await store.close();
    }
    expect((await runCastore(CASTORE_CLI, ["verify", `lmdb://${full}`, root, "--blobs", "--no-progress"])).code).toBe(
      0,
    );
    const bad = await runCastore(CASTORE_CLI, ["verify", `lmdb://${full}`, root, "--rehash", "--no-progress"]);
    expect(bad.code).toBe(1);
    expect(bad.stdout.toString()).toMatch(new RegExp(`^blob-corrupt ${digestOf(big).hex} at /sub/big.bin: `, "m"));
  });
});
