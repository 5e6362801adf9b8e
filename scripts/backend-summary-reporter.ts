/**
 * A vitest reporter that ends the run with one line per backend: how many
 * conformance scenarios passed, were skipped (with the declared reason in the
 * test title) and failed, then the run's totals as one plain line
 * ("tests: N passed, N failed, N skipped"). CI prints it after the default
 * reporter's output.
 */
import type { Reporter, TestModule } from "vitest/node";

type Counts = { passed: number; skipped: number; failed: number };

const PREFIX = "castore conformance: ";

export default class BackendSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    this.printBackends(testModules);
    // The plain closing line CI reads: every test of the run, by outcome.
    const total: Counts = { passed: 0, skipped: 0, failed: 0 };
    for (const module of testModules) {
      if (module.state() === "failed" && [...module.children.allTests()].length === 0) total.failed++; // a file that failed to load
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") total.passed++;
        else if (state === "failed") total.failed++;
        else total.skipped++;
      }
    }
    process.stdout.write(`\ntests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`);
  }

  private printBackends(testModules: ReadonlyArray<TestModule>): void {
    const byBackend = new Map<string, Counts>();
    for (const module of testModules) {
      for (const suite of module.children.allSuites()) {
        if (!suite.name.startsWith(PREFIX)) continue;
        const backend = suite.name.slice(PREFIX.length);
        const counts = byBackend.get(backend) ?? { passed: 0, skipped: 0, failed: 0 };
        for (const test of suite.children.allTests()) {
          const state = test.result().state;
          if (state === "passed") counts.passed++;
          else if (state === "failed") counts.failed++;
          else counts.skipped++;
        }
        byBackend.set(backend, counts);
      }
    }
    if (byBackend.size === 0) return;
    const width = Math.max(...[...byBackend.keys()].map((k) => k.length));
    const lines = [...byBackend.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(
        ([backend, c]) =>
          `  ${backend.padEnd(width)}  ${String(c.passed).padStart(3)} passed  ${String(c.skipped).padStart(3)} skipped  ${String(c.failed).padStart(3)} failed`,
      );
    process.stdout.write(`\nConformance per backend:\n${lines.join("\n")}\n`);
  }
}
