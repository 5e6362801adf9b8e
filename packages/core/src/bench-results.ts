/**
 * The one writer of bench-results.json (repository root): a JSON array of
 * `{ name, value, unit, baseline, ratio }`. Each benchmark records its
 * measures here; entries with the same name are replaced, others kept.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
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
}

/** The repository root: the nearest ancestor holding pnpm-workspace.yaml, else the cwd. */
export function repositoryRoot(from = process.cwd()): string {
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

export function recordBenchResults(results: BenchResult[]): void {
  const path = benchResultsPath();
  let existing: BenchResult[] = [];
  if (existsSync(path)) {
    try {
      existing = JSON.parse(readFileSync(path, "utf8")) as BenchResult[];
    } catch {
      existing = [];
    }
  }
  const names = new Set(results.map((r) => r.name));
  const merged = [...existing.filter((r) => !names.has(r.name)), ...results];
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(merged, null, 2) + "\n");
  renameSync(tmp, path);
  for (const r of results) {
    const ratio = r.ratio === null ? "" : `  ratio ${r.ratio.toFixed(3)} (baseline ${fmt(r.baseline!)} ${r.unit})`;
    console.log(`${r.name}: ${fmt(r.value)} ${r.unit}${ratio}${r.notes ? `  [${r.notes}]` : ""}`);
  }
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
