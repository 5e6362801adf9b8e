/**
 * Cross-backend benchmark (`pnpm bench cross-backend`, or
 * `node --expose-gc dist/cross-backend.js` in this package): every backend —
 * memory, lmdb, postgres, s3, grpc (a `castore serve --store memory://`
 * process over loopback) and cache (near=memory, far=lmdb) — opened only
 * through `openDirectoryService(url)`, on the same trees:
 *
 *   - a generated tree of 100 000 directories (s3: 5 000, see S3_DIRECTORIES),
 *   - one directory of 100 000 entries (over gRPC's 4 MiB message limit),
 *   - a chain 1 000 directories deep,
 *   - a real tree of this machine (/usr/share), imported by the CLI's importTree.
 *
 * For each: ingest (one upload through the putter) and getRecursive, in
 * directories/s (entries/s for the wide directory), against the bare
 * `encodeDirectory` + BLAKE3 loop over the same directories in the same run.
 * Rounds are interleaved (baseline, then each backend, then again), each on a
 * fresh store, best round kept. Results: `backends: <backend> <tree> ingest`
 * and `… getRecursive` in bench-results.json.
 *
 * Trees under 10 000 directories are timed without a full collection before
 * each call (see benchTree), get more rounds (CASTORE_BENCH_SMALL_ROUNDS,
 * default 8), several timed reads a round (CASTORE_BENCH_SMALL_READS, 5),
 * and an untimed upload and read of other trees on the fresh store first
 * (the generated 2 000-directory tree; before a chain, also a chain of the
 * same depth with other names).
 *
 * A gRPC round's server is a new `castore serve` process: it is warmed first
 * by untimed uploads and reads of other trees (the same ones) over the same connection
 * (CASTORE_BENCH_WARM_UP_PASSES, default 6), as a long-running server is.
 *
 * S3 writes one object per directory, a few hundred PUTs/s on the test
 * server, so it gets a smaller generated tree and one round. Trees under
 * 10 000 directories get more rounds (a round takes milliseconds there).
 *
 * Environment: CASTORE_BENCH_ROUNDS (default 2), CASTORE_BENCH_SMALL_ROUNDS
 * (8), CASTORE_BENCH_SMALL_READS (5), CASTORE_BENCH_S3_ROUNDS (1), CASTORE_BENCH_DIRECTORIES (generated
 * tree, 100000), CASTORE_BENCH_S3_DIRECTORIES (5000),
 * CASTORE_BENCH_WIDE_ENTRIES (100000), CASTORE_BENCH_DEPTH (1000),
 * CASTORE_BENCH_REAL_TREE (/usr/share; "" skips it),
 * CASTORE_BENCH_REAL_TREE_MAX_DIRECTORIES (20000), CASTORE_BENCH_BACKENDS
 * (comma-separated subset), CASTORE_BENCH_CACHE (where the imported real
 * tree is kept while its listing is unchanged; default
 * node_modules/.cache/castore-bench of this package).
 */
import { fileURLToPath } from "node:url";
import { gcFunction } from "@castore-ts/conformance/internal";
import { type DirectoryService, openDirectoryService } from "@castore-ts/core";
import "@castore-ts/backend-memory";
import "@castore-ts/backend-lmdb";
import "@castore-ts/backend-postgres";
import "@castore-ts/backend-s3";
import "@castore-ts/backend-grpc";
import { type Backend, type BackendName, BenchEnvironment } from "./backends.js";
import { startCastoreServe } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";
import { cachedImportedTree } from "./imported-tree-cache.js";
import { type BenchResult, benchResult, recordBenchResults } from "./results.js";
import { encodeAndHashLoop, loadAverage, timeSeconds } from "./timing.js";
import { type BenchTree, deepTree, generatedTree, wideTree } from "./trees.js";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ROUNDS = env("CASTORE_BENCH_ROUNDS", 2);
const DIRECTORIES = env("CASTORE_BENCH_DIRECTORIES", 100_000);
const S3_DIRECTORIES = env("CASTORE_BENCH_S3_DIRECTORIES", 5_000);
const S3_ROUNDS = env("CASTORE_BENCH_S3_ROUNDS", 1);
/** Rounds for trees under 10 000 directories and 4 MiB. */
const SMALL_ROUNDS = env("CASTORE_BENCH_SMALL_ROUNDS", 8);
/**
 * Timed reads per round of such a tree: a call of a few milliseconds on a
 * shared 2-core machine is often descheduled midway, so the best of a few
 * samples was mostly the machine's load (memory deep-1000 read from 0.21×
 * to 0.50× between runs).
 */
const SMALL_READS = env("CASTORE_BENCH_SMALL_READS", 5);
const WIDE_ENTRIES = env("CASTORE_BENCH_WIDE_ENTRIES", 100_000);
const DEPTH = env("CASTORE_BENCH_DEPTH", 1000);
const REAL_TREE = process.env.CASTORE_BENCH_REAL_TREE ?? "/usr/share";
const REAL_TREE_MAX = env("CASTORE_BENCH_REAL_TREE_MAX_DIRECTORIES", 20_000);
/** Timed passes of the bare loop per round (the best of all is the baseline). */
const BASELINE_PASSES = 3;
/** Where the imported real tree is kept between runs (see imported-tree-cache.ts). */
const CACHE_DIR =
  process.env.CASTORE_BENCH_CACHE ?? fileURLToPath(new URL("../node_modules/.cache/castore-bench/", import.meta.url));
const ONLY = process.env.CASTORE_BENCH_BACKENDS?.split(",").map((s) => s.trim());

const MACHINE = "shared 2-core machine, other engineers' tests running (absolute rates swing; ratios are steadier)";
const BASELINE = "baseline: bare encodeDirectory + BLAKE3 loop over the same directories, same run";

const gc = gcFunction();

interface Measured {
  ingest: number[];
  read: number[];
  /** cache only: a second getRecursive, near already filled. */
  warmRead: number[];
  /** Set when the backend refused the tree (e.g. gRPC RESOURCE_EXHAUSTED): the message. */
  refused?: string;
}

async function ingest(service: DirectoryService, tree: BenchTree): Promise<void> {
  const putter = service.putMultipleStart();
  try {
    for (const d of tree.directories) await putter.put(d);
  } catch (e) {
    await putter.abort(e).catch(() => {});
    throw e;
  }
  const root = await putter.close();
  if (!root.equals(tree.root)) throw new Error(`upload returned root ${root}, expected ${tree.root}`);
}

async function readAll(service: DirectoryService, tree: BenchTree): Promise<void> {
  let n = 0;
  for await (const _ of service.getRecursive(tree.root)) n++;
  if (n !== tree.directories.length)
    throw new Error(`getRecursive yielded ${n} directories, expected ${tree.directories.length}`);
}

/** The message of an error and its causes, one line. */
function describeError(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e; c instanceof Error && parts.length < 4; c = c.cause) parts.push(c.message.split("\n")[0]);
  return parts.join(" <- ") || String(e);
}

const isResourceExhausted = (e: unknown) => /resource[_ ]exhausted|larger than configured/i.test(describeError(e));

/**
 * Trees for warming a fresh `castore serve` before its timed calls: another
 * seed than the measured trees, so it shares (almost) no directory with them;
 * and, before a deep chain, a chain of the same depth with other names
 * (shares only the empty directory).
 */
let warmUpTree: BenchTree | undefined;
const shapedWarmUps = new Map<string, BenchTree>();
const WARM_UP_PASSES = env("CASTORE_BENCH_WARM_UP_PASSES", 6);

function warmUpTrees(measured: BenchTree): BenchTree[] {
  warmUpTree ??= generatedTree(2000, 77);
  if (!measured.key.startsWith("deep-")) return [warmUpTree];
  let chain = shapedWarmUps.get(measured.key);
  if (!chain) shapedWarmUps.set(measured.key, (chain = deepTree(measured.units, "w")));
  return [warmUpTree, chain];
}

/**
 * Untimed uploads and reads over `service` of the warm-up trees for
 * `measured`: a new server process runs its code unoptimised for its first
 * thousands of directories (a 1 000-directory chain took 50–200 ms on a new
 * server against ~4 ms once warm), and a long-running server is what the
 * rows describe. A long-running server has also met trees of every shape: a
 * chain's first upload to a server warmed on the generated tree only took
 * 4–12 ms, against 3–4 ms after a chain of other names (its code paths for
 * one child per level optimised too). It also opens the connection (the
 * first call on a new connection is a per-call row).
 */
async function warmUp(service: DirectoryService, passes: number, measured: BenchTree): Promise<void> {
  const trees = warmUpTrees(measured);
  for (let pass = 0; pass < passes; pass++) {
    for (const tree of trees) {
      await ingest(service, tree);
      await readAll(service, tree);
    }
  }
}

async function measureRound(
  backend: Backend,
  tree: BenchTree,
  round: number,
  into: Measured,
  collect: (() => void) | undefined,
  /** Timed reads of the tree in this round (the first read of a cache store is its cold one: one only). */
  reads: number,
): Promise<void> {
  const store = await backend.fresh(`${tree.key}-r${round}`);
  const service = await openDirectoryService(store.url);
  try {
    // A new server's code is cold (see warmUp); in process, a small tree's
    // one timed upload otherwise followed whatever the previous tree left
    // (garbage, code optimised for another shape): one untimed pass first.
    if (backend.name === "grpc") await warmUp(service, WARM_UP_PASSES, tree);
    else if (reads > 1) await warmUp(service, 1, tree);
    let ingestSeconds: number;
    try {
      ingestSeconds = await timeSeconds(() => ingest(service, tree), collect);
    } catch (e) {
      if (backend.name === "grpc" && isResourceExhausted(e)) {
        into.refused = describeError(e);
        return;
      }
      throw e;
    }
    into.ingest.push(ingestSeconds);
    for (let read = 0; read < reads; read++) into.read.push(await timeSeconds(() => readAll(service, tree), collect));
    if (backend.name === "cache") into.warmRead.push(await timeSeconds(() => readAll(service, tree), collect));
  } finally {
    await service.close();
    await store.dispose();
  }
}

/**
 * When the gRPC server refused the upload, is the tree readable over gRPC
 * when the server's store already holds it? Fill an LMDB store directly,
 * serve it with `castore serve`, and getRecursive through the client.
 */
async function grpcReadOfPrefilled(
  environment: BenchEnvironment,
  tree: BenchTree,
): Promise<{ seconds?: number; refused?: string }> {
  const lmdbUrl = environment.lmdbUrl(`grpc-prefilled-${tree.key}`);
  const direct = await openDirectoryService(lmdbUrl);
  try {
    await ingest(direct, tree);
  } finally {
    await direct.close();
  }
  const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", lmdbUrl], {
    echoStderr: true,
  });
  const client = await openDirectoryService(server.url);
  try {
    return { seconds: await timeSeconds(() => readAll(client, tree), gc) };
  } catch (e) {
    if (isResourceExhausted(e)) return { refused: describeError(e) };
    throw e;
  } finally {
    await client.close();
    await server.stop();
  }
}

function best(values: number[]): number {
  return Math.min(...values);
}

async function benchTree(
  environment: BenchEnvironment,
  backends: Backend[],
  tree: BenchTree,
  failures: string[],
): Promise<BenchResult[]> {
  console.log(`\n== ${tree.key}: ${tree.description}`);
  const small = tree.directories.length < 10_000 && tree.encodedBytes < 4 * 2 ** 20;
  const roundsOf = (b: Backend) => (b.name === "s3" ? S3_ROUNDS : small ? SMALL_ROUNDS : ROUNDS);
  const rounds = Math.max(...backends.map(roundsOf));
  // A full collection before each timed call keeps earlier garbage off a long
  // call's bill. Before a call of a few milliseconds it is the bill: V8 throws
  // away optimised code whose embedded objects died in that collection
  // (--trace-deopt: "weak objects"), so the call ran mostly unoptimised (a
  // 1 000-directory read in process: ~1 ms without, 10–30 ms after a gc()).
  const collect = small ? undefined : gc;
  console.log(
    `   backends: ${backends.map((b) => `${b.name} (${roundsOf(b)} round${roundsOf(b) === 1 ? "" : "s"})`).join(", ")}; interleaved`,
  );
  const baseline: number[] = [];
  const measured = new Map<BackendName, Measured>(
    backends.map((b) => [b.name, { ingest: [], read: [], warmRead: [] }]),
  );
  const failed = new Set<BackendName>();
  const failedRound = new Map<BackendName, string>();
  encodeAndHashLoop(tree.directories); // warm-up: the JIT, not the measure
  for (let round = 0; round < rounds; round++) {
    // The baseline is cheap: three passes a round, so that a moment of load on the shared machine does not set it.
    for (let pass = 0; pass < BASELINE_PASSES; pass++)
      baseline.push(await timeSeconds(() => encodeAndHashLoop(tree.directories), collect));
    for (const backend of backends) {
      const m = measured.get(backend.name)!;
      if (round >= roundsOf(backend) || failed.has(backend.name) || m.refused) continue;
      const started = performance.now();
      try {
        await measureRound(backend, tree, round, m, collect, small && backend.name !== "cache" ? SMALL_READS : 1);
        const last = (xs: number[]) =>
          xs.length ? `${Math.round(tree.units / xs[xs.length - 1]).toLocaleString("en-US")} ${tree.unit}` : "-";
        console.log(
          `   round ${round + 1} ${backend.name.padEnd(8)} ` +
            (m.refused
              ? `refused: ${m.refused}`
              : `ingest ${last(m.ingest)}, getRecursive ${last(m.read)}${m.warmRead.length ? `, warm ${last(m.warmRead)}` : ""}`) +
            ` (${((performance.now() - started) / 1000).toFixed(1)} s)`,
        );
      } catch (e) {
        // No more rounds for it on this tree; the rounds that completed still count, and the run fails.
        failed.add(backend.name);
        const message = `${backend.name} on ${tree.key}, round ${round + 1}: ${describeError(e)}`;
        failures.push(message);
        failedRound.set(backend.name, message);
        console.error(`   FAILED ${message}`);
      }
    }
  }

  const baselineRate = tree.units / best(baseline);
  const load = loadAverage();
  const roundsRun = (b: Backend) => {
    const m = measured.get(b.name)!;
    const n = m.refused ? 1 : m.ingest.length;
    return failedRound.has(b.name)
      ? `${n} round${n === 1 ? "" : "s"} (then FAILED: ${failedRound.get(b.name)})`
      : `${n} round${n === 1 ? "" : "s"}`;
  };
  const common = (b: Backend, extra = "") =>
    `${tree.description}; ${b.setup}${extra}; best of ${roundsRun(b)}, each on a fresh store; ${BASELINE} (best of ${rounds * BASELINE_PASSES} passes); ${MACHINE}, load average ${load}`;
  const results: BenchResult[] = [];
  for (const backend of backends) {
    const m = measured.get(backend.name)!;
    const name = (what: string) => `backends: ${backend.name} ${tree.key} ${what}`;
    if (m.refused) {
      results.push(
        benchResult(
          name("ingest"),
          0,
          tree.unit,
          baselineRate,
          `refused by the server: ${m.refused}; ${common(backend)}`,
        ),
      );
      const read = await grpcReadOfPrefilled(environment, tree).catch((e) => ({
        refused: undefined,
        seconds: undefined,
        error: describeError(e),
      }));
      const how = "the server's store (lmdb) filled directly, then read through `castore serve`";
      if (read.seconds !== undefined) {
        results.push(
          benchResult(
            name("getRecursive"),
            tree.units / read.seconds,
            tree.unit,
            baselineRate,
            `${how}, one round; ${common(backend)}`,
          ),
        );
      } else if (read.refused) {
        results.push(
          benchResult(
            name("getRecursive"),
            0,
            tree.unit,
            baselineRate,
            `refused: ${read.refused} (${how}); ${common(backend)}`,
          ),
        );
      } else {
        failures.push(`grpc read of a prefilled ${tree.key}: ${(read as { error?: string }).error}`);
      }
      continue;
    }
    if (!m.ingest.length || !m.read.length) continue;
    results.push(
      benchResult(
        name("ingest"),
        tree.units / best(m.ingest),
        tree.unit,
        baselineRate,
        common(backend, "; one upload through putMultipleStart"),
      ),
    );
    const readNote =
      backend.name === "cache"
        ? "; the first read: near misses, far's closure streams to the caller and fills near once read whole"
        : m.read.length > m.ingest.length
          ? `; getRecursive: best of ${m.read.length} reads (${m.read.length / m.ingest.length} a round), no full collection before each`
          : "";
    results.push(
      benchResult(name("getRecursive"), tree.units / best(m.read), tree.unit, baselineRate, common(backend, readNote)),
    );
    if (m.warmRead.length) {
      results.push(
        benchResult(
          name("getRecursive (warm)"),
          tree.units / best(m.warmRead),
          tree.unit,
          baselineRate,
          common(backend, "; the second read, served from near"),
        ),
      );
    }
  }
  recordBenchResults(results); // prints each result
  return results;
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log(`castore cross-backend benchmark; ${MACHINE}; load average ${loadAverage()}`);
  const environment = await BenchEnvironment.start(ONLY);
  const failures: string[] = [...environment.problems];
  for (const p of environment.problems) console.error(`   ${p}`);
  try {
    const all = environment.backends().filter((b) => !ONLY || ONLY.includes(b.name));
    const notS3 = all.filter((b) => b.name !== "s3");
    const s3 = all.filter((b) => b.name === "s3");

    await benchTree(environment, notS3, generatedTree(DIRECTORIES, 10), failures);
    // S3 stores one object per directory (at a few hundred PUTs/s on the test
    // server), so its generated tree is smaller; its baseline is measured on it.
    if (s3.length) await benchTree(environment, s3, generatedTree(S3_DIRECTORIES, 10), failures);
    await benchTree(environment, all, wideTree(WIDE_ENTRIES), failures);
    await benchTree(environment, all, deepTree(DEPTH), failures);
    if (REAL_TREE) {
      let real: BenchTree | undefined;
      try {
        real = await cachedImportedTree(REAL_TREE, REAL_TREE_MAX, CACHE_DIR);
      } catch (e) {
        failures.push(`importing ${REAL_TREE}: ${describeError(e)}`);
        console.error(`   could not import ${REAL_TREE}: ${describeError(e)}`);
      }
      if (real) await benchTree(environment, all, real, failures);
    }
  } finally {
    await environment.close();
  }
  console.log(`\ncross-backend benchmark done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (failures.length) {
    console.error(`${failures.length} failure(s):\n  ${failures.join("\n  ")}`);
    process.exitCode = 1;
  }
}

await main();
