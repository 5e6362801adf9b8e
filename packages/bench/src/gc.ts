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
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BenchEnvironment } from "./backends.js";
import { benchResult, benchResultsPath, recordBenchResults } from "./results.js";

const DIRECTORIES = Number(process.env.CASTORE_BENCH_GC_DIRECTORIES ?? 1_000_000);
const S3_DIRECTORIES = Number(process.env.CASTORE_BENCH_GC_S3_DIRECTORIES ?? 10_000);
const child_ = fileURLToPath(new URL("./gc-child.js", import.meta.url));

interface ChildResult {
  total: number;
  loopSeconds: number;
  seconds: number;
  rssBeforeKiB: number;
  peakKiB: number;
  live: number;
  deleted: number;
}

/** Runs gc-child.js on a store; resolves to its stdout, rejects when it fails. */
function runChild(url: string, total: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", "--max-old-space-size=8192", child_, url], {
      env: { ...process.env, CASTORE_BENCH_GC_DIRECTORIES: String(total) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`the collection's process exited with ${code}`)),
    );
  });
}

/** Only these backends, when set (comma-separated), e.g. CASTORE_BENCH_GC_BACKENDS=s3. */
const ONLY = process.env.CASTORE_BENCH_GC_BACKENDS?.split(",");

const env = await BenchEnvironment.start();
try {
  for (const problem of env.problems) console.log(problem);
  for (const backend of env.backends().filter((b) => (ONLY ?? ["memory", "lmdb", "postgres", "s3"]).includes(b.name))) {
    const total = backend.name === "s3" ? S3_DIRECTORIES : DIRECTORIES;
    const store = await backend.fresh("gc");
    try {
      // Not spawnSync: the S3 test server may run in this process and must keep answering.
      const stdout = await runChild(store.url, total);
      const r = JSON.parse(stdout.trim().split("\n").pop()!) as ChildResult;
      const rate = r.deleted / r.seconds;
      const loopRate = r.total / r.loopSeconds;
      // The peak above the RSS at the start (0 when the collection added nothing, as PostgreSQL's does in the client).
      const peakMiB = Math.max(0, (r.peakKiB - r.rssBeforeKiB) / 1024);
      console.log(
        `${backend.name}: ${r.total} directories, ${r.deleted} deleted, ${r.live} live, in ${r.seconds.toFixed(1)} s ` +
          `(${Math.round(rate)} deletes/s; bare loop ${Math.round(loopRate)}/s: ${(rate / loopRate).toFixed(3)}×); ` +
          `peak RSS +${peakMiB.toFixed(0)} MiB over ${(r.rssBeforeKiB / 1024).toFixed(0)} MiB`,
      );
      const notes =
        `${backend.setup}; ${r.total} directories, half kept by keep; collect({ graceMs: 0, keep }) took ${r.seconds.toFixed(1)} s, ` +
        `deleted ${r.deleted}, kept ${r.live}; peak RSS ${peakMiB.toFixed(0)} MiB above the ${(r.rssBeforeKiB / 1024).toFixed(0)} MiB ` +
        `the process held when it started (VmHWM, reset before the collection)`;
      recordBenchResults([
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
      ]); // recorded as each backend finishes: a later one failing keeps these
    } finally {
      await store.dispose();
    }
  }
} finally {
  await env.close();
}
console.log(`results in ${benchResultsPath()}`);
