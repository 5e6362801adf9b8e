/**
 * Copying a closure from one store to another: read root to leaves (every
 * directory re-hashed, sizes checked), write leaves to root in one upload.
 * The cache fills its near store with it; `castore sync` copies with it.
 */
import type { Digest } from "./digest.js";
import { CorruptionError } from "./errors.js";
import { digestKey, hexOf } from "./digest.js";
import type { Directory } from "./model.js";
import { RootToLeavesChecker } from "./closure.js";
import type { CallOptions, DirectoryService } from "./service.js";
import type { SizeCheck } from "./size-check.js";

export interface CopyClosureOptions extends CallOptions {
  /** How the declared sizes read from the source are checked (spec §1.1); default "exact". */
  sizeCheck?: SizeCheck;
}

/** A closure read into memory: every directory of it, by hex digest. */
export interface ReadClosure {
  root: Digest;
  byDigest: Map<string, Directory>;
}

/** Reads the closure of `root` (empty when `from` lacks it), checking order, digests and sizes. */
export async function readClosure(
  from: DirectoryService,
  root: Digest,
  opts: CopyClosureOptions = {},
): Promise<ReadClosure> {
  const checker = new RootToLeavesChecker(root, { sizeCheck: opts.sizeCheck });
  const byDigest = new Map<string, Directory>();
  for await (const directory of from.getRecursive(root, opts)) byDigest.set(checker.accept(directory).hex, directory);
  checker.finish();
  return { root, byDigest };
}

/** Uploads a closure read by readClosure to `to`, leaves to root, as one upload. */
export async function writeClosure(to: DirectoryService, closure: ReadClosure, opts: CallOptions = {}): Promise<void> {
  const putter = to.putMultipleStart(opts);
  try {
    for (const directory of leavesToRoot(closure.root, closure.byDigest)) await putter.put(directory);
    await putter.close();
  } catch (e) {
    await putter.abort(e);
    throw e;
  }
}

/**
 * Copies the closure of `root` from `from` to `to` as one upload. Resolves
 * to the number of directories copied, 0 when `from` does not have `root`.
 * Memory: the whole closure, since an upload goes leaves to root and a read
 * root to leaves.
 */
export async function copyClosure(
  from: DirectoryService,
  to: DirectoryService,
  root: Digest,
  opts: CopyClosureOptions = {},
): Promise<number> {
  const closure = await readClosure(from, root, opts);
  if (closure.byDigest.size > 0) await writeClosure(to, closure, opts);
  return closure.byDigest.size;
}

/**
 * The closure of `root` in `byDigest` (keyed by hex), each directory once and
 * after all of its child directories. An explicit stack: the depth of a tree
 * is not bounded by the call stack.
 */
function leavesToRoot(root: Digest, byDigest: Map<string, Directory>): Generator<Directory> {
  return leavesToRootOf(
    root,
    (digest) => byDigest.get(hexOf(digest)),
    (directory) => directory,
  );
}

/**
 * The closure of `root`, each directory once and after all of its child
 * directories, from `lookup` (whatever a caller keeps per directory; `of`
 * gives its Directory). A digest `lookup` lacks is a CorruptionError: the
 * closure read from the source was not whole.
 */
export function* leavesToRootOf<T>(
  root: Digest,
  lookup: (digest: Uint8Array) => T | undefined,
  of: (value: T) => Directory,
): Generator<T> {
  const seen = new Set<string>();
  const stack: { value: T; children: Directory["directories"]; nextChild: number }[] = [];
  const enter = (digest: Uint8Array) => {
    const key = digestKey(digest);
    if (seen.has(key)) return;
    seen.add(key);
    const value = lookup(digest);
    if (value === undefined) {
      throw new CorruptionError(`the closure of ${root} read from the source lacks ${hexOf(digest)}`);
    }
    stack.push({ value, children: of(value).directories, nextChild: 0 });
  };
  enter(root.bytes);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.nextChild < top.children.length) {
      enter(top.children[top.nextChild++].digest);
    } else {
      stack.pop();
      yield top.value;
    }
  }
}
