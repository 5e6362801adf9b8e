import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { Digest } from "../digest.js";
import { AbortError, ClosureError, CorruptionError, ValidationError } from "../errors.js";
import type { CallOptions } from "../service.js";
import { ChunkedBlobService, EMPTY_BLOB_DIGEST } from "./chunked.js";
import type { BlobStore, ChunkMeta, StoreBlob } from "./service.js";

/** A Map store that counts what it is asked, and can be told to fail or to hold chunk puts. */
class TestStore implements BlobStore {
  readonly chunks = new Map<string, Uint8Array>();
  readonly manifests = new Map<string, readonly ChunkMeta[]>();
  inFlight = 0;
  maxInFlight = 0;
  failPutChunk: Error | undefined;
  /** While set, chunk puts wait for it. */
  gate: Promise<void> | undefined;

  async putChunk(digest: Digest, bytes: Uint8Array, opts: CallOptions = {}): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.gate;
      opts.signal?.throwIfAborted();
      if (this.failPutChunk) throw this.failPutChunk;
      this.chunks.set(digest.hex, bytes.slice());
    } finally {
      this.inFlight--;
    }
  }
  async getChunk(digest: Digest): Promise<Uint8Array | undefined> {
    return this.chunks.get(digest.hex)?.slice();
  }
  async putManifest(digest: Digest, chunks: readonly ChunkMeta[]): Promise<void> {
    this.manifests.set(digest.hex, [...chunks]);
  }
  async getManifest(digest: Digest): Promise<readonly ChunkMeta[] | undefined> {
    return this.manifests.get(digest.hex);
  }
  async has(digests: readonly Digest[]): Promise<boolean[]> {
    return digests.map((d) => this.manifests.has(d.hex) || this.chunks.has(d.hex));
  }
  async close(): Promise<void> {}
}

/** Bytes that chunk like real data. */
function noise(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function readAll(service: ChunkedBlobService, digest: Digest, range = {}): Promise<Uint8Array> {
  const stream = await service.read(digest, range);
  if (!stream) throw new Error("absent");
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p.slice());
  return Buffer.concat(parts);
}

async function write(service: ChunkedBlobService, bytes: Uint8Array): Promise<Digest> {
  const writer = service.openWriter();
  await writer.write(bytes);
  return (await writer.close()).digest;
}

describe("ChunkedBlobService", () => {
  it("the empty blob digest is BLAKE3 of nothing", () => {
    expect(EMPTY_BLOB_DIGEST.equals(Digest.of(new Uint8Array(0)))).toBe(true);
  });

  it("keeps at most `parallelism` chunk puts in flight", async () => {
    const store = new TestStore();
    let open!: () => void;
    store.gate = new Promise((r) => (open = r));
    const service = new ChunkedBlobService(store, { parallelism: 2 });
    const writer = service.openWriter();
    const writing = writer.write(noise(4 << 20)); // about 16 chunks
    // the write waits for the gate with two puts in flight
    await new Promise((r) => setImmediate(r));
    expect(store.inFlight).toBe(2);
    open();
    await writing;
    await writer.close();
    expect(store.maxInFlight).toBe(2);
  });

  it("`putParallelism` bounds the puts in flight instead, where a store asks for more", async () => {
    const store = new TestStore();
    let open!: () => void;
    store.gate = new Promise((r) => (open = r));
    const service = new ChunkedBlobService(store, { parallelism: 2, putParallelism: 5 });
    const writer = service.openWriter();
    const writing = writer.write(noise(4 << 20)); // about 16 chunks
    await new Promise((r) => setImmediate(r));
    expect(store.inFlight).toBe(5);
    open();
    await writing;
    await writer.close();
    expect(store.maxInFlight).toBe(5);
  });

  it("a failed chunk put fails close(), and no manifest is written", async () => {
    const store = new TestStore();
    store.failPutChunk = new Error("disk full");
    const service = new ChunkedBlobService(store);
    const writer = service.openWriter();
    await writer.write(noise(2 << 20)).catch(() => {});
    await expect(writer.close()).rejects.toThrow("disk full");
    expect(store.manifests.size).toBe(0);
  });

  it("abort() stops the chunk puts in flight and refuses further use", async () => {
    const store = new TestStore();
    let open!: () => void;
    store.gate = new Promise((r) => (open = r));
    const service = new ChunkedBlobService(store);
    const writer = service.openWriter();
    const writing = writer.write(noise(3 << 20)).catch((e: unknown) => e);
    await new Promise((r) => setImmediate(r));
    const aborting = writer.abort(new Error("user"));
    open();
    await aborting;
    await writing;
    expect(store.chunks.size).toBe(0);
    await expect(writer.write(new Uint8Array(1))).rejects.toBeInstanceOf(AbortError);
    await expect(writer.close()).rejects.toBeInstanceOf(AbortError);
    expect(store.manifests.size).toBe(0);
  });

  it("close() twice is refused", async () => {
    const service = new ChunkedBlobService(new TestStore());
    const writer = service.openWriter();
    await writer.write(noise(10));
    await writer.close();
    await expect(writer.close()).rejects.toBeInstanceOf(ClosureError);
  });

  it("a manifest whose sizes lie is corruption, not a short read", async () => {
    const store = new TestStore();
    const service = new ChunkedBlobService(store);
    const bytes = noise(1 << 20);
    const digest = await write(service, bytes);
    const manifest = store.manifests.get(digest.hex)!;
    store.manifests.set(digest.hex, [{ ...manifest[0], size: manifest[0].size + 1 }, ...manifest.slice(1)]);
    await expect(readAll(service, digest)).rejects.toBeInstanceOf(CorruptionError);
    store.manifests.set(digest.hex, [{ ...manifest[0], size: -1 }]);
    await expect(service.stat(digest)).rejects.toBeInstanceOf(CorruptionError);
  });

  it("chunks that are intact but are not the blob's are corruption at the end of a full read", async () => {
    const store = new TestStore();
    const service = new ChunkedBlobService(store);
    const a = await write(service, noise(1 << 20, 1));
    const b = await write(service, noise(1 << 20, 2));
    store.manifests.set(a.hex, store.manifests.get(b.hex)!);
    await expect(readAll(service, a)).rejects.toThrow(/hash to another digest/);
  });

  it("refuses negative or fractional ranges with ValidationError", async () => {
    const service = new ChunkedBlobService(new TestStore());
    await expect(service.read(EMPTY_BLOB_DIGEST, { offset: -1 })).rejects.toBeInstanceOf(ValidationError);
    await expect(service.read(EMPTY_BLOB_DIGEST, { length: 1.5 })).rejects.toBeInstanceOf(ValidationError);
    expect(() => new ChunkedBlobService(new TestStore(), { parallelism: 0 })).toThrow(RangeError);
    expect(() => new ChunkedBlobService(new TestStore(), { putParallelism: 1.5 })).toThrow(RangeError);
  });

  it("a caller changing its buffer after write() resolved changes nothing stored", async () => {
    const service = new ChunkedBlobService(new TestStore());
    const writer = service.openWriter();
    const piece = Buffer.from(noise(700 * 1024)); // a Buffer: its slice() is a view
    const copy = new Uint8Array(piece);
    await writer.write(piece);
    piece.fill(0);
    await writer.write(noise(10));
    const { digest } = await writer.close();
    const got = await readAll(service, digest);
    expect(Buffer.from(got.subarray(0, copy.length)).equals(Buffer.from(copy))).toBe(true);
  });

  describe("putMany", () => {
    const blobs = [noise(0), noise(10, 2), noise(128 * 1024, 3), noise(128 * 1024 + 1, 4), noise(900 * 1024, 5)];

    it("stores each blob as a writer would: the same digests, the same chunks, each readable", async () => {
      const byWriter = new ChunkedBlobService(new TestStore());
      const store = new TestStore();
      const service = new ChunkedBlobService(store);
      const written = await service.putMany(blobs.map((b) => b.slice()));
      for (const [i, bytes] of blobs.entries()) {
        const digest = await write(byWriter, bytes);
        expect(written[i]!.digest.hex, `blob ${i}`).toBe(digest.hex);
        expect(written[i]!.size).toBe(bytes.length);
        expect((await service.stat(digest, { chunks: true }))?.chunks?.map((c) => c.digest.hex)).toEqual(
          (await byWriter.stat(digest, { chunks: true }))?.chunks?.map((c) => c.digest.hex),
        );
        expect(Buffer.from(await readAll(service, digest)).equals(Buffer.from(bytes))).toBe(true);
      }
      // The 900 KiB blob has several chunks; the one at the minimum chunk size is one chunk, itself.
      expect((await service.stat(written[4]!.digest, { chunks: true }))!.chunks!.length).toBeGreaterThan(1);
      expect(store.chunks.has(written[2]!.digest.hex)).toBe(true);
    });

    it("through a store's putBlobs when it has one: one call, every manifest after its chunks", async () => {
      const calls: { digest: string; chunks: number }[][] = [];
      const store = new TestStore();
      const withPutBlobs = Object.assign(store, {
        async putBlobs(list: readonly StoreBlob[]) {
          calls.push(list.map((b) => ({ digest: b.digest.hex, chunks: b.chunks.length })));
          for (const b of list) {
            for (const c of b.chunks) await store.putChunk(c.digest, c.bytes);
            await store.putManifest(
              b.digest,
              b.chunks.map((c) => ({ digest: c.digest, size: c.bytes.length })),
            );
          }
        },
      });
      const service = new ChunkedBlobService(withPutBlobs);
      const written = await service.putMany(blobs.map((b) => b.slice()));
      expect(calls).toHaveLength(1);
      // the empty blob is present in every store: not sent
      expect(calls[0]!.map((c) => c.digest)).toEqual(written.slice(1).map((w) => w.digest.hex));
      for (const w of written) expect(await service.has([w.digest])).toEqual([true]);
    });

    it("takes the caller's digests as given (a wrong one is caught when read), and refuses a count that differs", async () => {
      const service = new ChunkedBlobService(new TestStore());
      const bytes = noise(1000, 9);
      const wrong = Digest.of(noise(1000, 10));
      const [w] = await service.putMany([bytes], { digests: [wrong] });
      expect(w!.digest.hex).toBe(wrong.hex);
      await expect(readAll(service, wrong)).rejects.toThrow(CorruptionError);
      await expect(service.putMany([bytes], { digests: [] })).rejects.toThrow(ValidationError);
    });
  });
});

/**
 * The 'abort' listeners on `signal`, and the signals Node 20 keeps on it for
 * AbortSignal.any() combinations (its kDependantSignals set, never pruned:
 * nodejs/node#55351). @castore-ts/testing has the same measure for the other
 * packages; core's tests may not import it.
 */
function heldBy(signal: AbortSignal): { listeners: number; dependants: number } {
  const key = Object.getOwnPropertySymbols(signal).find((s) => s.description === "kDependantSignals");
  const set = key && (signal as unknown as Record<symbol, Set<unknown> | undefined>)[key];
  return { listeners: getEventListeners(signal, "abort").length, dependants: set?.size ?? 0 };
}

/** Resolves once `done()` holds, checking after each turn of the event loop. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve));
}

describe("ChunkedBlobService and a caller's long-lived signal", () => {
  it("finished, aborted and unclosed writers leave nothing on it; an abort still reaches the chunk puts in flight", async () => {
    const store = new TestStore();
    const service = new ChunkedBlobService(store, { putParallelism: 64 });
    const caller = new AbortController();
    const { signal } = caller;
    for (let i = 0; i < 10; i++) {
      const done = service.openWriter({ signal });
      await done.write(noise(300_000, i + 1));
      await done.close();
      const aborted = service.openWriter({ signal });
      await aborted.write(noise(300_000, 100 + i));
      await aborted.abort();
      const unclosed = service.openWriter({ signal });
      await unclosed.write(noise(300_000, 200 + i));
    }
    await until(() => store.inFlight === 0); // the unclosed writers' last puts
    expect(heldBy(signal)).toEqual({ listeners: 0, dependants: 0 });

    // Puts held in flight: the caller's abort reaches them, and nothing of them is stored.
    let release!: () => void;
    store.gate = new Promise<void>((resolve) => (release = resolve));
    const stored = store.chunks.size;
    const writer = service.openWriter({ signal });
    await writer.write(noise(2_000_000, 7));
    expect(store.inFlight).toBeGreaterThan(1);
    expect(heldBy(signal).listeners).toBe(1);
    caller.abort(new Error("shutting down"));
    release();
    await expect(writer.close()).rejects.toThrow(AbortError);
    expect(store.chunks.size).toBe(stored);
    expect(heldBy(signal)).toEqual({ listeners: 0, dependants: 0 });
  });
});
