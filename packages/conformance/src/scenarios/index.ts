/**
 * Every scenario, defined once as data plus async checks. They run in spec
 * order: §7.1 … §7.18 by item, then the rest of what §2 and §3 promise.
 */
import type { ConformanceTarget, Scenario } from "../types.js";
import { abortScenarios } from "./abort.js";
import { blobScenarios } from "./blobs.js";
import { closingScenarios } from "./closing.js";
import { gcScenarios } from "./gc.js";
import { corruptionScenarios } from "./corruption.js";
import { isolationScenarios } from "./isolation.js";
import { nameScenarios } from "./names.js";
import { orderScenarios } from "./order.js";
import { partialScenarios } from "./partial.js";
import { refScenarios } from "./refs.js";
import { repairScenarios } from "./repair.js";
import { rootScenarios } from "./roots.js";
import { scaleScenarios } from "./scale.js";
import { sizeScenarios } from "./sizes.js";
import { uploadScenarios } from "./uploads.js";
import { validationScenarios } from "./validation.js";

/** §7.N sorts by N; everything else after, in definition order (the sort is stable). */
function specItem(s: Scenario): number {
  const m = /^§7\.(\d+) /.exec(s.name);
  return m ? Number(m[1]) : 1000;
}

export const scenarios: Scenario[] = [
  ...uploadScenarios,
  ...sizeScenarios,
  ...validationScenarios,
  ...nameScenarios,
  ...corruptionScenarios,
  ...repairScenarios,
  ...scaleScenarios,
  ...abortScenarios,
  ...closingScenarios,
  ...isolationScenarios,
  ...orderScenarios,
  ...blobScenarios,
  ...refScenarios,
  ...gcScenarios,
  ...partialScenarios,
].sort((a, b) => specItem(a) - specItem(b));

/**
 * The roots.* scenarios: reads of directories already stored (target.roots),
 * run after the others and only when roots are given (scenariosFor).
 */
export { rootScenarios };

/** The scenarios a target runs: all of `scenarios`, then the roots.* ones when it names roots. */
export function scenariosFor(target: ConformanceTarget): Scenario[] {
  return target.roots && target.roots.length > 0 ? [...scenarios, ...rootScenarios] : scenarios;
}

/** Ids: lowercase dotted `module.name`, e.g. "closure.dangling-child". */
const ID_SHAPE = /^[a-z0-9]+(?:-[a-z0-9]+)*\.[a-z0-9]+(?:-[a-z0-9]+)*$/;

const ids = new Set<string>();
const names = new Set<string>();
for (const s of [...scenarios, ...rootScenarios]) {
  if (!ID_SHAPE.test(s.id)) throw new Error(`scenario id ${JSON.stringify(s.id)} is not lowercase dotted module.name`);
  if (ids.has(s.id)) throw new Error(`duplicate scenario id: ${s.id}`);
  if (names.has(s.name)) throw new Error(`duplicate scenario title: ${s.name}`);
  ids.add(s.id);
  names.add(s.name);
}
