/**
 * The fixtures of spec §7, shared by core's tests and the conformance suite.
 */
import { directoryDigest } from "./canonical.js";
import {
  directorySize,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  type Directory,
} from "./model.js";

import { EMPTY_BLOB_DIGEST } from "./blob/chunked.js";

/** BLAKE3 of the empty string: the digest of an empty blob (and of the empty directory). */
export { EMPTY_BLOB_DIGEST };

function dirNode(name: string, d: Directory) {
  return makeDirectoryNode(name, directoryDigest(d), directorySize(d));
}

/** A: the empty directory. */
export const DIRECTORY_A = makeDirectory();
/** B: {dir `a` → A}. */
export const DIRECTORY_B = makeDirectory({ directories: [dirNode("a", DIRECTORY_A)] });
/** C: {dirs `a`, `a'` → A}. */
export const DIRECTORY_C = makeDirectory({ directories: [dirNode("a", DIRECTORY_A), dirNode("a'", DIRECTORY_A)] });
/** D: {dir `a` → A, dir `b` → B}. */
export const DIRECTORY_D = makeDirectory({ directories: [dirNode("a", DIRECTORY_A), dirNode("b", DIRECTORY_B)] });
/** WITH_KEEP: {file `.keep`, empty blob}. */
export const DIRECTORY_WITH_KEEP = makeDirectory({ files: [makeFileNode(".keep", EMPTY_BLOB_DIGEST, 0)] });
/** COMPLICATED: {dir `keep` → WITH_KEEP, file `.keep`, symlink `aa` → `/nix/store/somewhereelse`}. */
export const DIRECTORY_COMPLICATED = makeDirectory({
  directories: [dirNode("keep", DIRECTORY_WITH_KEEP)],
  files: [makeFileNode(".keep", EMPTY_BLOB_DIGEST, 0)],
  symlinks: [makeSymlinkNode("aa", "/nix/store/somewhereelse")],
});
/** BROKEN: {dir `foo` → A declaring size 42}. */
export const DIRECTORY_BROKEN = makeDirectory({
  directories: [makeDirectoryNode("foo", directoryDigest(DIRECTORY_A), 42)],
});
