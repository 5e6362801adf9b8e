/**
 * Repair (spec: verify --repair): the one way to replace bytes a store holds.
 * Uploads never rewrite a digest that is stored (content addressed: the bytes
 * can only be the same), so a directory whose stored bytes were damaged stays
 * damaged however often it is uploaded again. A repair hands the store
 * correct bytes for such digests; it is what `castore verify --repair` uses.
 *
 * Each directory is checked here, before any store sees it, exactly as a read
 * checks stored bytes: valid, canonical, hashing to the key it is written
 * under. A repair never adds a directory that is not stored: that would make
 * it visible without its closure having been checked.
 */
import { encodeDirectory } from "./canonical.js";
import { type ClosureEntry, decodeStoredDirectory } from "./closure.js";
import { Digest } from "./digest.js";
import { ValidationError } from "./errors.js";
import type { Directory } from "./model.js";
import { validateDirectory } from "./validate.js";

/** The entries a store's repair() writes: each validated, canonical, and keyed by the digest of its bytes. */
export function repairEntries(directories: Directory[]): ClosureEntry[] {
  return directories.map((directory, i) => {
    try {
      validateDirectory(directory);
    } catch (e) {
      if (e instanceof ValidationError)
        throw new ValidationError(`repair: directories[${i}] failed validation: ${e.message}`);
      throw e;
    }
    const bytes = encodeDirectory(directory);
    const digest = Digest.of(bytes);
    // The check every read makes, on what will be written: a repair must never store bytes a read would reject.
    return { digest, bytes, directory: decodeStoredDirectory(digest, bytes) };
  });
}
