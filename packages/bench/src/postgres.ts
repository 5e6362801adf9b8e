/**
 * PostgreSQL backend benchmark, against bare PostgreSQL in the same run on
 * the same server:
 * - ingest: one upload of a 100 000-directory tree through the service
 *   (validation and closure checks in core; the default "auto" method streams
 *   the checked rows into a COPY while core checks the rest), against a bare
 *   binary COPY of the same (digest, bytes) rows into an identical fresh
 *   table; also the same upload stored only at close ("copy"), and the
 *   store's part alone (putClosure of the checked closure) per method;
 * - getRecursive of the tree: directories per second and queries (round
 *   trips: 1, the recursive query), against one bare `SELECT digest, bytes`
 *   of every row.
 *
 *   pnpm bench postgres      (root; in packages/bench: node dist/postgres.js)
 *   CASTORE_BENCH_DIRECTORIES=20000 CASTORE_BENCH_ROUNDS=2 … for a quick run
 *
 * The server comes from @castore-ts/testing (a container of the locally built
 * image, or $CASTORE_TEST_POSTGRES_URL): fsync off, so this measures castore
 * and PostgreSQL's CPU work, not the disk. Rounds alternate bare and castore,
 * each on fresh tables, and the best round of each is kept.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PostgresDirectoryService, type UploadMethod } from "@castore-ts/backend-postgres";
import { generateTree } from "@castore-ts/conformance";
import { type ClosureEntry, Digest, encodeDirectory } from "@castore-ts/core";
import { startPostgresTestServer } from "@castore-ts/testing";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { type BenchResult, recordBenchResults } from "./results.js";

const COUNT = Number(process.env.CASTORE_BENCH_DIRECTORIES ?? 100_000);
const ROUNDS = Number(process.env.CASTORE_BENCH_ROUNDS ?? 3);
const label = COUNT === 100_000 ? "100k" : String(COUNT);

const tree = generateTree({ directories: COUNT, seed: 6 });
const entries: ClosureEntry[] = tree.directories.map((directory) => {
  const bytes = encodeDirectory(directory);
  return { digest: Digest.of(bytes), bytes, directory };
});
console.log(
  `tree: ${COUNT} directories, ${(tree.encodedBytes / 2 ** 20).toFixed(1)} MiB canonical ` +
    `(mean ${(tree.encodedBytes / COUNT).toFixed(0)} bytes); ${ROUNDS} rounds, best kept`,
);

const server = await startPostgresTestServer();
console.log(`server: ${server.kind} PostgreSQL at ${server.host}:${server.port}`);
const admin = new pg.Client({ connectionString: server.url });
await admin.connect();
let schemas = 0;

/** A service on a fresh schema, its tables created (so DDL is not timed). */
async function freshService(uploadMethod: UploadMethod = "auto"): Promise<PostgresDirectoryService> {
  const url = new URL(server.url);
  url.searchParams.set("schema", `bench_${process.pid}_${schemas++}`);
  const service = PostgresDirectoryService.open(url.href, { uploadMethod });
  await service.store.init();
  return service;
}

async function dropService(service: PostgresDirectoryService): Promise<void> {
  await service.close();
  await admin.query(`DROP SCHEMA "${service.store.schema}" CASCADE`);
}

/** The same rows as binary COPY data (header, (digest, bytes) tuples, trailer) in chunks of about 256 KiB. */
function copyData(): Buffer[] {
  const chunks: Buffer[] = [];
  let chunk = Buffer.allocUnsafe(256 * 1024);
  let at = chunk.write("PGCOPY\n\xff\r\n\0", 0, "latin1");
  at = chunk.writeInt32BE(0, at);
  at = chunk.writeInt32BE(0, at);
  for (const e of entries) {
    const need = 2 + 4 + 32 + 4 + e.bytes.length;
    if (at + need + 2 > chunk.length) {
      chunks.push(chunk.subarray(0, at));
      chunk = Buffer.allocUnsafe(Math.max(256 * 1024, need + 2));
      at = 0;
    }
    at = chunk.writeInt16BE(2, at);
    at = chunk.writeInt32BE(32, at);
    chunk.set(e.digest.bytes, at);
    at = chunk.writeInt32BE(e.bytes.length, at + 32);
    chunk.set(e.bytes, at);
    at += e.bytes.length;
  }
  at = chunk.writeInt16BE(-1, at);
  chunks.push(chunk.subarray(0, at));
  return chunks;
}

/** Bare PostgreSQL: COPY the rows (framed in the timed part) into a fresh table identical to castore's. */
async function bareCopy(): Promise<number> {
  const service = await freshService(); // its directories table is the identical one
  const table = `"${service.store.schema}".directories`;
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    const start = performance.now();
    const data = copyData();
    await pipeline(
      Readable.from(data),
      client.query(copyFrom(`COPY ${table} (digest, bytes) FROM STDIN (FORMAT binary)`)),
    );
    const seconds = (performance.now() - start) / 1000;
    const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${table}`);
    if (rows[0].n !== COUNT) throw new Error(`bare COPY stored ${rows[0].n} rows, expected ${COUNT}`);
    return seconds;
  } finally {
    await client.end();
    await dropService(service);
  }
}

/** castore: one upload through the service (validation, closure checks, sorting, the store's statements). */
async function ingest(method: UploadMethod = "auto"): Promise<number> {
  const service = await freshService(method);
  try {
    const start = performance.now();
    const putter = service.putMultipleStart();
    for (const d of tree.directories) await putter.put(d);
    const root = await putter.close();
    const seconds = (performance.now() - start) / 1000;
    if (!root.equals(tree.root)) throw new Error(`ingest returned ${root}, expected ${tree.root}`);
    return seconds;
  } finally {
    await dropService(service);
  }
}

/** The store's part alone: putClosure of the already checked closure. */
async function storeOnly(method: UploadMethod): Promise<number> {
  const service = await freshService(method);
  try {
    const start = performance.now();
    await service.store.putClosure(entries);
    return (performance.now() - start) / 1000;
  } finally {
    await dropService(service);
  }
}

function best(times: number[]): number {
  return Math.min(...times);
}

const rate = (seconds: number) => COUNT / seconds;
const results: BenchResult[] = [];

// --- ingest ---
const bare: number[] = [];
const ours: number[] = [];
const atClose: number[] = [];
const stores: Record<"copy" | "merge" | "unnest", number[]> = { copy: [], merge: [], unnest: [] };
for (let round = 0; round < ROUNDS; round++) {
  bare.push(await bareCopy());
  ours.push(await ingest());
  atClose.push(await ingest("copy"));
  for (const method of ["copy", "merge", "unnest"] as const) stores[method].push(await storeOnly(method));
  console.log(
    `round ${round + 1}: bare COPY ${bare[round].toFixed(3)} s, ingest ${ours[round].toFixed(3)} s (at close: ${atClose[round].toFixed(3)} s), putClosure ` +
      Object.entries(stores)
        .map(([m, t]) => `${m} ${t[round].toFixed(3)} s`)
        .join(", "),
  );
}
const bareRate = rate(best(bare));
results.push({
  name: `postgres: ingest ${label} directories`,
  value: rate(best(ours)),
  unit: "directories/s",
  baseline: bareRate,
  ratio: rate(best(ours)) / bareRate,
  notes: `one upload through PostgresDirectoryService, default method (rows streamed into a COPY while core validates and checks the rest) vs a bare binary COPY of the same rows into an identical fresh table; ${server.kind} server, fsync off`,
});
results.push({
  name: `postgres: ingest ${label} directories, stored at close (copy)`,
  value: rate(best(atClose)),
  unit: "directories/s",
  baseline: bareRate,
  ratio: rate(best(atClose)) / bareRate,
  notes: `the same upload with method "copy": core checks everything, then the store's COPY at close (no overlap)`,
});
for (const method of ["copy", "merge", "unnest"] as const) {
  const value = rate(best(stores[method]));
  results.push({
    name: `postgres: putClosure ${label} directories (${method})`,
    value,
    unit: "directories/s",
    baseline: bareRate,
    ratio: value / bareRate,
    notes: `the store's part alone (putClosure of the checked closure), upload method "${method}", vs the same bare COPY`,
  });
}

// --- getRecursive ---
{
  const writer = await freshService();
  await writer.store.putClosure(entries);
  await writer.close();
  // A second service on the same schema, counting every query its connections send.
  const url = new URL(server.url);
  url.searchParams.set("schema", writer.store.schema);
  const service = PostgresDirectoryService.open(url.href);
  let queries = 0;
  service.store.pool.on("connect", (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      queries++;
      return query(...args);
    };
  });
  await service.store.init();
  const walks: number[] = [];
  const selects: number[] = [];
  let levels = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // bare: every row in one query (no order, no re-hashing)
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    let start = performance.now();
    const all = await client.query({
      text: `SELECT digest, bytes FROM "${service.store.schema}".directories`,
      rowMode: "array",
    });
    selects.push((performance.now() - start) / 1000);
    await client.end();
    if (all.rows.length !== COUNT) throw new Error(`bare SELECT read ${all.rows.length} rows`);

    queries = 0;
    start = performance.now();
    let n = 0;
    for await (const _ of service.getRecursive(tree.root)) n++;
    walks.push((performance.now() - start) / 1000);
    if (n !== COUNT) throw new Error(`getRecursive yielded ${n} directories, expected ${COUNT}`);
    levels = queries;
    console.log(
      `round ${round + 1}: bare SELECT ${selects[round].toFixed(3)} s, getRecursive ${walks[round].toFixed(3)} s, ${queries} queries`,
    );
  }
  const depth = treeDepth();
  const value = rate(best(walks));
  results.push({
    name: `postgres: getRecursive ${label} directories`,
    value,
    unit: "directories/s",
    baseline: rate(best(selects)),
    ratio: value / rate(best(selects)),
    notes: `breadth first (one recursive query over the children column, streamed by COPY), re-hashed and re-validated, ${levels} queries for a tree of depth ${depth}; baseline: one bare SELECT of every row`,
  });
  results.push({
    name: `postgres: getRecursive ${label} directories, round trips`,
    value: levels,
    unit: "queries",
    baseline: depth + 1,
    ratio: levels / (depth + 1),
    notes: `queries per getRecursive against depth + 1 (what a read per level takes)`,
  });
  await dropService(service);
}

/** Depth of the generated tree (root = 0). */
function treeDepth(): number {
  const depth = new Map<string, number>();
  let max = 0;
  // directories are leaves to root: walk from the root down
  for (let i = tree.directories.length - 1; i >= 0; i--) {
    const d = depth.get(tree.digests[i].hex) ?? 0;
    max = Math.max(max, d);
    for (const child of tree.directories[i].directories) {
      const hex = Buffer.from(child.digest).toString("hex");
      depth.set(hex, Math.max(depth.get(hex) ?? 0, d + 1));
    }
  }
  return max;
}

recordBenchResults(results);
await admin.end();
await server.stop();
