/**
 * getRecursive over a backend's batch read: breadth first, one batch read per
 * level (split into chunks of at most `batchSize` so a wide level does not
 * load all its directories at once), each digest once. Every directory is
 * re-hashed and re-validated before it is yielded, and every declared size is
 * re-checked against the child it refers to (spec §1.1).
 */
import type { Digest } from "./digest.js";
import { Digest as DigestClass, digestKey } from "./digest.js";
import { CorruptionError, throwIfAborted } from "./errors.js";
import { decodeStoredDirectory } from "./closure.js";
import type { Directory } from "./model.js";
import { ReadSizeChecker } from "./read-sizes.js";
import type { SizeCheck } from "./size-check.js";

/** Reads the stored bytes of each digest; undefined where absent. Same length and order as the input. */
export type ReadMany = (digests: Digest[], signal?: AbortSignal) => Promise<(Uint8Array | undefined)[]>;

export interface BreadthFirstOptions {
  signal?: AbortSignal;
  /** Most digests per read; defaults to 1024. */
  batchSize?: number;
  /** How declared sizes are re-checked (the store's own mode); default "exact". */
  sizeCheck?: SizeCheck;
}

export async function* breadthFirst(
  readMany: ReadMany,
  root: Digest,
  opts: BreadthFirstOptions = {},
): AsyncGenerator<Directory, void, undefined> {
  const batchSize = opts.batchSize ?? 1024;
  // Every digest queued so far: a DAG may refer to one directory from many levels.
  const seen = new Set<string>([digestKey(root.bytes)]);
  const sizes = new ReadSizeChecker({ sizeCheck: opts.sizeCheck });
  let level: Digest[] = [root];
  let isRootLevel = true;
  while (level.length > 0) {
    const next: Digest[] = [];
    for (let start = 0; start < level.length; start += batchSize) {
      throwIfAborted(opts.signal);
      const chunk = level.slice(start, start + batchSize);
      const found = await readMany(chunk, opts.signal);
      for (let i = 0; i < chunk.length; i++) {
        const bytes = found[i];
        if (bytes === undefined) {
          if (isRootLevel) return; // an absent root: nothing to yield
          throw new CorruptionError(
            `directory ${chunk[i]} below root ${root} is missing: the store lost part of a closure`,
          );
        }
        const directory = decodeStoredDirectory(chunk[i], bytes);
        sizes.receive(chunk[i], directory);
        for (const child of directory.directories) {
          const key = digestKey(child.digest);
          if (seen.has(key)) continue;
          seen.add(key);
          next.push(DigestClass.fromBytes(child.digest));
        }
        yield directory;
        throwIfAborted(opts.signal);
      }
    }
    isRootLevel = false;
    level = next;
  }
}
