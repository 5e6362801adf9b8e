/**
 * Soak benchmark (not a test): 32 concurrent gRPC clients mix uploads of
 * overlapping trees and recursive reads against `castore serve` (a child
 * process, the CLI's own entry point) on each backend, for a bounded time.
 * Beside them one long-lived client makes calls of every kind one after
 * another on its one connection for the whole soak (get, getRecursive read
 * to the end, getRecursive stopped after its first directory, upload), as a
 * long-running user of the client does; its failures count with the others.
 *
 *   node dist/soak.js                 # memory, lmdb, postgres, s3; 20 s each
 *   CASTORE_SOAK_SECONDS=60 node dist/soak.js
 *   CASTORE_SOAK_BACKENDS=memory,lmdb node dist/soak.js
 *   CASTORE_SOAK_CLIENTS=32
 *
 * PostgreSQL and S3 come from `$CASTORE_SOAK_POSTGRES_URL` / `$CASTORE_SOAK_S3_URL`
 * (a full s3:// store URL) or else from `@castore-ts/testing` (containers).
 * Every failed call is counted and reported (zero expected); records calls/s,
 * p50/p99 latency, failures and server RSS at start and end per backend in
 * bench-results.json.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DirectoryService, directoryDigest, openDirectoryService } from "@castore-ts/core";
import { type DigestedDirectory, seededRandom, taggedDirectory } from "@castore-ts/conformance";
import "@castore-ts/backend-grpc"; // registers grpc+http:
import type { CastoreServeProcess } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";
import { recordBenchResults, type BenchResult } from "./results.js";

const SECONDS = Number(process.env.CASTORE_SOAK_SECONDS ?? 20);
const CLIENTS = Number(process.env.CASTORE_SOAK_CLIENTS ?? 32);
const BACKENDS = (process.env.CASTORE_SOAK_BACKENDS ?? "memory,lmdb,postgres,s3")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);

interface Node extends DigestedDirectory {
  /** Leaves to root, itself last, each once. */
  closure: Node[];
}

function node(directories: Node[], tag: string): Node {
  const { directory, digest } = taggedDirectory(tag, directories);
  const seen = new Set<string>();
  const closure: Node[] = [];
  for (const c of directories) {
    for (const x of c.closure) {
      if (!seen.has(x.digest.hex)) {
        seen.add(x.digest.hex);
        closure.push(x);
      }
    }
  }
  const self: Node = { directory, digest, closure };
  closure.push(self);
  return self;
}

/** A shared pool of leaves and middle directories; every upload picks some of them (so uploads overlap) under a fresh root. */
function makePool(random: () => number): Node[] {
  const leaves = Array.from({ length: 300 }, (_, i) => node([], `leaf-${i}`));
  const mids: Node[] = [];
  for (let i = 0; i < 120; i++) {
    const picks = new Set<number>();
    for (let k = 0; k < 4; k++) picks.add(Math.floor(random() * leaves.length));
    mids.push(
      node(
        [...picks].map((j) => leaves[j]),
        `mid-${i}`,
      ),
    );
  }
  return mids;
}

function uploadTree(pool: Node[], random: () => number, tag: string): Node {
  const picks = new Set<number>();
  for (let k = 0; k < 12; k++) picks.add(Math.floor(random() * pool.length));
  return node(
    [...picks].map((j) => pool[j]),
    tag,
  );
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

async function serve(store: string): Promise<CastoreServeProcess> {
  const { startCastoreServe } = await testing();
  return startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", store]);
}

interface Stats {
  calls: number;
  /** Calls of the long-lived client (not in `calls` or the latencies). */
  longLivedCalls: number;
  uploads: number;
  reads: number;
  failures: number;
  firstFailures: string[];
  latencies: number[];
  seconds: number;
  rssStartKiB: number;
  rssEndKiB: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function soak(name: string, store: string): Promise<Stats> {
  const server = await serve(store);
  const pid = server.child.pid!;
  const pool = makePool(seededRandom(1));
  const stats: Stats = {
    calls: 0,
    longLivedCalls: 0,
    uploads: 0,
    reads: 0,
    failures: 0,
    firstFailures: [],
    latencies: [],
    seconds: 0,
    rssStartKiB: 0,
    rssEndKiB: 0,
  };
  const uploaded: Node[] = [];
  const fail = (what: string, e: unknown) => {
    stats.failures++;
    if (stats.firstFailures.length < 5) stats.firstFailures.push(`${what}: ${(e as Error)?.message ?? String(e)}`);
  };
  try {
    // Warm-up: one upload, so the store is initialised (schema, bucket) before RSS is taken.
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => openDirectoryService(server.url)));
    const longLived = await openDirectoryService(server.url);
    {
      const first = uploadTree(pool, seededRandom(999), "warm-up");
      const putter = clients[0].putMultipleStart();
      for (const d of first.closure) await putter.put(d.directory);
      await putter.close();
      uploaded.push(first);
    }
    stats.rssStartKiB = rssKiB(pid);
    const started = performance.now();
    const deadline = started + SECONDS * 1000;
    const longLivedRun = (async () => {
      const random = seededRandom(7);
      for (let i = 0; performance.now() < deadline; i++) {
        const kind = LONG_LIVED_CALLS[i % LONG_LIVED_CALLS.length];
        try {
          await longLivedCall(kind, longLived, { random, pool, uploaded, tag: `${name}-long-lived-${i}` });
        } catch (e) {
          fail(`long-lived client ${kind} #${i}`, e);
        }
        stats.longLivedCalls++;
      }
    })();
    await Promise.all([
      longLivedRun,
      ...clients.map(async (client, c) => {
        const random = seededRandom(1000 + c);
        for (let i = 0; performance.now() < deadline; i++) {
          const t0 = performance.now();
          if (random() < 0.5) {
            const tree = uploadTree(pool, random, `${name}-${c}-${i}`);
            try {
              const putter = client.putMultipleStart();
              for (const d of tree.closure) await putter.put(d.directory);
              const root = await putter.close();
              if (root.hex !== tree.digest.hex) throw new Error(`root ${root.hex}, expected ${tree.digest.hex}`);
              uploaded.push(tree);
            } catch (e) {
              fail("upload", e);
            }
            stats.uploads++;
          } else {
            const tree = uploaded[Math.floor(random() * uploaded.length)];
            try {
              let n = 0;
              for await (const _ of client.getRecursive(tree.digest)) n++;
              if (n !== tree.closure.length)
                throw new Error(`getRecursive ${tree.digest.hex}: ${n} directories, expected ${tree.closure.length}`);
            } catch (e) {
              fail("getRecursive", e);
            }
            stats.reads++;
          }
          stats.calls++;
          stats.latencies.push(performance.now() - t0);
        }
      }),
    ]);
    stats.seconds = (performance.now() - started) / 1000;
    stats.rssEndKiB = rssKiB(pid);
    await Promise.all([...clients, longLived].map((c) => c.close().catch(() => undefined)));
  } finally {
    await server.stop();
  }
  return stats;
}

const LONG_LIVED_CALLS = ["get", "getRecursive", "getRecursive stopped early", "upload"] as const;

/** One call of the long-lived client (reads pick from `uploaded`, an upload adds to it); throws on a failure or a wrong answer. */
async function longLivedCall(
  kind: (typeof LONG_LIVED_CALLS)[number],
  client: DirectoryService,
  ctx: { random: () => number; pool: Node[]; uploaded: Node[]; tag: string },
): Promise<void> {
  const pick = () => ctx.uploaded[Math.floor(ctx.random() * ctx.uploaded.length)];
  switch (kind) {
    case "get": {
      const tree = pick();
      const got = await client.get(tree.digest);
      if (!got || directoryDigest(got).hex !== tree.digest.hex)
        throw new Error(`get ${tree.digest.hex}: ${got ? "another directory" : "not found"}`);
      return;
    }
    case "getRecursive": {
      const tree = pick();
      let n = 0;
      for await (const _ of client.getRecursive(tree.digest)) n++;
      if (n !== tree.closure.length)
        throw new Error(`getRecursive ${tree.digest.hex}: ${n} directories, expected ${tree.closure.length}`);
      return;
    }
    case "getRecursive stopped early": {
      const tree = pick();
      let first: string | undefined;
      for await (const d of client.getRecursive(tree.digest)) {
        first = directoryDigest(d).hex;
        break;
      }
      if (first !== tree.digest.hex)
        throw new Error(`getRecursive ${tree.digest.hex}: first directory ${first ?? "none"}`);
      return;
    }
    case "upload": {
      const tree = uploadTree(ctx.pool, ctx.random, ctx.tag);
      const putter = client.putMultipleStart();
      for (const d of tree.closure) await putter.put(d.directory);
      const root = await putter.close();
      if (root.hex !== tree.digest.hex) throw new Error(`root ${root.hex}, expected ${tree.digest.hex}`);
      ctx.uploaded.push(tree);
      return;
    }
  }
}

async function testing(): Promise<typeof import("@castore-ts/testing")> {
  // Loaded only when a backend needs a test server: it brings testcontainers along.
  return import("@castore-ts/testing");
}

async function storeFor(backend: string): Promise<{ url: string; cleanup(): Promise<void> }> {
  switch (backend) {
    case "memory":
      return { url: "memory://", cleanup: async () => undefined };
    case "lmdb": {
      const dir = mkdtempSync(join(tmpdir(), "castore-soak-"));
      return { url: `lmdb://${dir}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
    }
    case "postgres": {
      if (process.env.CASTORE_SOAK_POSTGRES_URL) {
        const u = new URL(process.env.CASTORE_SOAK_POSTGRES_URL);
        u.searchParams.set("schema", `soak_${Date.now()}`);
        return { url: u.toString(), cleanup: async () => undefined };
      }
      const pg = await (await testing()).startPostgresTestServer();
      return { url: pg.url, cleanup: () => pg.stop() };
    }
    case "s3": {
      if (process.env.CASTORE_SOAK_S3_URL)
        return { url: process.env.CASTORE_SOAK_S3_URL, cleanup: async () => undefined };
      const s3 = await (await testing()).startS3TestServer();
      const bucket = await s3.createBucket();
      const creds = `${encodeURIComponent(s3.accessKeyId)}:${encodeURIComponent(s3.secretAccessKey)}@`;
      return {
        url: `s3://${creds}${bucket}/soak?endpoint=${encodeURIComponent(s3.endpoint)}&region=${s3.region}&forcePathStyle=true`,
        cleanup: () => s3.stop(),
      };
    }
    default:
      throw new Error(`unknown soak backend ${backend}: memory, lmdb, postgres, s3`);
  }
}

async function main(): Promise<void> {
  const results: BenchResult[] = [];
  let totalFailures = 0;
  for (const backend of BACKENDS) {
    let store: { url: string; cleanup(): Promise<void> };
    try {
      store = await storeFor(backend);
    } catch (e) {
      console.error(`soak ${backend}: skipped, no server: ${(e as Error).message}`);
      continue;
    }
    try {
      console.error(`soak ${backend}: ${CLIENTS} clients for ${SECONDS} s …`);
      const s = await soak(backend, store.url);
      totalFailures += s.failures;
      const sorted = [...s.latencies].sort((a, b) => a - b);
      const notes = `${CLIENTS} clients, ${SECONDS} s, ${s.uploads} uploads (≤61 directories each, overlapping) + ${s.reads} getRecursive, castore serve child process; beside them one long-lived client made ${s.longLivedCalls} calls (get, getRecursive, getRecursive stopped early, upload; not in calls/s)`;
      results.push(
        {
          name: `soak: ${backend} calls/s`,
          value: s.calls / s.seconds,
          unit: "calls/s",
          baseline: null,
          ratio: null,
          notes,
        },
        { name: `soak: ${backend} p50 ms`, value: percentile(sorted, 50), unit: "ms", baseline: null, ratio: null },
        { name: `soak: ${backend} p99 ms`, value: percentile(sorted, 99), unit: "ms", baseline: null, ratio: null },
        {
          name: `soak: ${backend} failed calls`,
          value: s.failures,
          unit: "calls",
          baseline: 0,
          ratio: null,
          notes: s.firstFailures.length
            ? s.firstFailures.join(" | ")
            : `of ${s.calls + s.longLivedCalls} (${s.longLivedCalls} by the long-lived client)`,
        },
        {
          name: `soak: ${backend} RSS growth`,
          value: s.rssEndKiB / 1024,
          unit: "MiB",
          baseline: s.rssStartKiB / 1024,
          ratio: s.rssEndKiB / s.rssStartKiB,
          notes: "server VmRSS at the end vs after warm-up",
        },
      );
      if (s.failures)
        console.error(`soak ${backend}: ${s.failures} failed calls, first: ${s.firstFailures.join(" | ")}`);
    } finally {
      await store.cleanup().catch(() => undefined);
    }
  }
  recordBenchResults(results);
  if (totalFailures > 0) process.exitCode = 1;
}

await main();
