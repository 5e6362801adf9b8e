/**
 * Fixtures for backend tests and benchmarks: the spec §7 directories (core's
 * fixtures, re-exported) and deterministic tree generators.
 */
import { fixtures } from "@castore/core";

export const {
  EMPTY_BLOB_DIGEST,
  DIRECTORY_A,
  DIRECTORY_B,
  DIRECTORY_C,
  DIRECTORY_D,
  DIRECTORY_WITH_KEEP,
  DIRECTORY_COMPLICATED,
  DIRECTORY_BROKEN,
} = fixtures;

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
