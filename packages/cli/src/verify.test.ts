import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Digest, encodeDirectory, fixtures } from "@castore/core";
import { LmdbDirectoryService } from "@castore/backend-lmdb";
import { runCastore } from "@castore/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";
import { importTree } from "./importer.js";
import { verifyRoots, verifyStore, type Problem } from "./verify.js";

let dir: string;
let root: Digest;
const storeUrl = () => `lmdb://${join(dir, "store")}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-verify-"));
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "x", "y", "z"), { recursive: true });
  mkdirSync(join(tree, "w"));
  writeFileSync(join(tree, "x", "y", "f"), "f");
  writeFileSync(join(tree, "w", "g"), "g");
  const service = await LmdbDirectoryService.open(join(dir, "store"));
  root = (await importTree(service, tree)).digest;
  await service.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withStore<T>(fn: (s: LmdbDirectoryService) => Promise<T>): Promise<T> {
  const s = await LmdbDirectoryService.open(join(dir, "store"));
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

async function childDigest(s: LmdbDirectoryService, parent: Digest, name: string): Promise<Digest> {
  const d = await s.get(parent);
  return Digest.fromBytes(d!.directories.find((n) => Buffer.from(n.name).toString() === name)!.digest);
}

describe("verify", () => {
  it("a healthy store verifies clean, by roots and as a whole; the CLI exits 0", async () => {
    await withStore(async (s) => {
      const problems: Problem[] = [];
      expect(await verifyRoots(s, [root], { onProblem: (p) => problems.push(p) })).toEqual({ directories: 5, problems: 0 });
      expect(await verifyStore(s, { onProblem: (p) => problems.push(p) })).toEqual({ directories: 5, problems: 0 });
      expect(problems).toEqual([]);
    });
    const r = await runCastore(CASTORE_CLI, ["verify", storeUrl(), root.hex, "--no-progress"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/5 directories checked, 0 problems/);
  });

  it("reports corrupt and missing directories with digest and path, and exits 1", async () => {
    let y: Digest, w: Digest;
    await withStore(async (s) => {
      const x = await childDigest(s, root, "x");
      y = await childDigest(s, x, "y");
      w = await childDigest(s, root, "w");
      // corrupt x/y: other bytes under its key; lose w entirely
      await s.store.directories.put(y.bytes, encodeDirectory(fixtures.DIRECTORY_B));
      await s.store.directories.remove(w.bytes);
    });
    const r = await runCastore(CASTORE_CLI, ["verify", storeUrl(), root.hex, "--no-progress"]);
    expect(r.code).toBe(1);
    const out = r.stdout.toString();
    expect(out).toContain(`corrupt ${y!.hex} at /x/y: directory ${y!.hex} is corrupt`);
    expect(out).toMatch(new RegExp(`missing ${w!.hex} at /w: not stored \\(child of ${root.hex}\\)`));
    expect(r.stderr).toMatch(/2 problems/);

    const whole = await runCastore(CASTORE_CLI, ["verify", storeUrl(), "--no-progress"]);
    expect(whole.code).toBe(1);
    expect(whole.stdout.toString()).toContain(`missing ${w!.hex}: not stored, but ${root.hex} refers to it as w`);
    expect(whole.stdout.toString()).toContain(`corrupt ${y!.hex}`);
  });

  it("a store that cannot list needs roots", async () => {
    const r = await runCastore(CASTORE_CLI, ["verify", "grpc+http://127.0.0.1:1", "--no-progress"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot list .* give the root digests/);
  });
});
