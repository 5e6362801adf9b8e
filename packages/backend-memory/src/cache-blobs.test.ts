/**
 * core's CachedBlobService (the blob side of cache://) with memory near and
 * far stores: read-through fill, verification of what far sends, ranged
 * misses, writes to both, a failing near, and the URL. The blob conformance
 * scenarios run through cache:// in packages/cli/src/cache.test.ts.
 */
import {
  type BlobService,
  CachedBlobService,
  CorruptionError,
  Digest,
  blake3,
  openBlobService,
} from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { MemoryBlobService } from "./index.js";

function bytesOf(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function put(blobs: BlobService, bytes: Uint8Array): Promise<Digest> {
  const writer = blobs.openWriter();
  for (let at = 0; at < bytes.length; at += 300_000) await writer.write(bytes.subarray(at, at + 300_000));
  return (await writer.close()).digest;
}

async function readAll(blobs: BlobService, digest: Digest, opts?: { offset?: number; length?: number }) {
  const stream = await blobs.read(digest, opts);
  if (!stream) return undefined;
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

function cache(): { near: MemoryBlobService; far: MemoryBlobService; blobs: CachedBlobService } {
  const near = new MemoryBlobService();
  const far = new MemoryBlobService();
  return { near, far, blobs: new CachedBlobService(near, far) };
}

const big = bytesOf(1, 2 * 1024 * 1024); // several chunks

describe("CachedBlobService", () => {
  it("a miss streams from far and fills near; the next read is near's alone", async () => {
    const { near, far, blobs } = cache();
    const digest = await put(far, big);
    expect(await near.has([digest])).toEqual([false]);
    expect((await readAll(blobs, digest))!.equals(big)).toBe(true);
    expect(await near.has([digest])).toEqual([true]);
    expect(near.store.stats.bytes).toBe(big.length);
    // far's chunks damaged: a read served from near does not notice.
    for (const c of (await far.stat(digest, { chunks: true }))!.chunks!) {
      far.store.corruptChunk(c.digest, new Uint8Array(c.size));
    }
    expect((await readAll(blobs, digest))!.equals(big)).toBe(true);
  });

  it("a far store sending other bytes than the digest's is a CorruptionError, and near keeps nothing", async () => {
    const { near, far } = cache();
    const other = await put(far, bytesOf(2, 1000));
    const asked = Digest.fromBytes(blake3(bytesOf(3, 1000)));
    // A far that does not verify: it answers any digest with another blob's bytes.
    const lying: BlobService = {
      openWriter: (o) => far.openWriter(o),
      read: (_d, o) => far.read(other, o),
      stat: (_d, o) => far.stat(other, o),
      has: (ds) => Promise.resolve(ds.map(() => true)),
      close: () => far.close(),
    };
    const blobs = new CachedBlobService(near, lying);
    const error = await readAll(blobs, asked).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptionError);
    expect((error as Error).message).toContain(asked.hex);
    expect(await near.has([asked, other])).toEqual([false, false]);
    expect(near.store.stats.manifests).toBe(0);
  });

  it("a ranged read on a miss is served from far without filling near", async () => {
    const { near, far, blobs } = cache();
    const digest = await put(far, big);
    const got = await readAll(blobs, digest, { offset: 500_000, length: 700_000 });
    expect(got!.equals(big.subarray(500_000, 1_200_000))).toBe(true);
    expect(await near.has([digest])).toEqual([false]);
  });

  it("a reader that stops early leaves near without the blob", async () => {
    const { near, far, blobs } = cache();
    const digest = await put(far, big);
    for await (const _ of (await blobs.read(digest))!) break;
    expect(await near.has([digest])).toEqual([false]);
    expect(near.store.stats.manifests).toBe(0);
  });

  it("an absent digest is undefined, absent from has and stat", async () => {
    const { blobs } = cache();
    const absent = Digest.fromBytes(blake3(bytesOf(4, 10)));
    expect(await blobs.read(absent)).toBeUndefined();
    expect(await blobs.stat(absent)).toBeUndefined();
    expect(await blobs.has([absent])).toEqual([false]);
  });

  it("has and stat combine near and far, in order, and fill nothing", async () => {
    const { near, far, blobs } = cache();
    const inNear = await put(near, bytesOf(5, 100));
    const inFar = await put(far, bytesOf(6, 200));
    const nowhere = Digest.fromBytes(blake3(bytesOf(7, 10)));
    expect(await blobs.has([inFar, nowhere, inNear, inFar])).toEqual([true, false, true, true]);
    expect((await blobs.stat(inFar))!.size).toBe(200);
    expect((await blobs.stat(inNear))!.size).toBe(100);
    expect(await near.has([inFar])).toEqual([false]);
  });

  it("writes go to far and near", async () => {
    const { near, far, blobs } = cache();
    const digest = await put(blobs, big);
    expect(await far.has([digest])).toEqual([true]);
    expect(await near.has([digest])).toEqual([true]);
    expect((await readAll(far, digest))!.equals(big)).toBe(true);
  });

  it("an aborted write stores nothing in either", async () => {
    const { near, far, blobs } = cache();
    const writer = blobs.openWriter();
    await writer.write(big);
    await writer.abort();
    const digest = Digest.fromBytes(blake3(big));
    expect(await far.has([digest])).toEqual([false]);
    expect(await near.has([digest])).toEqual([false]);
  });

  it("a failing near fails neither reads nor writes: far serves and stores", async () => {
    const far = new MemoryBlobService();
    const near = new MemoryBlobService();
    near.store.putChunk = () => Promise.reject(new Error("near is full"));
    const blobs = new CachedBlobService(near, far);
    const written = await put(blobs, big);
    expect(await far.has([written])).toEqual([true]);
    expect(await near.has([written])).toEqual([false]);
    const other = await put(far, bytesOf(8, 1024 * 1024));
    expect((await readAll(blobs, other))!.equals(Buffer.from(bytesOf(8, 1024 * 1024)))).toBe(true);
    expect(await near.has([other])).toEqual([false]);
  });

  it("cache:// opens a CachedBlobService over the near and far URLs", async () => {
    const blobs = await openBlobService("cache://?near=memory%3A%2F%2F&far=memory%3A%2F%2F");
    try {
      expect(blobs).toBeInstanceOf(CachedBlobService);
      const digest = await put(blobs, big);
      expect((await readAll(blobs, digest))!.equals(big)).toBe(true);
    } finally {
      await blobs.close();
    }
    await expect(openBlobService("cache://?near=memory%3A%2F%2F")).rejects.toThrow(/near= and far=/);
  });
});
