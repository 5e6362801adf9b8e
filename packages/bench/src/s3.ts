/**
 * S3 backend benchmark, against a naive one-object-per-directory layout in
 * the same run and on the same server: ingest and getRecursive of a
 * 10 000-directory tree (requests per operation, directories per second),
 * single gets, getRecursive of a non-root directory, and the experiment
 * behind "no compression" of closure objects.
 *
 *   pnpm bench s3       (root; in packages/bench: node dist/s3.js)
 *   CASTORE_BENCH_DIRECTORIES=2000 CASTORE_BENCH_ROUNDS=1 … for a quick run
 *
 * The server is @castore-ts/testing's startS3TestServer (the castore-test/s3
 * container when Docker is up, else s3rver in process, or
 * $CASTORE_TEST_S3_URL). Requests are counted by a middleware on each
 * client. Results go to bench-results.json through the shared writer
 * (src/results.ts).
 */
import { randomUUID } from "node:crypto";
import { brotliCompressSync, brotliDecompressSync, constants as zlib, gunzipSync, gzipSync } from "node:zlib";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { CLOSURE_MAGIC, layoutClosure, RequestCounter, S3DirectoryService } from "@castore-ts/backend-s3";
import { generateTree } from "@castore-ts/conformance";
import { ClosureValidator, Digest, type Directory, decodeStoredDirectory, encodeDirectory } from "@castore-ts/core";
import { startS3TestServer } from "@castore-ts/testing";
import { type BenchResult, recordBenchResults } from "./results.js";

const COUNT = Number(process.env.CASTORE_BENCH_DIRECTORIES ?? 10_000);
const ROUNDS = Number(process.env.CASTORE_BENCH_ROUNDS ?? 3);
const CONCURRENCY = 32;
const SINGLE_GETS = Math.min(COUNT, 500);
const label = COUNT === 10_000 ? "10k" : String(COUNT);

const tree = generateTree({ directories: COUNT, seed: 8 });
const encoded = tree.directories.map(encodeDirectory);

const server = await startS3TestServer();
const bucket = await server.createBucket();
console.log(
  `tree: ${COUNT} directories, ${(tree.encodedBytes / 2 ** 20).toFixed(2)} MiB canonical; ` +
    `S3 server: ${server.kind}${server.image ? ` (${server.image})` : ""} at ${server.endpoint}; ${ROUNDS} rounds, best kept`,
);

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const seconds = (start: number) => (performance.now() - start) / 1000;

// ---- the naive layout: one object per directory ----

class NaiveLayout {
  readonly client = new S3Client(server.clientConfig());
  readonly counter = RequestCounter.attach(this.client);
  constructor(readonly prefix: string) {}

  key(d: Digest): string {
    return `${this.prefix}${d.hex}`;
  }

  async ingest(): Promise<void> {
    const indexes = tree.directories.map((_, i) => i);
    await pool(indexes, CONCURRENCY, async (i) => {
      await this.client.send(
        new PutObjectCommand({ Bucket: bucket, Key: this.key(tree.digests[i]), Body: encoded[i] }),
      );
    });
  }

  async get(d: Digest): Promise<Directory> {
    const res = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: this.key(d) }));
    return decodeStoredDirectory(d, await res.Body!.transformToByteArray());
  }

  /** Breadth first, one level at a time, each level's GETs `CONCURRENCY` at a time. */
  async walk(root: Digest): Promise<{ count: number; levels: number }> {
    const seen = new Set([root.hex]);
    let level = [root];
    let count = 0;
    let levels = 0;
    while (level.length > 0) {
      levels++;
      const next: Digest[] = [];
      const got: Directory[] = new Array(level.length);
      await pool(
        level.map((d, i) => ({ d, i })),
        CONCURRENCY,
        async ({ d, i }) => {
          got[i] = await this.get(d);
        },
      );
      for (const directory of got) {
        count++;
        for (const child of directory.directories) {
          const c = Digest.fromBytes(child.digest);
          if (!seen.has(c.hex)) {
            seen.add(c.hex);
            next.push(c);
          }
        }
      }
      level = next;
    }
    return { count, levels };
  }
}

// ---- measurements ----

interface Measured {
  ingestRate: number;
  ingestRequests: number;
  walkRate: number;
  walkRequests: number;
  getRate: number;
  getRequests: number;
  subWalkRequests: number;
}

const best = (): Measured => ({
  ingestRate: 0,
  ingestRequests: 0,
  walkRate: 0,
  walkRequests: 0,
  getRate: 0,
  getRequests: 0,
  subWalkRequests: 0,
});

// A non-root directory with a sizeable subtree: the largest child of the root.
const childSizes = new Map<string, number>();
tree.directories.forEach((d, i) => {
  let n = 1;
  for (const c of d.directories) n += childSizes.get(Buffer.from(c.digest).toString("hex"))!;
  childSizes.set(tree.digests[i].hex, n);
});
const rootDirectory = tree.directories[COUNT - 1];
const subRoot = rootDirectory.directories
  .map((c) => Digest.fromBytes(c.digest))
  .sort((a, b) => childSizes.get(b.hex)! - childSizes.get(a.hex)!)[0];
const subSize = subRoot ? childSizes.get(subRoot.hex)! : 0;

/** One layout under test: the same four operations, each returning its time in seconds. */
interface Layout {
  name: string;
  counter: RequestCounter;
  ingest(): Promise<void>;
  walk(root: Digest): Promise<number>;
  get(d: Digest): Promise<unknown>;
  close(): Promise<void>;
}

function openOurs(): Layout {
  const service = new S3DirectoryService({
    bucket,
    prefix: `bench-${randomUUID()}/`,
    clientConfig: server.clientConfig(),
    concurrency: CONCURRENCY,
  });
  return {
    name: "closure layout",
    counter: RequestCounter.attach(service.client),
    async ingest() {
      const putter = service.putMultipleStart();
      for (const d of tree.directories) await putter.put(d);
      const root = await putter.close();
      if (!root.equals(tree.root)) throw new Error(`upload returned ${root}, expected ${tree.root}`);
    },
    async walk(root) {
      let n = 0;
      for await (const _ of service.getRecursive(root)) n++;
      return n;
    },
    get: (d) => service.get(d),
    close: () => service.close(),
  };
}

function openNaive(): Layout {
  const naive = new NaiveLayout(`naive-${randomUUID()}/`);
  return {
    name: "naive layout",
    counter: naive.counter,
    ingest: () => naive.ingest(),
    walk: async (root) => (await naive.walk(root)).count,
    get: (d) => naive.get(d),
    close: async () => naive.client.destroy(),
  };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return seconds(start);
}

/** One round: both layouts on fresh prefixes, each phase alternating between them so load drift hits both alike. */
async function round(ours: Measured, naive: Measured, oursFirst: boolean): Promise<void> {
  const layouts: [Layout, Measured][] = [
    [openOurs(), ours],
    [openNaive(), naive],
  ];
  if (!oursFirst) layouts.reverse();
  try {
    for (const [layout, out] of layouts) {
      const t = await timed(() => layout.ingest());
      out.ingestRate = Math.max(out.ingestRate, COUNT / t);
      out.ingestRequests = layout.counter.take().total;
      console.log(`  ${layout.name} ingest: ${t.toFixed(1)} s, ${out.ingestRequests} requests`);
    }
    for (let i = 0; i < 2; i++) {
      for (const [layout, out] of layouts) {
        let n = 0;
        const t = await timed(async () => (n = await layout.walk(tree.root)));
        if (n !== COUNT) throw new Error(`getRecursive yielded ${n}, expected ${COUNT}`);
        out.walkRate = Math.max(out.walkRate, COUNT / t);
        out.walkRequests = layout.counter.take().total;
        console.log(`  ${layout.name} getRecursive: ${t.toFixed(2)} s, ${out.walkRequests} requests`);
      }
    }
    const batch = 50;
    const getTime = new Map<Layout, number>();
    for (let b = 0; b < SINGLE_GETS; b += batch) {
      for (const [layout] of layouts) {
        const t = await timed(async () => {
          for (let i = b; i < b + batch; i++) {
            if (!(await layout.get(tree.digests[(i * 7919) % COUNT]))) throw new Error("get found nothing");
          }
        });
        getTime.set(layout, (getTime.get(layout) ?? 0) + t);
      }
    }
    for (const [layout, out] of layouts) {
      out.getRate = Math.max(out.getRate, SINGLE_GETS / getTime.get(layout)!);
      out.getRequests = layout.counter.take().total / SINGLE_GETS;
      if (subRoot) {
        const n = await layout.walk(subRoot);
        if (n !== subSize) throw new Error(`getRecursive(sub) yielded ${n}, expected ${subSize}`);
        out.subWalkRequests = layout.counter.take().total;
      }
    }
  } finally {
    for (const [layout] of layouts) await layout.close();
  }
}

const ours = best();
const naive = best();
for (let r = 0; r < ROUNDS; r++) {
  console.log(`round ${r + 1} of ${ROUNDS}`);
  await round(ours, naive, r % 2 === 0); // who goes first alternates
}

// ---- compression of the closure object ----

const validator = new ClosureValidator();
for (const d of tree.directories) validator.add(d);
const closure = validator.finish();
const { body } = layoutClosure(closure.entries, closure.root);

function bestMs(fn: () => unknown, rounds = 5): number {
  let bestTime = Infinity;
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    fn();
    bestTime = Math.min(bestTime, performance.now() - start);
  }
  return bestTime;
}

const brotliOpts = (quality: number) => ({
  params: { [zlib.BROTLI_PARAM_QUALITY]: quality, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length },
});
const codecs = [
  {
    name: "gzip-6",
    compress: (b: Uint8Array) => gzipSync(b, { level: 6 }),
    decompress: (b: Uint8Array) => gunzipSync(b),
  },
  {
    name: "brotli-5",
    compress: (b: Uint8Array) => brotliCompressSync(b, brotliOpts(5)),
    decompress: (b: Uint8Array) => brotliDecompressSync(b),
  },
  {
    name: "brotli-9",
    compress: (b: Uint8Array) => brotliCompressSync(b, brotliOpts(9)),
    decompress: (b: Uint8Array) => brotliDecompressSync(b),
  },
].map((c) => {
  const packed = c.compress(body);
  return {
    ...c,
    size: packed.length,
    packed,
    compressMs: bestMs(() => c.compress(body), 3),
    decompressMs: bestMs(() => c.decompress(packed)),
  };
});
// The candidate: the cheapest codec within 2% of the smallest output.
const smallest = Math.min(...codecs.map((c) => c.size));
const bestCodec = codecs
  .filter((c) => c.size <= smallest * 1.02)
  .reduce((a, b) => (b.compressMs < a.compressMs ? b : a));
// Per-frame compression would keep ranged reads possible; small frames compress poorly.
// The frames' length prefixes are what the body holds besides the header and the directories.
let perFrame = body.length - CLOSURE_MAGIC.length;
for (const e of closure.entries) perFrame += brotliCompressSync(e.bytes, brotliOpts(5)).length - e.bytes.length;

// End to end over the server: GET the raw object and parse vs GET the compressed one, decompress and parse.
const probe = new S3Client(server.clientConfig());
const rawKey = `compress-${randomUUID()}/raw`;
const packedKey = `compress-${randomUUID()}/${bestCodec.name}`;
await probe.send(new PutObjectCommand({ Bucket: bucket, Key: rawKey, Body: body }));
await probe.send(new PutObjectCommand({ Bucket: bucket, Key: packedKey, Body: bestCodec.packed }));
async function getMs(key: string, decompress?: (b: Uint8Array) => Uint8Array): Promise<number> {
  let bestTime = Infinity;
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    const res = await probe.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    let bytes = await res.Body!.transformToByteArray();
    if (decompress) bytes = decompress(bytes);
    if (bytes.length !== body.length) throw new Error(`${key}: ${bytes.length} bytes, expected ${body.length}`);
    bestTime = Math.min(bestTime, performance.now() - start);
  }
  return bestTime;
}
const rawGetMs = await getMs(rawKey);
const packedGetMs = await getMs(packedKey, bestCodec.decompress);
probe.destroy();
await server.stop();

const saved = body.length - bestCodec.size;
// Compression pays on a read when the transfer time it saves exceeds the decompression time: below this bandwidth.
const breakEvenMBps = saved / 1e6 / (bestCodec.decompressMs / 1000);
const LINK_MBPS = 50; // a typical single-stream S3 transfer rate
const savedAtLinkMs = (saved / (LINK_MBPS * 1e6)) * 1000;
const pct = (n: number) => `${((100 * n) / body.length).toFixed(0)}%`;

const sizes = `closure object ${(body.length / 1024).toFixed(0)} KiB; ${codecs
  .map(
    (c) =>
      `${c.name} ${(c.size / 1024).toFixed(0)} KiB (${pct(c.size)}, ` +
      `compress ${c.compressMs.toFixed(1)} ms, decompress ${c.decompressMs.toFixed(1)} ms)`,
  )
  .join("; ")}; per-frame brotli-5 ${(perFrame / 1024).toFixed(0)} KiB (${pct(perFrame)})`;
const decision =
  `decision: no compression — ${bestCodec.name} saves ${pct(saved)} of the bytes (the 32-byte digests do not compress); ` +
  `on a ${LINK_MBPS} MB/s link a whole-closure read would save ${savedAtLinkMs.toFixed(1)} ms of transfer for ` +
  `${bestCodec.decompressMs.toFixed(1)} ms of decompression (break-even ${breakEvenMBps.toFixed(0)} MB/s), small next to ` +
  `S3's 20–50 ms to first byte; every upload would pay ${bestCodec.compressMs.toFixed(0)} ms of compression; and a ` +
  `compressed object cannot serve a sub-closure by a ranged GET (per-frame compression keeps ranges but saves ` +
  `nothing: ${pct(perFrame)}); GET over loopback: raw ${rawGetMs.toFixed(1)} ms vs ${bestCodec.name} + decompress ` +
  `${packedGetMs.toFixed(1)} ms`;
console.log(sizes);
console.log(decision);

const where = `${server.kind} S3 server${server.image ? ` ${server.image}` : ""} on loopback, ${CONCURRENCY} requests in flight`;
const results: BenchResult[] = [
  {
    name: `s3: ingest ${label}-directory tree, requests (closure object + index objects vs one object per directory)`,
    value: ours.ingestRequests,
    unit: "requests",
    baseline: naive.ingestRequests,
    ratio: ours.ingestRequests / naive.ingestRequests,
    notes: `N + 1 with N = ${COUNT}; the naive layout writes in no particular order (no invariant)`,
  },
  {
    name: `s3: ingest ${label}-directory tree vs one object per directory`,
    value: ours.ingestRate,
    unit: "directories/s",
    baseline: naive.ingestRate,
    ratio: ours.ingestRate / naive.ingestRate,
    notes: `${where}; index objects written children before parents`,
  },
  {
    name: `s3: getRecursive ${label}-directory tree, requests`,
    value: ours.walkRequests,
    unit: "requests",
    baseline: naive.walkRequests,
    ratio: ours.walkRequests / naive.walkRequests,
    notes: "index GET + one streamed ranged GET vs one GET per directory (breadth first)",
  },
  {
    name: `s3: getRecursive ${label}-directory tree vs one object per directory`,
    value: ours.walkRate,
    unit: "directories/s",
    baseline: naive.walkRate,
    ratio: ours.walkRate / naive.walkRate,
    notes: `${where}; naive: one level at a time, each level's GETs in parallel`,
  },
  {
    name: `s3: getRecursive of a ${subSize}-directory subtree (non-root), requests`,
    value: ours.subWalkRequests,
    unit: "requests",
    baseline: naive.subWalkRequests,
    ratio: ours.subWalkRequests / naive.subWalkRequests,
    notes: "index GET + one ranged GET of the subtree's span",
  },
  {
    name: "s3: get of a single directory (root or not)",
    value: ours.getRate,
    unit: "gets/s",
    baseline: naive.getRate,
    ratio: ours.getRate / naive.getRate,
    notes: `${ours.getRequests} vs ${naive.getRequests} requests per get, sequential; ${where}`,
  },
  {
    name: `s3: closure object size with ${bestCodec.name} (not used)`,
    value: bestCodec.size,
    unit: "bytes",
    baseline: body.length,
    ratio: bestCodec.size / body.length,
    notes: `${sizes}. ${decision}`,
  },
];
recordBenchResults(results);
