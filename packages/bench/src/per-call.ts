/**
 * Per-call and per-level costs, separated (`pnpm bench per-call`, or
 * `node --expose-gc dist/per-call.js` in this package). Per backend:
 *
 *   - fixed cost of one call: a warm `get` of a small stored directory, a
 *     warm small upload (`put` of one new directory), and the first call on
 *     a new connection (open the URL + one `get`; not for memory, which has
 *     no connection), in calls/s against the bare encode + BLAKE3 of the same
 *     directories in the same run (the notes give µs per call);
 *   - per level: getRecursive of a chain of CASTORE_BENCH_CHAIN directories
 *     (20 000: long enough that the fixed cost of the call vanishes) against
 *     a wide tree of as many (one root, the rest its leaves), both with one
 *     file per directory; the ratio is chain/wide, 1 when a level of one
 *     directory costs what a directory costs.
 *
 * Backends: memory, lmdb, cache (near memory, far lmdb), grpc to `castore serve --store memory://` in a
 * child process, "grpc (same thread)" to createDirectoryServiceServer on
 * this event loop, postgres and s3 on the test servers the cross-backend
 * benchmark uses (started here, or named by CASTORE_TEST_POSTGRES_URL /
 * CASTORE_TEST_S3_URL; skipped with a note when none can run). The
 * yardstick for gRPC: a python grpcio client (python/warm_calls.py) doing
 * the same warm Get and small Put against the same `castore serve`, side by
 * side ("per-call: grpc … vs python grpcio client"); skipped with a note when
 * /usr/bin/python3 has no grpcio.
 *
 * Environment: CASTORE_BENCH_CHAIN (20000), CASTORE_BENCH_CALLS (warm calls
 * per round, 2000), CASTORE_BENCH_IN_PROCESS_GETS (warm gets per round on
 * memory, lmdb and cache, 50000), CASTORE_BENCH_CONNECTS (new connections per round, 20),
 * CASTORE_BENCH_ROUNDS (rounds, best kept, 3), CASTORE_BENCH_BACKENDS
 * (comma-separated subset of memory,lmdb,cache,grpc,grpc-same-thread,postgres,s3).
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gcFunction } from "@castore-ts/conformance/internal";
import {
  type Digest,
  type Directory,
  type DirectoryService,
  directorySize,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  openDirectoryService,
  Digest as DigestClass,
} from "@castore-ts/core";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import "@castore-ts/backend-lmdb";
import "@castore-ts/backend-postgres";
import "@castore-ts/backend-s3";
import { createDirectoryServiceServer } from "@castore-ts/backend-grpc";
import { startCastoreServe } from "@castore-ts/testing";
import { BenchEnvironment } from "./backends.js";
import { CASTORE_BIN } from "./castore-bin.js";
import { type BenchResult, benchResult, recordBenchResults } from "./results.js";
import { encodeAndHashLoop, loadAverage } from "./timing.js";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const CHAIN = env("CASTORE_BENCH_CHAIN", 20_000);
const CALLS = env("CASTORE_BENCH_CALLS", 2000);
/**
 * Warm gets a round on an in-process store (memory, lmdb, cache): 2 000 of
 * a few µs each were a round of 5–20 ms, and one collection or descheduling
 * in it moved the row 2× between runs minutes apart.
 */
const IN_PROCESS_GETS = env("CASTORE_BENCH_IN_PROCESS_GETS", 50_000);
const CONNECTS = env("CASTORE_BENCH_CONNECTS", 20);
const ROUNDS = env("CASTORE_BENCH_ROUNDS", 3);
const ONLY = process.env.CASTORE_BENCH_BACKENDS?.split(",").map((s) => s.trim());
const wanted = (name: string) => !ONLY || ONLY.includes(name);
const PYTHON = "/usr/bin/python3";
const PYTHON_CLIENT = fileURLToPath(new URL("../python/warm_calls.py", import.meta.url));
const MACHINE = "shared 2-core machine, other engineers' work running (absolute rates swing; ratios are steadier)";

const gc = gcFunction();

/** A small directory, distinct per (tag, i): one file whose digest holds both. */
function fileDirectory(tag: number, i: number, children: Directory["directories"] = []): Directory {
  const digest = new Uint8Array(32);
  new DataView(digest.buffer).setUint32(0, tag);
  new DataView(digest.buffer).setUint32(4, i);
  return makeDirectory({ directories: children, files: [makeFileNode("f", digest, 1)] });
}

interface Tree {
  directories: Directory[];
  root: Digest;
}

/** `n` directories, each holding the previous one: leaves to root. */
function chainTree(n: number): Tree {
  const directories: Directory[] = [];
  let previous: { digest: Digest; size: bigint } | undefined;
  for (let i = 0; i < n; i++) {
    const d = fileDirectory(1, i, previous ? [makeDirectoryNode("d", previous.digest, previous.size)] : []);
    directories.push(d);
    previous = { digest: DigestClass.of(encodeDirectory(d)), size: directorySize(d) };
  }
  return { directories, root: previous!.digest };
}

/** `n` directories: one root whose n-1 subdirectories are leaves. */
function wideTree(n: number): Tree {
  const leaves = Array.from({ length: n - 1 }, (_, i) => fileDirectory(2, i));
  const width = String(n).length;
  const nodes = leaves.map((d, i) =>
    makeDirectoryNode(`d${String(i).padStart(width, "0")}`, DigestClass.of(encodeDirectory(d)), directorySize(d)),
  );
  const root = fileDirectory(2, n, nodes);
  return { directories: [...leaves, root], root: DigestClass.of(encodeDirectory(root)) };
}

interface Target {
  name: string;
  setup: string;
  url: string;
  /** Whether a new connection means anything (memory has none). */
  connects: boolean;
  /** Whether its calls run in this process (no network): its warm gets are IN_PROCESS_GETS a round. */
  inProcess?: boolean;
  /** Server side to stop afterwards. */
  dispose(): Promise<void>;
}

async function upload(service: DirectoryService, tree: Tree): Promise<void> {
  const putter = service.putMultipleStart();
  for (const d of tree.directories) await putter.put(d);
  const root = await putter.close();
  if (!root.equals(tree.root)) throw new Error(`upload returned ${root}, expected ${tree.root}`);
}

async function readAll(service: DirectoryService, tree: Tree): Promise<void> {
  let n = 0;
  for await (const _ of service.getRecursive(tree.root)) n++;
  if (n !== tree.directories.length) throw new Error(`getRecursive yielded ${n}, expected ${tree.directories.length}`);
}

async function seconds(fn: () => Promise<unknown> | unknown): Promise<number> {
  gc?.();
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

const best = (xs: number[]) => Math.min(...xs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const micros = (s: number) => `${(s * 1e6).toFixed(1)} µs`;
const spread = (xs: number[]) => xs.map((s) => micros(s)).join(", ");

/** Distinct small directories for uploads, never stored before in this run. */
let uploadTag = 1000;
const freshDirectories = (n: number) => {
  const tag = uploadTag++;
  return Array.from({ length: n }, (_, i) => fileDirectory(tag, i));
};

async function measureTarget(t: Target, chain: Tree, wide: Tree): Promise<BenchResult[]> {
  console.log(`\n== ${t.name}: ${t.setup}`);
  const service = await openDirectoryService(t.url);
  const results: BenchResult[] = [];
  try {
    await upload(service, chain);
    await upload(service, wide);
    const leaf = chain.directories[0];
    const leafDigest = DigestClass.of(encodeDirectory(leaf));

    // Warm get / warm small upload / bare loop, interleaved per round.
    const get: number[] = [];
    const put: number[] = [];
    const bareGet: number[] = [];
    const barePut: number[] = [];
    const gets = t.inProcess ? IN_PROCESS_GETS : CALLS;
    const same = Array.from({ length: gets }, () => leaf);
    for (let i = 0; i < Math.min(200, CALLS); i++) await service.get(leafDigest); // warm-up
    for (const d of freshDirectories(Math.min(200, CALLS))) await service.put(d);
    for (let round = 0; round < ROUNDS; round++) {
      bareGet.push((await seconds(() => encodeAndHashLoop(same))) / gets);
      get.push(
        (await seconds(async () => {
          for (let i = 0; i < gets; i++) if (!(await service.get(leafDigest))) throw new Error("leaf not found");
        })) / gets,
      );
      const fresh = freshDirectories(CALLS);
      barePut.push((await seconds(() => encodeAndHashLoop(fresh))) / CALLS);
      put.push(
        (await seconds(async () => {
          for (const d of fresh) await service.put(d);
        })) / CALLS,
      );
    }
    console.log(`   warm get per call: ${spread(get)}; small upload: ${spread(put)}`);
    const notes = (what: string, xs: number[], calls: number) =>
      `${what}; ${calls} sequential calls a round, best of ${ROUNDS} rounds (µs per call: ${spread(xs)}); ${t.setup}; ` +
      `baseline: bare encodeDirectory + BLAKE3 of the same directories, same run; ${MACHINE}, load average ${loadAverage()}`;
    results.push(
      benchResult(
        `per-call: ${t.name} warm get`,
        1 / best(get),
        "calls/s",
        1 / best(bareGet),
        notes("get of a small stored directory (one file, 45 bytes) on a warm service", get, gets),
      ),
      benchResult(
        `per-call: ${t.name} warm small upload`,
        1 / best(put),
        "calls/s",
        1 / best(barePut),
        notes("put of one new small directory (one file) on a warm service", put, CALLS),
      ),
    );

    if (t.connects) {
      const first: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        for (let i = 0; i < CONNECTS; i++) {
          let fresh: DirectoryService | undefined;
          first.push(
            await seconds(async () => {
              fresh = await openDirectoryService(t.url);
              if (!(await fresh.get(leafDigest))) throw new Error("leaf not found");
            }),
          );
          await fresh?.close();
        }
      }
      console.log(`   first call on a new connection: best ${micros(best(first))}, median ${micros(median(first))}`);
      results.push(
        benchResult(
          `per-call: ${t.name} first call on a new connection`,
          1 / best(first),
          "calls/s",
          1 / best(bareGet),
          `openDirectoryService(url) + one get, ${CONNECTS * ROUNDS} times, best kept (median ${micros(median(first))}); ` +
            `${t.setup}; baseline: bare encodeDirectory + BLAKE3 of the directory; ${MACHINE}, load average ${loadAverage()}`,
        ),
      );
    }

    // Per level: chain vs wide, interleaved, same store.
    const chainSeconds: number[] = [];
    const wideSeconds: number[] = [];
    await readAll(service, chain); // warm-up
    await readAll(service, wide);
    for (let round = 0; round < ROUNDS; round++) {
      chainSeconds.push(await seconds(() => readAll(service, chain)));
      wideSeconds.push(await seconds(() => readAll(service, wide)));
    }
    const rate = (s: number) => Math.round(CHAIN / s).toLocaleString("en-US");
    console.log(
      `   getRecursive: chain ${chainSeconds.map(rate).join(", ")}; wide ${wideSeconds.map(rate).join(", ")} directories/s`,
    );
    results.push(
      benchResult(
        `per-call: ${t.name} getRecursive chain/wide`,
        CHAIN / best(chainSeconds),
        "directories/s",
        CHAIN / best(wideSeconds),
        `a chain of ${CHAIN} directories against a wide tree of as many (one root, ${CHAIN - 1} leaves), one file each, ` +
          `on one warm store; ratio: chain rate / wide rate (1: a level costs what a directory costs); best of ${ROUNDS} ` +
          `interleaved rounds (chain ${chainSeconds.map(rate).join(", ")}; wide ${wideSeconds.map(rate).join(", ")} directories/s); ` +
          `${t.setup}; ${MACHINE}, load average ${loadAverage()}`,
      ),
    );
  } finally {
    await service.close();
  }
  recordBenchResults(results);
  return results;
}

/** python grpcio's warm Get and small Put against the same server; undefined (with a note) when it cannot run. */
function pythonYardstick(url: string, digest: Digest): { get: number[]; put: number[] } | string {
  const hostPort = url.replace(/^grpc\+http:\/\//, "").replace(/\/.*$/, "");
  const r = spawnSync(PYTHON, [PYTHON_CLIENT, hostPort, digest.hex, String(CALLS), String(ROUNDS)], {
    encoding: "utf8",
    timeout: 300_000,
  });
  if (r.status !== 0) return `python grpcio client failed (${r.error?.message ?? r.stderr.trim().split("\n").pop()})`;
  const out = JSON.parse(r.stdout) as { get: number[]; put: number[] };
  return { get: out.get.map((s) => s / CALLS), put: out.put.map((s) => s / CALLS) };
}

async function pythonComparison(url: string, chain: Tree): Promise<BenchResult[]> {
  const service = await openDirectoryService(url);
  const leafDigest = DigestClass.of(encodeDirectory(chain.directories[0]));
  const ours = { get: [] as number[], put: [] as number[] };
  const python = { get: [] as number[], put: [] as number[] };
  try {
    for (let i = 0; i < 200; i++) await service.get(leafDigest);
    // Two turns each, interleaved, so both sides see the same load.
    for (let turn = 0; turn < 2; turn++) {
      const p = pythonYardstick(url, leafDigest);
      if (typeof p === "string") {
        console.log(`   python yardstick skipped: ${p}`);
        return [];
      }
      python.get.push(...p.get);
      python.put.push(...p.put);
      for (let round = 0; round < ROUNDS; round++) {
        ours.get.push(
          (await seconds(async () => {
            for (let i = 0; i < CALLS; i++) await service.get(leafDigest);
          })) / CALLS,
        );
        const fresh = freshDirectories(CALLS);
        ours.put.push(
          (await seconds(async () => {
            for (const d of fresh) await service.put(d);
          })) / CALLS,
        );
      }
    }
  } finally {
    await service.close();
  }
  console.log(
    `   vs python grpcio: get ours ${spread(ours.get)} / python ${spread(python.get)}; ` +
      `put ours ${spread(ours.put)} / python ${spread(python.put)}`,
  );
  const note = (xs: number[], ys: number[]) =>
    `sequential calls to the same \`castore serve --store memory://\` (child process, loopback TCP); ${CALLS} a round, ` +
    `best of ${xs.length} rounds; castore's client µs per call ${spread(xs)}; baseline: python3-grpcio (${PYTHON}, ` +
    `packages/bench/python/warm_calls.py, one channel) µs per call ${spread(ys)}; ${MACHINE}`;
  const results = [
    benchResult(
      "per-call: grpc warm get, castore client vs python grpcio client",
      1 / best(ours.get),
      "calls/s",
      1 / best(python.get),
      note(ours.get, python.get),
    ),
    benchResult(
      "per-call: grpc warm small upload, castore client vs python grpcio client",
      1 / best(ours.put),
      "calls/s",
      1 / best(python.put),
      note(ours.put, python.put),
    ),
  ];
  recordBenchResults(results);
  return results;
}

async function targets(scratch: string, environment: BenchEnvironment): Promise<Target[]> {
  const list: Target[] = [
    {
      name: "memory",
      setup: "memory:// in process",
      url: "memory://",
      connects: false,
      inProcess: true,
      dispose: async () => {},
    },
    {
      name: "lmdb",
      setup: `lmdb:// in ${tmpdir()} (durable: fsync per upload)`,
      url: `lmdb://${join(scratch, "lmdb")}`,
      connects: true,
      inProcess: true,
      dispose: async () => {},
    },
  ];
  const far = `lmdb://${join(scratch, "cache-far")}`;
  list.push({
    name: "cache",
    setup:
      "cache://?near=memory://&far=lmdb://… in process (uploads go to far; a get or getRecursive that near misses reads far and fills near; a new connection opens far and starts with an empty near)",
    url: `cache://?near=${encodeURIComponent("memory://")}&far=${encodeURIComponent(far)}`,
    connects: true,
    inProcess: true,
    dispose: async () => {},
  });
  const serve = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", "memory://"], {
    echoStderr: true,
  });
  list.push({
    name: "grpc",
    setup: "grpc+http:// to `castore serve --store memory://` in a child process, loopback TCP",
    url: serve.url,
    connects: true,
    dispose: async () => void (await serve.stop()),
  });
  const sameThread = createDirectoryServiceServer(new MemoryDirectoryService(), {
    listen: { host: "127.0.0.1", port: 0 },
  });
  await sameThread.listen();
  list.push({
    name: "grpc-same-thread",
    setup: "grpc+http:// to createDirectoryServiceServer(memory) on the client's event loop, loopback TCP",
    url: sameThread.url!,
    connects: true,
    dispose: () => sameThread.close({ deadlineMs: 1000 }),
  });
  // postgres and s3 on the cross-backend benchmark's test servers (started
  // here, or named by CASTORE_TEST_POSTGRES_URL / CASTORE_TEST_S3_URL): a
  // row skipped here would keep an earlier run's value in bench-results.json.
  for (const backend of environment.backends()) {
    if (backend.name !== "postgres" && backend.name !== "s3") continue;
    const store = await backend.fresh(`per_call_${process.pid}`);
    list.push({
      name: backend.name,
      setup: `${backend.server}, one store for every round`,
      url: store.url,
      connects: true,
      dispose: () => store.dispose(),
    });
  }
  return list;
}

async function main(): Promise<void> {
  const started = performance.now();
  const scratch = await mkdtemp(join(tmpdir(), "castore-bench-per-call-"));
  const chain = chainTree(CHAIN);
  const wide = wideTree(CHAIN);
  console.log(
    `per-call benchmark: chain and wide tree of ${CHAIN} directories; ${CALLS} calls a round; ${ROUNDS} rounds`,
  );
  const environment = await BenchEnvironment.start(["postgres", "s3"].filter(wanted));
  for (const problem of environment.problems) console.log(`skipped: ${problem}`);
  const all = await targets(scratch, environment);
  try {
    for (const t of all) {
      if (!wanted(t.name)) continue;
      await measureTarget(t, chain, wide);
      if (t.name === "grpc") await pythonComparison(t.url, chain);
    }
  } finally {
    for (const t of all) await t.dispose().catch(() => {});
    await environment.close();
    await rm(scratch, { recursive: true, force: true });
  }
  console.log(`\nper-call benchmark done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

await main();
