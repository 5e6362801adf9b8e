/**
 * A cache miss read through (cache://, spec §6): far's closure goes to the
 * caller as it arrives, checked root to leaves, and near gets it as one
 * upload once the caller has read all of it.
 *
 * One loop does both, at the caller's pace: each directory far yields is
 * checked, recorded for near and yielded; far is asked for the next one
 * only when the caller asks. So nothing queues between far, the caller and
 * near. What is kept for near is the closure as canonical bytes packed in
 * an arena (what near itself keeps, about what the closure takes encoded),
 * not the decoded directories, which the caller may drop as it goes (a slow
 * consumer's memory must not grow with the tree, spec §7.16): near's upload
 * goes leaves to root and the leaves come last, so any fill holds the
 * closure until the end. The fill decodes each directory again for near's
 * putter and hands it the bytes too (no second encoding).
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
import { ByteArena } from "./arena.js";
import { ScratchEncoder, decodeDirectory } from "./canonical.js";
import { leavesToRootOf } from "./copy.js";
import { type Digest, digestKey } from "./digest.js";
import type { Directory } from "./model.js";
import type { CallOptions, DirectoryService } from "./service.js";
import type { SizeCheck } from "./size-check.js";

export interface ReadThroughOptions extends CallOptions {
  /** How the declared sizes read from far are checked (spec §1.1); default "exact". */
  sizeCheck?: SizeCheck;
}

/** The closure of `root` from `far`, root to leaves; `near` is filled once all of it was read (see above). */
export async function* readThrough(
  far: DirectoryService,
  near: DirectoryService,
  root: Digest,
  opts: ReadThroughOptions = {},
): AsyncGenerator<Directory, void, undefined> {
  const checker = new RootToLeavesChecker(root, { sizeCheck: opts.sizeCheck });
  const encoder = new ScratchEncoder();
  const arena = new ByteArena();
  /** Canonical bytes by digestKey. */
  const closure = new Map<string, Uint8Array>();
  for await (const directory of far.getRecursive(root, opts)) {
    const canonical = encoder.encode(directory);
    const digest = checker.accept(directory, canonical);
    closure.set(digestKey(digest.bytes), arena.copy(canonical));
    yield directory;
  }
  checker.finish();
  if (closure.size > 0) await fillNear(near, root, closure, opts);
}

/** Uploads a whole closure to near, leaves to root; a failure leaves near without it and is not the caller's. */
async function fillNear(
  near: DirectoryService,
  root: Digest,
  closure: Map<string, Uint8Array>,
  opts: CallOptions,
): Promise<void> {
  let putter: ReturnType<DirectoryService["putMultipleStart"]> | undefined;
  try {
    putter = near.putMultipleStart(opts);
    const decoded = (digest: Uint8Array) => {
      const bytes = closure.get(digestKey(digest));
      return bytes && { bytes, directory: decodeDirectory(bytes) };
    };
    const ordered = leavesToRootOf(root, decoded, (entry) => entry.directory);
    for (const { directory, bytes } of ordered) await putter.put(directory, bytes);
    await putter.close();
  } catch (error) {
    await putter?.abort(error).catch(() => {});
  }
}
