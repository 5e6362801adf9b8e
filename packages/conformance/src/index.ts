/**
 * @castore-ts/conformance: the scenarios every castore DirectoryService must
 * pass. Write a backend, run this suite, know it behaves like every other
 * castore backend. No test runner needed here (`./vitest` has the vitest form).
 */
// types.ts holds the public contract only (targets, capabilities, scenarios,
// results): all of it is exported, so a type added there is never forgotten here.
export type * from "./types.js";
export { ConformanceFailure, runConformance, runScenario, skipReason } from "./runner.js";
export { rootScenarios, scenarios, scenariosFor } from "./scenarios/index.js";
export { type DefineTestsOptions, type TestRunner, defineConformanceTests } from "./define-tests.js";
// The spec §7 fixtures are core's (`import { fixtures } from "@castore-ts/core"`);
// this package adds the tree generators.
export {
  type DigestedDirectory,
  type GenerateTreeOptions,
  type GeneratedTree,
  type OverlappingTree,
  deepChain,
  generateTree,
  overlappingTree,
  seededRandom,
  taggedDirectory,
  wideDirectory,
} from "./trees.js";
