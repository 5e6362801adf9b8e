/**
 * The writer of bench-results.json that backend benchmarks share: a JSON
 * array of { name, value, unit, baseline, ratio, notes? } at the repository
 * root, where a new result replaces an older one of the same name. Unlike
 * core's recordBenchResults it takes a lock (benchmarks of several packages
 * may write at once), prints nothing, and returns the file's path.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from "node:fs";
import { type BenchResult, benchResultsPath } from "@castore/core/bench-results";

// The entry shape and the file's location are core's (`@castore/core/bench-results`),
// so both writers agree on them.
export { type BenchResult, benchResultsPath };

function withLock<T>(file: string, fn: () => T): T {
  const lock = `${file}.lock`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || Date.now() > deadline) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    return fn();
  } finally {
    rmdirSync(lock);
  }
}

/**
 * Merges results into the results file: entries with the same name are
 * replaced, others kept. Safe against benches of other packages writing at
 * the same time. Returns the file's path.
 */
export function recordBenchResults(results: BenchResult[], file = benchResultsPath()): string {
  withLock(file, () => {
    let existing: BenchResult[] = [];
    if (existsSync(file)) {
      const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
      if (!Array.isArray(parsed)) throw new Error(`${file} is not a JSON array`);
      existing = parsed as BenchResult[];
    }
    const replaced = new Set(results.map((r) => r.name));
    const merged = [...existing.filter((r) => !replaced.has(r.name)), ...results];
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`);
    renameSync(tmp, file);
  });
  return file;
}

/** A result with its ratio computed from the baseline. */
export function benchResult(name: string, value: number, unit: string, baseline: number | null = null, notes?: string): BenchResult {
  return { name, value, unit, baseline, ratio: baseline ? value / baseline : null, ...(notes ? { notes } : {}) };
}
