/**
 * LmdbCollectableStore: what core's InProcessCollector needs of an LMDB
 * environment (spec §10): every stored object's usedAt and size from the
 * "used" database (lmdb-used.ts), and deletes that re-check usedAt inside
 * one write transaction. LMDB has one writer at a time, across processes,
 * so a delete and an upload's touch (spec §10.2 (a)-(d), done by the
 * directory and blob stores inside their own write transactions) never
 * interleave: whichever commits first, the other sees it.
 *
 * Stores written before the "used" database existed: an object without a
 * usedAt counts as used when a collection first lists it, and that time is
 * written then. So the first collection of an old store deletes nothing
 * (everything is young to it); later ones judge by the time written.
 */
import { resolve } from "node:path";
import {
  BackendError,
  Digest,
  digestOfBinaryKey,
  reportInvalidKey,
  throwIfAborted,
  type CollectableStore,
  type ObjectKind,
  type StoredObject,
} from "@castore-ts/core";
import type { Database, RootDatabase } from "lmdb";
import { BLOB_CHUNKS_DB, BLOB_MANIFESTS_DB, touchBlob } from "./lmdb-blob-store.js";
import { openLmdbEnv } from "./lmdb-env.js";
import { DIRECTORIES_DB } from "./lmdb-store.js";
import {
  countCollectionIn,
  issueUsedAt,
  markUsed,
  readUsed,
  storedSize,
  touchStored,
  usedKey,
  USED_DB,
  type UsedEntry,
} from "./lmdb-used.js";
import type { LmdbStoreOptions } from "./lmdb-url.js";

/** Keys per page when listing; each page is its own short read transaction. */
const LIST_PAGE = 4096;

type BinaryDb = Database<Uint8Array, Uint8Array>;

export class LmdbCollectableStore implements CollectableStore {
  readonly backend: string;
  private closing: Promise<void> | undefined;
  private readonly objects: Record<ObjectKind, BinaryDb>;
  /** "used": usedAt and size per object. */
  readonly used: BinaryDb;

  private constructor(
    readonly path: string,
    private readonly env: RootDatabase<Uint8Array, Uint8Array>,
    dbs: Record<typeof DIRECTORIES_DB | typeof BLOB_CHUNKS_DB | typeof BLOB_MANIFESTS_DB | typeof USED_DB, BinaryDb>,
    private readonly noSync: boolean,
  ) {
    this.backend = `lmdb:${path}`;
    this.objects = { directory: dbs[DIRECTORIES_DB], blob: dbs[BLOB_MANIFESTS_DB], chunk: dbs[BLOB_CHUNKS_DB] };
    this.used = dbs[USED_DB];
  }

  /** Opens (creating if needed) the environment in directory `path`; failures are BackendErrors naming it. */
  static open(path: string, opts: LmdbStoreOptions = {}): LmdbCollectableStore {
    const absolute = resolve(path);
    const names = [DIRECTORIES_DB, BLOB_CHUNKS_DB, BLOB_MANIFESTS_DB, USED_DB] as const;
    const { env, dbs } = openLmdbEnv(absolute, names, opts);
    return new LmdbCollectableStore(absolute, env, dbs, opts.noSync ?? false);
  }

  private check(signal: AbortSignal | undefined): void {
    if (this.closing) throw new BackendError(this.backend, "store is closed");
    throwIfAborted(signal);
  }

  /**
   * Counts a collection in and answers the store's clock (lmdb-used.ts), in
   * one write transaction: LMDB has one writer at a time across processes,
   * so every write committed before it (by any process) is older than the
   * answer, with no grace old to the collection, and visible to its
   * listings; every write after it is younger; and a ref set that read the
   * count before sees it moved (core's fencedSet).
   */
  async startCollection(): Promise<number> {
    if (this.closing) throw new BackendError(this.backend, "store is closed");
    return this.used.childTransaction(() => countCollectionIn(this.used));
  }

  /**
   * Every object of a kind, a page of keys at a time from the newest
   * snapshot, with usedAt and size from "used" (no object's value is read).
   * Objects with no usedAt yet are given one now (see the module comment),
   * in one write transaction per page.
   */
  async *listObjects(kind: ObjectKind, signal?: AbortSignal): AsyncIterable<StoredObject> {
    const db = this.objects[kind];
    let after: Uint8Array | undefined;
    for (;;) {
      this.check(signal);
      this.env.resetReadTxn();
      const keys = Array.from(db.getKeys({ start: after, exclusiveStart: after !== undefined, limit: LIST_PAGE }));
      const digests = keys.map((key) => {
        const digest = digestOfBinaryKey(key);
        // A key that is not a digest is not castore's: the collection stops rather than guess (CorruptionError).
        if (!(digest instanceof Digest)) return reportInvalidKey(this.backend, digest, undefined) as never;
        return digest;
      });
      const entries = digests.map((d) => readUsed(this.used, kind, d.bytes));
      const unmarked = digests.filter((_, i) => entries[i] === undefined);
      if (unmarked.length > 0) {
        const marked = await this.markFirstSeen(kind, unmarked);
        digests.forEach((d, i) => (entries[i] ??= marked.get(d.hex)));
      }
      for (let i = 0; i < digests.length; i++) {
        const entry = entries[i];
        // Deleted since the page was read (by another collection): nothing to list.
        if (entry !== undefined) yield { digest: digests[i], size: entry.size, usedAt: entry.usedAt };
      }
      if (keys.length < LIST_PAGE) return;
      after = keys[keys.length - 1];
    }
  }

  /** Gives objects found without a usedAt the time now (unless a writer gave them one meanwhile), by hex digest. */
  private async markFirstSeen(kind: ObjectKind, digests: Digest[]): Promise<Map<string, UsedEntry>> {
    const db = this.objects[kind];
    return db.childTransaction(() => {
      const now = issueUsedAt(this.used);
      const marked = new Map<string, UsedEntry>();
      for (const digest of digests) {
        let entry = readUsed(this.used, kind, digest.bytes);
        if (entry === undefined) {
          const size = storedSize(db, digest.bytes);
          if (size === undefined) continue; // deleted meanwhile
          markUsed(this.used, kind, digest.bytes, now, size);
          entry = { usedAt: now, size };
        }
        marked.set(digest.hex, entry);
      }
      return marked;
    });
  }

  /**
   * One write transaction: each object whose usedAt is still before
   * `cutoff` is deleted with its "used" entry. One used since, or with no
   * usedAt (written by a process that predates the "used" database), is
   * spared. Waits for the disk unless noSync.
   */
  async deleteUnusedSince(
    kind: ObjectKind,
    digests: readonly Digest[],
    cutoff: number,
    signal?: AbortSignal,
  ): Promise<StoredObject[]> {
    this.check(signal);
    const db = this.objects[kind];
    const deleted = await db.childTransaction(() => {
      throwIfAborted(signal); // it may have been aborted while waiting for the write lock
      const out: StoredObject[] = [];
      for (const digest of digests) {
        const entry = readUsed(this.used, kind, digest.bytes);
        if (entry === undefined || entry.usedAt >= cutoff) continue;
        this.used.removeSync(usedKey(kind, digest.bytes));
        // Absent already (another collection took it): only its stale entry goes.
        if (db.removeSync(digest.bytes)) out.push({ digest, size: entry.size, usedAt: entry.usedAt });
      }
      return out;
    });
    if (deleted.length > 0 && !this.noSync) await this.env.flushed;
    return deleted;
  }

  /** One write transaction: marks each stored object used now (a blob with its chunks); whether each is stored. */
  async touch(kind: ObjectKind, digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]> {
    this.check(signal);
    const db = this.objects[kind];
    const blobDbs = { chunks: this.objects.chunk, manifests: this.objects.blob, used: this.used };
    return db.childTransaction(() => {
      throwIfAborted(signal);
      const now = issueUsedAt(this.used);
      return digests.map((d) =>
        kind === "blob" ? touchBlob(blobDbs, d, now, this.backend) : touchStored(this.used, db, kind, d.bytes, now),
      );
    });
  }

  /** Waits for pending commits, then closes this handle on the environment. Closing twice is fine. */
  close(): Promise<void> {
    this.closing ??= this.env.close();
    return this.closing;
  }
}
