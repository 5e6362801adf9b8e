/**
 * `castore import` sends only what the store lacks: importing a tree again
 * uploads no blob and says so; after one file changes, only that file is
 * sent and only its changed chunks are stored. Counted in process through a
 * memory store that counts its chunk puts, and across processes through
 * `castore serve`'s blob metrics.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BlobWriter,
  type BlobWritten,
  type CallOptions,
  type PutManyOptions,
  ChunkedBlobService,
  type Digest,
  openDirectoryService,
} from "@castore-ts/core";
import { MemoryBlobStore } from "@castore-ts/backend-memory";
import { getFreePort, runCastore, scrapeMetric, startCastoreServe } from "@castore-ts/testing";
import { importTree } from "./importer.js";
import { CASTORE_CLI } from "./test-castore-cli.js";

/** A memory store counting the chunks it is asked to put (it keeps only the new ones: stats.chunks). */
class CountingStore extends MemoryBlobStore {
  chunkPuts = 0;
  override async putChunk(digest: Digest, bytes: Uint8Array, opts?: CallOptions): Promise<void> {
    this.chunkPuts++;
    return super.putChunk(digest, bytes, opts);
  }
}

/** A blob service counting the blobs sent to it: a writer each, or each of a putMany. */
class CountingBlobService extends ChunkedBlobService {
  sent = 0;
  override openWriter(opts?: CallOptions): BlobWriter {
    this.sent++;
    return super.openWriter(opts);
  }
  override putMany(blobs: readonly Uint8Array[], opts?: PutManyOptions): Promise<BlobWritten[]> {
    this.sent += blobs.length;
    return super.putMany(blobs, opts);
  }
}

/** Bytes that chunk like real data. */
function noise(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

let dir: string;
let tree: string;
const BIG = 4 * 1024 * 1024 + 3;
const SMALL_FILES = 300;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-dedupe-"));
  tree = join(dir, "tree");
  mkdirSync(join(tree, "small"), { recursive: true });
  for (let i = 0; i < SMALL_FILES; i++) writeFileSync(join(tree, "small", `f${i}`), `small file ${i}\n`);
  writeFileSync(join(tree, "twin-a"), "the same bytes twice\n");
  writeFileSync(join(tree, "twin-b"), "the same bytes twice\n");
  writeFileSync(join(tree, "big.bin"), noise(BIG, 5));
  writeFileSync(join(tree, "empty"), "");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("import sends only what the store lacks", () => {
  it("in process: a second import writes no blob and puts no chunk; an edit of a large file stores only its changed chunks", async () => {
    const store = new CountingStore();
    const blobs = new CountingBlobService(store);
    const directories = await openDirectoryService("memory://");
    try {
      const first = await importTree(directories, tree, { blobs });
      // one blob sent per distinct non-empty content: the twins share one blob, the empty blob is always present
      expect(blobs.sent).toBe(SMALL_FILES + 2);
      expect(first.progress.blobs).toMatchObject({ uploaded: SMALL_FILES + 2, skipped: 2 });
      const puts = store.chunkPuts;
      const stored = store.stats.chunks;

      const again = await importTree(directories, tree, { blobs });
      expect(again.digest.equals(first.digest)).toBe(true);
      expect(blobs.sent).toBe(SMALL_FILES + 2);
      expect(store.chunkPuts).toBe(puts);
      expect(again.progress.blobs).toMatchObject({ uploaded: 0, uploadedBytes: 0, skipped: SMALL_FILES + 4 });

      const edited = noise(BIG, 5);
      edited[BIG >> 1] ^= 0xff;
      writeFileSync(join(tree, "big.bin"), edited);
      const third = await importTree(directories, tree, { blobs });
      expect(third.digest.equals(first.digest)).toBe(false);
      expect(blobs.sent).toBe(SMALL_FILES + 3);
      expect(third.progress.blobs).toMatchObject({ uploaded: 1, uploadedBytes: BIG });
      // the writer offers every chunk of the edited file; content-defined chunks: one changed byte changes
      // the chunk around it, at most its neighbour too, so the store gains one or two
      expect(store.chunkPuts - puts).toBeGreaterThan(10);
      expect(store.stats.chunks - stored).toBeGreaterThanOrEqual(1);
      expect(store.stats.chunks - stored).toBeLessThanOrEqual(2);
    } finally {
      writeFileSync(join(tree, "big.bin"), noise(BIG, 5));
      await directories.close();
    }
  });

  it("through castore serve: the second import receives no blob byte and says so; a changed file sends just that file", async () => {
    const port = await getFreePort();
    const metricsUrl = `http://127.0.0.1:${port}/metrics`;
    const server = await startCastoreServe(CASTORE_CLI, [
      "--listen",
      "127.0.0.1:0",
      "--store",
      "memory://",
      "--metrics-listen",
      `127.0.0.1:${port}`,
    ]);
    const received = () => scrapeMetric(metricsUrl, "castore_blob_received_bytes_total");
    try {
      const first = await runCastore(CASTORE_CLI, ["import", tree, "--store", server.url, "--no-progress"]);
      expect(first.code, first.stderr.toString()).toBe(0);
      const afterFirst = await received();
      expect(afterFirst).toBeGreaterThanOrEqual(BIG);

      const second = await runCastore(CASTORE_CLI, ["import", tree, "--store", server.url, "--no-progress"]);
      expect(second.code, second.stderr.toString()).toBe(0);
      expect(second.stdout.toString()).toBe(first.stdout.toString());
      expect(second.stderr.toString()).toMatch(/no blob uploaded, 304 files already stored/);
      expect(await received()).toBe(afterFirst);

      writeFileSync(join(tree, "small", "f7"), "changed\n");
      const third = await runCastore(CASTORE_CLI, ["import", tree, "--store", server.url, "--no-progress"]);
      expect(third.code, third.stderr.toString()).toBe(0);
      expect(third.stderr.toString()).toMatch(/1 blob uploaded \(8 B\)/);
      expect(await received()).toBe(afterFirst + "changed\n".length);
    } finally {
      writeFileSync(join(tree, "small", "f7"), "small file 7\n");
      expect(await server.stop()).toBe(0);
    }
  });
});
