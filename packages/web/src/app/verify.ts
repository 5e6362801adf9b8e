/**
 * The browser does not trust the server: every Directory it receives is
 * encoded again (protobuf-es writes the canonical encoding, fields in order,
 * defaults left out; unknown fields the server slipped in are kept and so
 * change the hash) and hashed with BLAKE3 (blake3-wasm's browser build, the
 * same wasm core uses in Node), and a previewed file's bytes are hashed too.
 * A mismatch is a MismatchError naming the digest asked for and the one got.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type Directory, DirectorySchema } from "@castore-ts/proto";
import { createHash, hash, load } from "blake3-wasm/esm/browser/index.js";
import { hexOf } from "./dom.js";

export const ready: Promise<void> = load();

/** Inputs above this go through the incremental hasher: the one-shot wasm hash runs out of memory on large ones. */
const ONE_SHOT_MAX = 64 * 1024;

export function blake3Hex(bytes: Uint8Array): string {
  if (bytes.length <= ONE_SHOT_MAX) return hexOf(hash(bytes));
  const hasher = createHash();
  for (let at = 0; at < bytes.length; at += 1 << 20) hasher.update(bytes.subarray(at, at + (1 << 20)));
  const digest = hexOf(hasher.digest());
  hasher.dispose();
  return digest;
}

export class MismatchError extends Error {}

/** The directory, when it hashes to `expectedHex`; else a MismatchError naming both digests. */
export function verifiedDirectory(directory: Directory, expectedHex: string): Directory {
  const actual = blake3Hex(toBinary(DirectorySchema, directory));
  if (actual !== expectedHex) {
    throw new MismatchError(
      `directory ${expectedHex} does not match its digest: the server sent a directory whose BLAKE3 is ${actual}. Not shown.`,
    );
  }
  return directory;
}

/** The bytes, when they hash to `expectedHex`; else a MismatchError naming the blob. */
export function verifiedBlob(bytes: Uint8Array, expectedHex: string): Uint8Array {
  const actual = blake3Hex(bytes);
  if (actual !== expectedHex) {
    throw new MismatchError(
      `file contents ${expectedHex} do not match their digest: the server sent bytes whose BLAKE3 is ${actual}. Not shown.`,
    );
  }
  return bytes;
}
