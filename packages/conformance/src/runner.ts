/**
 * Runs scenarios against a target: a fresh instance per scenario, a timeout,
 * teardown, and a result that names the backend, the scenario and what differed.
 */
import { describeError } from "./checks.js";
import { scenarios as allScenarios } from "./scenarios/index.js";
import type {
  ConformanceInstance,
  ConformanceReport,
  ConformanceTarget,
  RunOptions,
  Scenario,
  ScenarioContext,
  ScenarioFilter,
  ScenarioResult,
} from "./types.js";

const DEFAULT_TIMEOUT_MS = 30_000;

/** Thrown by ctx.fail: the scenario's own verdict (its message needs no "unexpected error" prefix). */
export class ConformanceFailure extends Error {
  override name = "ConformanceFailure";
}

class ScenarioSkipped extends Error {
  override name = "ScenarioSkipped";
}

/**
 * A predicate for a filter: a string selects the scenario with that id or the
 * ids it prefixes; a RegExp (copied without the stateful g and y flags) is
 * tested against the title, as before ids existed; a function decides itself.
 */
export function scenarioMatcher(filter: ScenarioFilter | undefined): (scenario: Scenario) => boolean {
  if (filter === undefined) return () => true;
  if (typeof filter === "string") return (s) => s.id.startsWith(filter);
  if (typeof filter === "function") return (s) => filter({ id: s.id, name: s.name });
  const re = new RegExp(filter.source, filter.flags.replace(/[gy]/g, ""));
  return (s) => re.test(s.name);
}

/** The most time a scenario may take, teardown included. */
export function scenarioTimeout(scenario: Scenario): number {
  return scenario.timeoutMs ?? DEFAULT_TIMEOUT_MS;
}

/**
 * Why a scenario is skipped for this target, from its declared capabilities
 * alone (known before any instance exists), or undefined when it runs.
 */
export function skipReason(target: ConformanceTarget, scenario: Scenario): string | undefined {
  for (const capability of scenario.requires) {
    const declared: unknown = target.capabilities?.[capability];
    if (declared === undefined || declared === true) continue;
    const why = typeof declared === "string" ? declared : `declared ${String(declared)}`;
    return `capability "${capability}" not supported: ${why}`;
  }
  return undefined;
}

function typedErrors(target: ConformanceTarget): boolean {
  const declared = target.capabilities?.typedErrors;
  return declared === undefined || declared === true;
}

async function release(instance: ConformanceInstance): Promise<void> {
  if (instance.teardown) await instance.teardown();
  else await Promise.all([instance.service.close(), instance.blobs?.close()]);
}

/** Runs one scenario on a fresh instance of the target. Never throws: failures are results. */
export async function runScenario(target: ConformanceTarget, scenario: Scenario): Promise<ScenarioResult> {
  const started = performance.now();
  const result = (status: ScenarioResult["status"], message?: string): ScenarioResult => ({
    id: scenario.id,
    title: scenario.name,
    status,
    ...(message === undefined ? {} : { message }),
    ms: Math.round(performance.now() - started),
  });
  const prefix = `${target.name}: [${scenario.id}] ${scenario.name}: `;

  const skip = skipReason(target, scenario);
  if (skip) return result("skip", skip);

  const notes: string[] = [];
  const controller = new AbortController();
  const timeoutMs = scenarioTimeout(scenario);
  let instance: ConformanceInstance | undefined;
  let timer: NodeJS.Timeout | undefined;
  let outcome: ScenarioResult;

  const body = async () => {
    try {
      instance = await target.factory();
    } catch (e) {
      throw new ConformanceFailure(`factory() failed: ${describeError(e)}`, { cause: e });
    }
    const ctx: ScenarioContext = {
      target,
      instance,
      service: instance.service,
      blobs: instance.blobs,
      typedErrors: typedErrors(target),
      isolated: target.capabilities?.isolated === undefined || target.capabilities.isolated === true,
      signal: controller.signal,
      fail(message) {
        throw new ConformanceFailure(message);
      },
      skip(reason) {
        throw new ScenarioSkipped(reason);
      },
      note(text) {
        notes.push(text);
      },
    };
    await scenario.run(ctx);
  };
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(new Error("scenario timed out"));
      reject(new ConformanceFailure(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
  });

  try {
    await Promise.race([body(), timedOut]);
    outcome = result("pass", notes.length > 0 ? notes.join("; ") : undefined);
  } catch (e) {
    if (e instanceof ScenarioSkipped) {
      outcome = result("skip", e.message);
    } else {
      const why = e instanceof ConformanceFailure ? e.message : `unexpected error: ${describeError(e)}`;
      outcome = result("fail", prefix + why);
    }
  } finally {
    clearTimeout(timer);
  }
  if (instance) {
    try {
      await release(instance);
    } catch (e) {
      if (outcome.status !== "fail") outcome = result("fail", `${prefix}teardown failed: ${describeError(e)}`);
    }
  }
  return outcome;
}

/** Runs every scenario (or those `filter` selects) in order, one fresh instance each. */
export async function runConformance(target: ConformanceTarget, opts: RunOptions = {}): Promise<ConformanceReport> {
  const results: ScenarioResult[] = [];
  const selected = scenarioMatcher(opts.filter);
  for (const scenario of allScenarios) {
    if (!selected(scenario)) continue;
    const r = await runScenario(target, scenario);
    results.push(r);
    opts.onResult?.(r);
  }
  return {
    backend: target.name,
    results,
    passed: results.filter((r) => r.status === "pass").length,
    failed: results.filter((r) => r.status === "fail").length,
    skipped: results.filter((r) => r.status === "skip").length,
  };
}
