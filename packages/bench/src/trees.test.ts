import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { directoryDigest } from "@castore-ts/core";
import { deepTree, importedTree, wideTree } from "./trees.js";

/** a/{x,y}/same (the two `same` are identical), b/c/d, e: 10 directories, 9 distinct. */
function makeTree(): string {
  const dir = mkdtempSync(join(tmpdir(), "castore-bench-tree-"));
  for (const sub of ["a/x/same", "a/y/same", "b/c/d", "e"]) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, "a/x/same/f"), "same");
  writeFileSync(join(dir, "a/y/same/f"), "same");
  writeFileSync(join(dir, "a/y/g"), "g");
  writeFileSync(join(dir, "b/c/d/h"), "h");
  return dir;
}

async function uploads(directories: Parameters<MemoryDirectoryService["put"]>[0][]) {
  const service = new MemoryDirectoryService();
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

describe("benchmark trees", () => {
  const dir = makeTree();
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("imports a real tree into upload order, each directory once", async () => {
    const tree = await importedTree(dir, 100);
    const digests = tree.directories.map((d) => directoryDigest(d).hex);
    expect(new Set(digests).size).toBe(digests.length);
    expect(tree.directories.length).toBe(9); // root, a, x, y, same (once), b, c, d, e
    expect((await uploads(tree.directories)).equals(tree.root)).toBe(true);
    expect(tree.units).toBe(tree.directories.length);
  });

  it("caps a real tree at its largest subtree within the limit", async () => {
    const tree = await importedTree(dir, 4);
    expect(tree.description).toMatch(/\/a \(the largest subtree of .* within 4 directories; .* has 9\)/);
    expect(tree.directories.length).toBe(4); // a, x, y, same
    expect((await uploads(tree.directories)).equals(tree.root)).toBe(true);
  });

  it("names the generated trees by their size", () => {
    expect(deepTree(10).key).toBe("deep-10");
    expect(wideTree(1000)).toMatchObject({ key: "wide-1k", unit: "entries/s", units: 1000 });
  });
});
