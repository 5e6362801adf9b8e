/**
 * cache://?near=…&far=… (spec §6): the conformance suite with near = memory
 * and far = lmdb, plus the read-through behaviour itself.
 */
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CacheDirectoryService,
  CachedBlobService,
  type ChunkedBlobService,
  InvalidUrlError,
  directoryDigest,
  fixtures,
  openBlobService,
  openDirectoryService,
} from "@castore-ts/core";
import { MemoryBlobService, MemoryDirectoryService } from "@castore-ts/backend-memory";
import { type LmdbBlobStore, LmdbDirectoryService } from "@castore-ts/backend-lmdb";
import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import "./stores.js";

const dir = mkdtempSync(join(tmpdir(), "castore-cache-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

describeDirectoryService({
  name: "cache(near=memory, far=lmdb)",
  factory: async () => {
    const url = `cache://?near=${encodeURIComponent("memory://")}&far=${encodeURIComponent(`lmdb://${join(dir, `far-${n++}`)}`)}`;
    const service = (await openDirectoryService(url)) as CacheDirectoryService;
    // The same URL's blobs: memory near, lmdb far.
    const blobs = (await openBlobService(url)) as CachedBlobService;
    return {
      service,
      // Corrupt both tiers: a read must report it whichever tier answers.
      corrupt: async (digest, bytes) => {
        (service.near as MemoryDirectoryService).injectCorruption(digest, bytes);
        await (service.far as LmdbDirectoryService).store.directories.put(digest.bytes, bytes);
      },
      blobs,
      corruptChunk: async (digest, bytes) => {
        (blobs.near as MemoryBlobService).store.corruptChunk(digest, bytes);
        ((blobs.far as ChunkedBlobService).store as LmdbBlobStore).chunks.putSync(digest.bytes, bytes);
      },
    };
  },
  capabilities: {
    blobCorruption: true,
    refs: "cache:// stores no refs: a ref belongs to one store, the far one",
    gc: "cache:// has no collector of its own: near and far are collected by their own URLs",
    repair:
      "cache:// has no repair of its own: each tier is a store of its own URL; repair near and far with castore verify --repair",
  },
});

describe("cache read-through", () => {
  it("a miss in near copies the closure from far, then near answers alone", async () => {
    const near = new MemoryDirectoryService();
    const far = await LmdbDirectoryService.open(join(dir, "rt"));
    const cache = new CacheDirectoryService(near, far);
    const p = far.putMultipleStart();
    for (const d of [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B, fixtures.DIRECTORY_D]) await p.put(d);
    const root = await p.close();
    expect(await near.get(root)).toBeUndefined();
    const got = [];
    for await (const d of cache.getRecursive(root)) got.push(directoryDigest(d).hex);
    expect(got[0]).toBe(root.hex);
    expect(got).toHaveLength(3);
    // near now holds the whole closure, so far can go away
    expect(await near.get(directoryDigest(fixtures.DIRECTORY_B))).toEqual(fixtures.DIRECTORY_B);
    await far.close();
    expect(await cache.get(root)).toEqual(fixtures.DIRECTORY_D);
    await near.close();
  });
  it("a cache:// URL without near or far is a clear error", async () => {
    await expect(openDirectoryService("cache://?near=memory%3A%2F%2F")).rejects.toThrow(/needs both near= and far=/);
  });
  it("a cache:// URL with an unknown option, a repeated one or a fragment is an InvalidUrlError naming it", async () => {
    const both = `near=${encodeURIComponent("memory://")}&far=${encodeURIComponent("memory://")}`;
    const cases: [string, RegExp][] = [
      [`cache://?${both}&nera=x`, /unknown option "nera" \(known: near, far\)/],
      [`cache://?${both}&sizeCheck=exact`, /unknown option "sizeCheck"/],
      [`cache://?${both}&far=${encodeURIComponent("memory://")}`, /option "far" given twice/],
      [`cache://?${both}#frag`, /fragment/],
    ];
    for (const [url, message] of cases) {
      const error = await openDirectoryService(url).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, url).toBeInstanceOf(InvalidUrlError);
      expect((error as Error).message, url).toMatch(message);
    }
  });
});
