#!/usr/bin/env node
// Runs every benchmark, one after another (benchmarks must not compete for the
// machine's cores), and leaves all their measures in bench-results.json at the
// repository root. A benchmark is a workspace package's `bench:<name>` script;
// they all live in the private packages/bench, so no library ships one.
//
// Usage: pnpm bench [filter...]: only the benchmarks whose "<package>
// bench:<name>" contains one of the filters (`pnpm bench memory`,
// `pnpm bench postgres s3`); a filter that matches none is an error.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2);
const benches = readdirSync(join(root, "packages"))
  .map((dir) => join(root, "packages", dir))
  .filter((dir) => existsSync(join(dir, "package.json")))
  .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) }))
  .flatMap(({ dir, pkg }) =>
    Object.keys(pkg.scripts ?? {})
      .filter((script) => script.startsWith("bench:"))
      .map((script) => ({ dir, script, command: pkg.scripts[script], label: `${pkg.name} ${script}` })),
  );
const unmatched = filters.filter((f) => !benches.some((b) => b.label.includes(f)));
if (unmatched.length > 0) {
  console.error(
    `no benchmark matches ${unmatched.join(", ")}; there are:\n${benches.map((b) => `  ${b.label}`).join("\n")}`,
  );
  process.exit(2);
}
const selected = benches.filter((b) => filters.length === 0 || filters.some((f) => b.label.includes(f)));

// Every result this run writes is stamped with its start (packages/bench/src/results.ts), so the
// report can tell which rows of bench-results.json an earlier run left there.
const run = process.env.CASTORE_BENCH_RUN ?? new Date().toISOString();
let failed = 0;
for (const { dir, script, command, label } of selected) {
  console.log(`\n=== ${label}: ${command}`);
  const started = Date.now();
  const r = spawnSync("pnpm", ["run", "--silent", script], {
    cwd: dir,
    stdio: "inherit",
    env: { ...process.env, CASTORE_BENCH_RUN: run },
  });
  console.log(
    `=== ${label}: ${r.status === 0 ? "done" : `FAILED (${r.status})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  if (r.status !== 0) failed++;
}
console.log(`\nresults: ${process.env.CASTORE_BENCH_RESULTS ?? join(root, "bench-results.json")}`);
process.exit(failed ? 1 : 0);
