/**
 * Blob benchmark (spec §8): write and read of one large blob per backend,
 * each against bare BLAKE3 hashing of the same bytes in the same run;
 * FastCDC chunking alone against bare hashing; the ceiling of a write on one
 * core (chunking, hashing each chunk and hashing the blob, storing nothing)
 * against bare hashing; and the dedup measure (a file stored again with one
 * byte inserted at its middle: new bytes stored over the file's size).
 * Run: pnpm bench blobs (root), or node dist/blobs.js here.
 *
 * CASTORE_BENCH_BLOB_MIB sets the blob size (default 1024), and
 * CASTORE_BENCH_BLOB_STORES the store URLs (default memory://, an lmdb
 * store in a temporary directory, "grpc": a gRPC server in this process over
 * loopback, in front of memory blobs, and "serve": `castore serve --store
 * memory://` in a process of its own over loopback; both compared with
 * memory in process).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDirectoryServiceServer } from "@castore-ts/backend-grpc";
import { startCastoreServe } from "@castore-ts/testing";
import "@castore-ts/backend-lmdb";
import "@castore-ts/backend-postgres";
import "@castore-ts/backend-s3";
import { MemoryBlobService, MemoryDirectoryService } from "@castore-ts/backend-memory";
import {
  type BlobService,
  createBlake3Hasher,
  Digest,
  FastCdcChunker,
  knownBlobSchemes,
  openBlobService,
  redactUrl,
} from "@castore-ts/core";
import { CASTORE_BIN } from "./castore-bin.js";
import { NOISE_PIECE_BYTES, noisePieces } from "./noise.js";
import { type BenchResult, recordBenchResults } from "./results.js";
import { loadAverage, timeSeconds } from "./timing.js";

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.CASTORE_BENCH_BLOB_MIB ?? 1024);
const PIECE = NOISE_PIECE_BYTES;

const pieces = noisePieces();
const count = SIZE_MIB / 4;
const mib = (s: number) => SIZE_MIB / s;

async function bareHash(): Promise<number> {
  return timeSeconds(async () => {
    const h = createBlake3Hasher();
    for (let i = 0; i < count; i++) h.update(pieces(i));
    h.digest();
  });
}

async function chunkOnly(): Promise<number> {
  return timeSeconds(async () => {
    const chunker = new FastCdcChunker();
    let n = 0;
    for (let i = 0; i < count; i++) n += chunker.push(pieces(i)).length;
    n += chunker.finish().length;
    if (n === 0) throw new Error("no chunks");
  });
}

/**
 * What a write costs on one core before any store: FastCDC, BLAKE3 of each
 * chunk and BLAKE3 of the whole blob, as ChunkedBlobWriter does them.
 */
async function chunkAndHash(): Promise<number> {
  return timeSeconds(async () => {
    const blob = createBlake3Hasher();
    const chunker = new FastCdcChunker();
    let n = 0;
    for (let i = 0; i < count; i++) {
      const piece = pieces(i);
      blob.update(piece);
      for (const chunk of chunker.push(piece)) n += Digest.of(chunk).bytes.length;
    }
    for (const chunk of chunker.finish()) n += Digest.of(chunk).bytes.length;
    blob.digest();
    if (n === 0) throw new Error("no chunks");
  });
}

async function writeRead(service: BlobService): Promise<{ write: number; read: number }> {
  let digest;
  const write = await timeSeconds(async () => {
    const writer = service.openWriter();
    for (let i = 0; i < count; i++) await writer.write(pieces(i));
    digest = (await writer.close()).digest;
  });
  const read = await timeSeconds(async () => {
    const stream = await service.read(digest!);
    let total = 0;
    for await (const part of stream!) total += part.length;
    if (total !== SIZE_MIB * MiB) throw new Error(`read ${total} bytes`);
  });
  return { write, read };
}

/** A 256 MiB file, stored; then again with one byte inserted at its middle: the new bytes stored, over its size. */
async function dedup(): Promise<{ ratio: number; newBytes: number; chunks: number }> {
  const size = 256 * MiB;
  const file = new Uint8Array(size);
  for (let at = 0, i = 0; at < size; at += PIECE, i++) file.set(pieces(1000 + i), at);
  const edited = new Uint8Array(size + 1);
  edited.set(file.subarray(0, size / 2));
  edited[size / 2] = 42;
  edited.set(file.subarray(size / 2), size / 2 + 1);
  const service = new MemoryBlobService();
  const store = async (bytes: Uint8Array) => {
    const writer = service.openWriter();
    await writer.write(bytes);
    await writer.close();
  };
  await store(file);
  const before = service.store.stats;
  await store(edited);
  const after = service.store.stats;
  const newBytes = after.bytes - before.bytes;
  return { ratio: newBytes / size, newBytes, chunks: after.chunks - before.chunks };
}

const results: BenchResult[] = [];
const bare = await bareHash();
console.log(`bare BLAKE3: ${mib(bare).toFixed(0)} MiB/s over ${SIZE_MIB} MiB`);
const chunking = await chunkOnly();
console.log(`FastCDC alone: ${mib(chunking).toFixed(0)} MiB/s`);
results.push({
  name: "blobs: FastCDC chunking vs bare BLAKE3",
  value: mib(chunking),
  unit: "MiB/s",
  baseline: mib(bare),
  ratio: bare / chunking,
  notes: `${SIZE_MIB} MiB in 4 MiB pieces, snix's 128/256/512 KiB`,
});
const ceiling = await chunkAndHash();
console.log(`chunk + hash chunks + hash blob, no store: ${mib(ceiling).toFixed(0)} MiB/s`);
results.push({
  name: "blobs: chunk + hash each chunk + hash the blob, no store, vs bare BLAKE3",
  value: mib(ceiling),
  unit: "MiB/s",
  baseline: mib(bare),
  ratio: bare / ceiling,
  notes: `a write's work on one core before any store (the ceiling of every write row); ${SIZE_MIB} MiB in 4 MiB pieces; load average ${loadAverage()}`,
});

const dir = mkdtempSync(join(tmpdir(), "castore-bench-blobs-"));
const urls = (process.env.CASTORE_BENCH_BLOB_STORES ?? `memory://,lmdb://${join(dir, "lmdb")},grpc,serve`)
  .split(",")
  .filter(Boolean);
try {
  const inProcess: Record<string, number> = {};
  for (const url of urls) {
    if (url === "grpc") {
      const server = createDirectoryServiceServer(new MemoryDirectoryService(), {
        listen: { host: "127.0.0.1", port: 0 },
        blobs: new MemoryBlobService(),
      });
      await server.listen();
      const client = await openBlobService(server.url!);
      try {
        const { write, read } = await writeRead(client);
        console.log(
          `grpc (loopback → memory): write ${mib(write).toFixed(0)} MiB/s, read ${mib(read).toFixed(0)} MiB/s`,
        );
        for (const [what, s] of [
          ["write", write],
          ["read", read],
        ] as const) {
          const local = inProcess[what];
          results.push({
            name: `blobs: grpc loopback ${what} of ${SIZE_MIB} MiB vs memory in process`,
            value: mib(s),
            unit: "MiB/s",
            baseline: local ?? null,
            ratio: local ? mib(s) / local : null,
            notes: `castore's gRPC client and server in one process, memory blobs behind the server; load average ${loadAverage()}`,
          });
        }
      } finally {
        await client.close();
        await server.close({ deadlineMs: 5_000 });
      }
      continue;
    }
    if (url === "serve") {
      const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
      const client = await openBlobService(server.url);
      try {
        const { write, read } = await writeRead(client);
        console.log(
          `castore serve (own process, loopback → memory): write ${mib(write).toFixed(0)} MiB/s, read ${mib(read).toFixed(0)} MiB/s`,
        );
        for (const [what, s] of [
          ["write", write],
          ["read", read],
        ] as const) {
          const local = inProcess[what];
          results.push({
            name: `blobs: grpc loopback to castore serve ${what} of ${SIZE_MIB} MiB vs memory in process`,
            value: mib(s),
            unit: "MiB/s",
            baseline: local ?? null,
            ratio: local ? mib(s) / local : null,
            notes: `castore's gRPC client here, \`castore serve --store memory://\` in a process of its own (2 cores); load average ${loadAverage()}`,
          });
        }
      } finally {
        await client.close();
        await server.stop();
      }
      continue;
    }
    const scheme = url.slice(0, url.indexOf(":"));
    if (!knownBlobSchemes().includes(scheme)) {
      console.log(`${redactUrl(url)}: no blob store registered for ${scheme}: skipped`);
      continue;
    }
    const service = await openBlobService(url);
    try {
      const { write, read } = await writeRead(service);
      console.log(`${scheme}: write ${mib(write).toFixed(0)} MiB/s, read ${mib(read).toFixed(0)} MiB/s`);
      if (scheme === "memory") Object.assign(inProcess, { write: mib(write), read: mib(read) });
      for (const [what, s] of [
        ["write", write],
        ["read", read],
      ] as const) {
        results.push({
          name: `blobs: ${scheme} ${what} of ${SIZE_MIB} MiB vs bare BLAKE3`,
          value: mib(s),
          unit: "MiB/s",
          baseline: mib(bare),
          ratio: bare / s,
          notes: `one blob in 4 MiB pieces; ${what === "read" ? "every chunk re-hashed, and the whole blob" : "chunked, hashed, stored"}; load average ${loadAverage()}`,
        });
      }
    } finally {
      await service.close();
    }
  }
  const d = await dedup();
  console.log(`dedup: ${(d.ratio * 100).toFixed(3)} % new bytes (${d.chunks} new chunks)`);
  results.push({
    name: "blobs: dedup, 256 MiB file with 1 byte inserted at its middle: new bytes / file size",
    value: d.ratio,
    unit: "fraction",
    baseline: null,
    ratio: null,
    notes: `${d.newBytes} new bytes in ${d.chunks} new chunks`,
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`wrote ${recordBenchResults(results)}`);
