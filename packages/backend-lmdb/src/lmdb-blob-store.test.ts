import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AbortError,
  BackendError,
  ChunkedBlobService,
  CorruptionError,
  Digest,
  fixtures,
  openBlobService,
  openDirectoryService,
  type ChunkMeta,
} from "@castore-ts/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LmdbBlobStore, LmdbDirectoryService } from "./index.js";

let dir: string;
const opened: { close(): Promise<void> }[] = [];

function openStore(path = join(dir, "store")): LmdbBlobStore {
  const store = LmdbBlobStore.open(path);
  opened.push(store);
  return store;
}

/** A chunk of `size` random bytes and its metadata. */
function chunk(size: number): { bytes: Uint8Array; meta: ChunkMeta } {
  const bytes = new Uint8Array(randomBytes(size));
  return { bytes, meta: { digest: Digest.of(bytes), size } };
}

function hex(bytes: Uint8Array | undefined): string | undefined {
  return bytes && Buffer.from(bytes).toString("hex");
}

/** The manifest as plain values, for toEqual. */
function plain(chunks: readonly ChunkMeta[] | undefined): { digest: string; size: number }[] | undefined {
  return chunks?.map((c) => ({ digest: c.digest.hex, size: c.size }));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-lmdb-blob-test-"));
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe("LmdbBlobStore", () => {
  it("round-trips chunks of 0 bytes to 512 KiB and manifests of 0, 1 and many chunks", async () => {
    const store = openStore();
    const chunks = [chunk(0), chunk(1), chunk(128 * 1024), chunk(512 * 1024)];
    for (const c of chunks) await store.putChunk(c.meta.digest, c.bytes);
    for (const c of chunks) expect(hex(await store.getChunk(c.meta.digest))).toBe(hex(c.bytes));

    const blob = Digest.of(randomBytes(64)); // the store never checks digests: any key will do
    await store.putManifest(
      blob,
      chunks.map((c) => c.meta),
    );
    expect(plain(await store.getManifest(blob))).toEqual(plain(chunks.map((c) => c.meta)));

    // A blob of one chunk has the chunk's digest: the manifest and the chunk live side by side.
    const single = chunks[2].meta;
    await store.putManifest(single.digest, [single]);
    expect(plain(await store.getManifest(single.digest))).toEqual(plain([single]));
    expect(hex(await store.getChunk(single.digest))).toBe(hex(chunks[2].bytes));

    await store.putManifest(fixtures.EMPTY_BLOB_DIGEST, []);
    expect(await store.getManifest(fixtures.EMPTY_BLOB_DIGEST)).toEqual([]);
  });

  it("returns undefined for an absent chunk or manifest", async () => {
    const store = openStore();
    const absent = Digest.of(randomBytes(8));
    expect(await store.getChunk(absent)).toBeUndefined();
    expect(await store.getManifest(absent)).toBeUndefined();
  });

  it("stores chunks and manifests in their own named databases, manifests as 36-byte records", async () => {
    const store = openStore();
    const a = chunk(1000);
    const b = chunk(70_000);
    await store.putChunk(a.meta.digest, a.bytes);
    await store.putChunk(b.meta.digest, b.bytes);
    const blob = Digest.of(randomBytes(8));
    await store.putManifest(blob, [a.meta, b.meta]);
    const raw = Buffer.from(store.manifests.getBinary(blob.bytes)!);
    expect(raw.length).toBe(72);
    expect(hex(raw.subarray(0, 32))).toBe(a.meta.digest.hex);
    expect(raw.readUInt32LE(32)).toBe(1000);
    expect(hex(raw.subarray(36, 68))).toBe(b.meta.digest.hex);
    expect(raw.readUInt32LE(68)).toBe(70_000);
    expect(store.chunks.getBinary(blob.bytes)).toBeUndefined();
    expect(store.manifests.getBinary(a.meta.digest.bytes)).toBeUndefined();
  });

  it("has: a boolean per digest, in order, for manifests, chunks, both and neither", async () => {
    const store = openStore();
    const onlyChunk = chunk(10);
    const both = chunk(20);
    const onlyManifest = Digest.of(randomBytes(8));
    const absent = Digest.of(randomBytes(8));
    await store.putChunk(onlyChunk.meta.digest, onlyChunk.bytes);
    await store.putChunk(both.meta.digest, both.bytes);
    await store.putManifest(both.meta.digest, [both.meta]);
    await store.putManifest(onlyManifest, [onlyChunk.meta]);
    expect(
      await store.has([absent, onlyChunk.meta.digest, onlyManifest, both.meta.digest, absent, onlyChunk.meta.digest]),
    ).toEqual([false, true, true, true, false, true]);
    expect(await store.has([])).toEqual([]);
  });

  it("puts are idempotent and keep what was stored first", async () => {
    const store = openStore();
    const c = chunk(100);
    await store.putChunk(c.meta.digest, c.bytes);
    await store.putChunk(c.meta.digest, c.bytes);
    // The store never checks digests; a later put under the same key must not replace the bytes.
    await store.putChunk(c.meta.digest, new Uint8Array(7));
    expect(hex(await store.getChunk(c.meta.digest))).toBe(hex(c.bytes));

    const blob = Digest.of(randomBytes(8));
    await store.putManifest(blob, [c.meta]);
    await store.putManifest(blob, [c.meta]);
    await store.putManifest(blob, [c.meta, c.meta]);
    expect(plain(await store.getManifest(blob))).toEqual(plain([c.meta]));
  });

  it("putBlobs stores chunks and manifests together, syncLater until sync(), and keeps them across reopen", async () => {
    const path = join(dir, "batch");
    const store = LmdbBlobStore.open(path);
    const one = chunk(1000);
    const a = chunk(200_000);
    const b = chunk(150_000);
    const two = Digest.of(Buffer.concat([a.bytes, b.bytes]));
    await store.putBlobs(
      [
        { digest: one.meta.digest, chunks: [{ digest: one.meta.digest, bytes: one.bytes }] },
        { digest: two, chunks: [a, b].map((c) => ({ digest: c.meta.digest, bytes: c.bytes })) },
      ],
      { syncLater: true },
    );
    // Visible once the call resolved, before any sync.
    expect(await store.has([one.meta.digest, two, a.meta.digest])).toEqual([true, true, true]);
    expect(plain(await store.getManifest(two))).toEqual(plain([a.meta, b.meta]));
    await store.sync();
    await store.close();

    const again = openStore(path);
    expect(hex(await again.getChunk(one.meta.digest))).toBe(hex(one.bytes));
    expect(hex(await again.getChunk(b.meta.digest))).toBe(hex(b.bytes));
    // A blob of one chunk is that chunk: no manifest.
    expect(await again.getManifest(one.meta.digest)).toBeUndefined();
    expect(await again.chunkSize(one.meta.digest)).toBe(one.bytes.length);
    expect(plain(await again.getManifest(two))).toEqual(plain([a.meta, b.meta]));
    // A blob stored again is kept as first stored, and still answers.
    await again.putBlobs([{ digest: two, chunks: [b, a].map((c) => ({ digest: c.meta.digest, bytes: c.bytes })) }]);
    expect(plain(await again.getManifest(two))).toEqual(plain([a.meta, b.meta]));
  });

  it("keeps chunks and manifests across close and reopen", async () => {
    const path = join(dir, "persist");
    const store = LmdbBlobStore.open(path);
    const c = chunk(300_000);
    const blob = Digest.of(randomBytes(8));
    await store.putChunk(c.meta.digest, c.bytes);
    await store.putManifest(blob, [c.meta]);
    await store.close();

    const again = openStore(path);
    expect(hex(await again.getChunk(c.meta.digest))).toBe(hex(c.bytes));
    expect(plain(await again.getManifest(blob))).toEqual(plain([c.meta]));
    expect(await again.has([blob, c.meta.digest])).toEqual([true, true]);
  });

  it("takes concurrent writers of the same chunks, through one store and through two on one path", async () => {
    const path = join(dir, "shared");
    const a = openStore(path);
    const b = openStore(path);
    const chunks = Array.from({ length: 8 }, (_, i) => chunk(32 * 1024 + i));
    await Promise.all(
      Array.from({ length: 16 }, (_, w) => {
        const store = w % 2 ? a : b;
        // Each writer stores every chunk, starting at a different one.
        return (async () => {
          for (let i = 0; i < chunks.length; i++) {
            const c = chunks[(i + w) % chunks.length];
            await store.putChunk(c.meta.digest, c.bytes);
          }
        })();
      }),
    );
    for (const store of [a, b]) {
      for (const c of chunks) expect(hex(await store.getChunk(c.meta.digest))).toBe(hex(c.bytes));
    }
    let stored = 0;
    for (const _ of a.chunks.getKeys()) stored++;
    expect(stored).toBe(chunks.length);
  });

  it("shares the directory: blob and directory stores on one path in one process, each closable alone", async () => {
    const path = join(dir, "both");
    const directories = await LmdbDirectoryService.open(path);
    opened.push(directories);
    const blobs = openStore(path);
    const c = chunk(5000);
    await blobs.putChunk(c.meta.digest, c.bytes);
    const putter = directories.putMultipleStart();
    await putter.put(fixtures.DIRECTORY_A);
    const root = await putter.close();

    // A second handle of each sees the other's writes.
    const blobsAgain = openStore(path);
    expect(hex(await blobsAgain.getChunk(c.meta.digest))).toBe(hex(c.bytes));
    await blobs.close();
    expect(await directories.get(root)).toBeDefined();
    await blobsAgain.putManifest(c.meta.digest, [c.meta]);
    await directories.close();
    expect(await blobsAgain.has([c.meta.digest])).toEqual([true]);

    const reopened = await LmdbDirectoryService.open(path);
    opened.push(reopened);
    expect(await reopened.get(root)).toBeDefined();
    expect(reopened.store.directories.getBinary(c.meta.digest.bytes)).toBeUndefined();
  });

  it("returns copies: a chunk stays intact after later reads and writes", async () => {
    const store = openStore();
    const cs = [chunk(100), chunk(200_000), chunk(300)];
    for (const c of cs) await store.putChunk(c.meta.digest, c.bytes);
    const first = await Promise.all(cs.map((c) => store.getChunk(c.meta.digest)));
    const more = chunk(150_000);
    await store.putChunk(more.meta.digest, more.bytes);
    await Promise.all([...cs].reverse().map((c) => store.getChunk(c.meta.digest)));
    expect(first.map(hex)).toEqual(cs.map((c) => hex(c.bytes)));
  });

  it("reports a stored manifest that is not whole chunk records as CorruptionError naming the blob", async () => {
    const store = openStore();
    const blob = Digest.of(randomBytes(8));
    store.manifests.putSync(blob.bytes, new Uint8Array(37));
    await expect(store.getManifest(blob)).rejects.toThrow(CorruptionError);
    await expect(store.getManifest(blob)).rejects.toThrow(blob.hex);
  });

  it("refuses a chunk size that a manifest record cannot hold", async () => {
    const store = openStore();
    const blob = Digest.of(randomBytes(8));
    await expect(store.putManifest(blob, [{ digest: blob, size: 2 ** 32 }])).rejects.toThrow(/not a uint32/);
    expect(await store.getManifest(blob)).toBeUndefined();
  });

  it("stops at an aborted signal and refuses work after close with a BackendError", async () => {
    const store = LmdbBlobStore.open(join(dir, "store"));
    const c = chunk(10);
    const controller = new AbortController();
    controller.abort();
    await expect(store.putChunk(c.meta.digest, c.bytes, { signal: controller.signal })).rejects.toThrow(AbortError);
    expect(await store.getChunk(c.meta.digest)).toBeUndefined();
    await store.close();
    await store.close();
    await expect(store.getChunk(c.meta.digest)).rejects.toThrow(BackendError);
    await expect(store.has([c.meta.digest])).rejects.toThrow(/store is closed/);
  });

  it("opens by lmdb: URL, relative paths against the working directory", async () => {
    const store = LmdbBlobStore.openUrl(`lmdb://${join(dir, "by-url")}`);
    opened.push(store);
    expect(store.path).toBe(join(dir, "by-url"));
    const c = chunk(10);
    await store.putChunk(c.meta.digest, c.bytes);
    expect(await store.has([c.meta.digest])).toEqual([true]);
  });

  it("fails with a BackendError naming the path when the directory holds something that is not LMDB", async () => {
    const path = join(dir, "bad");
    const { mkdirSync, writeFileSync } = await import("node:fs");
    mkdirSync(path);
    writeFileSync(join(path, "data.mdb"), Buffer.alloc(16384, 7));
    expect(() => LmdbBlobStore.open(path)).toThrow(BackendError);
    expect(() => LmdbBlobStore.open(path)).toThrow(/is not an LMDB data file/);
  });

  it("is registered for lmdb: URLs: one URL opens blobs and directories of one store directory", async () => {
    const url = `lmdb://${join(dir, "registered")}`;
    const blobs = await openBlobService(url);
    opened.push(blobs);
    expect(blobs).toBeInstanceOf(ChunkedBlobService);
    expect((blobs as ChunkedBlobService).store).toBeInstanceOf(LmdbBlobStore);
    const writer = blobs.openWriter();
    await writer.write(new TextEncoder().encode("hello blobs"));
    const { digest } = await writer.close();
    const directories = await openDirectoryService(url);
    opened.push(directories);
    const putter = directories.putMultipleStart();
    await putter.put(fixtures.DIRECTORY_A);
    await putter.close();

    const again = LmdbBlobStore.open(join(dir, "registered"));
    opened.push(again);
    expect(await again.has([digest])).toEqual([true]);
    await expect(openBlobService(`lmdb://${join(dir, "registered")}?color=red`)).rejects.toThrow(/unknown option/);
  });
});
