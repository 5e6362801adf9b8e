#!/usr/bin/env node
// `pnpm bench [filter...]`: every benchmark (scripts/bench.mjs, which
// takes the filters), then the report (make-report.mjs), also when a benchmark
// failed: the results that were written still deserve a report. Exits with the
// benchmarks' status, or the report's when they passed.
import { spawnSync } from "node:child_process";

const here = (file) => new URL(file, import.meta.url).pathname;
const bench = spawnSync(process.execPath, [here("../bench.mjs"), ...process.argv.slice(2)], { stdio: "inherit" });
console.log("\n=== report: scripts/report/make-report.mjs");
const report = spawnSync(process.execPath, [here("make-report.mjs")], { stdio: "inherit" });
process.exit(bench.status || report.status || 0);
