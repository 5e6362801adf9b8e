import { ClosureValidator, directoryDigest, directorySize, encodeDirectory } from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import {
  type GeneratedTree,
  deepChain,
  generateTree,
  overlappingTree,
  taggedDirectory,
  wideDirectory,
} from "./trees.js";

/** Every generated tree is a valid upload: leaves to root, one root, digests and sizes right. */
function expectValidUpload(tree: GeneratedTree): void {
  const validator = new ClosureValidator();
  for (const d of tree.directories) validator.add(d);
  expect(validator.finish().root.hex).toBe(tree.root.hex);
  expect(tree.digests.map((d) => d.hex)).toEqual(tree.directories.map((d) => directoryDigest(d).hex));
  expect(tree.rootSize).toBe(directorySize(tree.directories[tree.directories.length - 1]));
  expect(tree.encodedBytes).toBe(tree.directories.reduce((n, d) => n + encodeDirectory(d).length, 0));
}

describe("generateTree", () => {
  it("is deterministic, distinct and a valid upload", () => {
    const a = generateTree({ directories: 2000, seed: 42 });
    const b = generateTree({ directories: 2000, seed: 42 });
    expect(a.root.hex).toBe(b.root.hex);
    expect(generateTree({ directories: 2000, seed: 43 }).root.hex).not.toBe(a.root.hex);
    expect(new Set(a.digests.map((d) => d.hex)).size).toBe(2000);
    expectValidUpload(a);
  });

  it("mixes fan-out and depth", () => {
    const tree = generateTree({ directories: 10_000, seed: 7 });
    const index = new Map(tree.digests.map((d, i) => [d.hex, i]));
    const depth = new Array<number>(tree.directories.length).fill(0);
    for (let i = tree.directories.length - 1; i >= 0; i--) {
      for (const c of tree.directories[i].directories)
        depth[index.get(Buffer.from(c.digest).toString("hex"))!] = depth[i] + 1;
    }
    const fanOut = tree.directories.map((d) => d.directories.length);
    expect(Math.max(...depth)).toBeGreaterThanOrEqual(20);
    expect(Math.max(...fanOut)).toBeGreaterThanOrEqual(50);
    expect(fanOut.filter((f) => f === 0).length).toBeGreaterThan(1000); // leaves
    expect(tree.directories.some((d) => d.symlinks.length > 0)).toBe(true);
    expect(tree.directories.some((d) => d.files.some((f) => f.executable))).toBe(true);
  });

  it("rejects a non-positive count", () => {
    expect(() => generateTree({ directories: 0 })).toThrow(RangeError);
  });
});

describe("wideDirectory and deepChain", () => {
  it("wideDirectory(50 000) is about 2.5 MB, under the 4 MiB gRPC message limit", () => {
    const tree = wideDirectory(50_000);
    const wide = tree.directories[1];
    expect(wide.directories.length + wide.files.length + wide.symlinks.length).toBe(50_000);
    expect(tree.encodedBytes).toBeGreaterThan(2_000_000);
    expect(tree.encodedBytes).toBeLessThan(4 * 2 ** 20);
    expectValidUpload(tree);
  });

  it("deepChain(n) is n directories deep", () => {
    const chain = deepChain(500);
    expect(chain.directories).toHaveLength(500);
    expect(chain.rootSize).toBe(499n);
    expectValidUpload(chain);
  });

  it("deepChain(n, name) links with `name`: a chain of other names shares only the empty directory", () => {
    const d = deepChain(50);
    const w = deepChain(50, "w");
    expectValidUpload(w);
    expect(w.directories[1].directories.map((n) => new TextDecoder().decode(n.name))).toEqual(["w"]);
    const digestsOf = (t: GeneratedTree) => new Set(t.directories.map((x) => directoryDigest(x).hex));
    const shared = [...digestsOf(w)].filter((hex) => digestsOf(d).has(hex));
    expect(shared).toEqual([directoryDigest(d.directories[0]).hex]);
  });
});

describe("overlappingTree", () => {
  it("is a valid upload, leaves to root, whose closure has closureSize directories, sharing leaves with its siblings", () => {
    const shared = Array.from({ length: 10 }, (_, i) => taggedDirectory(`leaf-${i}`));
    const a = overlappingTree("a", shared, 6);
    const b = overlappingTree("b", shared, 6);
    for (const tree of [a, b]) {
      const v = new ClosureValidator();
      for (const d of tree.leavesToRoot) v.add(d);
      const closure = v.finish();
      expect(closure.root.hex).toBe(tree.root.hex);
      expect(closure.entries).toHaveLength(tree.closureSize);
    }
    const digestsOf = (t: typeof a) => new Set(t.leavesToRoot.map((d) => directoryDigest(d).hex));
    const common = [...digestsOf(a)].filter((hex) => digestsOf(b).has(hex));
    expect(common.length).toBeGreaterThan(0);
    expect(common.every((hex) => shared.some((s) => s.digest.hex === hex))).toBe(true);
  });
});
