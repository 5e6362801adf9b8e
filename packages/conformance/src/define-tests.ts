/**
 * The suite as test cases of any runner with describe/it (vitest, jest,
 * mocha-likes): the caller passes its runner in, so the suite never loads a
 * second copy of it (the @keyv/test-suite pattern). `./vitest` wraps this.
 */
import { ConformanceFailure, runScenario, scenarioMatcher, scenarioTimeout, skipReason } from "./runner.js";
import { scenariosFor } from "./scenarios/index.js";
import type { ConformanceTarget, ScenarioFilter } from "./types.js";

export interface TestRunner {
  describe(name: string, body: () => void): void;
  /** Registers a test; `context.skip`, when the runner has one, marks a skip decided at run time. */
  it(name: string, fn: (context?: { skip?: (note?: string) => void }) => Promise<void>, timeoutMs: number): void;
  /** Registers a skipped test. */
  skip(name: string): void;
}

export interface DefineTestsOptions {
  /** Registers only the scenarios it selects (an id or id prefix, or a RegExp tested on the title). */
  filter?: ScenarioFilter;
}

/** Room for the factory and teardown beyond the scenario's own timeout. */
const TIMEOUT_MARGIN_MS = 10_000;

/**
 * One describe block for the backend, one test per scenario. Scenarios the
 * backend's capabilities rule out are registered as skipped, the reason in
 * the title.
 */
export function defineConformanceTests(
  runner: TestRunner,
  target: ConformanceTarget,
  opts: DefineTestsOptions = {},
): void {
  const selected = scenarioMatcher(opts.filter);
  runner.describe(`castore conformance: ${target.name}`, () => {
    for (const scenario of scenariosFor(target)) {
      if (!selected(scenario)) continue;
      const testName = `${scenario.id}: ${scenario.name}`;
      const skip = skipReason(target, scenario);
      if (skip) {
        runner.skip(`${testName} [skipped: ${skip}]`);
        continue;
      }
      runner.it(
        testName,
        async (context) => {
          const result = await runScenario(target, scenario);
          if (result.status === "fail") throw new ConformanceFailure(result.message ?? "failed");
          if (result.status === "skip") context?.skip?.(result.message);
        },
        scenarioTimeout(scenario) + TIMEOUT_MARGIN_MS,
      );
    }
  });
}
