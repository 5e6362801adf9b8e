/**
 * bench-results.json has one writer, core's; the conformance package
 * re-exports it next to the tree generators that benchmarks use.
 */
export { type BenchResult, benchResult, benchResultsPath, recordBenchResults } from "@castore/core/bench-results";
