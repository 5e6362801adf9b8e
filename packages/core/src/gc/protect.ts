/**
 * protectClosure: what a ref's `set` does on a store that collects garbage.
 * It checks that the store holds the whole tree (every directory re-hashed,
 * every file's blob) and marks all of it as used now, children before
 * parents, so that a collection running meanwhile either spares the tree or
 * has already deleted part of it, which this then reports (ClosureError)
 * before the ref is written. Spec §10.2.
 */
import { EMPTY_BLOB_DIGEST } from "../blob/chunked.js";
import { Digest } from "../digest.js";
import { ClosureError, throwIfAborted } from "../errors.js";
import type { CallOptions } from "../service.js";
import type { CollectableParts } from "./in-process.js";
import { walkDirectories } from "./walk.js";

const BATCH = 512;

export async function protectClosure(
  parts: Omit<CollectableParts, "refs">,
  root: Digest,
  opts: CallOptions = {},
): Promise<void> {
  const { signal } = opts;
  const directories: { digest: Digest; treeSize: bigint }[] = [];
  const blobs = new Map<string, Digest>();
  await walkDirectories(
    parts.directories,
    [root],
    new Set(),
    {
      visit(digest, directory, size) {
        directories.push({ digest, treeSize: size });
        if (!parts.blobs) return;
        for (const file of directory.files) {
          const d = Digest.fromBytes(file.digest);
          if (!d.equals(EMPTY_BLOB_DIGEST)) blobs.set(d.hex, d);
        }
      },
      missing(digest) {
        throw new ClosureError(
          digest.equals(root)
            ? `tree ${root.hex} is not stored`
            : `tree ${root.hex} is not wholly stored: directory ${digest.hex} is missing`,
        );
      },
    },
    signal,
  );
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
