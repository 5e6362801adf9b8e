/**
 * getRecursive over a backend's reads: breadth first, each digest once. Every
 * directory is re-hashed and re-validated before it is yielded, and every
 * declared size is re-checked against the child it refers to (spec §1.1).
 *
 * Two walks, one order (level by level, each level in the order its
 * directories were referred to):
 * - over a batch read (`readMany`, a network store): one read per level,
 *   split into chunks of at most `batchSize` so a wide level does not load
 *   all its directories at once;
 * - over a synchronous read of one directory (`readOne`, an in-process
 *   store): no batch and no await per level, so a level of one directory
 *   costs what one directory costs (a deep chain reads as fast as a wide
 *   tree), and no async generator: `next()` does the work synchronously and
 *   answers a settled promise.
 */
import type { Digest } from "./digest.js";
import { CorruptionError, throwIfAborted } from "./errors.js";
import { decodeStoredDirectorySized } from "./closure.js";
import type { Directory } from "./model.js";
import type { EncodedDirectory } from "./service.js";
import { ReadSizeChecker } from "./read-sizes.js";
import type { SizeCheck } from "./size-check.js";

/** Reads the stored bytes of each digest; undefined where absent. Same length and order as the input. */
export type ReadMany = (digests: Digest[], signal?: AbortSignal) => Promise<(Uint8Array | undefined)[]>;

/**
 * Reads the stored bytes of one digest synchronously; undefined where absent.
 * The walk keeps what it returns (decoded directories are views of it), so
 * it must be the walk's own: a copy, not a view the store reuses.
 */
export type ReadOne = (digest: Digest) => Uint8Array | undefined;

export interface BreadthFirstOptions {
  signal?: AbortSignal;
  /** Most digests per batch read; defaults to 1024. */
  batchSize?: number;
  /** How declared sizes are re-checked (the store's own mode); default "exact". */
  sizeCheck?: SizeCheck;
  /** A synchronous read of one directory: when given, `readMany` is not used. */
  readOne?: ReadOne;
}

export function breadthFirst(
  readMany: ReadMany,
  root: Digest,
  opts: BreadthFirstOptions = {},
): AsyncIterableIterator<Directory> {
  return walk(readMany, root, opts, DIRECTORY_ONLY);
}

/** breadthFirst, each directory with its digest and the bytes it was decoded from (its canonical encoding: they hashed to that digest). */
export function breadthFirstEncoded(
  readMany: ReadMany,
  root: Digest,
  opts: BreadthFirstOptions = {},
): AsyncIterableIterator<EncodedDirectory> {
  return walk(readMany, root, opts, walkedOutput(opts.sizeCheck ?? "exact"));
}

/** What a walk yields for each directory read, and what it does once it has read them all. */
interface Output<T> {
  emit(directory: Directory, bytes: Uint8Array, digest: Digest): T;
  completed?(): void;
}
const DIRECTORY_ONLY: Output<Directory> = { emit: (directory) => directory };

/** How far one walk got: shared by the directories it yields (WalkedDirectory). */
export interface WalkProgress {
  /** Directories yielded so far. */
  readonly yielded: number;
  /** Whether the walk read the whole closure (or found the root absent): every directory it yielded is all there is. */
  readonly completed: boolean;
  /** How the walk checked declared sizes. */
  readonly sizeCheck: SizeCheck;
}

/**
 * A directory as core's own walk yielded it: hashed to its digest, valid,
 * its declared sizes accepted, the `index`-th of its walk. Only this module
 * makes them, so a consumer that gets all of one walk's, in order, and
 * finds that walk completed, has a closure core checked whole, sizes by the
 * walk's `sizeCheck` (cache://'s fill, read-through.ts, checks nothing
 * again then).
 */
export class WalkedDirectory implements EncodedDirectory {
  constructor(
    readonly directory: Directory,
    readonly bytes: Uint8Array,
    readonly digest: Digest,
    readonly walk: WalkProgress,
    readonly index: number,
  ) {}
}

function walkedOutput(sizeCheck: SizeCheck): Output<EncodedDirectory> {
  const progress = { yielded: 0, completed: false, sizeCheck };
  return {
    emit: (directory, bytes, digest) => new WalkedDirectory(directory, bytes, digest, progress, progress.yielded++),
    completed: () => void (progress.completed = true),
  };
}

function walk<T>(
  readMany: ReadMany,
  root: Digest,
  opts: BreadthFirstOptions,
  out: Output<T>,
): AsyncIterableIterator<T> {
  return opts.readOne ? new SyncReadWalk(opts.readOne, root, opts, out) : batchedWalk(readMany, root, opts, out);
}

function missing(digest: Digest, root: Digest): CorruptionError {
  return new CorruptionError(`directory ${digest} below root ${root} is missing: the store lost part of a closure`);
}

async function* batchedWalk<T>(
  readMany: ReadMany,
  root: Digest,
  opts: BreadthFirstOptions,
  out: Output<T>,
): AsyncGenerator<T, void, undefined> {
  const batchSize = opts.batchSize ?? 1024;
  // The size checker knows every digest met so far (received or referred
  // to): a DAG may refer to one directory from many levels, queued once.
  const sizes = new ReadSizeChecker({ sizeCheck: opts.sizeCheck });
  let next: Digest[] = [];
  const queue = (child: number) => void next.push(sizes.digestOf(child));
  let level: Digest[] = [root];
  let isRootLevel = true;
  while (level.length > 0) {
    next = [];
    for (let start = 0; start < level.length; start += batchSize) {
      throwIfAborted(opts.signal);
      const chunk = level.length <= batchSize ? level : level.slice(start, start + batchSize);
      const found = await readMany(chunk, opts.signal);
      for (let i = 0; i < chunk.length; i++) {
        const bytes = found[i];
        if (bytes === undefined) {
          if (isRootLevel) return out.completed?.(); // an absent root: nothing to yield
          throw missing(chunk[i], root);
        }
        const { directory, size } = decodeStoredDirectorySized(chunk[i], bytes);
        sizes.receive(chunk[i], directory, queue, size);
        yield out.emit(directory, bytes, chunk[i]);
        throwIfAborted(opts.signal);
      }
    }
    isRootLevel = false;
    level = next;
  }
  out.completed?.();
}

const DONE: Promise<IteratorResult<never>> = Promise.resolve({ done: true, value: undefined });

/**
 * The walk over a synchronous read: a FIFO of the digests the size checker
 * met (breadth first: the same order as level by level), one directory per
 * `next()`. The root is read first, then each queued record, which goes
 * back to the checker with its directory (no second lookup of its digest).
 */
class SyncReadWalk<T> implements AsyncIterableIterator<T> {
  private readonly sizes: ReadSizeChecker;
  /** The size checker's records of the children to read, from `head` on; the array is compacted now and then. */
  private queue: number[] = [];
  private head = 0;
  private rootRead = false;
  private finished = false;
  private readonly enqueue = (child: number) => void this.queue.push(child);

  constructor(
    private readonly readOne: ReadOne,
    private readonly root: Digest,
    private readonly opts: BreadthFirstOptions,
    private readonly out: Output<T>,
  ) {
    this.sizes = new ReadSizeChecker({ sizeCheck: opts.sizeCheck });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.finished) return DONE;
    try {
      throwIfAborted(this.opts.signal);
      let met: number | undefined;
      if (this.rootRead) {
        if (this.head === this.queue.length) return this.complete();
        met = this.queue[this.head++]!;
        if (this.head >= 4096 && this.head * 2 >= this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
      }
      this.rootRead = true;
      const digest = met === undefined ? this.root : this.sizes.digestOf(met);
      const bytes = this.readOne(digest);
      if (bytes === undefined) {
        if (met === undefined) return this.complete(); // an absent root: nothing to yield
        throw missing(digest, this.root);
      }
      const { directory, size } = decodeStoredDirectorySized(digest, bytes);
      this.sizes.receive(digest, directory, this.enqueue, size, met);
      return Promise.resolve({ done: false, value: this.out.emit(directory, bytes, digest) });
    } catch (e) {
      this.end();
      return Promise.reject(e);
    }
  }

  return(): Promise<IteratorResult<T>> {
    return this.end();
  }

  throw(e?: unknown): Promise<IteratorResult<T>> {
    this.end();
    return Promise.reject(e);
  }

  /** The whole closure was read (or the root is absent). */
  private complete(): Promise<IteratorResult<T>> {
    this.out.completed?.();
    return this.end();
  }

  private end(): Promise<IteratorResult<T>> {
    this.finished = true;
    this.queue = [];
    this.head = 0;
    return DONE;
  }
}
