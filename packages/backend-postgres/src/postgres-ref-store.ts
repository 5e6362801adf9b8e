/**
 * PostgresRefStore: refs (spec §9) in the `refs` table of the store's schema
 * (name text COLLATE "C" primary key → digest bytea), on the pool and
 * connection rules of a PostgresDirectoryStore.
 *
 * - getRef: one SELECT.
 * - compareAndSetRef: one transaction holding a transaction-scoped advisory
 *   lock on the name, so that two changes of one ref (including creating it,
 *   where there is no row to lock yet) take turns: read, compare, write,
 *   commit. Every writer of refs is this code.
 * - listRefs: keyset pages in byte order (the "C" collation: names are ASCII),
 *   each page one short query, so a slow consumer holds no connection.
 *
 * Setting a ref protects its tree (spec §10.2), in the store itself
 * (`checksClosure`), so every way of opening it does, `castore ref set`
 * included: core's protectClosure over this store checks the whole tree is
 * stored and marks it used, children before parents; then the ref is
 * written. That alone leaves a gap: a collection that starts (and reads the
 * refs) after the marking but before the ref is written would find the tree
 * unreferenced and, with no grace, old. So the marking and the write are
 * fenced against a collection's start: the store reads
 * `collections.started` before marking, and the transaction that writes the
 * ref holds that row FOR SHARE and checks the count did not move. A
 * collection counts itself in by updating the row (countCollectionIn),
 * so it either starts after the ref is committed (and reads it), or the
 * count moved and the tree is protected again, after the collection's start:
 * young to it, or found gone (ClosureError).
 */
import {
  BackendError,
  ChunkedBlobService,
  COLLECTION_STARTED,
  Digest,
  fencedSet,
  protectClosure,
  refHolds,
  RefService,
  throwIfAborted,
  type BlobService,
  type CallOptions,
  type Ref,
  type RefExpectation,
  type RefListOptions,
  type RefServiceOptions,
  type RefStore,
  type SwapResult,
} from "@castore-ts/core";
import type pg from "pg";
import { PostgresBlobStore } from "./postgres-blob-store.js";
import { PostgresCollectableStore } from "./postgres-collectable.js";
import { PostgresDirectoryService } from "./postgres-service.js";
import { PostgresDirectoryStore, type PostgresStoreConfig } from "./postgres-store.js";
import { parsePostgresUrl } from "./postgres-url.js";

/** Checks (and marks used) the tree a ref is about to name; ClosureError when it is not wholly stored. */
export type ProtectTree = (root: Digest, opts?: CallOptions) => Promise<void>;

export interface PostgresRefStoreOptions {
  /** For tests: what protects a tree before a ref names it. Default: core's protectClosure over this store. */
  protect?: ProtectTree;
}

/** Refs per page of a listing. */
const LIST_PAGE = 1000;

export class PostgresRefStore implements RefStore {
  readonly backend: string;
  /** RefService leaves the closure check to this store: it protects the tree itself (see above). */
  readonly checksClosure = true;
  private readonly protect: ProtectTree;
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    /** The store whose pool, schema and connection rules this one uses. */
    readonly db: PostgresDirectoryStore,
    /** Whether closing this store closes that one (it was opened for this store alone). */
    private readonly ownsDb: boolean,
    options: PostgresRefStoreOptions,
  ) {
    this.backend = db.backend;
    const parts = { objects: new PostgresCollectableStore(db), directories: db, blobs: PostgresBlobStore.sharing(db) };
    this.protect = options.protect ?? ((root, opts) => protectClosure(parts, root, opts));
  }

  /** Opens the refs of the store a `postgres:` or `postgresql:` URL names, with a pool of its own. */
  static open(
    url: URL | string,
    config: PostgresStoreConfig = {},
    options: PostgresRefStoreOptions = {},
  ): PostgresRefStore {
    const { connectionString, options: fromUrl } = parsePostgresUrl(url);
    const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    return new PostgresRefStore(
      new PostgresDirectoryStore(connectionString, { ...fromUrl, ...defined }),
      true,
      options,
    );
  }

  /** Refs on the pool and schema of an open directory store; closing them leaves that store open. */
  static sharing(db: PostgresDirectoryStore, options: PostgresRefStoreOptions = {}): PostgresRefStore {
    return new PostgresRefStore(db, false, options);
  }

  private async ready(): Promise<void> {
    if (this.closed) throw new BackendError(this.backend, "store is closed");
    await this.db.init();
  }

  async getRef(name: string, opts: CallOptions = {}): Promise<Digest | undefined> {
    await this.ready();
    const rows = await this.db.withClient(`reading ref ${name}`, opts.signal, async (client) => {
      const result = await client.query<[Buffer]>({
        text: `SELECT digest FROM ${this.db.tables.refs} WHERE name = $1`,
        values: [name],
        rowMode: "array",
      });
      return result.rows;
    });
    return rows.length === 0 ? undefined : Digest.fromBytes(rows[0][0]);
  }

  /**
   * Setting (a digest): the tree is protected first, fenced against a
   * collection's start (see above); removing (null) needs no protection.
   */
  async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts: CallOptions = {},
  ): Promise<SwapResult> {
    await this.ready();
    if (digest === null) return (await this.swap(name, null, expect, undefined, opts)) as SwapResult;
    return fencedSet(this.backend, name, {
      collectionsStarted: () => this.collectionsStarted(opts),
      protect: () => this.protect(digest, opts),
      swap: (started) => this.swap(name, digest, expect, started, opts),
    });
  }

  /** How many collections have started so far. */
  private async collectionsStarted(opts: CallOptions): Promise<string> {
    return this.db.withClient("reading the collections started", opts.signal, async (client) => {
      const { rows } = await client.query<[string]>({
        text: `SELECT started FROM ${this.db.tables.collections}`,
        rowMode: "array",
      });
      return rows[0][0];
    });
  }

  /**
   * The compare-and-set itself, one transaction. With `started` (a set), it
   * first holds the collections row FOR SHARE and gives up, changing nothing,
   * if a collection started since (COLLECTION_STARTED).
   */
  private swap(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    started: string | undefined,
    opts: CallOptions,
  ): Promise<SwapResult | typeof COLLECTION_STARTED> {
    const refs = this.db.tables.refs;
    return this.db.withClient(`setting ref ${name}`, opts.signal, async (client, session) => {
      await client.query("BEGIN");
      session.begun();
      try {
        if (started !== undefined && (await this.collectionStartedSince(client, started))) {
          await client.query("ROLLBACK");
          return COLLECTION_STARTED;
        }
        // One change of this ref at a time (per schema): held until COMMIT or ROLLBACK.
        await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
          `castore:ref:${this.db.schema}:${name}`,
        ]);
        const { rows } = await client.query<[Buffer]>({
          text: `SELECT digest FROM ${refs} WHERE name = $1`,
          values: [name],
          rowMode: "array",
        });
        const current = rows.length === 0 ? undefined : Digest.fromBytes(rows[0][0]);
        if (!refHolds(current, expect)) {
          await client.query("ROLLBACK");
          return { swapped: false, current };
        }
        if (digest === null) await client.query(`DELETE FROM ${refs} WHERE name = $1`, [name]);
        else
          await client.query(
            `INSERT INTO ${refs} (name, digest) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET digest = EXCLUDED.digest`,
            [name, Buffer.from(digest.bytes)],
          );
        await client.query("COMMIT");
        return { swapped: true, current };
      } catch (error) {
        await client.query("ROLLBACK").catch(session.discard);
        throw error;
      }
    });
  }

  /** Inside the caller's transaction: holds the collections row (a collection waits to start) and compares its count. */
  private async collectionStartedSince(client: pg.ClientBase, started: string): Promise<boolean> {
    const { rows } = await client.query<[string]>({
      text: `SELECT started FROM ${this.db.tables.collections} FOR SHARE`,
      rowMode: "array",
    });
    return rows[0][0] !== started;
  }

  async *listRefs(opts: RefListOptions = {}): AsyncIterable<Ref> {
    await this.ready();
    const prefix = opts.prefix ?? "";
    // Names under a prefix lie between the prefix itself and the prefix followed by DEL (0x7f): every
    // character of a ref name is below it. The bounds let the scan stop; starts_with decides.
    let after: string | undefined;
    for (;;) {
      throwIfAborted(opts.signal);
      const page = await this.db.withClient("listing refs", opts.signal, async (client) => {
        const result = await client.query<[string, Buffer]>({
          text: `SELECT name, digest FROM ${this.db.tables.refs}
                 WHERE name >= $1 AND name < $1 || chr(127) AND ($2::text IS NULL OR name > $2)
                   AND starts_with(name, $1)
                 ORDER BY name LIMIT $3`,
          values: [prefix, after ?? null, LIST_PAGE],
          rowMode: "array",
        });
        return result.rows;
      });
      for (const [name, digest] of page) yield { name, digest: Digest.fromBytes(digest) };
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1][0];
    }
  }

  /** Closes the pool if this store opened it. Closing twice is fine. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = this.ownsDb ? this.db.close() : Promise.resolve();
    }
    return this.closing;
  }
}

/**
 * The refs of a PostgreSQL store as a RefService, over the store's own
 * directories (and blobs): every `set` protects the tree it names (see
 * PostgresRefStore).
 */
export function postgresRefService(
  directories: PostgresDirectoryService,
  blobs: BlobService | undefined,
  options: RefServiceOptions & PostgresRefStoreOptions = {},
): RefService {
  const { protect, ...serviceOptions } = options;
  return new RefService(PostgresRefStore.sharing(directories.store, { protect }), directories, blobs, serviceOptions);
}

/** The RefService of the store a URL names (its own pool; close() closes everything). */
export function openPostgresRefService(url: URL | string, config: PostgresStoreConfig = {}): RefService {
  const directories = PostgresDirectoryService.open(url, config);
  const blobs = new ChunkedBlobService(PostgresBlobStore.sharing(directories.store));
  return postgresRefService(directories, blobs, { closeAll: true });
}
