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
import { type CallOptions, type DirectoryService, supportsPartialUploads } from "./service.js";
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

/** The child directory digests of a directory of `closure` (for missingTopDown). */
export function childrenIn(closure: ReadClosure): (digest: Digest) => Uint8Array[] {
  return (digest) => closure.byDigest.get(digest.hex)?.directories.map((c) => c.digest) ?? [];
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

export interface WriteClosureOptions extends CallOptions {
  /**
   * The hex digests of the directories `to` lacks (missingTopDown): only
   * those are sent, as a partial upload (spec §3.6), where `to` takes
   * partial uploads; else the whole closure is.
   */
  missing?: ReadonlySet<string>;
}

/**
 * Uploads a closure read by readClosure to `to`, leaves to root, as one
 * upload. Resolves to the number of directories sent (0: `to` held the root).
 */
export async function writeClosure(
  to: DirectoryService,
  closure: ReadClosure,
  opts: WriteClosureOptions = {},
): Promise<number> {
  const { signal } = opts;
  const { missing } = opts;
  if (missing?.size === 0) return 0;
  const include =
    missing && (await supportsPartialUploads(to, { signal })) ? (hex: string) => missing.has(hex) : undefined;
  const putter = to.putMultipleStart({ signal, partial: include !== undefined });
  let sent = 0;
  try {
    for (const directory of leavesToRoot(closure.root, closure.byDigest, include)) {
      await putter.put(directory);
      sent++;
    }
    await putter.close();
  } catch (e) {
    await putter.abort(e);
    throw e;
  }
  return sent;
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
 * after all of its child directories; with `include`, only those it accepts
 * and nothing below one it refuses (a partial upload's stored children). An
 * explicit stack: the depth of a tree is not bounded by the call stack.
 */
function leavesToRoot(
  root: Digest,
  byDigest: Map<string, Directory>,
  include?: (hex: string) => boolean,
): Generator<Directory> {
  return leavesToRootOf(
    root,
    (digest) => byDigest.get(hexOf(digest)),
    (directory) => directory,
    include && ((digest) => include(hexOf(digest))),
  );
}

/**
 * The closure of `root`, each directory once and after all of its child
 * directories, from `lookup` (whatever a caller keeps per directory; `of`
 * gives its Directory). A digest `lookup` lacks is a CorruptionError: the
 * closure read from the source was not whole. With `include`, a digest it
 * refuses is skipped, and nothing below it is visited.
 */
export function* leavesToRootOf<T>(
  root: Digest,
  lookup: (digest: Uint8Array) => T | undefined,
  of: (value: T) => Directory,
  include?: (digest: Uint8Array) => boolean,
): Generator<T> {
  const seen = new Set<string>();
  const stack: { value: T; children: Directory["directories"]; nextChild: number }[] = [];
  const enter = (digest: Uint8Array) => {
    const key = digestKey(digest);
    if (seen.has(key) || (include && !include(digest))) return;
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
