/**
 * A cache miss read through (cache://, spec §6): far's closure goes to the
 * caller as it arrives, checked root to leaves, and near gets it as one
 * upload once the caller has read all of it.
 *
 * One loop does both, at the caller's pace: each directory far yields is
 * checked, recorded for near and yielded; far is asked for the next one
 * only when the caller asks. So nothing queues between far, the caller and
 * near. What is kept for near is the closure itself (each directory with its
 * canonical bytes), as any fill must: near's upload goes leaves to root, and
 * the leaves come last.
 *
 * - Far's errors (a broken connection, corrupt data, a stream that ends
 *   while directories are still expected) end the caller's read with that
 *   error, and near gets nothing.
 * - A caller that stops early (break, a cancelled signal) leaves near
 *   without the closure: near never holds part of one.
 * - near is a cache: when its upload fails, the caller's read still ends
 *   normally (it has had every directory) and near stays without the
 *   closure, to be filled by a later read.
 */
import { RootToLeavesChecker } from "./closure.js";
import { encodeDirectory } from "./canonical.js";
import { leavesToRootOf } from "./copy.js";
import { type Digest, digestKey } from "./digest.js";
import type { Directory } from "./model.js";
import type { CallOptions, DirectoryService } from "./service.js";
import type { SizeCheck } from "./size-check.js";

export interface ReadThroughOptions extends CallOptions {
  /** How the declared sizes read from far are checked (spec §1.1); default "exact". */
  sizeCheck?: SizeCheck;
}

/** A directory read from far, with its canonical bytes (hashed once by the check, handed to near's putter). */
interface Received {
  directory: Directory;
  bytes: Uint8Array;
}

/** The closure of `root` from `far`, root to leaves; `near` is filled once all of it was read (see above). */
export async function* readThrough(
  far: DirectoryService,
  near: DirectoryService,
  root: Digest,
  opts: ReadThroughOptions = {},
): AsyncGenerator<Directory, void, undefined> {
  const checker = new RootToLeavesChecker(root, { sizeCheck: opts.sizeCheck });
  const closure = new Map<string, Received>();
  for await (const directory of far.getRecursive(root, opts)) {
    const bytes = encodeDirectory(directory);
    const digest = checker.accept(directory, bytes);
    closure.set(digestKey(digest.bytes), { directory, bytes });
    yield directory;
  }
  checker.finish();
  if (closure.size > 0) await fillNear(near, root, closure, opts);
}

/** Uploads a whole closure to near, leaves to root; a failure leaves near without it and is not the caller's. */
async function fillNear(
  near: DirectoryService,
  root: Digest,
  closure: Map<string, Received>,
  opts: CallOptions,
): Promise<void> {
  let putter: ReturnType<DirectoryService["putMultipleStart"]> | undefined;
  try {
    putter = near.putMultipleStart(opts);
    const ordered = leavesToRootOf(
      root,
      (digest) => closure.get(digestKey(digest)),
      (received) => received.directory,
    );
    for (const { directory, bytes } of ordered) await putter.put(directory, bytes);
    await putter.close();
  } catch (error) {
    await putter?.abort(error).catch(() => {});
  }
}
