import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { taggedDirectory } from "@castore-ts/conformance";
import { gcFunction } from "@castore-ts/conformance/internal";
import { InvalidUrlError, fixtures, openDirectoryService } from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { MemoryDirectoryService, openMemoryStore } from "./index.js";

const { DIRECTORY_A, DIRECTORY_B } = fixtures;

describeDirectoryService({
  name: "memory",
  factory: async () => {
    const { directories: service, blobs, refs, gc } = openMemoryStore();
    return {
      service,
      corrupt: async (digest, bytes) => service.injectCorruption(digest, bytes),
      blobs,
      corruptChunk: async (digest, bytes) => blobs.store.corruptChunk(digest, bytes),
      refs,
      gc,
    };
  },
  capabilities: { corruption: true },
  sizeCheck: "exact",
});

// The same store checking sizes as snix does: the size scenarios must then take the legacy tree.
describeDirectoryService(
  {
    name: "memory (snix-compat)",
    factory: async () => ({ service: new MemoryDirectoryService({ sizeCheck: "snix-compat" }) }),
    sizeCheck: "snix-compat",
  },
  { filter: "closure." },
);

describe("memory backend", () => {
  it("opens memory:// through core's registry, a new empty store each time", async () => {
    const first = await openDirectoryService("memory://");
    const second = await openDirectoryService("memory://");
    expect(first).toBeInstanceOf(MemoryDirectoryService);
    const digest = await first.put(DIRECTORY_A);
    expect(await first.get(digest)).toBeDefined();
    expect(await second.get(digest)).toBeUndefined();
  });

  it("rejects memory URLs with a host, path, options or a fragment", async () => {
    for (const url of ["memory://x", "memory:///data", "memory://?a=1", "memory://#x", "memory:#x"]) {
      await expect(openDirectoryService(url)).rejects.toBeInstanceOf(InvalidUrlError);
    }
    await expect(openDirectoryService("memory://?sizeCheck=exact")).rejects.toThrow(/unknown option "sizeCheck"/);
    await expect(openDirectoryService("memory://#main")).rejects.toThrow(/fragment/);
  });

  it("shows an upload only when close() succeeds", async () => {
    const service = new MemoryDirectoryService();
    const putter = service.putMultipleStart();
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B);
    expect(service.store.size).toBe(0);
    const root = await putter.close();
    expect(service.store.size).toBe(2);
    expect(await service.get(root)).toBeDefined();
  });

  it("many small uploads hold about their own bytes, not a chunk of memory each", async () => {
    const gc = gcFunction();
    expect(gc, "this test needs to force garbage collection").toBeDefined();
    const service = new MemoryDirectoryService();
    const offHeap = () => {
      // Two passes: buffers a collection finds dead are freed in the background and only
      // certainly gone by the next one (one pass read anywhere from 4 to 21 MiB here).
      gc!();
      gc!();
      return process.memoryUsage().arrayBuffers;
    };
    const before = offHeap();
    for (let i = 0; i < 20_000; i++) await service.put(taggedDirectory(`small-${i}`).directory);
    const grown = offHeap() - before;
    // About 100 bytes each: 2–3 MiB with the store's own chunks. Keeping each upload's first
    // arena chunk instead (4 KiB now, 256 KiB before) would hold 80 MiB or more. The margin
    // is for the rest of the process (the count is process-wide).
    expect(grown).toBeLessThan(20 * 2 ** 20);
    expect(service.store.size).toBe(20_000);
  });
});
