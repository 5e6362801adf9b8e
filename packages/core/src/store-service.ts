/**
 * StoreDirectoryService: a whole DirectoryService on top of a DirectoryStore,
 * the small interface a local backend implements ("fetch these bytes", "store
 * this closure atomically"). Validation, closure checks, re-hashing on read
 * and the breadth-first walk live here once.
 */
import { type Digest, requireDigest, requireDigests } from "./digest.js";
import { BackendError, ClosureError, isCastoreError, throwIfAborted } from "./errors.js";
import { ByteArena } from "./arena.js";
import { breadthFirst, type BreadthFirstOptions, breadthFirstEncoded, type ReadOne } from "./bfs.js";
import { type ClosureEntry, type ExternalChild, decodeStoredDirectory, decodeStoredDirectorySized } from "./closure.js";
import type { Directory } from "./model.js";
import { type ClosureSink, ClosurePutter } from "./putter.js";
import type {
  CallOptions,
  DirectoryPutter,
  DirectoryService,
  EncodedDirectory,
  PutMultipleOptions,
} from "./service.js";
import { type SizeCheck, declaredSizeAccepted, describeAcceptedSizes, sizeRangeFrom } from "./size-check.js";
import type { ListDigestsOptions, OnInvalidKey } from "./stored-keys.js";
import { repairEntries } from "./repair.js";
import { expandPartialClosure } from "./expand-partial.js";

export interface DirectoryStore {
  /** Names the backend in errors, e.g. "memory" or "lmdb:/var/lib/castore". */
  readonly backend: string;
  /**
   * The stored bytes of each digest, undefined where absent; same order as
   * the input. They may be views of bytes the store keeps: the service copies
   * them before it decodes (see readMany).
   */
  getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]>;
  /**
   * Optional, for an in-process store: a synchronous reader of one digest's
   * stored bytes (undefined where absent), opened once per getRecursive. What
   * it returns need only stay valid until its next call (the service copies
   * it at once). With it, getRecursive reads one directory at a time with no
   * await: a deep chain costs what a wide tree of as many directories does.
   */
  openReader?(): (digest: Digest) => Uint8Array | undefined;
  /**
   * Stores a checked closure, leaves to root, all or nothing. Entries may
   * already be stored. `external` (only on a store with `partialUploads`):
   * the stored directories a partial upload refers to without carrying
   * them. Atomically with storing the entries, the store checks that each
   * is still stored (ClosureError otherwise, and nothing stored) and marks
   * each and its whole closure used (spec §3.6, §10.2): a collection that
   * has not deleted them by then never will. Core has checked their sizes.
   */
  putClosure(entries: ClosureEntry[], signal?: AbortSignal, external?: readonly Digest[]): Promise<void>;
  /**
   * Optional: true when putClosure, and openUpload's commit (its closure's
   * `external`), keep the contract above. Without it, a partial upload is
   * made whole before it reaches the store (expand-partial.ts): the stored
   * children's closures are read back and committed with it.
   */
  readonly partialUploads?: boolean;
  /**
   * Optional: true when putClosure commits in one atomic step (one
   * transaction, one synchronous update), so the entries' order does not
   * matter to it. Then the service offers putCheckedClosure, whose entries
   * come in the order they were read (root to leaves).
   */
  readonly unorderedClosures?: boolean;
  close(): Promise<void>;
  /**
   * Optional: every stored digest. A key that is not a digest goes through
   * reportInvalidKey (stored-keys.ts) with `onInvalidKey`: to the caller, or
   * a CorruptionError when there is no callback. Never yielded, never skipped silently.
   */
  listDigests?(signal?: AbortSignal, onInvalidKey?: OnInvalidKey): AsyncIterable<Digest>;
  /**
   * Optional: takes an upload's directories while it is still open, so that
   * storing overlaps checking (a network store ships rows while core hashes
   * the next ones). Without it, the whole closure goes to putClosure at close.
   * Opened at the upload's first batch. The sink's write() gets batches of
   * directories that passed the per-directory checks, leaves to root (resolve
   * when the store can take more: the upload's backpressure); then either
   * commit() with the whole closure once it checked out (all or nothing), or
   * abort(). Nothing written may become visible before commit() resolves, and
   * nothing of it after abort().
   */
  openUpload?(signal?: AbortSignal): ClosureSink;
  /**
   * Optional: overwrites the bytes stored under each entry's digest, for
   * DirectoryService.repair. Core has checked every entry (valid, canonical,
   * hashing to its digest). A digest not stored stays absent. All or nothing
   * where the engine allows; resolves to the digests replaced.
   */
  repair?(entries: ClosureEntry[], signal?: AbortSignal): Promise<Digest[]>;
}

export interface StoreDirectoryServiceOptions {
  sizeCheck?: SizeCheck;
  /** Digests per batch read in getRecursive. */
  batchSize?: number;
}

/** Referred-to directories read per getMany when a partial upload is checked. */
const EXTERNAL_BATCH = 512;

export class StoreDirectoryService implements DirectoryService {
  constructor(
    readonly store: DirectoryStore,
    private readonly opts: StoreDirectoryServiceOptions = {},
  ) {
    if (store.listDigests) {
      this.listDigests = (callOpts?: ListDigestsOptions) =>
        this.wrapIterable(store.listDigests!(callOpts?.signal, callOpts?.onInvalidKey));
    }
    if (store.unorderedClosures) {
      this.putCheckedClosure = async (_root: Digest, entries: ClosureEntry[], callOpts?: CallOptions) => {
        throwIfAborted(callOpts?.signal);
        try {
          await store.putClosure(entries, callOpts?.signal);
        } catch (e) {
          throw this.wrap(e);
        }
      };
    }
    if (store.repair) {
      this.repair = async (directories: Directory[], callOpts?: CallOptions) => {
        const entries = repairEntries(directories); // throws before the store sees anything
        throwIfAborted(callOpts?.signal);
        try {
          return await store.repair!(entries, callOpts?.signal);
        } catch (e) {
          throw this.wrap(e);
        }
      };
    }
  }

  listDigests?: (opts?: ListDigestsOptions) => AsyncIterable<Digest>;

  /** Present when the store commits a closure atomically (DirectoryStore.unorderedClosures); see DirectoryService. */
  putCheckedClosure?: (root: Digest, entries: ClosureEntry[], opts?: CallOptions) => Promise<void>;

  /** Present when the store can overwrite (DirectoryStore.repair); see DirectoryService.repair. */
  repair?: (directories: Directory[], opts?: CallOptions) => Promise<Digest[]>;

  /** Engine failures become BackendError naming the backend; castore's own errors pass through. */
  private wrap(error: unknown): unknown {
    if (isCastoreError(error)) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new BackendError(this.store.backend, message, { cause: error });
  }

  private async *wrapIterable<T>(it: AsyncIterable<T>): AsyncGenerator<T> {
    try {
      yield* it;
    } catch (e) {
      throw this.wrap(e);
    }
  }

  /**
   * The store's bytes, copied: decoded directories are views into these
   * bytes and belong to the caller, who may write to them, so they must not
   * be the store's own (an in-memory store hands out views of what it keeps).
   */
  private readMany = async (digests: Digest[], signal?: AbortSignal) => {
    // Checked here once, so a store that forgets to look at the signal still honours it.
    throwIfAborted(signal);
    let found: (Uint8Array | undefined)[];
    try {
      found = await this.store.getMany(digests, signal);
    } catch (e) {
      throw this.wrap(e);
    }
    return copyBatch(found);
  };

  /** One getMany: a directory stored is one whose bytes are there (they are re-hashed when read, not here). */
  async has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    requireDigests(digests, "has(): digests");
    throwIfAborted(opts?.signal);
    try {
      return (await this.store.getMany([...digests], opts?.signal)).map((b) => b !== undefined);
    } catch (e) {
      throw this.wrap(e);
    }
  }

  async get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined> {
    requireDigest(digest, "get(): digest");
    const [bytes] = await this.readMany([digest], opts?.signal);
    return bytes === undefined ? undefined : decodeStoredDirectory(digest, bytes);
  }

  async put(directory: Directory, opts?: CallOptions): Promise<Digest> {
    const putter = this.putMultipleStart(opts);
    await putter.put(directory);
    return putter.close();
  }

  getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    requireDigest(root, "getRecursive(): root");
    return breadthFirst(this.readMany, root, this.walkOptions(opts));
  }

  /** getRecursive with each directory's bytes (the walk's own copy, re-hashed): see DirectoryService. */
  getRecursiveEncoded(root: Digest, opts?: CallOptions): AsyncIterable<EncodedDirectory> {
    requireDigest(root, "getRecursiveEncoded(): root");
    return breadthFirstEncoded(this.readMany, root, this.walkOptions(opts));
  }

  private walkOptions(opts: CallOptions | undefined): BreadthFirstOptions {
    return {
      signal: opts?.signal,
      batchSize: this.opts.batchSize,
      sizeCheck: this.opts.sizeCheck,
      readOne: this.syncReader(),
    };
  }

  /**
   * The store's synchronous reader for one walk, if it has one: each read
   * copied into the walk's own arena (packed chunks: no allocation per
   * directory or per level), engine failures wrapped as BackendError.
   */
  private syncReader(): ReadOne | undefined {
    if (!this.store.openReader) return undefined;
    let read: ((digest: Digest) => Uint8Array | undefined) | undefined;
    const arena = new ByteArena(64 * 1024);
    return (digest) => {
      let bytes: Uint8Array | undefined;
      try {
        read ??= this.store.openReader!();
        bytes = read(digest);
      } catch (e) {
        throw this.wrap(e);
      }
      return bytes === undefined ? undefined : arena.copy(bytes);
    };
  }

  /** Every store takes partial uploads: natively (DirectoryStore.partialUploads), or made whole (expandPartialClosure). */
  async partialUploads(): Promise<boolean> {
    return true;
  }

  putMultipleStart(opts?: PutMultipleOptions): DirectoryPutter {
    const signal = opts?.signal;
    const store = this.store;
    const partial = opts?.partial === true;
    let sink: ClosureSink;
    if (partial && !store.partialUploads) {
      // Made whole at close (expand-partial.ts), then stored the way a whole upload is.
      sink = {
        commit: async (closure, commitSignal) => {
          const s = commitSignal ?? signal;
          const whole = await expandPartialClosure(this, closure, { sizeCheck: this.opts.sizeCheck, signal: s });
          throwIfAborted(s);
          await store.putClosure(whole.entries, s);
        },
      };
    } else if (store.openUpload) {
      sink = this.wrapUpload(() => store.openUpload!(signal));
    } else {
      sink = {
        commit: (closure, commitSignal) =>
          store.putClosure(
            closure.entries,
            commitSignal ?? signal,
            closure.external.map((e) => e.digest),
          ),
      };
    }
    return new ClosurePutter(this.wrapSink(sink, signal, partial && store.partialUploads === true), {
      sizeCheck: this.opts.sizeCheck,
      signal,
      partial,
    });
  }

  /**
   * A partial upload's references, checked before the commit: each is stored
   * (re-hashed as any read) with a size every declaration accepts. The store
   * checks presence again, atomically with its commit.
   */
  private async checkExternal(external: readonly ExternalChild[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < external.length; i += EXTERNAL_BATCH) {
      const batch = external.slice(i, i + EXTERNAL_BATCH);
      const stored = await this.readMany(
        batch.map((e) => e.digest),
        signal,
      );
      batch.forEach((ext, j) => {
        const bytes = stored[j];
        if (bytes === undefined)
          throw new ClosureError(
            `${ext.referredBy} refers to ${ext.digest.hex}, which was not sent in this partial upload and is not stored`,
          );
        const { directory, size } = decodeStoredDirectorySized(ext.digest, bytes);
        const entries = directory.directories.length + directory.files.length + directory.symlinks.length;
        const range = sizeRangeFrom(size, entries);
        const sizeCheck = this.opts.sizeCheck ?? "exact";
        for (const declared of ext.declaredSizes) {
          if (!declaredSizeAccepted(declared, range, sizeCheck))
            throw new ClosureError(
              `${ext.referredBy} declares size ${declared} for stored directory ${ext.digest.hex}, but ${describeAcceptedSizes(range, sizeCheck)}`,
            );
        }
      });
    }
  }

  /** A streamed upload, opened at its first batch: an upload that fails early never holds store resources. */
  private wrapUpload(open: () => ClosureSink): ClosureSink {
    let upload: ClosureSink | undefined;
    return {
      write: async (entries) => (upload ??= open()).write?.(entries),
      commit: (closure, commitSignal) => (upload ??= open()).commit(closure, commitSignal),
      abort: async () => upload?.abort?.(),
    };
  }

  /**
   * Engine failures of a sink become BackendError; an abort is checked before
   * committing (the commit's own signal: the caller's, or an abort() during close()).
   */
  private wrapSink(sink: ClosureSink, signal: AbortSignal | undefined, checkExternal = false): ClosureSink {
    const wrapped = async (step: () => Promise<void>) => {
      try {
        await step();
      } catch (e) {
        throw this.wrap(e);
      }
    };
    return {
      write: sink.write && ((entries) => wrapped(() => sink.write!(entries))),
      commit: async (closure, commitSignal) => {
        throwIfAborted(commitSignal ?? signal);
        if (checkExternal && closure.external.length > 0)
          await this.checkExternal(closure.external, commitSignal ?? signal);
        return wrapped(() => sink.commit(closure, commitSignal ?? signal));
      },
      abort: sink.abort,
    };
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/**
 * Copies of a batch of byte strings, packed into one fresh buffer: one
 * allocation per batch rather than per directory. A caller that keeps one
 * directory keeps its batch's buffer alive (a getRecursive batch is at most
 * `batchSize` directories).
 */
function copyBatch(batch: (Uint8Array | undefined)[]): (Uint8Array | undefined)[] {
  let total = 0;
  for (const bytes of batch) if (bytes) total += bytes.length;
  const copy = new Uint8Array(total);
  let at = 0;
  return batch.map((bytes) => {
    if (!bytes) return undefined;
    copy.set(bytes, at);
    at += bytes.length;
    return copy.subarray(at - bytes.length, at);
  });
}
