/**
 * S3BlobStore against the real S3 test server: the object layout, what each
 * call costs in requests (README "Blobs"), and `has` by listing across page
 * boundaries, with foreign objects under `blobs/` in the way.
 */
import { CorruptionError, Digest, blake3 } from "@castore-ts/core";
import { FaultProxy } from "@castore-ts/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_MAGIC, decodeManifest, encodeManifest } from "./blob-manifest.js";
import type { RequestCounter } from "./request-counter.js";
import type { S3BlobStore } from "./s3-blob-store.js";
import { s3TestStoresForFile } from "./test-s3.js";

const stores = s3TestStoresForFile();

function bytesOf(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const digestOf = (bytes: Uint8Array) => Digest.fromBytes(blake3(bytes));

describe("chunks and manifests", () => {
  let store: S3BlobStore;
  let counter: RequestCounter;
  let prefix: string;

  beforeAll(() => {
    ({ store, counter, prefix } = stores.openBlobStore());
  });
  afterAll(() => store?.close());

  it("a chunk is 1 PUT in, 1 GET out, 1 HEAD for its size, under blobs/<hex>/chunk", async () => {
    const bytes = bytesOf(1, 70_000);
    const digest = digestOf(bytes);
    counter.reset();
    await store.putChunk(digest, bytes);
    expect(counter.take()).toEqual({ total: 1, byOperation: { PutObject: 1 } });
    expect(await stores.getRaw(`${prefix}blobs/${digest.hex}/chunk`)).toEqual(bytes);
    expect(await store.getChunk(digest)).toEqual(bytes);
    expect(counter.take()).toEqual({ total: 1, byOperation: { GetObject: 1 } });
    expect(await store.chunkSize(digest)).toBe(70_000);
    expect(counter.take()).toEqual({ total: 1, byOperation: { HeadObject: 1 } });
  });

  it("an absent chunk is undefined for 1 request each", async () => {
    const absent = digestOf(bytesOf(2, 10));
    counter.reset();
    expect(await store.getChunk(absent)).toBeUndefined();
    expect(await store.chunkSize(absent)).toBeUndefined();
    expect(await store.getManifest(absent)).toBeUndefined();
    expect(counter.take()).toEqual({ total: 3, byOperation: { GetObject: 2, HeadObject: 1 } });
  });

  it("a manifest is 1 PUT in and 1 GET out, under blobs/<hex>/manifest, 36 bytes a chunk", async () => {
    const chunks = [1, 2, 3].map((i) => ({ digest: digestOf(bytesOf(10 + i, 5)), size: 131_072 + i }));
    const blob = digestOf(bytesOf(20, 5));
    counter.reset();
    await store.putManifest(blob, chunks);
    expect(counter.take()).toEqual({ total: 1, byOperation: { PutObject: 1 } });
    const raw = (await stores.getRaw(`${prefix}blobs/${blob.hex}/manifest`))!;
    expect(raw.length).toBe(MANIFEST_MAGIC.length + 3 * 36);
    const got = await store.getManifest(blob);
    expect(counter.take()).toEqual({ total: 1, byOperation: { GetObject: 1 } });
    expect(got!.map((c) => [c.digest.hex, c.size])).toEqual(chunks.map((c) => [c.digest.hex, c.size]));
  });

  it("a damaged manifest object is a CorruptionError naming the blob", async () => {
    const blob = digestOf(bytesOf(21, 5));
    const good = encodeManifest([{ digest: blob, size: 5 }]);
    for (const bad of [good.subarray(0, good.length - 1), Buffer.from("not a manifest"), good.subarray(0, 15)]) {
      await stores.putRaw(`${prefix}blobs/${blob.hex}/manifest`, bad);
      const error = await store.getManifest(blob).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CorruptionError);
      expect((error as Error).message).toContain(blob.hex);
    }
    expect(() => decodeManifest(blob, Buffer.concat([MANIFEST_MAGIC, Buffer.alloc(36)]))).toThrow(/size 0/);
  });
});

describe("has", () => {
  it("of one digest is 1 LIST (then the touch of what it found), whether it is a chunk, a blob's manifest or absent", async () => {
    const { store, counter } = stores.openBlobStore();
    try {
      const chunk = bytesOf(30, 100);
      await store.putChunk(digestOf(chunk), chunk);
      const blob = digestOf(bytesOf(31, 100));
      await store.putManifest(blob, [{ digest: digestOf(chunk), size: 100 }]);
      for (const [digest, expected] of [
        [digestOf(chunk), true],
        [blob, true],
        [digestOf(bytesOf(32, 100)), false],
      ] as const) {
        counter.reset();
        expect(await store.has([digest])).toEqual([expected]);
        expect(counter.take().byOperation.ListObjects).toBe(1);
      }
    } finally {
      await store.close();
    }
  });

  it("of N digests dense in the store answers present and absent in order, duplicates included, by listing pages (about ⌈K/page⌉ + 2g lists, not N)", async () => {
    const page = 10;
    const concurrency = 3;
    const { store, counter, prefix } = stores.openBlobStore({ listPageKeys: page, concurrency });
    try {
      const chunks = Array.from({ length: 60 }, (_, i) => bytesOf(100 + i, 20));
      await Promise.all(chunks.map((c) => store.putChunk(digestOf(c), c)));
      const blobs = Array.from({ length: 15 }, (_, i) => digestOf(bytesOf(200 + i, 20)));
      // Blobs of one chunk that is itself: two keys under one digest.
      await Promise.all(blobs.map((b) => store.putManifest(b, [{ digest: b, size: 20 }])));
      await Promise.all(blobs.slice(0, 5).map((b, i) => store.putChunk(b, bytesOf(200 + i, 20))));
      // Foreign objects under blobs/ are neither chunks nor manifests.
      const foreign = digestOf(bytesOf(300, 20));
      await stores.putRaw(`${prefix}blobs/${foreign.hex}/junk`, new Uint8Array(1));
      await stores.putRaw(`${prefix}blobs/README`, new Uint8Array(1));
      const keys = (await stores.listKeys(`${prefix}blobs/`)).length;
      expect(keys).toBe(60 + 15 + 5 + 2);

      const present = [...chunks.map(digestOf), ...blobs];
      const absent = [foreign, ...Array.from({ length: 40 }, (_, i) => digestOf(bytesOf(400 + i, 20)))];
      // Interleaved, not sorted: answers must come back in the asked order.
      const asked = [...present, ...absent, present[3], absent[7]].map((d, i) => ({ d, k: (i * 37) % 101 }));
      asked.sort((a, b) => a.k - b.k);
      const askedDigests = asked.map((a) => a.d);
      counter.reset();
      const answers = await store.has(askedDigests);
      const presentHex = new Set(present.map((d) => d.hex));
      expect(answers).toEqual(askedDigests.map((d) => presentHex.has(d.hex)));
      const total = counter.take().byOperation.ListObjects; // the touches of what was found aside
      const n = present.length + absent.length; // distinct
      expect(total).toBeLessThanOrEqual(Math.ceil(keys / page) + 1 + 2 * concurrency);
      expect(total).toBeLessThan(n / 4);
    } finally {
      await store.close();
    }
  });

  it("of digests sparse in the store costs at most one list each (the probe page, then one prefix listing per digest left)", async () => {
    const { store, counter } = stores.openBlobStore({ listPageKeys: 2, concurrency: 1 });
    try {
      const chunks = Array.from({ length: 30 }, (_, i) => bytesOf(500 + i, 8));
      await Promise.all(chunks.map((c) => store.putChunk(digestOf(c), c)));
      const asked = [digestOf(chunks[0]), digestOf(bytesOf(600, 8)), digestOf(chunks[29]), digestOf(bytesOf(601, 8))];
      // The probe page (2 keys of 30) answers only the smallest digest, unless neighbours fall inside it.
      counter.reset();
      expect(await store.has(asked)).toEqual([true, false, true, false]);
      expect(counter.take().byOperation.ListObjects).toBe(asked.length);
    } finally {
      await store.close();
    }
  });

  it("of digests in a store smaller than a page is 1 list", async () => {
    const { store, counter } = stores.openBlobStore();
    try {
      const chunks = Array.from({ length: 20 }, (_, i) => bytesOf(700 + i, 8));
      await Promise.all(chunks.map((c) => store.putChunk(digestOf(c), c)));
      const asked = [...chunks.map(digestOf), ...Array.from({ length: 20 }, (_, i) => digestOf(bytesOf(800 + i, 8)))];
      counter.reset();
      expect(await store.has(asked)).toEqual(asked.map((_, i) => i < 20));
      // 1 LIST; then each of the 20 chunks found is touched: its manifest GET (404), its COPY.
      expect(counter.take().byOperation).toEqual({ ListObjects: 1, GetObject: 20, CopyObject: 20 });
    } finally {
      await store.close();
    }
  });

  it("of no digests sends nothing", async () => {
    const { store, counter } = stores.openBlobStore();
    try {
      expect(await store.has([])).toEqual([]);
      expect(counter.total).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe("writes of what is stored already (spec §10.2 touch rules (b), (c))", () => {
  it("where the server honours If-None-Match, a chunk or manifest PUT answered 412 is followed by a touch (1 COPY)", async () => {
    const first = stores.openBlobStore();
    const proxy = await FaultProxy.start(stores.server.endpoint, {
      emulateIfNoneMatch: (path) => stores.exists(path.slice(stores.bucket.length + 1)),
    });
    const { store, counter } = stores.openBlobStore({ prefix: first.prefix, endpoint: proxy.endpoint });
    try {
      const chunk = bytesOf(900, 64);
      const digest = digestOf(chunk);
      await first.store.putChunk(digest, chunk);
      await first.store.putManifest(digest, [{ digest, size: chunk.length }]);
      counter.reset();
      await store.putChunk(digest, chunk);
      await store.putManifest(digest, [{ digest, size: chunk.length }]);
      expect(counter.take()).toEqual({ total: 4, byOperation: { PutObject: 2, CopyObject: 2 } });
      expect(await store.getChunk(digest)).toEqual(chunk);
    } finally {
      await Promise.all([store.close(), first.store.close(), proxy.stop()]);
    }
  });
});
