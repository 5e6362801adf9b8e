import { describeDirectoryService } from "@castore/conformance/vitest";
import { DIRECTORY_A, DIRECTORY_B } from "@castore/conformance";
import { InvalidUrlError, openDirectoryService } from "@castore/core";
import { describe, expect, it } from "vitest";
import { MemoryDirectoryService } from "./index.js";

describeDirectoryService({
  name: "memory",
  factory: async () => {
    const service = new MemoryDirectoryService();
    return { service, corrupt: async (digest, bytes) => service.injectCorruption(digest, bytes) };
  },
  capabilities: { corruption: true },
});

describe("memory backend", () => {
  it("opens memory:// through core's registry, a new empty store each time", async () => {
    const first = await openDirectoryService("memory://");
    const second = await openDirectoryService("memory://");
    expect(first).toBeInstanceOf(MemoryDirectoryService);
    const digest = await first.put(DIRECTORY_A);
    expect(await first.get(digest)).toBeDefined();
    expect(await second.get(digest)).toBeUndefined();
  });

  it("rejects memory URLs with a host, path or options", async () => {
    for (const url of ["memory://x", "memory:///data", "memory://?a=1"]) {
      await expect(openDirectoryService(url)).rejects.toBeInstanceOf(InvalidUrlError);
    }
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
});
