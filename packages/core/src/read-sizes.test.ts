/**
 * Reads re-check declared sizes (spec §1.1): getRecursive of a store (core's
 * breadth-first walk) and the cache's fill, each with its own sizeCheck.
 */
import { describe, expect, it } from "vitest";
import { CacheDirectoryService } from "./cache.js";
import { directoryDigest, encodeDirectory } from "./canonical.js";
import { CorruptionError } from "./errors.js";
import * as fixtures from "./fixtures.js";
import { type Directory, makeDirectory, makeDirectoryNode } from "./model.js";
import { Digest } from "./digest.js";
import { ReadSizeChecker } from "./read-sizes.js";
import type { SizeCheck } from "./size-check.js";
import { StoreDirectoryService } from "./store-service.js";
import { MapStore } from "./test-memory-store.js";

const LEGACY_TREE = [
  fixtures.DIRECTORY_WITH_KEEP,
  fixtures.DIRECTORY_COMPLICATED_LEGACY,
  fixtures.DIRECTORY_NESTED_LEGACY,
];
const LEGACY_ROOT = directoryDigest(fixtures.DIRECTORY_NESTED_LEGACY);

/** A store holding `tree` as raw bytes, as a store written by another tool would (no upload check). */
function storeHolding(tree: Directory[], sizeCheck?: SizeCheck) {
  const store = new MapStore();
  for (const d of tree) store.map.set(directoryDigest(d).hex, encodeDirectory(d));
  return new StoreDirectoryService(store, { sizeCheck });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("getRecursive re-checks declared sizes with the store's sizeCheck", () => {
  it("exact (the default) raises CorruptionError on a legacy size, naming it", async () => {
    const service = storeHolding(LEGACY_TREE);
    await expect(collect(service.getRecursive(LEGACY_ROOT))).rejects.toThrow(CorruptionError);
    await expect(collect(service.getRecursive(LEGACY_ROOT))).rejects.toThrow(
      /declares size 8 for directories\[0\] "inner" .* but its size is 5$/,
    );
    // get of one directory has no child to compare with: it is returned.
    expect(await service.get(LEGACY_ROOT)).toEqual(fixtures.DIRECTORY_NESTED_LEGACY);
  });
  it("snix-compat yields the legacy tree unchanged", async () => {
    const service = storeHolding(LEGACY_TREE, "snix-compat");
    expect(await collect(service.getRecursive(LEGACY_ROOT))).toEqual([...LEGACY_TREE].reverse());
  });
  it("both modes reject a size above 2·n + s", async () => {
    const tree = [fixtures.DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED_OVERSIZED];
    for (const mode of ["exact", "snix-compat"] as const) {
      const service = storeHolding(tree, mode);
      await expect(
        collect(service.getRecursive(directoryDigest(fixtures.DIRECTORY_COMPLICATED_OVERSIZED))),
      ).rejects.toThrow(/declares size 3 for directories\[0\] "keep"/);
    }
  });
});

describe("the cache's fill checks far's closure with its sizeCheck", () => {
  it("exact refuses a legacy closure from far; snix-compat copies it to near", async () => {
    const far = storeHolding(LEGACY_TREE, "snix-compat");
    const exact = new CacheDirectoryService(storeHolding([]), far);
    await expect(exact.get(LEGACY_ROOT)).rejects.toThrow(/declares size 8 .* but its size is 5$/);
    const near = storeHolding([], "snix-compat");
    const compat = new CacheDirectoryService(near, far, { sizeCheck: "snix-compat" });
    expect(await compat.get(LEGACY_ROOT)).toEqual(fixtures.DIRECTORY_NESTED_LEGACY);
    expect(await collect(near.getRecursive(LEGACY_ROOT))).toHaveLength(3);
  });
});

describe("ReadSizeChecker's record of the digests it met", () => {
  const digestWithPrefix = (last: number) => {
    const bytes = new Uint8Array(32).fill(7);
    bytes[31] = last; // same first 30 bits: the same slot of the checker's index
    return Digest.fromBytes(bytes);
  };
  const parentOf = (children: { name: string; digest: Digest; size: bigint }[]) =>
    makeDirectory({ directories: children.map((c) => makeDirectoryNode(c.name, c.digest.bytes.slice(), c.size)) });

  it("tells digests apart that share their first 30 bits, and checks each against its own size", () => {
    const checker = new ReadSizeChecker();
    const [a, b] = [digestWithPrefix(1), digestWithPrefix(2)];
    const parent = parentOf([
      { name: "a", digest: a, size: 0n },
      { name: "b", digest: b, size: 1n },
    ]);
    const met: string[] = [];
    checker.receive(directoryDigest(parent), parent, (child) => met.push(checker.digestOf(child).hex));
    expect(met).toEqual([a.hex, b.hex]);
    expect(checker.stateOf(a.bytes)).toBe("referred");
    expect(checker.referredCount).toBe(2);
    checker.receive(a, makeDirectory()); // size 0: as declared
    expect(checker.stateOf(a.bytes)).toBe("received");
    expect(checker.stateOf(b.bytes)).toBe("referred");
    // b was declared 1, an empty directory has size 0.
    expect(() => checker.receive(b, makeDirectory())).toThrow(/declares size 1 for directories\[1\] "b"/);
  });

  it("keeps its own copy of a child's digest: a caller changing a received directory does not change what is expected", () => {
    const checker = new ReadSizeChecker();
    const child = makeDirectory();
    const childDigest = directoryDigest(child);
    const parent = parentOf([{ name: "c", digest: childDigest, size: 0n }]);
    checker.receive(directoryDigest(parent), parent);
    parent.directories[0].digest.fill(0); // the caller's directory, changed after it was handed over
    expect(checker.stateOf(childDigest.bytes)).toBe("referred");
    checker.receive(childDigest, child);
    expect(checker.referredCount).toBe(0);
  });
});

describe("ReadSizeChecker: sizes past 2^53 (kept as bigints beside the numbers)", () => {
  // A chain whose last child is never received: only the declared sizes make the sizes this large.
  const huge = 2n ** 60n + 5n;
  const leaf = Digest.of(new Uint8Array([1, 2, 3]));
  const middle = makeDirectory({ directories: [makeDirectoryNode("leaf", leaf, huge - 1n)] });
  const root = (declared: bigint) =>
    makeDirectory({ directories: [makeDirectoryNode("middle", directoryDigest(middle), declared)] });

  it("compares a declared size past 2^53 exactly, received after the reference or before it", () => {
    const checker = new ReadSizeChecker();
    checker.receive(directoryDigest(root(huge)), root(huge));
    checker.receive(directoryDigest(middle), middle); // its size: 1 entry + (huge - 1)
    expect(checker.stateOf(leaf.bytes)).toBe("referred");
    for (const wrong of [huge - 1n, huge + 1n]) {
      const refusing = new ReadSizeChecker();
      refusing.receive(directoryDigest(root(wrong)), root(wrong));
      expect(() => refusing.receive(directoryDigest(middle), middle), `declared ${wrong}`).toThrow(CorruptionError);
      // The other order: the child first (a DAG refers to it again later), then the reference to it.
      const later = new ReadSizeChecker();
      later.receive(directoryDigest(middle), middle);
      expect(() => later.receive(directoryDigest(root(wrong)), root(wrong)), `declared ${wrong}`).toThrow(
        CorruptionError,
      );
    }
    const later = new ReadSizeChecker();
    later.receive(directoryDigest(middle), middle);
    later.receive(directoryDigest(root(huge)), root(huge));
    expect(later.stateOf(directoryDigest(middle).bytes)).toBe("received");
  });
});
