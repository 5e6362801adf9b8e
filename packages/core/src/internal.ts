/**
 * @private Not part of @castore-ts/core's API: the speed internals that core's
 * own upload checks use and that castore's own backends (the memory backend)
 * share, so a stored directory costs no object there, as in an upload. They may change or disappear in any release without notice; do not
 * depend on them. A backend outside this repository needs none of them: the
 * public interfaces (DirectoryStore, ClosurePutter, ClosureEntry) suffice.
 *
 * @module
 */
export { ByteArena } from "./arena.js";
export { PackedRecords, grownTo } from "./packed-records.js";
export { digestKey, digestKeyBytes } from "./digest.js";
