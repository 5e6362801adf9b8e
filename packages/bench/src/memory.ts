/**
 * Benchmark of the memory backend (`pnpm bench memory`, or in packages/bench
 * `node --expose-gc dist/memory.js`):
 * ingest of a generated 100 000-directory tree through the putter, and
 * getRecursive of it, in directories/s, each against the bare
 * `encodeDirectory` + BLAKE3 loop over the same directories in the same run;
 * and the memory a slow getRecursive consumer holds. Results are merged into
 * bench-results.json at the repository root.
 *
 * The three loops take turns, round after round, each after a full garbage
 * collection, and each keeps its best round: on a shared machine the turns
 * see the same load, so the ratios hold even when the rates wander.
 */
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { generateTree } from "@castore-ts/conformance";
import { formatBytes, gcFunction, retainedBytes } from "@castore-ts/conformance/internal";
import type { Directory } from "@castore-ts/core";
import { type BenchResult, benchResult, recordBenchResults } from "./results.js";
import { encodeAndHashLoop, timeSeconds } from "./timing.js";

const DIRECTORIES = Number(process.env.CASTORE_BENCH_DIRECTORIES ?? 100_000);
const ROUNDS = Number(process.env.CASTORE_BENCH_ROUNDS ?? 5);

async function ingest(directories: Directory[]): Promise<MemoryDirectoryService> {
  const service = new MemoryDirectoryService();
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  await putter.close();
  return service;
}

async function readAll(service: MemoryDirectoryService, root: Parameters<MemoryDirectoryService["getRecursive"]>[0]) {
  let n = 0;
  for await (const _ of service.getRecursive(root)) n++;
  if (n !== DIRECTORIES) throw new Error(`getRecursive yielded ${n} directories, expected ${DIRECTORIES}`);
}

/** Memory held while a slow consumer reads the whole tree: before, the highest reading, after. */
async function slowConsumer(
  gc: () => void,
  service: MemoryDirectoryService,
  root: Parameters<MemoryDirectoryService["getRecursive"]>[0],
) {
  const before = retainedBytes(gc);
  let peak = before;
  let n = 0;
  for await (const _ of service.getRecursive(root)) {
    if (++n % Math.ceil(DIRECTORIES / 10) === 0) peak = Math.max(peak, retainedBytes(gc));
    await yieldToEventLoop();
  }
  return { before, peak, after: retainedBytes(gc) };
}

async function main(): Promise<void> {
  const gc = gcFunction();
  const tree = generateTree({ directories: DIRECTORIES, seed: 100_000 });
  const notes = `${DIRECTORIES} directories (generateTree seed 100000), ${(tree.encodedBytes / 2 ** 20).toFixed(1)} MiB encoded; best of ${ROUNDS} interleaved rounds`;
  console.log(notes);

  let bare = Infinity;
  let write = Infinity;
  let read = Infinity;
  let service: MemoryDirectoryService | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    bare = Math.min(bare, await timeSeconds(() => encodeAndHashLoop(tree.directories), gc));
    write = Math.min(write, await timeSeconds(async () => (service = await ingest(tree.directories)), gc));
    read = Math.min(read, await timeSeconds(() => readAll(service!, tree.root), gc));
  }
  const bareRate = DIRECTORIES / bare;
  const results: BenchResult[] = [
    benchResult(
      `memory: ingest ${DIRECTORIES} directories through the putter`,
      DIRECTORIES / write,
      "directories/s",
      bareRate,
      `${notes}; baseline: bare encodeDirectory + BLAKE3 loop`,
    ),
    benchResult(
      `memory: getRecursive of ${DIRECTORIES} directories`,
      DIRECTORIES / read,
      "directories/s",
      bareRate,
      `${notes}; baseline: bare encodeDirectory + BLAKE3 loop`,
    ),
  ];

  if (gc) {
    const root = tree.root;
    tree.directories.length = 0; // only the store's bytes stay
    const m = await slowConsumer(gc, service!, root);
    const mib = (b: number) => b / 2 ** 20;
    const what = `getRecursive of ${DIRECTORIES} directories with a slow consumer (yields to the event loop per directory)`;
    results.push(
      benchResult(
        `memory: peak heap during ${what}`,
        mib(m.peak),
        "MiB",
        mib(m.before),
        `baseline: heap before, with the store's ${formatBytes(m.before)}`,
      ),
      benchResult(`memory: heap after ${what}`, mib(m.after), "MiB", mib(m.before), "baseline: heap before"),
    );
  } else {
    console.log("slow consumer: skipped (cannot force garbage collection; run node with --expose-gc)");
  }

  for (const r of results) {
    const value = r.unit === "MiB" ? r.value.toFixed(1) : Math.round(r.value).toLocaleString("en-US");
    const baseline = r.unit === "MiB" ? r.baseline!.toFixed(1) : Math.round(r.baseline!).toLocaleString("en-US");
    console.log(`${r.name}: ${value} ${r.unit}  ratio ${r.ratio!.toFixed(2)} (baseline ${baseline})`);
  }
  console.log(`written to ${recordBenchResults(results)}`);
}

await main();
