/**
 * LMDB backend benchmark, against the memory backend in the same run:
 * ingest (one upload) and getRecursive of a 100 000-directory tree, single
 * gets, the space the file takes, and the experiment behind "no
 * compression" (lmdb-js's LZ4 on the same canonical bytes).
 *
 *   pnpm bench lmdb      (root; in packages/bench: node dist/lmdb.js)
 *   CASTORE_BENCH_DIRECTORIES=20000 CASTORE_BENCH_ROUNDS=2 … for a quick run
 *
 * Stores live in the OS temp directory: what it sits on (tmpfs or a disk)
 * decides what a durable commit costs. Results go to bench-results.json
 * through the shared writer.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LmdbDirectoryService, type LmdbDirectoryServiceOptions } from "@castore-ts/backend-lmdb";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { generateTree } from "@castore-ts/conformance";
import { type DirectoryService, encodeDirectory } from "@castore-ts/core";
import { open } from "lmdb";
import { type BenchResult, benchResult, recordBenchResults } from "./results.js";

const COUNT = Number(process.env.CASTORE_BENCH_DIRECTORIES ?? 100_000);
const ROUNDS = Number(process.env.CASTORE_BENCH_ROUNDS ?? 5);
const SINGLE_GETS = Math.min(COUNT, 20_000);
const label = COUNT === 100_000 ? "100k" : String(COUNT);

const tree = generateTree({ directories: COUNT, seed: 6 });
const encoded = tree.directories.map(encodeDirectory);
console.log(
  `tree: ${COUNT} directories, ${(tree.encodedBytes / 2 ** 20).toFixed(1)} MiB canonical ` +
    `(mean ${(tree.encodedBytes / COUNT).toFixed(0)} bytes); ${ROUNDS} rounds, best kept; stores in ${tmpdir()}`,
);

interface Opened {
  service: DirectoryService;
  dispose(): Promise<void>;
}

function openMemory(): Promise<Opened> {
  const service = new MemoryDirectoryService();
  return Promise.resolve({ service, dispose: () => service.close() });
}

function lmdbOpener(opts: LmdbDirectoryServiceOptions = {}) {
  return async (): Promise<Opened & { service: LmdbDirectoryService }> => {
    const dir = mkdtempSync(join(tmpdir(), "castore-lmdb-bench-"));
    const service = await LmdbDirectoryService.open(join(dir, "store"), opts);
    return {
      service,
      dispose: async () => {
        await service.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
}

async function ingest(service: DirectoryService): Promise<number> {
  const start = performance.now();
  const putter = service.putMultipleStart();
  for (const d of tree.directories) await putter.put(d);
  const root = await putter.close();
  if (!root.equals(tree.root)) throw new Error(`ingest returned ${root}, expected ${tree.root}`);
  return (performance.now() - start) / 1000;
}

async function walk(service: DirectoryService): Promise<number> {
  const start = performance.now();
  let n = 0;
  for await (const _ of service.getRecursive(tree.root)) n++;
  if (n !== COUNT) throw new Error(`getRecursive yielded ${n} directories, expected ${COUNT}`);
  return (performance.now() - start) / 1000;
}

async function singleGets(service: DirectoryService): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < SINGLE_GETS; i++) {
    const digest = tree.digests[(i * 7919) % COUNT];
    if (!(await service.get(digest))) throw new Error(`get(${digest}) found nothing`);
  }
  return (performance.now() - start) / 1000;
}

interface Rates {
  ingest: number;
  walk: number;
  get: number;
}

/** Best rates over the rounds: a fresh store per round, ingested once, then walked and read. */
async function measure(openStore: () => Promise<Opened>, round: Rates): Promise<void> {
  const { service, dispose } = await openStore();
  try {
    round.ingest = Math.max(round.ingest, COUNT / (await ingest(service)));
    for (let i = 0; i < 2; i++) round.walk = Math.max(round.walk, COUNT / (await walk(service)));
    round.get = Math.max(round.get, SINGLE_GETS / (await singleGets(service)));
  } finally {
    await dispose();
  }
}

const zero = (): Rates => ({ ingest: 0, walk: 0, get: 0 });
const memory = zero();
const lmdb = zero();
const lmdbNoSync = zero();
// One unrecorded round of each warms up the JIT; then rounds interleave so drift hits both alike.
await measure(openMemory, zero());
await measure(lmdbOpener(), zero());
for (let r = 0; r < ROUNDS; r++) {
  await measure(openMemory, memory);
  await measure(lmdbOpener(), lmdb);
  await measure(lmdbOpener({ noSync: true }), lmdbNoSync);
}

/** Pages of a database's B-tree (branch, leaf, overflow) × page size. */
function bytesInUse(db: { getStats(): object }): number {
  const s = db.getStats() as {
    treeBranchPageCount: number;
    treeLeafPageCount: number;
    overflowPages: number;
    pageSize: number;
  };
  return (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages) * s.pageSize;
}

// Space: pages in use × page size, against the canonical bytes stored.
let storedBytes: number;
{
  const { service, dispose } = await lmdbOpener()();
  await ingest(service);
  storedBytes = bytesInUse(service.store.directories);
  await dispose();
}

/**
 * The compression question, asked of the engine alone: the same canonical
 * bytes written into one transaction with and without lmdb-js's LZ4
 * (threshold 32 bytes, so nearly every directory is compressed; the default
 * threshold of 1000 bytes would leave almost all of them alone).
 */
async function rawWrite(compression: false | { threshold: number }): Promise<{ seconds: number; bytes: number }> {
  const dir = mkdtempSync(join(tmpdir(), "castore-lmdb-bench-lz4-"));
  const env = open<Uint8Array, Uint8Array>({
    path: join(dir, "env"),
    keyEncoding: "binary",
    encoding: "binary",
    ...(compression ? { compression } : {}),
  });
  try {
    const db = env.openDB<Uint8Array, Uint8Array>("directories", { keyEncoding: "binary", encoding: "binary" });
    const start = performance.now();
    db.transactionSync(() => {
      for (let i = 0; i < COUNT; i++) db.putSync(tree.digests[i].bytes, encoded[i], { noOverwrite: true });
    });
    const seconds = (performance.now() - start) / 1000;
    for (let i = 0; i < COUNT; i += 997) {
      const back = db.getBinary(tree.digests[i].bytes);
      if (!back || Buffer.compare(back, encoded[i]) !== 0) throw new Error("LZ4 round trip failed");
    }
    return { seconds, bytes: bytesInUse(db) };
  } finally {
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
let plain = { seconds: Infinity, bytes: 0 };
let lz4 = { seconds: Infinity, bytes: 0 };
for (let r = 0; r < ROUNDS; r++) {
  const p = await rawWrite(false);
  const c = await rawWrite({ threshold: 32 });
  if (p.seconds < plain.seconds) plain = p;
  if (c.seconds < lz4.seconds) lz4 = c;
}

const MiB = 2 ** 20;
const results: BenchResult[] = [
  benchResult(
    `lmdb: ingest ${label} directories (one upload, durable) vs memory`,
    lmdb.ingest,
    "directories/s",
    memory.ingest,
  ),
  benchResult(`lmdb: getRecursive ${label} directories vs memory`, lmdb.walk, "directories/s", memory.walk),
  benchResult(`lmdb: single get() of a ${label} store vs memory`, lmdb.get, "directories/s", memory.get),
  benchResult(
    `lmdb: ingest ${label} directories with noSync vs memory`,
    lmdbNoSync.ingest,
    "directories/s",
    memory.ingest,
  ),
  benchResult(
    `lmdb: space used by ${label} directories vs their canonical bytes`,
    storedBytes / MiB,
    "MiB",
    tree.encodedBytes / MiB,
  ),
  benchResult(
    `lmdb: LZ4 compression (threshold 32): space vs uncompressed, ${label} directories`,
    lz4.bytes / MiB,
    "MiB",
    plain.bytes / MiB,
  ),
  benchResult(
    `lmdb: LZ4 compression (threshold 32): raw write rate vs uncompressed, ${label} directories`,
    COUNT / lz4.seconds,
    "directories/s",
    COUNT / plain.seconds,
  ),
];
const file = recordBenchResults(results);
for (const r of results) {
  const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2));
  console.log(
    `${r.name}: ${fmt(r.value)} ${r.unit}` +
      (r.ratio === null ? "" : ` (baseline ${fmt(r.baseline!)}, ratio ${r.ratio.toFixed(3)})`),
  );
}
console.log(`recorded in ${file}`);
