/**
 * StoreDirectoryService: a whole DirectoryService on top of a DirectoryStore,
 * the small interface a local backend implements ("fetch these bytes", "store
 * this closure atomically"). Validation, closure checks, re-hashing on read
 * and the breadth-first walk live here once.
 */
import type { Digest } from "./digest.js";
import { BackendError, isCastoreError, throwIfAborted } from "./errors.js";
import { breadthFirst } from "./bfs.js";
import { type ClosureEntry, decodeStoredDirectory } from "./closure.js";
import type { Directory } from "./model.js";
import { ClosurePutter } from "./putter.js";
import type { CallOptions, DirectoryPutter, DirectoryService, SizeCheck } from "./service.js";

export interface DirectoryStore {
  /** Names the backend in errors, e.g. "memory" or "lmdb:/var/lib/castore". */
  readonly backend: string;
  /** The stored bytes of each digest, undefined where absent; same order as the input. */
  getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]>;
  /** Stores a checked closure, leaves to root, all or nothing. Entries may already be stored. */
  putClosure(entries: ClosureEntry[], signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
  /** Optional: every stored digest. */
  listDigests?(signal?: AbortSignal): AsyncIterable<Digest>;
}

export interface StoreDirectoryServiceOptions {
  sizeCheck?: SizeCheck;
  /** Digests per batch read in getRecursive. */
  batchSize?: number;
}

export class StoreDirectoryService implements DirectoryService {
  constructor(
    readonly store: DirectoryStore,
    private readonly opts: StoreDirectoryServiceOptions = {},
  ) {
    if (store.listDigests) {
      this.listDigests = (callOpts?: CallOptions) => this.wrapIterable(store.listDigests!(callOpts?.signal));
    }
  }

  listDigests?: (opts?: CallOptions) => AsyncIterable<Digest>;

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

  private readMany = async (digests: Digest[], signal?: AbortSignal) => {
    // Checked here once, so a store that forgets to look at the signal still honours it.
    throwIfAborted(signal);
    try {
      return await this.store.getMany(digests, signal);
    } catch (e) {
      throw this.wrap(e);
    }
  };

  async get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined> {
    const [bytes] = await this.readMany([digest], opts?.signal);
    return bytes === undefined ? undefined : decodeStoredDirectory(digest, bytes);
  }

  async put(directory: Directory, opts?: CallOptions): Promise<Digest> {
    const putter = this.putMultipleStart(opts);
    await putter.put(directory);
    return putter.close();
  }

  getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    return breadthFirst(this.readMany, root, { signal: opts?.signal, batchSize: this.opts.batchSize });
  }

  putMultipleStart(opts?: CallOptions): DirectoryPutter {
    return new ClosurePutter(
      async (closure, signal) => {
        throwIfAborted(signal);
        try {
          await this.store.putClosure(closure.entries, signal);
        } catch (e) {
          throw this.wrap(e);
        }
      },
      { sizeCheck: this.opts.sizeCheck, signal: opts?.signal },
    );
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
