#!/usr/bin/env node
// Runs every workspace package's `bench` script, one after another (benchmarks
// must not compete for the machine's cores), and leaves all their measures in
// bench-results.json at the repository root. Usage: pnpm bench [filter...]
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const filters = process.argv.slice(2);
const packages = readdirSync(join(root, "packages"))
  .map((dir) => join(root, "packages", dir))
  .filter((dir) => existsSync(join(dir, "package.json")))
  .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) }))
  .filter(({ pkg }) => pkg.scripts?.bench)
  .filter(({ pkg }) => filters.length === 0 || filters.some((f) => pkg.name.includes(f)));

let failed = 0;
for (const { dir, pkg } of packages) {
  console.log(`\n=== ${pkg.name}: ${pkg.scripts.bench}`);
  const started = Date.now();
  const r = spawnSync("pnpm", ["run", "--silent", "bench"], { cwd: dir, stdio: "inherit" });
  console.log(`=== ${pkg.name}: ${r.status === 0 ? "done" : `FAILED (${r.status})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (r.status !== 0) failed++;
}
console.log(`\nresults: ${join(root, "bench-results.json")}`);
process.exit(failed ? 1 : 0);
