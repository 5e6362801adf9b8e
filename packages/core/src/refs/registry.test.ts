import { describe, expect, it } from "vitest";
import { Digest } from "../digest.js";
import { ClosureError } from "../errors.js";
import { registerDirectoryServiceScheme } from "../registry.js";
import { mapService } from "../test-memory-store.js";
import { MapRefStore } from "./memory-ref-store.js";
import { openRefService, openRefStore, openRefStoreWithProtect, registerRefStoreScheme } from "./registry.js";

describe("ref schemes", () => {
  const protectedRoots: string[] = [];
  const bare = new MapRefStore();
  const guarded = new MapRefStore();
  registerDirectoryServiceScheme("testrefs", "testrefs://", () => mapService().service);
  registerDirectoryServiceScheme("testguarded", "testguarded://", () => mapService().service);
  registerRefStoreScheme("testrefs", () => bare);
  registerRefStoreScheme("testguarded", () => ({
    store: guarded,
    // Stands in for protectClosure: records the root and refuses one, as a missing tree would be.
    protect: async (root: Digest) => {
      protectedRoots.push(root.hex);
      if (root.bytes[0] === 0xff) throw new ClosureError(`tree ${root.hex} is not stored`);
    },
  }));

  it("an opener gives a bare RefStore, or one with the protect its RefService's set must use", async () => {
    expect(await openRefStoreWithProtect("testrefs://")).toEqual({ store: bare });
    const opened = await openRefStoreWithProtect("testguarded://");
    expect(opened.store).toBe(guarded);
    expect(opened.protect).toBeTypeOf("function");
    expect(await openRefStore("testguarded://")).toBe(guarded);
  });

  it("openRefService's set goes through the scheme's protect instead of the plain closure check", async () => {
    const refs = await openRefService("testguarded://");
    const kept = Digest.fromBytes(new Uint8Array(32).fill(1));
    // No directory of this digest is stored: only protect decides.
    await refs.set("kept", kept);
    expect(await refs.get("kept")).toEqual(kept);
    const refused = Digest.fromBytes(new Uint8Array(32).fill(0xff));
    await expect(refs.set("refused", refused)).rejects.toThrow(ClosureError);
    expect(await refs.get("refused")).toBeUndefined();
    expect(protectedRoots).toEqual([kept.hex, refused.hex]);
    await refs.close();
  });
});
