/**
 * Every scenario, defined once as data plus async checks. They run in spec
 * order: §7.1 … §7.18 by item, then the rest of what §2 and §3 promise.
 */
import type { Scenario } from "../types.js";
import { abortScenarios } from "./abort.js";
import { closingScenarios } from "./closing.js";
import { corruptionScenarios } from "./corruption.js";
import { isolationScenarios } from "./isolation.js";
import { nameScenarios } from "./names.js";
import { orderScenarios } from "./order.js";
import { repairScenarios } from "./repair.js";
import { scaleScenarios } from "./scale.js";
import { uploadScenarios } from "./uploads.js";
import { validationScenarios } from "./validation.js";

/** §7.N sorts by N; everything else after, in definition order (the sort is stable). */
function specItem(s: Scenario): number {
  const m = /^§7\.(\d+) /.exec(s.name);
  return m ? Number(m[1]) : 1000;
}

export const scenarios: Scenario[] = [
  ...uploadScenarios,
  ...validationScenarios,
  ...nameScenarios,
  ...corruptionScenarios,
  ...repairScenarios,
  ...scaleScenarios,
  ...abortScenarios,
  ...closingScenarios,
  ...isolationScenarios,
  ...orderScenarios,
].sort((a, b) => specItem(a) - specItem(b));

const names = new Set<string>();
for (const s of scenarios) {
  if (names.has(s.name)) throw new Error(`duplicate scenario name: ${s.name}`);
  names.add(s.name);
}
