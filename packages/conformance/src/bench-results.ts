/**
 * The one writer of bench-results.json, shared by every package's benchmark:
 * a JSON array of { name, value, unit, baseline, ratio } at the repository
 * root, where a new result replaces an older one of the same name.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export interface BenchResult {
  /** Unique across the repository, e.g. "memory: ingest 100k directories". */
  name: string;
  value: number;
  /** e.g. "directories/s", "MiB". */
  unit: string;
  /** The same measure for the bare reference in the same run (same unit), or null when there is none. */
  baseline: number | null;
  /** value / baseline, or null without a baseline. */
  ratio: number | null;
}

/** The repository root: the nearest folder up from `from` holding pnpm-workspace.yaml, else `from`. */
function workspaceRoot(from: string): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    if (dirname(dir) === dir) return resolve(from);
  }
}

/** Where results go: $CASTORE_BENCH_RESULTS, else bench-results.json at the repository root. */
export function benchResultsPath(): string {
  return process.env.CASTORE_BENCH_RESULTS ?? join(workspaceRoot(process.cwd()), "bench-results.json");
}

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
export function benchResult(name: string, value: number, unit: string, baseline: number | null = null): BenchResult {
  return { name, value, unit, baseline, ratio: baseline ? value / baseline : null };
}
