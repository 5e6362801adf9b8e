/**
 * protectClosure: what a ref's `set` does on a store that collects garbage.
 * It checks that the store holds the whole tree (every directory re-hashed,
 * every file's blob) and marks all of it as used now, children before
 * parents, so that a collection running meanwhile either spares the tree or
 * has already deleted part of it, which this then reports (ClosureError)
 * before the ref is written. Spec §10.2.
 */
import { EMPTY_BLOB_DIGEST } from "../blob/chunked.js";
import { decodeStoredDirectory } from "../closure.js";
import { Digest } from "../digest.js";
import { ClosureError, throwIfAborted } from "../errors.js";
import { directorySize } from "../model.js";
import type { CallOptions } from "../service.js";
import type { CollectableParts } from "./in-process.js";

const BATCH = 512;

export async function protectClosure(
  parts: Omit<CollectableParts, "refs">,
  root: Digest,
  opts: CallOptions = {},
): Promise<void> {
  const { signal } = opts;
  const directories: { digest: Digest; treeSize: bigint }[] = [];
  const blobs = new Map<string, Digest>();
  const seen = new Set<string>([root.hex]);
  let queue: Digest[] = [root];
  while (queue.length > 0) {
    throwIfAborted(signal);
    const batch = queue.slice(0, BATCH);
    queue = queue.slice(batch.length);
    const stored = await parts.directories.getMany(batch, signal);
    batch.forEach((digest, i) => {
      const bytes = stored[i];
      if (bytes === undefined) {
        throw new ClosureError(
          digest.equals(root)
            ? `tree ${root.hex} is not stored`
            : `tree ${root.hex} is not wholly stored: directory ${digest.hex} is missing`,
        );
      }
      const directory = decodeStoredDirectory(digest, bytes);
      directories.push({ digest, treeSize: directorySize(directory) });
      for (const child of directory.directories) {
        const d = Digest.fromBytes(child.digest);
        if (!seen.has(d.hex)) {
          seen.add(d.hex);
          queue.push(d);
        }
      }
      if (parts.blobs) {
        for (const file of directory.files) {
          const d = Digest.fromBytes(file.digest);
          if (!d.equals(EMPTY_BLOB_DIGEST)) blobs.set(d.hex, d);
        }
      }
    });
  }
  await touchAll(parts, "blob", [...blobs.values()], root, signal);
  // Children before parents: a child's size (spec §1) is smaller than its parent's.
  directories.sort((a, b) => (a.treeSize < b.treeSize ? -1 : a.treeSize > b.treeSize ? 1 : 0));
  await touchAll(
    parts,
    "directory",
    directories.map((d) => d.digest),
    root,
    signal,
  );
}

async function touchAll(
  parts: Omit<CollectableParts, "refs">,
  kind: "blob" | "directory",
  digests: Digest[],
  root: Digest,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (let i = 0; i < digests.length; i += BATCH) {
    throwIfAborted(signal);
    const batch = digests.slice(i, i + BATCH);
    const present = await parts.objects.touch(kind, batch, signal);
    const missing = present.indexOf(false);
    if (missing >= 0)
      throw new ClosureError(`tree ${root.hex} is not wholly stored: ${kind} ${batch[missing].hex} is missing`);
  }
}
