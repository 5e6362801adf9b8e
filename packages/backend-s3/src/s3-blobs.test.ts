/**
 * Blobs on S3 through core's ChunkedBlobService, against the real S3 test
 * server: round trips, the request counts of one blob's write, read, stat
 * and has (README "Blobs"), and writes that fail or are aborted leaving no
 * visible blob.
 */
import { AbortError, BackendError, type BlobService, Digest, blake3, openBlobService } from "@castore-ts/core";
import { type Fault, FaultProxy } from "@castore-ts/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "./index.js";
import type { RequestCounter } from "./request-counter.js";
import { S3_BLOB_PARALLELISM, s3BlobService } from "./s3-blobs.js";
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

/** Writes `bytes` in pieces of `piece` bytes. */
async function put(blobs: BlobService, bytes: Uint8Array, piece = 100_000): Promise<Digest> {
  const writer = blobs.openWriter();
  for (let at = 0; at < bytes.length; at += piece) await writer.write(bytes.subarray(at, at + piece));
  const written = await writer.close();
  expect(written.size).toBe(bytes.length);
  return written.digest;
}

async function readAll(blobs: BlobService, digest: Digest, opts?: { offset?: number; length?: number }) {
  const stream = await blobs.read(digest, opts);
  if (!stream) return undefined;
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

describe("one blob: round trip and requests", () => {
  let blobs: BlobService;
  let counter: RequestCounter;
  let prefix: string;

  beforeAll(() => {
    const opened = stores.openBlobStore();
    ({ counter, prefix } = opened);
    blobs = s3BlobService(opened.store);
  });
  afterAll(() => blobs?.close());

  it.each([
    ["1 byte", 1],
    ["100 KiB (one chunk)", 100 * 1024],
    ["3 MiB (several chunks)", 3 * 1024 * 1024],
  ])(
    "%s: write k + 1 PUTs (one chunk: 1, no manifest), whole read 1 + k GETs, stat 1 GET (one chunk: + 1 HEAD), has 1 LIST and the touch (1 GET, k COPYs, + 1 of the manifest)",
    async (_name, size) => {
      const bytes = bytesOf(size, size);
      counter.reset();
      const digest = await put(blobs, bytes);
      expect(digest.hex).toBe(digestOf(bytes).hex);
      const writeCount = counter.take();

      const stat = await blobs.stat(digest, { chunks: true });
      const statCount = counter.take();
      expect(stat!.size).toBe(size);
      const k = stat!.chunks!.length;
      // A blob of one chunk is that chunk (spec §8.1): no manifest object; stat learns its size by a HEAD.
      const manifests = k > 1 ? 1 : 0;
      if (size > 1024 * 1024) expect(k).toBeGreaterThan(2);
      if (size <= 128 * 1024) expect(k).toBe(1);
      expect(statCount).toEqual(
        k > 1
          ? { total: 1, byOperation: { GetObject: 1 } }
          : { total: 2, byOperation: { GetObject: 1, HeadObject: 1 } },
      );
      expect(writeCount).toEqual({ total: k + manifests, byOperation: { PutObject: k + manifests } });
      expect(await stores.exists(`${prefix}blobs/${digest.hex}/manifest`)).toBe(k > 1);

      expect((await readAll(blobs, digest))!.equals(bytes)).toBe(true);
      // One chunk: the manifest GET (404), then the chunk's.
      expect(counter.take()).toEqual({ total: k + 1, byOperation: { GetObject: k + 1 } });

      expect(await blobs.has([digest])).toEqual([true]);
      // The touch (spec §10.2 rule (d)): the manifest read, each chunk and then the manifest copied onto itself.
      expect(counter.take()).toEqual({
        total: 1 + 1 + k + manifests,
        byOperation: { ListObjects: 1, GetObject: 1, CopyObject: k + manifests },
      });
    },
    60_000,
  );

  it("the empty blob: writing it sends nothing; read and stat 1 GET each (no manifest; core answers), has 1 LIST", async () => {
    counter.reset();
    const digest = await put(blobs, new Uint8Array(0));
    expect(counter.take().total).toBe(0);
    expect((await readAll(blobs, digest))!.length).toBe(0);
    expect((await blobs.stat(digest))!.size).toBe(0);
    expect(await blobs.has([digest])).toEqual([true]);
    expect(counter.take()).toEqual({ total: 3, byOperation: { GetObject: 2, ListObjects: 1 } });
  });

  it("a ranged read GETs the manifest and only the chunks the range touches", async () => {
    const bytes = bytesOf(77, 2 * 1024 * 1024);
    const digest = await put(blobs, bytes);
    const { chunks } = (await blobs.stat(digest, { chunks: true }))!;
    const second = chunks![1];
    const start = chunks![0].size;
    counter.reset();
    const got = await readAll(blobs, digest, { offset: start + 10, length: second.size - 20 });
    expect(got!.equals(bytes.subarray(start + 10, start + second.size - 10))).toBe(true);
    expect(counter.take()).toEqual({ total: 2, byOperation: { GetObject: 2 } });
  });

  it("an absent digest: read and stat are undefined for 2 requests each (manifest GET, then chunk GET or HEAD)", async () => {
    const absent = digestOf(bytesOf(5, 10));
    counter.reset();
    expect(await blobs.read(absent)).toBeUndefined();
    expect(counter.take()).toEqual({ total: 2, byOperation: { GetObject: 2 } });
    expect(await blobs.stat(absent)).toBeUndefined();
    expect(counter.take().total).toBe(2);
  });

  it("a chunk is readable by its own digest", async () => {
    const bytes = bytesOf(78, 2 * 1024 * 1024);
    const digest = await put(blobs, bytes);
    const { chunks } = (await blobs.stat(digest, { chunks: true }))!;
    const first = chunks![0];
    counter.reset();
    expect((await readAll(blobs, first.digest))!.equals(bytes.subarray(0, first.size))).toBe(true);
    expect(counter.take()).toEqual({ total: 2, byOperation: { GetObject: 2 } });
  });

  it("has of blobs, chunks and absent digests answers each, in order", async () => {
    const a = await put(blobs, bytesOf(80, 1000));
    const b = await put(blobs, bytesOf(81, 1024 * 1024));
    const { chunks } = (await blobs.stat(b, { chunks: true }))!;
    const absent = [digestOf(bytesOf(82, 5)), digestOf(bytesOf(83, 5))];
    const asked = [absent[0], a, chunks![1].digest, absent[1], b, a];
    counter.reset();
    expect(await blobs.has(asked)).toEqual([false, true, true, false, true, true]);
    // The store holds fewer than 1 000 objects: the first page answers every digest. Then the touches of
    // a (1 chunk: no manifest, its GET is a 404), the chunk alone (likewise) and b (k chunks, then its
    // manifest), each distinct digest once.
    expect(counter.take().byOperation).toEqual({
      ListObjects: 1,
      GetObject: 3,
      CopyObject: 1 + 1 + chunks!.length + 1,
    });
  });
});

describe("a write that fails or is aborted leaves no visible blob", () => {
  const fast = { baseDelayMs: 5, maxDelayMs: 50 };
  const bytes = bytesOf(90, 3 * 1024 * 1024);
  const digest = digestOf(bytes);

  it.each([
    ["the third chunk PUT", (n: number, url: string) => !url.includes("/manifest") && n === 2],
    ["the manifest PUT", (_n: number, url: string) => url.includes("/manifest")],
  ])("when %s fails: BackendError, no manifest, has false, read undefined", async (_name, failing) => {
    let puts = 0;
    const proxy = await FaultProxy.start(stores.server.endpoint, {
      policy: (req): Fault => {
        if (req.method !== "PUT") return { kind: "pass" };
        return failing(puts++, req.url) ? { kind: "status", status: 500 } : { kind: "pass" };
      },
    });
    const opened = stores.openBlobStore({ endpoint: proxy.endpoint, retry: { maxAttempts: 1, ...fast } });
    const blobs = s3BlobService(opened.store);
    try {
      const error = await put(blobs, bytes).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(await stores.exists(`${opened.prefix}blobs/${digest.hex}/manifest`)).toBe(false);
      expect(await blobs.has([digest])).toEqual([false]);
      expect(await blobs.read(digest)).toBeUndefined();
    } finally {
      await Promise.all([blobs.close(), proxy.stop()]);
    }
  });

  it("abort() after some chunks: no manifest, and the same blob can be written afterwards", async () => {
    const { store, counter, prefix } = stores.openBlobStore();
    const blobs = s3BlobService(store);
    try {
      const writer = blobs.openWriter();
      await writer.write(bytes.subarray(0, 2 * 1024 * 1024));
      await writer.abort(new Error("changed my mind"));
      expect(counter.take().byOperation.PutObject ?? 0).toBeGreaterThan(0);
      expect(await stores.listKeys(`${prefix}blobs/${digest.hex}/`)).toEqual([]);
      expect(await blobs.has([digest])).toEqual([false]);
      expect((await put(blobs, bytes)).hex).toBe(digest.hex);
      expect((await readAll(blobs, digest))!.equals(bytes)).toBe(true);
    } finally {
      await blobs.close();
    }
  });

  it("an aborted signal ends the write with AbortError and stores no manifest", async () => {
    const { store, prefix } = stores.openBlobStore();
    const blobs = s3BlobService(store);
    try {
      const controller = new AbortController();
      const writer = blobs.openWriter({ signal: controller.signal });
      await writer.write(bytes.subarray(0, 1024 * 1024));
      controller.abort(new Error("stop"));
      const error = await (async () => {
        await writer.write(bytes.subarray(1024 * 1024));
        return writer.close();
      })().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AbortError);
      expect(await stores.exists(`${prefix}blobs/${digest.hex}/manifest`)).toBe(false);
    } finally {
      await blobs.close();
    }
  });
});

describe("bounded parallelism", () => {
  it(`keeps at most ${S3_BLOB_PARALLELISM} chunk requests in flight per write and per read`, async () => {
    const proxy = await FaultProxy.start(stores.server.endpoint);
    const { store } = stores.openBlobStore({ endpoint: proxy.endpoint });
    const blobs = s3BlobService(store);
    try {
      const bytes = bytesOf(96, 8 * 1024 * 1024);
      const digest = await put(blobs, bytes, 1024 * 1024);
      expect(proxy.maxInFlight).toBeLessThanOrEqual(S3_BLOB_PARALLELISM);
      expect(proxy.maxInFlight).toBeGreaterThan(1);
      expect((await readAll(blobs, digest))!.equals(bytes)).toBe(true);
      expect(proxy.maxInFlight).toBeLessThanOrEqual(S3_BLOB_PARALLELISM);
    } finally {
      await Promise.all([blobs.close(), proxy.stop()]);
    }
  }, 60_000);
});

describe("openBlobService", () => {
  it("opens s3:// URLs (the same URL as for directories)", async () => {
    const s = stores.server;
    const url =
      `s3://${encodeURIComponent(s.accessKeyId)}:${encodeURIComponent(s.secretAccessKey)}@${stores.bucket}/blob-url` +
      `?endpoint=${encodeURIComponent(s.endpoint)}&region=${s.region}&forcePathStyle=true`;
    const blobs = await openBlobService(url);
    try {
      const bytes = bytesOf(95, 700_000);
      const digest = await put(blobs, bytes);
      expect((await readAll(blobs, digest))!.equals(bytes)).toBe(true);
      expect(await stores.exists(`blob-url/blobs/${digest.hex}/manifest`)).toBe(true);
    } finally {
      await blobs.close();
    }
  });
});
