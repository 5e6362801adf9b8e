/**
 * PostgresDirectoryService: a whole DirectoryService (validation, closure
 * checks, re-hashing reads — from core's StoreDirectoryService) over a
 * PostgresDirectoryStore, with its own getRecursive: the whole closure in
 * one statement (PostgresDirectoryStore.readClosure, a recursive query over
 * the directories' `children` column, streamed as COPY), breadth first, root
 * first.
 *
 * The `children` column only says where to look. Every directory is
 * re-hashed and re-validated as it arrives, declared sizes are re-checked,
 * and a row is taken only when a directory already yielded names it (the
 * root first): a row a wrong `children` value points to is skipped. If
 * directories are still expected when the statement ends (some row's
 * children are NULL: stored by a castore from before the column while this
 * one was already running, or changed behind the store's back), or the
 * connection broke or the statement was cancelled (statement_timeout)
 * mid-read, the walk goes on from the expected ones level by level (one
 * getMany per level), so a closure is never cut short by the column; its
 * order is then root to leaves, not strictly breadth first. A directory
 * missing from the table is a CorruptionError.
 */
import {
  BackendError,
  CorruptionError,
  Digest,
  ReadSizeChecker,
  StoreDirectoryService,
  decodeStoredDirectorySized,
  requireDigest,
  throwIfAborted,
  type CallOptions,
  type Directory,
  type SizeCheck,
  type StoreDirectoryServiceOptions,
} from "@castore-ts/core";
import { sqlState } from "./postgres-errors.js";
import { PostgresDirectoryStore, type PostgresStoreConfig } from "./postgres-store.js";
import { parsePostgresUrl } from "./postgres-url.js";

export type PostgresDirectoryServiceOptions = PostgresStoreConfig & Omit<StoreDirectoryServiceOptions, "batchSize">;

export class PostgresDirectoryService extends StoreDirectoryService {
  declare readonly store: PostgresDirectoryStore;
  private readonly sizeCheck: SizeCheck | undefined;

  constructor(store: PostgresDirectoryStore, opts: Omit<StoreDirectoryServiceOptions, "batchSize"> = {}) {
    super(store, { ...opts, batchSize: store.batchSize });
    this.sizeCheck = opts.sizeCheck;
  }

  /**
   * Opens the store a `postgres:` or `postgresql:` URL names (see parsePostgresUrl).
   * No connection is made yet: the first call connects and creates the schema if
   * needed (`await service.store.init()` does that now). Options given here win
   * over the URL's.
   */
  static open(url: URL | string, opts: PostgresDirectoryServiceOptions = {}): PostgresDirectoryService {
    const { connectionString, options } = parsePostgresUrl(url);
    const { sizeCheck, ...storeOpts } = opts;
    const defined = Object.fromEntries(Object.entries(storeOpts).filter(([, v]) => v !== undefined));
    return new PostgresDirectoryService(new PostgresDirectoryStore(connectionString, { ...options, ...defined }), {
      sizeCheck,
    });
  }

  override getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    requireDigest(root, "getRecursive(): root");
    return this.walk(root, opts?.signal);
  }

  private async *walk(root: Digest, signal?: AbortSignal): AsyncGenerator<Directory, void, undefined> {
    throwIfAborted(signal);
    const state = new WalkState(root, this.sizeCheck);
    let complete = false;
    try {
      for await (const rows of this.store.readClosure(root, signal)) {
        for (const row of rows) {
          if (!state.expects(row.digest)) continue; // a child its parent does not name (`children` changed by hand)
          yield state.take(Digest.fromBytes(row.digest), row.bytes);
          throwIfAborted(signal);
        }
      }
      complete = true;
    } catch (error) {
      // The connection broke, or the statement was cancelled (statement_timeout: a slow consumer
      // holds the one statement open): what came is checked; the rest comes level by level.
      if (signal?.aborted || !(error instanceof BackendError && (error.unavailable || isQueryCanceled(error.cause))))
        throw error;
    }
    if (complete && state.received === 0) return; // the root is absent: the statement read nothing
    yield* this.readRest(state, signal);
  }

  /** The directories still expected, level by level (nothing when none is). */
  private async *readRest(state: WalkState, signal?: AbortSignal): AsyncGenerator<Directory, void, undefined> {
    const batchSize = this.store.batchSize;
    for (let level = state.takeExpected(); level.length > 0; level = state.takeExpected()) {
      for (let start = 0; start < level.length; start += batchSize) {
        throwIfAborted(signal);
        const chunk = level.slice(start, start + batchSize);
        const found = await this.store.getMany(chunk, signal);
        for (let i = 0; i < chunk.length; i++) {
          const bytes = found[i];
          if (bytes === undefined && state.received === 0) return; // an absent root
          yield state.take(chunk[i], bytes === undefined ? null : copyOf(bytes));
          throwIfAborted(signal);
        }
      }
    }
  }
}

/** query_canceled: statement_timeout, or pg_cancel_backend. */
function isQueryCanceled(error: unknown): boolean {
  return sqlState(error) === "57014";
}

/** A copy the caller owns (getMany may return views of what a store keeps). */
function copyOf(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/**
 * What a walk has received and still expects, and the re-check of declared
 * sizes: the size checker's own record of every digest (received, or
 * referred to and not received yet) is the walk's, with no sets of its own.
 */
class WalkState {
  private readonly sizes: ReadSizeChecker;
  private count = 0;

  constructor(
    private readonly root: Digest,
    sizeCheck: SizeCheck | undefined,
  ) {
    this.sizes = new ReadSizeChecker({ sizeCheck });
  }

  get received(): number {
    return this.count;
  }

  /** Whether the directory with these digest bytes is due: the root first, then each named by one received and not received yet. */
  expects(digest: Uint8Array): boolean {
    return this.count === 0 ? Buffer.from(digest).equals(this.root.bytes) : this.sizes.isReferred(digest);
  }

  /** Checks one expected directory's stored bytes (null: not stored) and returns it decoded. */
  take(digest: Digest, bytes: Uint8Array | null): Directory {
    if (bytes === null) {
      throw new CorruptionError(
        `directory ${digest} below root ${this.root} is missing: the store lost part of a closure`,
      );
    }
    const { directory, size } = decodeStoredDirectorySized(digest, bytes);
    this.sizes.receive(digest, directory, undefined, size);
    this.count++;
    return directory;
  }

  /** The directories expected now, in the order they were first named (a level for readRest). */
  takeExpected(): Digest[] {
    if (this.count === 0) return [this.root];
    return Array.from(this.sizes.referred());
  }
}
