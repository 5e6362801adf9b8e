/**
 * @private Not part of @castore-ts/conformance's API: the heap measurement that
 * the streaming scenario (§7.16) uses, shared with castore's own benchmarks
 * (packages/bench) and tests so they measure memory the same way. It may
 * change or disappear in any release; do not depend on it.
 *
 * @module
 */
export { formatBytes, gcFunction, retainedBytes } from "./heap.js";
