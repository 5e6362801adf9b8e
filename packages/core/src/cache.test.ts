import { describe, expect, it } from "vitest";
import { CacheDirectoryService } from "./cache.js";
import { directoryDigest } from "./canonical.js";
import type { Digest } from "./digest.js";
import { DIRECTORY_A as A, DIRECTORY_B as B, DIRECTORY_C as C } from "./fixtures.js";
import { type Directory, directorySize, makeDirectory, makeDirectoryNode } from "./model.js";
import { mapService } from "./test-memory-store.js";

/** n directories, leaves to root: the empty directory, then each holding the previous one as `d`. */
function chain(n: number): Directory[] {
  const out = [makeDirectory()];
  for (let i = 1; i < n; i++) {
    const previous = out[i - 1];
    out.push(
      makeDirectory({ directories: [makeDirectoryNode("d", directoryDigest(previous), directorySize(previous))] }),
    );
  }
  return out;
}

async function uploadTo(service: ReturnType<typeof mapService>["service"], directories: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

describe("CacheDirectoryService fill", () => {
  it("copies a 10 000-deep chain from far to near (a recursive walk overflowed the stack)", async () => {
    const near = mapService();
    const far = mapService();
    const directories = chain(10_000);
    const root = await uploadTo(far.service, directories);
    const cache = new CacheDirectoryService(near.service, far.service);
    const got: string[] = [];
    for await (const d of cache.getRecursive(root)) got.push(directoryDigest(d).hex);
    expect(got).toEqual(directories.map((d) => directoryDigest(d).hex).reverse());
    expect(near.store.map.size).toBe(10_000);
  });
  it("copies a closure that reaches one directory by several paths, each directory once", async () => {
    const near = mapService();
    const far = mapService();
    // top holds B and C; both hold A.
    const top = makeDirectory({
      directories: [
        makeDirectoryNode("b", directoryDigest(B), directorySize(B)),
        makeDirectoryNode("c", directoryDigest(C), directorySize(C)),
      ],
    });
    const root = await uploadTo(far.service, [A, B, C, top]);
    const cache = new CacheDirectoryService(near.service, far.service);
    expect(await cache.get(root)).toEqual(top);
    expect([...near.store.map.keys()].sort()).toEqual([A, B, C, top].map((d) => directoryDigest(d).hex).sort());
  });
});
