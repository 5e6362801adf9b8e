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
 */
import {
  BackendError,
  ChunkedBlobService,
  Digest,
  protectClosure,
  refHolds,
  RefService,
  type BlobService,
  type RefServiceOptions,
  throwIfAborted,
  type CallOptions,
  type Ref,
  type RefExpectation,
  type RefListOptions,
  type RefStore,
  type SwapResult,
} from "@castore-ts/core";
import { PostgresBlobStore } from "./postgres-blob-store.js";
import { PostgresCollectableStore } from "./postgres-collectable.js";
import { PostgresDirectoryService } from "./postgres-service.js";
import { PostgresDirectoryStore, type PostgresStoreConfig } from "./postgres-store.js";
import { parsePostgresUrl } from "./postgres-url.js";

/** Refs per page of a listing. */
const LIST_PAGE = 1000;

export class PostgresRefStore implements RefStore {
  readonly backend: string;
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    /** The store whose pool, schema and connection rules this one uses. */
    readonly db: PostgresDirectoryStore,
    /** Whether closing this store closes that one (it was opened for this store alone). */
    private readonly ownsDb: boolean,
  ) {
    this.backend = db.backend;
  }

  /** Opens the refs of the store a `postgres:` or `postgresql:` URL names, with a pool of its own. */
  static open(url: URL | string, config: PostgresStoreConfig = {}): PostgresRefStore {
    const { connectionString, options } = parsePostgresUrl(url);
    const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    return new PostgresRefStore(new PostgresDirectoryStore(connectionString, { ...options, ...defined }), true);
  }

  /** Refs on the pool and schema of an open directory store; closing them leaves that store open. */
  static sharing(db: PostgresDirectoryStore): PostgresRefStore {
    return new PostgresRefStore(db, false);
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

  async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts: CallOptions = {},
  ): Promise<SwapResult> {
    await this.ready();
    const refs = this.db.tables.refs;
    return this.db.withClient(`setting ref ${name}`, opts.signal, async (client, session) => {
      await client.query("BEGIN");
      session.begun();
      try {
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
 * The refs of a PostgreSQL store as a RefService whose `set` protects the
 * tree it names (spec §10.2): core's protectClosure over this store checks
 * that the whole tree is stored and marks all of it used, children before
 * parents, so a garbage collection running meanwhile cannot take it.
 */
export function postgresRefService(
  directories: PostgresDirectoryService,
  blobs: BlobService | undefined,
  options: Omit<RefServiceOptions, "protect"> = {},
): RefService {
  const db = directories.store;
  const parts = { objects: new PostgresCollectableStore(db), directories: db, blobs: PostgresBlobStore.sharing(db) };
  return new RefService(PostgresRefStore.sharing(db), directories, blobs, {
    ...options,
    protect: (root, opts) => protectClosure(parts, root, opts),
  });
}

/** The RefService of the store a URL names (its own pool; close() closes everything). */
export function openPostgresRefService(url: URL | string, config: PostgresStoreConfig = {}): RefService {
  const directories = PostgresDirectoryService.open(url, config);
  const blobs = new ChunkedBlobService(PostgresBlobStore.sharing(directories.store));
  return postgresRefService(directories, blobs, { closeAll: true });
}
