/**
 * PostgresGarbageCollector: core's GarbageCollector for a PostgreSQL store,
 * mark and sweep inside the database (spec §10). Nothing but counts comes
 * to the client; it holds one pooled connection for the whole collection,
 * whose temporary tables hold the live and garbage sets.
 *
 * Mark (cutoff = the server's clock at the start minus the grace):
 * 1. roots: every ref and `keep` digest; each is a stored directory, else a
 *    stored blob (a manifest or a chunk), else missing (reported);
 * 2. live directories: one recursive query over the `children` column from
 *    the root directories and every directory used since the cutoff (as
 *    getRecursive reads a closure, postgres-closure-read.ts);
 * 3. live blobs: the files of every live directory (read from its bytes by
 *    castore_directory_scan, postgres-directory-scan.ts), blobs used since
 *    the cutoff, root blobs; a blob digest also counts as a chunk;
 * 4. live chunks: those, every live blob's chunk list, chunks used since the
 *    cutoff.
 * A live directory whose children are unknown (NULL) or whose bytes cannot
 * be read stops the collection: its closure cannot be known.
 *
 * Sweep, per kind in core's order (directories, then manifests, then
 * chunks): the garbage (not live, used before the cutoff) is numbered into a
 * temporary table, directories by their size (spec §1) largest first, so
 * parents go before their children; then deleted in numbered batches of
 * DELETE_BATCH rows, each one statement that re-checks, under the row lock,
 * that the object is still unused since the cutoff and not live, and skips
 * rows an upload holds (postgres-collectable.ts: conditionalDelete). A
 * collection stopped at any point leaves no stored object naming a deleted
 * one. A dry run numbers the garbage and counts it.
 *
 * Memory: on the server, the recursive query's set of live directory digests
 * (as getRecursive's) and the temporary tables (spilled to disk past
 * temp_buffers); in the client, nothing that grows with the store.
 */
import {
  BackendError,
  CorruptionError,
  emptyReport,
  graceOf,
  Digest,
  OBJECT_KINDS,
  throwIfAborted,
  type CollectOptions,
  type CollectReport,
  type GarbageCollector,
  type ObjectKind,
} from "@castore-ts/core";
import type pg from "pg";
import { conditionalDelete, countCollectionIn, cutoffAt, kindTable } from "./postgres-collectable.js";
import type { SchemaTables } from "./postgres-schema.js";
import { PostgresDirectoryStore, type PostgresStoreConfig } from "./postgres-store.js";
import { parsePostgresUrl } from "./postgres-url.js";
import { byteaArray } from "./postgres-wire.js";

/** Objects deleted per statement: short transactions, few locks held at once. */
export const DELETE_BATCH = 1000;

/** The collection's temporary tables (per connection, dropped at the end). */
const ROOTS = "castore_gc_roots";
const LIVE: Record<ObjectKind, string> = {
  directory: "castore_gc_live_directories",
  blob: "castore_gc_live_blobs",
  chunk: "castore_gc_live_chunks",
};
const GARBAGE = "castore_gc_garbage";
const TEMPORARY_TABLES = [ROOTS, ...Object.values(LIVE), GARBAGE];

export class PostgresGarbageCollector implements GarbageCollector {
  readonly backend: string;
  private closed = false;

  private constructor(
    readonly db: PostgresDirectoryStore,
    private readonly ownsDb: boolean,
  ) {
    this.backend = db.backend;
  }

  /** The collector of the store a `postgres:` or `postgresql:` URL names, with a pool of its own. */
  static open(url: URL | string, config: PostgresStoreConfig = {}): PostgresGarbageCollector {
    const { connectionString, options } = parsePostgresUrl(url);
    const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    return new PostgresGarbageCollector(new PostgresDirectoryStore(connectionString, { ...options, ...defined }), true);
  }

  /** A collector on the pool and schema of an open directory store; closing it leaves that store open. */
  static sharing(db: PostgresDirectoryStore): PostgresGarbageCollector {
    return new PostgresGarbageCollector(db, false);
  }

  async collect(opts: CollectOptions = {}): Promise<CollectReport> {
    if (this.closed) throw new BackendError(this.backend, "garbage collector is closed");
    const graceMs = graceOf(opts);
    const keep = opts.keep ?? [];
    for (const [i, d] of keep.entries())
      if (!(d instanceof Digest)) throw new TypeError(`keep[${i}] must be a Digest, got ${typeof d}`);
    await this.db.init();
    return this.db.withClient("collecting garbage", opts.signal, async (client, session) => {
      const startedAt = await countCollectionIn(client, this.db.tables, session);
      const report = emptyReport(startedAt, graceMs, opts);
      // From here a broken connection fails the collection (a new one would not have its tables).
      session.begun();
      const run = new Collection(this.backend, client, this.db.tables, report, opts);
      const cancel = await this.cancelOnAbort(client, opts.signal);
      try {
        await run.createTables();
        await run.mark(keep);
        for (const kind of OBJECT_KINDS) await run.sweep(kind);
      } catch (error) {
        throwIfAborted(opts.signal); // a statement cancelled by the abort: report the abort
        throw error;
      } finally {
        // A cancel that was sent may land after the statement it was meant for: never pool that connection.
        if (await cancel.stop()) session.discard(new Error("the collection was cancelled"));
        else await run.dropTables().catch(session.discard);
      }
      return report;
    });
  }

  /**
   * While the collection runs, an abort cancels the statement in flight
   * (pg_cancel_backend from another pooled connection), so a long mark or
   * sweep statement stops at once. stop() resolves to whether a cancel was sent.
   */
  private async cancelOnAbort(
    client: pg.ClientBase,
    signal: AbortSignal | undefined,
  ): Promise<{ stop(): Promise<boolean> }> {
    if (!signal) return { stop: async () => false };
    const { rows } = await client.query<[number]>({ text: "SELECT pg_backend_pid()", rowMode: "array" });
    const pid = rows[0][0];
    let sent: Promise<unknown> | undefined;
    const onAbort = () => {
      sent ??= this.db.pool.query("SELECT pg_cancel_backend($1)", [pid]).catch(() => undefined);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    return {
      stop: async () => {
        signal.removeEventListener("abort", onAbort);
        if (sent === undefined) return false;
        await sent;
        return true;
      },
    };
  }

  /** Closes the pool if this collector opened it. Closing twice is fine. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.ownsDb) await this.db.close();
  }
}

/** One collection's statements, on its connection. */
class Collection {
  /** The cutoff as a statement parameter: `$1` in every statement that uses it. */
  private readonly cutoff: string = cutoffAt("$1");

  constructor(
    private readonly backend: string,
    private readonly client: pg.ClientBase,
    private readonly t: SchemaTables,
    private readonly report: CollectReport,
    private readonly opts: CollectOptions,
  ) {}

  private async run<R extends unknown[] = unknown[]>(text: string, values: unknown[] = []): Promise<R[]> {
    throwIfAborted(this.opts.signal);
    const result = await this.client.query<R>({ text, values, rowMode: "array" });
    return result.rows;
  }

  /** A statement whose only parameter is the cutoff ($1). */
  private withCutoff<R extends unknown[] = unknown[]>(text: string, values: unknown[] = []): Promise<R[]> {
    return this.run<R>(text, [this.report.cutoff, ...values]);
  }

  async createTables(): Promise<void> {
    await this.dropTables();
    await this.run(`CREATE TEMPORARY TABLE ${ROOTS} (digest bytea PRIMARY KEY)`);
    for (const table of Object.values(LIVE))
      await this.run(`CREATE TEMPORARY TABLE ${table} (digest bytea PRIMARY KEY)`);
    await this.run(
      `CREATE TEMPORARY TABLE ${GARBAGE} (ord bigint PRIMARY KEY, digest bytea NOT NULL, size float8 NOT NULL)`,
    );
  }

  async dropTables(): Promise<void> {
    await this.client.query(`DROP TABLE IF EXISTS ${TEMPORARY_TABLES.join(", ")}`);
  }

  async mark(keep: readonly Digest[]): Promise<void> {
    const { t, report } = this;
    // Roots: every ref and `keep` digest (each counted, as core's collector does).
    const [[refs]] = await this.run<[number]>(
      `WITH named AS (
         INSERT INTO ${ROOTS} SELECT digest FROM ${t.refs} UNION SELECT unnest($1::bytea[])
         ON CONFLICT DO NOTHING
       )
       SELECT count(*)::float8 FROM ${t.refs}`,
      [byteaArray(keep.map((d) => d.bytes))],
    );
    report.roots = refs + keep.length;
    const missing = await this.run<[Buffer]>(
      `SELECT r.digest FROM ${ROOTS} r
       WHERE NOT EXISTS (SELECT 1 FROM ${t.directories} d WHERE d.digest = r.digest)
         AND NOT EXISTS (SELECT 1 FROM ${t.blobs} b WHERE b.digest = r.digest)
         AND NOT EXISTS (SELECT 1 FROM ${t.chunks} c WHERE c.digest = r.digest)
       ORDER BY r.digest`,
    );
    report.missingRoots = missing.map(([d]) => Digest.fromBytes(d));

    // Live directories: the closures of the root directories and of every young one, in one recursive query.
    await this.withCutoff(
      `INSERT INTO ${LIVE.directory}
       WITH RECURSIVE walk (digest) AS (
         SELECT d.digest FROM ${t.directories} d
         WHERE d.used_at >= ${this.cutoff} OR d.digest IN (SELECT digest FROM ${ROOTS})
         UNION
         SELECT substring(p.children FROM i * 32 + 1 FOR 32)
         FROM walk w
         CROSS JOIN LATERAL (SELECT d.children FROM ${t.directories} d WHERE d.digest = w.digest OFFSET 0) p
         CROSS JOIN LATERAL generate_series(0, octet_length(p.children) / 32 - 1) AS i
       )
       SELECT digest FROM walk`,
    );
    await this.run(`ANALYZE ${LIVE.directory}`);
    const [unknown] = await this.run<[Buffer]>(
      `SELECT d.digest FROM ${LIVE.directory} l JOIN ${t.directories} d ON d.digest = l.digest
       WHERE d.children IS NULL LIMIT 1`,
    );
    if (unknown) {
      throw new BackendError(
        this.backend,
        `cannot collect garbage: live directory ${unknown[0].toString("hex")} has no children recorded ` +
          `(corrupt when the column was filled, or written by a castore older than layout version 3); ` +
          `castore verify reports it and a repair restores it`,
      );
    }
    await this.marked("directory");

    // Live blobs: every live directory's files, read from its bytes inside the database.
    const [unreadable] = await this.run<[Buffer]>(
      `WITH scanned AS MATERIALIZED (
         SELECT d.digest, s.files
         FROM ${LIVE.directory} l
         JOIN ${t.directories} d ON d.digest = l.digest
         CROSS JOIN LATERAL ${t.directoryScan}(d.bytes) s
       ),
       files AS (
         INSERT INTO ${LIVE.blob} SELECT f.digest FROM scanned CROSS JOIN LATERAL unnest(scanned.files) AS f(digest)
         ON CONFLICT DO NOTHING
       )
       SELECT digest FROM scanned WHERE files IS NULL LIMIT 1`,
    );
    if (unreadable) {
      throw new CorruptionError(
        `${this.backend}: cannot collect garbage: live directory ${unreadable[0].toString("hex")} ` +
          `is not a valid directory, so the blobs it needs cannot be known; castore verify reports it`,
      );
    }
    await this.withCutoff(
      `INSERT INTO ${LIVE.blob}
       SELECT digest FROM ${t.blobs} WHERE used_at >= ${this.cutoff}
       UNION
       SELECT r.digest FROM ${ROOTS} r
       WHERE NOT EXISTS (SELECT 1 FROM ${t.directories} d WHERE d.digest = r.digest)
         AND (EXISTS (SELECT 1 FROM ${t.blobs} b WHERE b.digest = r.digest)
              OR EXISTS (SELECT 1 FROM ${t.chunks} c WHERE c.digest = r.digest))
       ON CONFLICT DO NOTHING`,
    );
    await this.run(`ANALYZE ${LIVE.blob}`);
    await this.marked("blob");

    // Live chunks: a live blob's digest (a blob of one chunk is that chunk), its chunk list, young chunks.
    await this.withCutoff(
      `INSERT INTO ${LIVE.chunk}
       SELECT digest FROM ${LIVE.blob}
       UNION
       SELECT c.chunk FROM ${LIVE.blob} l JOIN ${t.blobChunks} c ON c.blob = l.digest
       UNION
       SELECT digest FROM ${t.chunks} WHERE used_at >= ${this.cutoff}
       ON CONFLICT DO NOTHING`,
    );
    await this.run(`ANALYZE ${LIVE.chunk}`);
    await this.marked("chunk");
  }

  /** Counts the live objects of a kind now marked, and tells onProgress. */
  private async marked(kind: ObjectKind): Promise<void> {
    const [[n]] = await this.run<[number]>(`SELECT count(*)::float8 FROM ${LIVE[kind]}`);
    this.report.live[kind] = n;
    const { directory, blob, chunk } = this.report.live;
    this.opts.onProgress?.({ phase: "mark", done: directory + blob + chunk });
  }

  async sweep(kind: ObjectKind): Promise<void> {
    const { t, report, opts } = this;
    const { table, size } = kindTable(t, kind);
    const notLive = `NOT EXISTS (SELECT 1 FROM ${LIVE[kind]} l WHERE l.digest = o.digest)`;
    // Directories: parents first, by size (spec §1); one whose bytes cannot be read first of all.
    const order =
      kind === "directory"
        ? `(SELECT s.tree_size FROM ${t.directoryScan}(o.bytes) s) DESC NULLS FIRST, o.digest`
        : "o.digest";
    await this.run(`TRUNCATE ${GARBAGE}`);
    const [[total, bytes]] = await this.withCutoff<[number, number]>(
      `WITH numbered AS (
         INSERT INTO ${GARBAGE} (ord, digest, size)
         SELECT row_number() OVER (ORDER BY ${order}), o.digest, ${size}
         FROM ${table} o
         WHERE o.used_at < ${this.cutoff} AND ${notLive}
         RETURNING size
       )
       SELECT count(*)::float8, coalesce(sum(size), 0)::float8 FROM numbered`,
    );
    opts.onProgress?.({ phase: "sweep", kind, done: 0, total });
    if (report.dryRun) {
      report.deleted[kind] += total;
      report.deletedBytes += bytes;
      opts.onProgress?.({ phase: "sweep", kind, done: total, total });
      return;
    }
    let deleted = 0;
    for (let from = 0; from < total; from += DELETE_BATCH) {
      const [[n, gone]] = await this.withCutoff<[number, number]>(
        conditionalDelete(t, kind, `SELECT digest FROM ${GARBAGE} WHERE ord > $2 AND ord <= $3`, "$1", notLive) +
          `SELECT count(*)::float8, coalesce(sum(size), 0)::float8 FROM gone`,
        [from, from + DELETE_BATCH],
      );
      deleted += n;
      report.deleted[kind] += n;
      report.deletedBytes += gone;
      report.spared += Math.min(DELETE_BATCH, total - from) - n;
      opts.onProgress?.({ phase: "sweep", kind, done: deleted, total });
    }
  }
}
