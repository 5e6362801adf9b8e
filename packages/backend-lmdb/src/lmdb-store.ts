/**
 * LmdbDirectoryStore: castore's DirectoryStore on an LMDB environment (the
 * modern form of tvix's sled.rs). One named database, "directories": key =
 * the 32 digest bytes, value = the directory's canonical protobuf bytes.
 *
 * It only stores and fetches bytes: StoreDirectoryService (core) validates
 * uploads, checks closures, re-hashes every read and walks trees. An upload
 * also marks each of its directories used now in the "used" database
 * (lmdb-used.ts), in its own write transaction (spec §10.2 (a)).
 */
import {
  BackendError,
  Digest,
  digestOfBinaryKey,
  reportInvalidKey,
  throwIfAborted,
  type ClosureEntry,
  type DirectoryStore,
  type OnInvalidKey,
  visitStoredClosures,
} from "@castore-ts/core";
import type { Database, RootDatabase } from "lmdb";
import { openLmdbEnv } from "./lmdb-env.js";
import { issueUsedAt, markUsed, USED_DB } from "./lmdb-used.js";
import type { LmdbStoreOptions } from "./lmdb-url.js";

/** Name of the LMDB database (inside the environment) that holds directories. */
export const DIRECTORIES_DB = "directories";

/** Keys per page when listing digests; each page is its own short read transaction. */
const LIST_PAGE = 4096;

export class LmdbDirectoryStore implements DirectoryStore {
  readonly backend: string;
  /** putClosure checks and marks a partial upload's stored children inside its own write transaction. */
  readonly partialUploads = true;
  /** putClosure writes a closure in one write transaction: order does not matter to it. */
  readonly unorderedClosures = true;
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    /** Absolute path of the environment's directory. */
    readonly path: string,
    /** The LMDB environment (its root database). */
    readonly env: RootDatabase<Uint8Array, Uint8Array>,
    /** The "directories" database: digest bytes → canonical bytes. Exposed for tests that inject corruption. */
    readonly directories: Database<Uint8Array, Uint8Array>,
    /** The "used" database: when each object was last written or used (lmdb-used.ts). */
    readonly used: Database<Uint8Array, Uint8Array>,
    private readonly noSync: boolean,
  ) {
    this.backend = `lmdb:${path}`;
  }

  /**
   * Opens (creating if needed) the environment in directory `path`. Any
   * failure — the path is a file, cannot be created, is not writable, is not
   * an LMDB environment — is a BackendError naming the path.
   */
  static open(path: string, opts: LmdbStoreOptions = {}): LmdbDirectoryStore {
    const { env, dbs } = openLmdbEnv(path, [DIRECTORIES_DB, USED_DB], opts);
    return new LmdbDirectoryStore(path, env, dbs[DIRECTORIES_DB], dbs[USED_DB], opts.noSync ?? false);
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError(this.backend, "store is closed");
  }

  async getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    this.checkOpen();
    throwIfAborted(signal);
    // Synchronous reads straight from the memory map: getBinary copies the
    // value out of lmdb's reusable buffer, so the result may outlive the
    // read transaction. (db.getMany would prefetch on a worker thread first:
    // no faster while the file is in the page cache, and its promise never
    // settles if the prefetch fails; see README.)
    const db = this.directories;
    // Read the newest committed snapshot: lmdb-js otherwise keeps one read
    // transaction for the rest of the event turn, which would miss a commit
    // that another process (or another env on this path) made meanwhile.
    db.resetReadTxn();
    const out = new Array<Uint8Array | undefined>(digests.length);
    for (let i = 0; i < digests.length; i++) out[i] = db.getBinary(digests[i].bytes);
    return out;
  }

  /**
   * For getRecursive: synchronous reads of the newest committed snapshot
   * (taken at open), each a view of lmdb-js's reusable read buffer
   * (getBinaryFast: no allocation per read), valid until the next read; core
   * copies it at once. That buffer's `length` is patched to the value's size
   * while its real extent is larger, so the view is cut to `lastSize`.
   * lmdb-js renews its read transaction at the end of the event turn, so a
   * walk that outlives the turn reads a newer snapshot: a digest's bytes only
   * ever change by a repair, so a closure reads the same either way.
   */
  openReader(): (digest: Digest) => Uint8Array | undefined {
    this.checkOpen();
    const db = this.directories as Database<Uint8Array, Uint8Array> & { lastSize: number };
    db.resetReadTxn();
    return (digest) => {
      this.checkOpen();
      const bytes = db.getBinaryFast(digest.bytes);
      return bytes === undefined ? undefined : Uint8Array.prototype.subarray.call(bytes, 0, db.lastSize);
    };
  }

  async putClosure(entries: ClosureEntry[], signal?: AbortSignal, external?: readonly Digest[]): Promise<void> {
    this.checkOpen();
    throwIfAborted(signal);
    const { directories: db, used } = this;
    // One LMDB write transaction for the whole upload: the child transaction
    // commits with its parent (lmdb-js's batched async transaction, committed
    // on its write thread) or, if the callback throws, is rolled back alone.
    // Existing keys are left alone (content addressed), but every entry is
    // marked used now, stored before or not: the upload relies on all of it.
    await db.childTransaction(() => {
      throwIfAborted(signal); // the upload may have been aborted while waiting for the write lock
      const now = issueUsedAt(used);
      // A partial upload's stored children, and their closures: still there
      // (a collection deletes under the same write lock), and now used, in
      // the transaction that commits the parents referring to them.
      if (external && external.length > 0)
        visitStoredClosures(
          external,
          (digest) => db.getBinary(digest),
          (digest, bytes) => markUsed(used, "directory", digest, now, bytes.length),
        );
      for (const entry of entries) {
        // Inside the transaction putSync writes at once; MDB_NOOVERWRITE skips keys already stored.
        db.putSync(entry.digest.bytes, entry.bytes, { noOverwrite: true });
        markUsed(used, "directory", entry.digest.bytes, now, entry.bytes.length);
      }
    });
    // Acknowledge only what is on disk. (lmdb-js's overlappingSync may resolve
    // a commit before its fsync; waiting here costs nothing when it did not.)
    if (!this.noSync) await this.env.flushed;
  }

  /**
   * Overwrites the bytes of stored digests (core checked each entry), in one
   * write transaction: all or none. A digest not stored stays absent.
   */
  async repair(entries: ClosureEntry[], signal?: AbortSignal): Promise<Digest[]> {
    this.checkOpen();
    throwIfAborted(signal);
    const db = this.directories;
    const replaced: Digest[] = [];
    await db.childTransaction(() => {
      throwIfAborted(signal);
      replaced.length = 0; // the callback is not retried today, but would start over
      for (const entry of entries) {
        if (!db.doesExist(entry.digest.bytes)) continue;
        db.putSync(entry.digest.bytes, entry.bytes);
        replaced.push(entry.digest);
      }
    });
    if (!this.noSync) await this.env.flushed;
    return replaced;
  }

  async *listDigests(signal?: AbortSignal, onInvalidKey?: OnInvalidKey): AsyncGenerator<Digest> {
    this.checkOpen();
    let after: Uint8Array | undefined;
    for (;;) {
      throwIfAborted(signal);
      this.checkOpen();
      // A page per read transaction, each from the newest snapshot: no reader
      // stays open while the consumer is slow.
      this.directories.resetReadTxn();
      const page = Array.from(
        this.directories.getKeys({ start: after, exclusiveStart: after !== undefined, limit: LIST_PAGE }),
      );
      for (const key of page) {
        // Keys are copies (lmdb slices them out). A key of another length is not a digest castore wrote.
        const digest = digestOfBinaryKey(key);
        if (digest instanceof Digest) yield digest;
        else reportInvalidKey(this.backend, digest, onInvalidKey);
      }
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1];
    }
  }

  /** Waits for pending commits, then closes the environment. Closing twice is fine. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = this.env.close();
    }
    return this.closing;
  }
}
