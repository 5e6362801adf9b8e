/**
 * Garbage collection of the memory store (spec §10): the gc.* scenarios run
 * in memory.test.ts; here, what only this store can show (the re-check at
 * deletion, what counts as a use), and the deliberately broken collectors
 * built over this store failing the scenarios their bugs touch.
 */
import { runConformance } from "@castore-ts/conformance";
import { brokenCollectors } from "@castore-ts/conformance/broken";
import {
  Digest,
  directorySize,
  encodeDirectory,
  fixtures,
  type GarbageCollector,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore-ts/core";
import { describe, expect, it, vi } from "vitest";
import { MemoryCollectableStore, openMemoryStore } from "./index.js";

const { DIRECTORY_A, DIRECTORY_B } = fixtures;

async function writeBlob(store: ReturnType<typeof openMemoryStore>, bytes: Uint8Array): Promise<Digest> {
  const writer = store.blobs.openWriter();
  await writer.write(bytes);
  return (await writer.close()).digest;
}

/** Uploads A, then B (which names A); B's digest. */
async function putTree(store: ReturnType<typeof openMemoryStore>): Promise<Digest> {
  const putter = store.directories.putMultipleStart();
  await putter.put(DIRECTORY_A);
  await putter.put(DIRECTORY_B);
  return putter.close();
}

function objectsOf(store: ReturnType<typeof openMemoryStore>): MemoryCollectableStore {
  return new MemoryCollectableStore(store.directories.store, store.blobs.store);
}

describe("memory garbage collection", () => {
  it("spares an object written again after the collection listed it: deletion re-checks the time of last use", async () => {
    const store = openMemoryStore();
    const objects = objectsOf(store);
    const a = await store.directories.put(DIRECTORY_A);
    const cutoff = await objects.startCollection();
    await store.directories.put(DIRECTORY_A); // an upload carrying it again: a use
    expect(await objects.deleteUnusedSince("directory", [a], cutoff)).toEqual([]);
    expect(await store.directories.get(a)).toBeDefined();
    const later = await objects.startCollection();
    expect((await objects.deleteUnusedSince("directory", [a], later)).map((o) => o.digest.hex)).toEqual([a.hex]);
    expect(await store.directories.get(a)).toBeUndefined();
  });

  it("counts has() of a stored blob as a use of the blob and its chunks, and a re-written chunk as a use", async () => {
    const store = openMemoryStore();
    const objects = objectsOf(store);
    const big = new Uint8Array(2 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
    const blob = await writeBlob(store, big);
    const chunks = (await store.blobs.stat(blob, { chunks: true }))!.chunks!.map((c) => c.digest);
    expect(chunks.length).toBeGreaterThan(1);
    const cutoff = await objects.startCollection();
    expect(await store.blobs.has([blob])).toEqual([true]);
    expect(await objects.deleteUnusedSince("blob", [blob], cutoff)).toEqual([]);
    expect(await objects.deleteUnusedSince("chunk", chunks, cutoff)).toEqual([]);
    const afterHas = await objects.startCollection();
    await writeBlob(store, big.subarray(0, 1000)); // a new blob: its one chunk is new, the others untouched
    expect((await objects.deleteUnusedSince("chunk", chunks, afterHas)).length).toBe(chunks.length);
  });

  it("keeps a directory named by a ref set during a collection's sweep, or refuses the ref", async () => {
    // protectClosure marks the tree before the ref is written; a deletion after that re-checks and spares it.
    const store = openMemoryStore();
    const objects = objectsOf(store);
    const b = await putTree(store);
    const a = Digest.of(encodeDirectory(DIRECTORY_A));
    const cutoff = await objects.startCollection();
    await store.refs.set("kept", b);
    expect(await objects.deleteUnusedSince("directory", [b, a], cutoff)).toEqual([]);
  });

  it("a partial upload marks its stored child and the child's whole closure used, in its commit", async () => {
    // What keeps a collection that listed them as garbage from deleting them once the new parent names them.
    const store = openMemoryStore();
    const objects = objectsOf(store);
    const b = await putTree(store);
    const a = Digest.of(encodeDirectory(DIRECTORY_A));
    const cutoff = await objects.startCollection();
    const putter = store.directories.putMultipleStart({ partial: true });
    await putter.put(makeDirectory({ directories: [makeDirectoryNode("b", b, directorySize(DIRECTORY_B))] }));
    await putter.close();
    expect(await objects.deleteUnusedSince("directory", [b, a], cutoff)).toEqual([]);
  });

  it("a ref set that a collection starts in the middle of protects the tree again before writing the ref (fenced)", async () => {
    const store = openMemoryStore();
    const blob = await writeBlob(store, new Uint8Array(3000).fill(7));
    const b = Digest.of(encodeDirectory(DIRECTORY_B));
    const putter = store.directories.putMultipleStart();
    for (const d of [DIRECTORY_A, DIRECTORY_B]) await putter.put(d);
    await putter.put(
      makeDirectory({
        directories: [makeDirectoryNode("b", b, directorySize(DIRECTORY_B))],
        files: [makeFileNode("f", blob, 3000)],
      }),
    );
    const tree = await putter.close();
    // The collection starts (counts itself in) after the set marked the blobs, before it marks the directories.
    const touch = store.directories.store.touch.bind(store.directories.store);
    let collecting: Promise<unknown> | undefined;
    let directoryTouches = 0;
    vi.spyOn(store.directories.store, "touch").mockImplementation((digests) => {
      directoryTouches++;
      collecting ??= store.gc.collect({ graceMs: 0 });
      return touch(digests);
    });

    await store.refs.set("fenced", tree);
    await collecting;

    expect(directoryTouches).toBe(2);
    expect(await store.refs.get("fenced")).toEqual(tree);
    expect(await store.blobs.has([blob])).toEqual([true]);
    expect((await store.directories.get(b)) !== undefined).toBe(true);
  });

  it("refuses a ref to a tree a collection has already taken part of", async () => {
    const store = openMemoryStore();
    const objects = objectsOf(store);
    const b = await putTree(store);
    const a = Digest.of(encodeDirectory(DIRECTORY_A));
    // As a collection killed after deleting the child would leave it, were it not parents first.
    await objects.deleteUnusedSince("directory", [a], await objects.startCollection());
    await expect(store.refs.set("late", b)).rejects.toThrow(/directory [0-9a-f]{64} is missing/);
    expect(await store.refs.get("late")).toBeUndefined();
  });

  it("rejects a negative or non-numeric grace with a RangeError naming it", async () => {
    const { gc } = openMemoryStore();
    await expect(gc.collect({ graceMs: -1 })).rejects.toThrow(/grace must be a non-negative number/);
    await expect(gc.collect({ graceMs: Number.NaN })).rejects.toThrow(RangeError);
  });
});

/** Scenarios each broken collector must fail, by id. */
const mustFail: Record<keyof typeof brokenCollectors, string[]> = {
  ignoresGrace: ["gc.grace"],
  childrenFirstThenDies: ["gc.killed"],
  ignoresBlobs: ["gc.keeps-refs", "gc.removes-unreferenced"],
};

describe("deliberately broken collectors over the memory store", () => {
  for (const [key, broken] of Object.entries(brokenCollectors) as [
    keyof typeof brokenCollectors,
    (typeof brokenCollectors)[keyof typeof brokenCollectors],
  ][]) {
    it(`${key} (${broken.bug}) fails ${mustFail[key].join(", ")}`, async () => {
      const report = await runConformance(
        {
          name: `memory with a collector that ${broken.bug}`,
          factory: async () => {
            const store = openMemoryStore();
            const gc: GarbageCollector = broken.open({
              objects: objectsOf(store),
              directories: store.directories.store,
              blobs: store.blobs.store,
              refs: store.refs.store,
            });
            return { service: store.directories, blobs: store.blobs, refs: store.refs, gc };
          },
        },
        { filter: "gc." },
      );
      const failed = report.results.filter((r) => r.status === "fail").map((r) => r.id);
      expect(failed).toEqual(expect.arrayContaining(mustFail[key]));
      for (const r of report.results.filter((r) => r.status === "fail")) expect(r.message).toContain(broken.bug);
    });
  }
});
