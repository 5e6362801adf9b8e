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
 * consumer's memory must not grow with the tree, spec §7.16): near gets
 * the closure only once it is whole, so any fill holds it until the end.
 *
 * The check on the way, three cases:
 * - far's getRecursiveEncoded is a walk of core's own (bfs.ts: every store
 *   on core's StoreDirectoryService): it hashed, validated and size-checked
 *   each directory and checked the closure. Its entries say so
 *   (WalkedDirectory: which walk, which place in it, whether the walk
 *   completed), and as long as they come all from one walk, in order, and
 *   that walk completed and checked sizes at least as strictly as this
 *   cache, nothing is checked again.
 * - from the first entry that breaks that (a wrapper that drops, repeats,
 *   reorders or cuts the stream short, or entries copied into objects of its
 *   own), the closure is checked here: what came before is decoded again
 *   from its bytes, the rest checked as it comes (each directory referred
 *   to, once, none missing at the end, declared sizes accepted). So a far
 *   that skips, repeats or stops early still never fills near.
 * - a far with getRecursive only: each directory is encoded, hashed and
 *   validated here as well.
 *
 * The fill: a near that takes a checked closure (putCheckedClosure: memory,
 * lmdb) stores the entries as they are, in the order read. Checking it all
 * again in near's putter, leaves to root, was most of a cold read's time
 * (100 000 directories, far lmdb, near memory: 3.0 s against 1.1 s for
 * far's read alone; now 1.3–1.5 times far's read). Any other near gets an
 * ordinary upload, leaves to root: each directory decoded again for its
 * putter, with its bytes (no second encoding).
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
import { RootToLeavesChecker, type ClosureEntry } from "./closure.js";
import { ByteArena } from "./arena.js";
import { ScratchEncoder, decodeDirectory } from "./canonical.js";
import { leavesToRootOf } from "./copy.js";
import { DIGEST_LENGTH, type Digest, digestKey } from "./digest.js";
import type { Directory } from "./model.js";
import type { CallOptions, DirectoryService, EncodedDirectory } from "./service.js";
import { type WalkProgress, WalkedDirectory } from "./bfs.js";
import type { SizeCheck } from "./size-check.js";

export interface ReadThroughOptions extends CallOptions {
  /** How the declared sizes read from far are checked (spec §1.1); default "exact". */
  sizeCheck?: SizeCheck;
}

/**
 * One directory of the closure read from far: its digest and canonical
 * bytes, one view into the read's arena. The decoded directory is made only
 * if near asks (it was handed to the caller, who may change it).
 */
class ReadEntry implements ClosureEntry {
  constructor(
    readonly digest: Digest,
    readonly digestAndBytes: Uint8Array,
  ) {}

  get bytes(): Uint8Array {
    return this.digestAndBytes.subarray(DIGEST_LENGTH);
  }

  get directory(): Directory {
    return decodeDirectory(this.bytes);
  }
}

/** The closure of `root` from `far`, root to leaves; `near` is filled once all of it was read (see above). */
export async function* readThrough(
  far: DirectoryService,
  near: DirectoryService,
  root: Digest,
  opts: ReadThroughOptions = {},
): AsyncGenerator<Directory, void, undefined> {
  const arena = new ByteArena();
  /** The closure as read: root to leaves. */
  const closure: ReadEntry[] = [];
  const sizeCheck = opts.sizeCheck ?? "exact";
  const checker = new RootToLeavesChecker(root, { sizeCheck });
  if (far.getRecursiveEncoded) {
    // far hashed and validated each directory. While the entries are those of one walk of core's own, in
    // its order, that walk checks the closure too; from the first that is not, the closure is checked here.
    let walk: WalkProgress | undefined;
    for await (const entry of far.getRecursiveEncoded(root, opts)) {
      const { directory, bytes, digest } = entry;
      if (walk && !continuesWalk(entry, walk, closure.length)) {
        checkFromHere(checker, closure);
        walk = undefined;
      } else if (closure.length === 0 && startsWalk(entry, sizeCheck)) walk = entry.walk;
      if (!walk) checker.acceptStored(digest, directory);
      // Copied before the caller may change the directory (a view of these bytes).
      closure.push(new ReadEntry(digest, arena.copyJoined(digest.bytes, bytes)));
      yield directory;
    }
    // A walk that did not complete, or yielded more than came through: the stream was cut short on the way.
    if (walk && !(walk.completed && walk.yielded === closure.length)) checkFromHere(checker, closure);
  } else {
    const encoder = new ScratchEncoder();
    for await (const directory of far.getRecursive(root, opts)) {
      const canonical = encoder.encode(directory);
      const digest = checker.accept(directory, canonical);
      closure.push(new ReadEntry(digest, arena.copyJoined(digest.bytes, canonical)));
      yield directory;
    }
  }
  checker.finish();
  if (closure.length > 0) await fillNear(near, root, closure, opts);
}

/** Whether `entry` is the first of a walk of core's own that checked sizes at least as strictly as `sizeCheck`. */
function startsWalk(entry: EncodedDirectory, sizeCheck: SizeCheck): entry is WalkedDirectory {
  return (
    entry instanceof WalkedDirectory &&
    entry.index === 0 &&
    (entry.walk.sizeCheck === "exact" || entry.walk.sizeCheck === sizeCheck)
  );
}

/** Whether `entry` is the `index`-th directory of `walk`, as that walk yielded it. */
function continuesWalk(entry: EncodedDirectory, walk: WalkProgress, index: number): boolean {
  return entry instanceof WalkedDirectory && entry.walk === walk && entry.index === index;
}

/** The checker takes over: it checks the closure read so far (decoded again from its bytes); the rest as it comes. */
function checkFromHere(checker: RootToLeavesChecker, closure: ReadEntry[]): void {
  for (const entry of closure) checker.acceptStored(entry.digest, entry.directory);
}

/** Stores a whole closure in near; a failure leaves near without it and is not the caller's. */
async function fillNear(near: DirectoryService, root: Digest, closure: ReadEntry[], opts: CallOptions): Promise<void> {
  if (near.putCheckedClosure) {
    // Checked above as it was read: near stores it as it is (no second check, no reordering).
    await near.putCheckedClosure(root, closure, opts).catch(() => {});
    return;
  }
  let putter: ReturnType<DirectoryService["putMultipleStart"]> | undefined;
  try {
    putter = near.putMultipleStart(opts);
    const byDigest = new Map(closure.map((entry) => [digestKey(entry.digest.bytes), entry]));
    const decoded = (digest: Uint8Array) => {
      const entry = byDigest.get(digestKey(digest));
      return entry && { bytes: entry.bytes, directory: entry.directory };
    };
    const ordered = leavesToRootOf(root, decoded, (entry) => entry.directory);
    for (const { directory, bytes } of ordered) await putter.put(directory, bytes);
    await putter.close();
  } catch (error) {
    await putter?.abort(error).catch(() => {});
  }
}
