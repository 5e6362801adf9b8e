export * from "./errors.js";
// digestKey is a speed internal: see ./internal.ts.
export { DIGEST_LENGTH, Digest, hexOf } from "./digest.js";
export { blake3, createBlake3Hasher, type Blake3Hasher } from "./hash.js";
export * from "./model.js";
export { encodeDirectory, decodeDirectory, directoryDigest, DecodeError } from "./canonical.js";
export * from "./validate.js";
export * from "./service.js";
export * from "./closure.js";
export * from "./putter.js";
export * from "./bfs.js";
export * from "./store-service.js";
export * from "./stored-keys.js";
export { repairEntries } from "./repair.js";
export * from "./traverse.js";
export * from "./registry.js";
export { parseBooleanOption, readStoreUrl } from "./store-url.js";
export * as fixtures from "./fixtures.js";
export * from "./cache.js";
