/**
 * The one writer of bench-results.json (repository root): a JSON array of
 * `{ name, value, unit, baseline, ratio, notes, run }`. Each benchmark of
 * this package records its measures here; entries with the same name are
 * replaced, others kept (so one benchmark can be run again alone). Each
 * entry carries the run that measured it, so the report can tell a whole
 * run from a file that still holds an earlier run's rows.
 * scripts/report/make-report.mjs reads the file.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** The comparison measured in the same run (same unit), or null. */
  baseline: number | null;
  /** value / baseline (for rates: ours over the baseline's), or null. */
  ratio: number | null;
  /** Free-form detail: sizes, round trips, machine notes. */
  notes?: string;
  /**
   * When the run that measured it started (ISO 8601): the `pnpm bench` run
   * (scripts/bench.mjs passes it in CASTORE_BENCH_RUN to every benchmark),
   * else this process's start. Set by recordBenchResults.
   */
  run?: string;
}

/** The run this process's results belong to (see BenchResult.run). */
const RUN = process.env.CASTORE_BENCH_RUN ?? new Date().toISOString();

/** The repository root: the nearest ancestor holding pnpm-workspace.yaml, else the cwd. */
function repositoryRoot(from = process.cwd()): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return from;
    dir = parent;
  }
}

export function benchResultsPath(): string {
  return process.env.CASTORE_BENCH_RESULTS ?? join(repositoryRoot(), "bench-results.json");
}

/** Benchmarks of several packages may write at once: a directory lock serialises them. */
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
 * Merges results into the results file (same name: replaced; others kept),
 * each stamped with this run, prints one line per result, and returns the
 * file's path.
 */
export function recordBenchResults(results: BenchResult[], file = benchResultsPath()): string {
  withLock(file, () => {
    let existing: BenchResult[] = [];
    if (existsSync(file)) {
      const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
      if (!Array.isArray(parsed)) throw new Error(`${file} is not a JSON array`);
      existing = parsed as BenchResult[];
    }
    const names = new Set(results.map((r) => r.name));
    const merged = [...existing.filter((r) => !names.has(r.name)), ...results.map((r) => ({ ...r, run: RUN }))];
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(merged, null, 2) + "\n");
    renameSync(tmp, file);
  });
  for (const r of results) {
    const ratio = r.ratio === null ? "" : `  ratio ${r.ratio.toFixed(3)} (baseline ${fmt(r.baseline!)} ${r.unit})`;
    console.log(`${r.name}: ${fmt(r.value)} ${r.unit}${ratio}${r.notes ? `  [${r.notes}]` : ""}`);
  }
  return file;
}

/** A result with its ratio computed from the baseline. */
export function benchResult(
  name: string,
  value: number,
  unit: string,
  baseline: number | null = null,
  notes?: string,
): BenchResult {
  return { name, value, unit, baseline, ratio: baseline ? value / baseline : null, ...(notes ? { notes } : {}) };
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(3);
}

/** Runs `fn` `rounds` times and returns the best rate in operations per second. */
export async function bestRate(ops: number, rounds: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  let best = 0;
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    await fn();
    const seconds = (performance.now() - start) / 1000;
    best = Math.max(best, ops / seconds);
  }
  return best;
}
