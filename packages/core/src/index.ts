export * from "./errors.js";
// digestKey is a speed internal: see ./internal.ts.
export { DIGEST_LENGTH, Digest, hexOf, isDigest, requireDigest, requireDigests } from "./digest.js";
export { requireBytes } from "./argument-checks.js";
export { blake3, createBlake3Hasher, type Blake3Hasher } from "./hash.js";
export * from "./model.js";
export { encodeDirectory, decodeDirectory, directoryDigest, DecodeError } from "./canonical.js";
export * from "./validate.js";
export * from "./service.js";
export * from "./size-check.js";
export * from "./read-sizes.js";
export * from "./closure.js";
export * from "./putter.js";
export * from "./bfs.js";
export * from "./store-service.js";
export { visitStoredClosures } from "./stored-closure.js";
export { expandPartialClosure } from "./expand-partial.js";
export { missingTopDown } from "./missing.js";
export * from "./stored-keys.js";
export { repairEntries } from "./repair.js";
export * from "./traverse.js";
export * from "./registry.js";
export { parseBooleanOption, readStoreUrl } from "./store-url.js";
export * as fixtures from "./fixtures.js";
export * from "./cache.js";
export * from "./cache-blobs.js";
export * from "./blob/service.js";
export * from "./blob/registry.js";
export * from "./blob/chunked.js";
export { type ChunkingOptions, SNIX_CHUNKING, findCutPoint, FastCdcChunker } from "./blob/fastcdc.js";
export * from "./refs/name.js";
export * from "./refs/service.js";
export * from "./refs/registry.js";
export { MapRefStore, refHolds, compareNames as compareRefNames } from "./refs/memory-ref-store.js";
export * from "./gc/collector.js";
export type { CollectableStore, StoredObject } from "./gc/collectable.js";
export { InProcessCollector, type CollectableParts } from "./gc/in-process.js";
export { protectClosure } from "./gc/protect.js";
export { COLLECTION_STARTED, fencedSet, type FencedSetSteps, PROTECT_ATTEMPTS } from "./gc/fenced-set.js";
export * from "./gc/registry.js";
export { monotonicNow } from "./gc/clock.js";
export {
  childrenIn,
  copyClosure,
  type CopyClosureOptions,
  readClosure,
  type ReadClosure,
  writeClosure,
  type WriteClosureOptions,
} from "./copy.js";
