/** The spec §7 fixtures and their digests, as the scenarios use them. */
import { type Directory, directoryDigest, fixtures, makeDirectoryNode } from "@castore-ts/core";
import type { Node } from "@castore-ts/core";
import type { Digest } from "@castore-ts/core";

export const {
  DIRECTORY_A: A,
  DIRECTORY_B: B,
  DIRECTORY_C: C,
  DIRECTORY_D: D,
  DIRECTORY_WITH_KEEP: WITH_KEEP,
  DIRECTORY_COMPLICATED: COMPLICATED,
  DIRECTORY_BROKEN: BROKEN,
} = fixtures;

export const dA = directoryDigest(A);
export const dB = directoryDigest(B);
export const dC = directoryDigest(C);
export const dD = directoryDigest(D);
export const dWITH_KEEP = directoryDigest(WITH_KEEP);
export const dCOMPLICATED = directoryDigest(COMPLICATED);
export const dBROKEN = directoryDigest(BROKEN);

/** A directory node for traversal from a stored root. */
export function rootNode(digest: Digest, size: bigint, name = "root"): Node {
  return { kind: "directory", node: makeDirectoryNode(name, digest, size) };
}

export type { Directory };
