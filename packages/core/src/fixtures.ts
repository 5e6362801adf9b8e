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

// Declared sizes (spec §1.1). castore writes the canonical size, n + s (the
// child's entries plus the sizes it declares); older tvix/snix writers
// declared up to 2·n + s, which snix still accepts and castore accepts under
// sizeCheck "snix-compat". Upload order for each tree: leaves to root.

/** NESTED: {dir `inner` → COMPLICATED, canonical size 4 (3 entries + `keep`'s 1)}. Upload [WITH_KEEP, COMPLICATED, NESTED]. */
export const DIRECTORY_NESTED = makeDirectory({ directories: [dirNode("inner", DIRECTORY_COMPLICATED)] });

/**
 * COMPLICATED_LEGACY: COMPLICATED with `keep` → WITH_KEEP declaring 2, the
 * legacy maximum 2·1 + 0 (canonical: 1). Accepted by snix-compat, rejected by exact.
 */
export const DIRECTORY_COMPLICATED_LEGACY = makeDirectory({
  directories: [makeDirectoryNode("keep", directoryDigest(DIRECTORY_WITH_KEEP), 2n)],
  files: [makeFileNode(".keep", EMPTY_BLOB_DIGEST, 0)],
  symlinks: [makeSymlinkNode("aa", "/nix/store/somewhereelse")],
});

/**
 * NESTED_LEGACY: {dir `inner` → COMPLICATED_LEGACY declaring 8}. 8 is the
 * legacy maximum 2·3 + 2 computed from COMPLICATED_LEGACY as stored, with the
 * legacy 2 it declares for `keep` (snix computes both bounds from the child as
 * received); its canonical size is 3 + 2 = 5. Upload [WITH_KEEP,
 * COMPLICATED_LEGACY, NESTED_LEGACY]: a whole legacy-sized tree.
 */
export const DIRECTORY_NESTED_LEGACY = makeDirectory({
  directories: [makeDirectoryNode("inner", directoryDigest(DIRECTORY_COMPLICATED_LEGACY), 8n)],
});

/**
 * COMPLICATED_OVERSIZED: COMPLICATED with `keep` → WITH_KEEP declaring 3,
 * above the legacy maximum 2: rejected in every mode.
 */
export const DIRECTORY_COMPLICATED_OVERSIZED = makeDirectory({
  directories: [makeDirectoryNode("keep", directoryDigest(DIRECTORY_WITH_KEEP), 3n)],
  files: [makeFileNode(".keep", EMPTY_BLOB_DIGEST, 0)],
  symlinks: [makeSymlinkNode("aa", "/nix/store/somewhereelse")],
});
