/**
 * Garbage collection per backend (spec §10): a store of 1 000 000 directories
 * (s3: CASTORE_BENCH_GC_S3_DIRECTORIES, default 10 000), half of them kept by
 * `keep`, collected with no grace, each in a child process (gc-child.ts) so its
 * peak RSS is its own. Reported: time, directories deleted per second, and the
 * ratio to the bare encode + BLAKE3 loop over the same directories in the same
 * process (how close a collection of N directories gets to merely hashing
 * them once); the peak RSS above the process's RSS at the start of the
 * collection.
 * Run: pnpm bench gc (root), or node dist/gc.js here.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BenchEnvironment } from "./backends.js";
import { benchResult, type BenchResult, recordBenchResults } from "./results.js";

const DIRECTORIES = Number(process.env.CASTORE_BENCH_GC_DIRECTORIES ?? 1_000_000);
const S3_DIRECTORIES = Number(process.env.CASTORE_BENCH_GC_S3_DIRECTORIES ?? 10_000);
const child = fileURLToPath(new URL("./gc-child.js", import.meta.url));

interface ChildResult {
  total: number;
  loopSeconds: number;
  seconds: number;
  rssBeforeKiB: number;
  peakKiB: number;
  live: number;
  deleted: number;
}

const env = await BenchEnvironment.start();
const results: BenchResult[] = [];
try {
  for (const problem of env.problems) console.log(problem);
  for (const backend of env.backends().filter((b) => ["memory", "lmdb", "postgres", "s3"].includes(b.name))) {
    const total = backend.name === "s3" ? S3_DIRECTORIES : DIRECTORIES;
    const store = await backend.fresh("gc");
    try {
      const run = spawnSync(process.execPath, ["--expose-gc", "--max-old-space-size=8192", child, store.url], {
        env: { ...process.env, CASTORE_BENCH_GC_DIRECTORIES: String(total) },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      });
      if (run.status !== 0) throw new Error(`${backend.name}: the collection's process exited with ${run.status}`);
      const r = JSON.parse(run.stdout.trim().split("\n").pop()!) as ChildResult;
      const rate = r.deleted / r.seconds;
      const loopRate = r.total / r.loopSeconds;
      const peakMiB = (r.peakKiB - r.rssBeforeKiB) / 1024;
      console.log(
        `${backend.name}: ${r.total} directories, ${r.deleted} deleted, ${r.live} live, in ${r.seconds.toFixed(1)} s ` +
          `(${Math.round(rate)} deletes/s; bare loop ${Math.round(loopRate)}/s: ${(rate / loopRate).toFixed(3)}×); ` +
          `peak RSS +${peakMiB.toFixed(0)} MiB over ${(r.rssBeforeKiB / 1024).toFixed(0)} MiB`,
      );
      const notes =
        `${backend.setup}; ${r.total} directories, half kept by keep; collect({ graceMs: 0, keep }) took ${r.seconds.toFixed(1)} s, ` +
        `deleted ${r.deleted}, kept ${r.live}; peak RSS ${peakMiB.toFixed(0)} MiB above the ${(r.rssBeforeKiB / 1024).toFixed(0)} MiB ` +
        `the process held when it started (VmHWM, reset before the collection)`;
      results.push(
        benchResult(
          `gc: ${backend.name} collection of ${r.total} directories, half unreachable`,
          rate,
          "directories deleted/s",
          loopRate,
          notes,
        ),
        benchResult(
          `gc: ${backend.name} peak RSS of the collection of ${r.total} directories`,
          peakMiB,
          "MiB",
          null,
          notes,
        ),
      );
    } finally {
      await store.dispose();
    }
  }
} finally {
  await env.close();
}
console.log(`results in ${recordBenchResults(results)}`);
