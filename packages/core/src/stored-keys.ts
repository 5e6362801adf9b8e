/**
 * Keys in a store's listing that are not digests castore wrote (a key of the
 * wrong length in LMDB, an object name that is not 64 hex digits under S3's
 * `dirs/`). Every backend's listDigests treats them alike: never yielded as a
 * digest; handed to the caller's onInvalidKey, so that a listing (and a
 * whole-store `castore verify`) goes on past them; without that callback, the
 * listing ends with a CorruptionError naming the key.
 */
import { Digest, DIGEST_LENGTH, hexOf } from "./digest.js";
import { CorruptionError } from "./errors.js";
import type { CallOptions } from "./service.js";

/** A stored key that is not a digest. */
export interface InvalidStoredKey {
  /** The key as stored, printable: hex of a binary key, or the object name. */
  key: string;
  /** Why it is not a digest, e.g. "stored key of 31 bytes is not a digest". */
  reason: string;
}

/** Called for each stored key that is not a digest; the listing goes on after it returns. */
export type OnInvalidKey = (key: InvalidStoredKey) => void;

export interface ListDigestsOptions extends CallOptions {
  /** Receives each stored key that is not a digest. Without it, the first such key ends the listing with CorruptionError. */
  onInvalidKey?: OnInvalidKey;
}

/** Hands an invalid key to `onInvalidKey`, or, without one, throws CorruptionError naming the key and the backend. */
export function reportInvalidKey(backend: string, key: InvalidStoredKey, onInvalidKey: OnInvalidKey | undefined): void {
  if (onInvalidKey) onInvalidKey(key);
  else throw new CorruptionError(`${backend}: ${key.reason} (key ${key.key})`);
}

/** The digest a binary key holds, or the reason it holds none (a key castore wrote is the digest's 32 bytes). */
export function digestOfBinaryKey(key: Uint8Array): Digest | InvalidStoredKey {
  if (key.length === DIGEST_LENGTH) return Digest.fromBytes(key);
  return { key: hexOf(key), reason: `stored key of ${key.length} bytes is not a digest` };
}
