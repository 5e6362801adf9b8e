/**
 * PostgresDirectoryStore: castore's DirectoryStore on PostgreSQL through a
 * `pg` connection pool. Its table, `<schema>.directories`: digest (bytea,
 * the 32 digest bytes, primary key) → bytes (bytea, the canonical protobuf
 * encoding) and children (the digests of its child directories, written in
 * the same row: postgres-children.ts); `<schema>.schema_version` records which
 * layout is in place (opening an older one fills in the children:
 * postgres-children-fill.ts). The store also creates the blob tables of the
 * schema (postgres-schema.ts) and lends its pool to PostgresBlobStore.
 *
 * It stores and fetches bytes: StoreDirectoryService (core) validates
 * uploads, checks closures and re-hashes every read; PostgresDirectoryService
 * walks trees over readClosure, one recursive query per closure.
 *
 * Statements per call: getMany is one query (`digest = ANY($1::bytea[])`, a
 * binary array); readClosure one COPY (postgres-closure-read.ts); a small
 * upload (≤ 256 KiB) is one INSERT … unnest … ON CONFLICT DO NOTHING; a
 * larger one is one query for the digests already stored and one binary
 * COPY of the rest (if another upload races it to the same rows: BEGIN, COPY
 * into a temporary table, INSERT … SELECT … ON CONFLICT DO NOTHING, COMMIT).
 * Every close-time upload writes in digest order, so concurrent overlapping
 * uploads wait for each other instead of deadlocking.
 *
 * A large upload streams instead (openUpload, PostgresUpload): its rows go
 * into one COPY inside a transaction while core is still checking the rest,
 * and fall back to the close-time path above if that goes wrong.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortError,
  BackendError,
  Digest,
  digestOfBinaryKey,
  isCastoreError,
  reportInvalidKey,
  type ClosureEntry,
  type DirectoryStore,
  type OnInvalidKey,
  type ClosureSink,
} from "@castore-ts/core";
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { ClosureRowParser, closureCopyStatement, packRowBytes, type ClosureRow } from "./postgres-closure-read.js";
import { describeError, isConnectionFailure, isRetryableConflict, sqlState } from "./postgres-errors.js";
import {
  CHILDREN_COLUMN_VERSION,
  CHILDREN_FILLED_VERSION,
  ident,
  childrenFillStatements,
  migrations,
  SCHEMA_VERSION,
  schemaTables,
  type SchemaTables,
} from "./postgres-schema.js";
import { fillChildren } from "./postgres-children-fill.js";
import { checkSchemaName, type PostgresStoreOptions } from "./postgres-url.js";
import { StreamingCopy } from "./postgres-streaming-copy.js";
import { PostgresUpload, type UploadHost } from "./postgres-upload.js";
import { binaryCopyChunks, byteaArray } from "./postgres-wire.js";
import { childrenColumn, entryBytes } from "./postgres-children.js";
import { touchStatement } from "./postgres-touch.js";

export { SCHEMA_VERSION };

export const DEFAULT_SCHEMA = "castore";
export const DEFAULT_POOL_MAX = 10;
export const DEFAULT_BATCH_SIZE = 32768;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 30_000;

/** Digests per page when listing; each page is its own short query (keyset pagination). */
const LIST_PAGE = 4096;
/** Uploads up to this many canonical bytes go in one INSERT … unnest statement: one round trip, atomic on its own. */
const SINGLE_STATEMENT_BYTES = 256 * 1024;
/** Attempts of an operation whose connection broke (each on a fresh connection). */
const CONNECTION_ATTEMPTS = 3;
/** Attempts of an upload that lost a deadlock (cannot happen with sorted inserts; a safety net). */
const CONFLICT_ATTEMPTS = 5;
/** Name of the per-connection temporary table that COPY fills. */
const UPLOAD_TABLE = "castore_upload";

/**
 * How uploads reach the table (exposed for the benchmark and tests):
 * - "copy": look up which digests are present, binary-COPY the rest straight in;
 * - "merge": binary-COPY into a temporary table, then INSERT … SELECT … ON CONFLICT DO NOTHING;
 * - "unnest": INSERT … SELECT unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING, in chunks;
 * - "stream": every upload streams its rows into one COPY while it is open (PostgresUpload),
 *   whatever its size, falling back to "auto" at close when streaming fails or no slot is free;
 * - "auto" (default): streams uploads past 256 KiB; at close, "unnest" as one statement up
 *   to 256 KiB, else "copy".
 * "copy", "merge" and "unnest" never stream: the whole upload is stored at close.
 */
export type UploadMethod = "auto" | "copy" | "merge" | "unnest" | "stream";

export interface PostgresStoreConfig extends PostgresStoreOptions {
  /** For the benchmark and tests: force one way of uploading. Default "auto". */
  uploadMethod?: UploadMethod;
  /**
   * A streaming upload whose client sends nothing for this long gives its
   * connection back and is stored at close instead. Default 30 s.
   */
  streamIdleTimeoutMs?: number;
  /**
   * Where one-time progress lines go: the fill of the children column when the
   * store opens a database written by an older castore. Default: standard error.
   */
  log?: (line: string) => void;
  /** For tests: directories per transaction of the children fill (default 5000). */
  childrenFillBatch?: number;
}

/**
 * Settings of castore's own connections (sent at connection start-up, no
 * round trip). Every statement castore runs looks rows up by primary key:
 * - the closure query's row estimates are blind (a recursive query), which
 *   made the planner JIT-compile it for about 100 ms per read and pick bitmap
 *   scans whose per-lookup setup made it about 40 % slower (measured);
 *   getMany and the blob lookups lose nothing by it either.
 */
const SESSION_SETTINGS = "-c jit=off -c enable_bitmapscan=off";

/** Progress lines of the store (the children fill), by default on standard error. */
function logToStderr(line: string): void {
  process.stderr.write(`castore: ${line}\n`);
}

/** What withClient's callback may tell it about the connection. */
interface Session {
  /** The connection is in an unknown state (e.g. ROLLBACK failed): destroy it instead of pooling it. */
  discard(why: unknown): void;
  /** Work has started (a transaction is open): if the connection breaks now, fail instead of retrying. */
  begun(): void;
}

/** Bytewise digest order (lowercase hex sorts the same; comparing strings is much faster than Buffer.compare calls). */
function compareDigests(a: ClosureEntry, b: ClosureEntry): number {
  return a.digest.hex < b.digest.hex ? -1 : a.digest.hex > b.digest.hex ? 1 : 0;
}

/** A plain Uint8Array view of a Buffer (no copy), so decoded names are plain Uint8Arrays as from every other backend. */
function plainBytes(bytes: Buffer): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Where the server is, for messages: never the password. */
export interface PostgresEndpoint {
  host: string;
  port: number;
  database: string;
  user: string;
}

export class PostgresDirectoryStore implements DirectoryStore {
  /** e.g. `postgres://127.0.0.1:5432/castore?schema=castore` (no user, no password). */
  readonly backend: string;
  readonly endpoint: PostgresEndpoint;
  readonly schema: string;
  /** Digests per query where getRecursive reads level by level (children unknown, a broken stream). */
  readonly batchSize: number;
  /** The connection pool. Exposed for tests (e.g. counting queries through its "connect" event). */
  readonly pool: pg.Pool;
  /** The last error an idle pooled connection reported (it was dropped from the pool; the next call reconnects). */
  lastIdleError: Error | undefined;

  /** The quoted directories table. */
  readonly table: string;
  /** Every table of the schema, quoted (the blob store of this package uses the blob ones). */
  readonly tables: SchemaTables;
  private readonly versionTable: string;
  private readonly uploadMethod: UploadMethod;
  private readonly streamIdleTimeoutMs: number;
  private readonly log: (line: string) => void;
  private readonly childrenFillBatch: number | undefined;
  /**
   * Streaming uploads holding a connection. At most half the pool: they are
   * paced by their clients, so reads and close-time uploads must not starve
   * behind them.
   */
  private readonly streams = new Set<StreamingCopy>();
  /** How many uploads may stream at once. */
  readonly maxStreams: number;
  /** Connections that already have the temporary upload table. */
  private readonly withUploadTable = new WeakSet<pg.ClientBase>();
  private ready: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(connectionString: string, config: PostgresStoreConfig = {}) {
    this.schema = checkSchemaName(config.schema ?? DEFAULT_SCHEMA);
    this.batchSize = config.batchSize ?? DEFAULT_BATCH_SIZE;
    this.uploadMethod = config.uploadMethod ?? "auto";
    this.streamIdleTimeoutMs = config.streamIdleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS;
    this.log = config.log ?? logToStderr;
    this.childrenFillBatch = config.childrenFillBatch;
    this.maxStreams = Math.floor((config.poolMax ?? DEFAULT_POOL_MAX) / 2);
    this.tables = schemaTables(this.schema);
    this.table = this.tables.directories;
    this.versionTable = this.tables.version;

    // pg resolves the connection string (and PG* environment defaults) the same way for the pool.
    const probe = new pg.Client({ connectionString });
    this.endpoint = {
      host: probe.host ?? "localhost",
      port: probe.port ?? 5432,
      database: probe.database ?? probe.user ?? "",
      user: probe.user ?? "",
    };
    const { host, port, database } = this.endpoint;
    const hostPart = host.startsWith("/") ? encodeURIComponent(host) : host.includes(":") ? `[${host}]` : host;
    this.backend = `postgres://${hostPart}:${port}/${encodeURIComponent(database)}?schema=${this.schema}`;

    // pg-pool uses connectionTimeoutMillis both for opening a connection and for waiting
    // for a free one. Only the first is a failure to reach the server: under load, waiting
    // for a pooled connection is normal. So the timeout goes to the clients alone.
    const connectTimeoutMs = config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    class TimedClient extends pg.Client {
      constructor(clientConfig?: pg.ClientConfig) {
        super({ ...clientConfig, connectionTimeoutMillis: connectTimeoutMs });
        // castore's settings go after the user's own `options` (from the URL or PGOPTIONS), whichever way pg read them.
        const parameters = (this as unknown as { connectionParameters: { options?: string } }).connectionParameters;
        parameters.options = [parameters.options, SESSION_SETTINGS].filter(Boolean).join(" ");
        // Never without an "error" listener: between pg-pool handing a fresh client out
        // and withClient attaching its own, a FATAL from the server (pg_terminate_backend)
        // arriving in the same read as the handshake would otherwise crash the process.
        // The error still fails the client's next query, which withClient then retries.
        this.on("error", () => {});
      }
    }
    this.pool = new pg.Pool({
      Client: TimedClient,
      connectionString,
      max: config.poolMax ?? DEFAULT_POOL_MAX,
      connectionTimeoutMillis: 0,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: "castore",
    });
    // An idle connection that breaks (server restart, pg_terminate_backend, network) is
    // dropped by the pool, which then emits "error": without a listener that would crash
    // the process. Nothing to do but remember it: the next call opens a fresh connection.
    this.pool.on("error", (error) => {
      this.lastIdleError = error;
    });
  }

  private where(): string {
    const { host, port, database, user } = this.endpoint;
    return `PostgreSQL at ${host}:${port}, database "${database}"${user ? `, user "${user}"` : ""}`;
  }

  private checkOpen(): void {
    if (this.closed) throw new BackendError(this.backend, "store is closed");
  }

  /** An engine failure as a BackendError that says where and what; castore's own errors pass through. */
  private fail(what: string, error: unknown): Error {
    if (isCastoreError(error)) return error;
    if (isConnectionFailure(error)) {
      return new BackendError(this.backend, `${what}: connection to ${this.where()} failed: ${describeError(error)}`, {
        cause: error,
        unavailable: true,
      });
    }
    return new BackendError(this.backend, `${what}: ${describeError(error)}`, { cause: error });
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      if (this.closed) throw new BackendError(this.backend, "store is closed", { cause: error });
      // Refused, unreachable, timed out, wrong password, no such database or role, not allowed by
      // pg_hba.conf: all mean the store cannot be used, so all are "unavailable".
      throw new BackendError(this.backend, `cannot connect to ${this.where()}: ${describeError(error)}`, {
        cause: error,
        unavailable: true,
      });
    }
  }

  /**
   * Runs `fn` on a pooled connection. A connection that broke, or that was left
   * in an unknown state (`session.discard()`), is destroyed rather than returned
   * to the pool. When the connection turns out to be dead before `fn` got
   * anything done on it (a pooled connection the server dropped, e.g. across a
   * restart), `fn` runs again on a fresh one: every operation here is
   * idempotent. Once `fn` calls `session.begun()` (a transaction is open), a
   * broken connection fails the operation instead. An upload that lost a
   * deadlock is retried.
   *
   * Not private: PostgresBlobStore (this package) runs its queries through
   * the same pool and rules. Not for use outside the package.
   */
  async withClient<T>(
    what: string,
    signal: AbortSignal | undefined,
    fn: (client: pg.PoolClient, session: Session) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.checkOpen();
      if (signal?.aborted) throw new AbortError(`${what} aborted`, { cause: signal.reason });
      const client = await this.connect();
      let broken: unknown;
      let begun = false;
      // While checked out a client has no pool listener: an "error" event then would crash the process.
      const onError = (error: Error) => {
        broken ??= error;
      };
      client.on("error", onError);
      let failure: unknown;
      try {
        return await fn(client, {
          discard: (why) => {
            broken ??= why;
          },
          begun: () => {
            begun = true;
          },
        });
      } catch (error) {
        failure = error;
        if (isConnectionFailure(error)) broken ??= error;
      } finally {
        client.off("error", onError);
        client.release(broken === undefined ? undefined : broken instanceof Error ? broken : new Error(String(broken)));
      }
      const retry =
        !(failure instanceof AbortError) &&
        !signal?.aborted &&
        !this.closed &&
        ((isConnectionFailure(failure) && !begun && attempt < CONNECTION_ATTEMPTS) ||
          (isRetryableConflict(failure) && attempt < CONFLICT_ATTEMPTS));
      if (!retry) throw this.fail(what, failure);
    }
  }

  /**
   * Creates the schema and tables if needed (idempotent, safe when several
   * processes start at once: the DDL runs under a transaction-scoped advisory
   * lock) and checks the recorded layout version. Runs once per store; every
   * operation awaits it. Call it to surface connection problems early.
   */
  init(): Promise<void> {
    this.checkOpen();
    this.ready ??= this.ensureSchema().catch((error) => {
      this.ready = undefined; // try again on the next call
      throw error;
    });
    return this.ready;
  }

  /** The recorded layout version (0 when none); a newer one than this code knows is an error. */
  private checkVersion(version: number | null): number {
    if (version !== null && version > SCHEMA_VERSION) {
      throw new BackendError(
        this.backend,
        `schema "${this.schema}" has table layout version ${version}, newer than this castore understands (${SCHEMA_VERSION}); upgrade castore`,
      );
    }
    return version ?? 0;
  }

  private async ensureSchema(): Promise<void> {
    const recorded = await this.withClient("creating the schema", undefined, async (client, session) => {
      // Fast path, no DDL and no privileges needed: the layout is already in place.
      try {
        const { rows } = await client.query<{ version: number | null }>(
          `SELECT max(version) AS version FROM ${this.versionTable}`,
        );
        const version = this.checkVersion(rows[0]?.version ?? null);
        if (version === SCHEMA_VERSION) return version;
      } catch (error) {
        const state = sqlState(error);
        if (state !== "42P01" && state !== "3F000") throw error; // not "no such table / schema"
      }
      await client.query("BEGIN");
      session.begun();
      try {
        // One migrator at a time per database and schema name (hashtextextended: PostgreSQL ≥ 11).
        await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`castore:schema:${this.schema}`]);
        const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [this.schema]);
        // Only CREATE SCHEMA when absent: it needs CREATE on the database even with IF NOT EXISTS.
        if (exists.rowCount === 0) await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(this.schema)}`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${this.versionTable} (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
           )`,
        );
        const { rows } = await client.query<{ version: number | null }>(
          `SELECT max(version) AS version FROM ${this.versionTable}`,
        );
        const current = this.checkVersion(rows[0]?.version ?? null);
        // A new schema has no rows without children: it is complete at once. An older one gets the
        // column now (from here on every upload writes it) and is filled below; it gets every later
        // step's DDL now too, and records SCHEMA_VERSION once the fill is done.
        const fillPending = current !== 0 && current < CHILDREN_FILLED_VERSION;
        const target = fillPending ? Math.max(current, CHILDREN_COLUMN_VERSION) : SCHEMA_VERSION;
        if (current < SCHEMA_VERSION) {
          for (const step of migrations(this.tables)) {
            if (step.version <= current) continue;
            for (const statement of step.statements) await client.query(statement);
          }
          if (fillPending) for (const statement of childrenFillStatements(this.tables)) await client.query(statement);
          if (target > current)
            await client.query(`INSERT INTO ${this.versionTable} (version) VALUES ($1) ON CONFLICT DO NOTHING`, [
              target,
            ]);
        }
        await client.query("COMMIT");
        return target;
      } catch (error) {
        await client.query("ROLLBACK").catch(session.discard);
        throw error;
      }
    });
    if (recorded < SCHEMA_VERSION) {
      await fillChildren(
        {
          schema: this.schema,
          tables: this.tables,
          withClient: (what, signal, fn) => this.withClient(what, signal, fn),
          log: this.log,
        },
        this.childrenFillBatch,
      );
      // The later steps' DDL went in with the children column: only their version is left to record.
      await this.withClient("recording the layout version", undefined, (client) =>
        client.query(`INSERT INTO ${this.versionTable} (version) VALUES ($1) ON CONFLICT DO NOTHING`, [SCHEMA_VERSION]),
      );
    }
  }

  async getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    if (digests.length === 0) return [];
    await this.init();
    const keys = byteaArray(digests.map((d) => d.bytes));
    const rows = await this.withClient("reading directories", signal, async (client) => {
      const result = await client.query<[Buffer, Buffer]>({
        text: `SELECT digest, bytes FROM ${this.table} WHERE digest = ANY($1::bytea[])`,
        values: [keys],
        rowMode: "array",
      });
      return result.rows;
    });
    const found = new Map<string, Uint8Array>();
    for (const [digest, bytes] of rows) found.set(digest.toString("hex"), plainBytes(bytes));
    return digests.map((d) => found.get(d.hex));
  }

  /**
   * The closure of `root` as stored rows, breadth first, each directory once
   * (see postgres-closure-read.ts): one statement, streamed, in batches (the
   * rows each chunk of the stream completed: no await per row). Nothing when the root is absent. A pooled
   * connection found dead before any row arrived is replaced (up to 3
   * attempts); a connection that breaks later fails the read (BackendError,
   * `unavailable`). A read not consumed to its end closes its connection
   * (it is in the middle of a COPY).
   */
  async *readClosure(root: Digest, signal?: AbortSignal): AsyncGenerator<ClosureRow[], void, undefined> {
    await this.init();
    const what = `reading the closure of ${root}`;
    for (let attempt = 1; ; attempt++) {
      this.checkOpen();
      if (signal?.aborted) throw new AbortError(`${what} aborted`, { cause: signal.reason });
      const client = await this.connect();
      let broken: unknown;
      let complete = false;
      let received = false;
      // While checked out a client has no pool listener: an "error" event then would crash the process.
      const onError = (error: Error) => {
        broken ??= error;
      };
      client.on("error", onError);
      const stream = client.query(copyTo(closureCopyStatement(this.tables, root)));
      const onAbort = () => stream.destroy(new AbortError(`${what} aborted`, { cause: signal?.reason }));
      signal?.addEventListener("abort", onAbort);
      try {
        const parser = new ClosureRowParser();
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          received = true;
          const rows = parser.push(chunk);
          if (rows.length > 0) yield packRowBytes(rows);
        }
        parser.end();
        complete = true;
        return;
      } catch (error) {
        broken ??= error;
        if (signal?.aborted) throw new AbortError(`${what} aborted`, { cause: signal.reason });
        const retry = isConnectionFailure(error) && !received && attempt < CONNECTION_ATTEMPTS && !this.closed;
        if (!retry) throw this.fail(what, error);
      } finally {
        signal?.removeEventListener("abort", onAbort);
        client.off("error", onError);
        // Cut short (the consumer stopped, a failure): the connection is inside a COPY. Close it.
        client.release(
          complete && broken === undefined
            ? undefined
            : broken instanceof Error
              ? broken
              : new Error(broken === undefined ? "closure read stopped early" : String(broken)),
        );
      }
    }
  }

  async putClosure(entries: ClosureEntry[], signal?: AbortSignal): Promise<void> {
    if (entries.length === 0) return;
    await this.init();
    let total = 0;
    for (const e of entries) total += e.bytes.length;
    const method =
      this.uploadMethod === "auto" || this.uploadMethod === "stream"
        ? total <= SINGLE_STATEMENT_BYTES
          ? "unnest"
          : "copy"
        : this.uploadMethod;
    // Every upload writes in digest order: two uploads that share directories then
    // wait for each other in the same order and cannot deadlock. "copy" has the
    // server sort (much faster than sorting here); the others sort here.
    const sorted = method === "copy" ? entries : [...entries].sort(compareDigests);
    await this.withClient("storing an upload", signal, async (client, session) => {
      switch (method) {
        case "unnest":
          if (total <= SINGLE_STATEMENT_BYTES) {
            // One statement is one transaction: all rows or none, one round trip.
            session.begun();
            await this.insertUnnest(client, sorted);
          } else {
            await this.inTransaction(client, session, signal, () => this.insertUnnestChunked(client, sorted, signal));
          }
          return;
        case "merge":
          await this.inTransaction(client, session, signal, () => this.mergeCopy(client, sorted, signal));
          return;
        case "copy":
          await this.copyMissing(client, session, sorted, signal);
          return;
      }
    });
  }

  /** Runs `body` between BEGIN and COMMIT; on any failure ROLLBACK (or discard the connection if that fails too). */
  private async inTransaction(
    client: pg.ClientBase,
    session: Session,
    signal: AbortSignal | undefined,
    body: () => Promise<void>,
  ): Promise<void> {
    await client.query("BEGIN");
    session.begun();
    try {
      await body();
      if (signal?.aborted) throw new AbortError("upload aborted", { cause: signal.reason });
      await client.query("COMMIT");
    } catch (error) {
      // A temporary table created in this transaction is gone with it.
      this.withUploadTable.delete(client);
      await client.query("ROLLBACK").catch(session.discard);
      throw error;
    }
  }

  /**
   * Overwrites the bytes of stored digests (core checked each entry): one
   * UPDATE, so all or none; rows in digest order like every upload (no
   * deadlock with one). A digest not stored stays absent (UPDATE adds no row).
   */
  async repair(entries: ClosureEntry[], signal?: AbortSignal): Promise<Digest[]> {
    if (entries.length === 0) return [];
    await this.init();
    const sorted = [...entries].sort(compareDigests);
    const rows = await this.withClient("repairing directories", signal, async (client, session) => {
      session.begun();
      // The children are written too: a row that was damaged when the column was filled got none.
      const result = await client.query<[Buffer]>({
        text: `UPDATE ${this.table} AS t SET bytes = u.bytes, children = u.children
               FROM unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS u(digest, bytes, children)
               WHERE t.digest = u.digest
               RETURNING t.digest`,
        values: [
          byteaArray(sorted.map((e) => e.digest.bytes)),
          byteaArray(sorted.map((e) => e.bytes)),
          byteaArray(sorted.map((e) => childrenColumn(entryBytes(e)))),
        ],
        rowMode: "array",
      });
      return result.rows;
    });
    return rows.map(([digest]) => Digest.fromBytes(digest));
  }

  private insertUnnest(client: pg.ClientBase, entries: ClosureEntry[]): Promise<unknown> {
    return client.query(
      `INSERT INTO ${this.table} (digest, bytes, children)
       SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])
       ON CONFLICT (digest) DO UPDATE SET used_at = clock_timestamp()`,
      [
        byteaArray(entries.map((e) => e.digest.bytes)),
        byteaArray(entries.map((e) => e.bytes)),
        byteaArray(entries.map((e) => childrenColumn(entryBytes(e)))),
      ],
    );
  }

  /** Multi-row INSERT … unnest in statements of about 4 MiB, inside the caller's transaction. */
  private async insertUnnestChunked(
    client: pg.ClientBase,
    entries: ClosureEntry[],
    signal?: AbortSignal,
  ): Promise<void> {
    const limit = 4 * 1024 * 1024;
    for (let start = 0; start < entries.length;) {
      let end = start;
      let bytes = 0;
      while (end < entries.length && (end === start || bytes + entries[end].bytes.length <= limit))
        bytes += entries[end++].bytes.length;
      if (signal?.aborted) throw new AbortError("upload aborted", { cause: signal.reason });
      await this.insertUnnest(client, entries.slice(start, end));
      start = end;
    }
  }

  /**
   * The default for large uploads, in one transaction: ask the server which
   * entries are missing, in digest order (one query: their positions, as one
   * comma-separated text), binary-COPY only those rows straight into the
   * table, then mark the entries that were already stored as used now (the
   * touch of spec §10.2: every entry of an upload, stored or not, at its
   * commit). The touch is the last statement before COMMIT, so the rows it
   * locks (against a garbage collection, which skips locked rows) are held
   * only briefly; one that a collection deleted since the first query is
   * stored again from the upload's own bytes. If another upload stores some
   * of the same directories meanwhile, the COPY fails on the primary key
   * (after waiting for that upload to commit); the whole upload then goes
   * through mergeCopy, which stores and touches in one statement.
   */
  private async copyMissing(
    client: pg.PoolClient,
    session: Session,
    entries: ClosureEntry[],
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      await this.inTransaction(client, session, signal, async () => {
        const { rows } = await client.query<[string | null]>({
          text: `SELECT string_agg(u.i::text, ',' ORDER BY u.digest)
                 FROM unnest($1::bytea[]) WITH ORDINALITY AS u(digest, i)
                 WHERE NOT EXISTS (SELECT 1 FROM ${this.table} d WHERE d.digest = u.digest)`,
          values: [byteaArray(entries.map((e) => e.digest.bytes))],
          rowMode: "array",
        });
        // In digest order, like every upload's writes (see putClosure).
        const positions = rows[0]?.[0]?.split(",").map((i) => Number(i) - 1) ?? [];
        const missing = positions.map((i) => entries[i]);
        const isMissing = new Uint8Array(entries.length);
        for (const i of positions) isMissing[i] = 1;
        if (missing.length > 0) {
          if (signal?.aborted) throw new AbortError("upload aborted", { cause: signal.reason });
          await this.copyRows(client, this.table, missing, signal);
        }
        const stored = entries.filter((_, i) => isMissing[i] === 0).sort(compareDigests);
        if (stored.length > 0) await this.touchStored(client, stored, signal);
      });
    } catch (error) {
      if (sqlState(error) !== "23505") throw error; // unique_violation: a concurrent upload won the race
      const sorted = [...entries].sort(compareDigests); // see putClosure: no deadlock with another upload
      await this.inTransaction(client, session, signal, () => this.mergeCopy(client, sorted, signal));
    }
  }

  /**
   * Marks stored entries of an upload as used now, inside the caller's
   * transaction; any that is gone (a garbage collection deleted it since the
   * upload looked) is stored again.
   */
  private async touchStored(client: pg.ClientBase, entries: ClosureEntry[], signal?: AbortSignal): Promise<void> {
    const { rows } = await client.query<[Buffer]>({
      text: touchStatement(this.table),
      values: [byteaArray(entries.map((e) => e.digest.bytes))],
      rowMode: "array",
    });
    if (rows.length === entries.length) return;
    const touched = new Set(rows.map(([d]) => d.toString("hex")));
    await this.insertUnnestChunked(
      client,
      entries.filter((e) => !touched.has(e.digest.hex)),
      signal,
    );
  }

  /** Binary COPY of (digest, bytes, children) rows, in the given order, into `table`. */
  private async copyRows(
    client: pg.ClientBase,
    table: string,
    entries: ClosureEntry[],
    signal?: AbortSignal,
  ): Promise<void> {
    const copy = client.query(copyFrom(`COPY ${table} (digest, bytes, children) FROM STDIN (FORMAT binary)`));
    await pipeline(
      Readable.from(binaryCopyChunks(entries, { header: true, trailer: true, signal }), { objectMode: false }),
      copy,
    );
  }

  /**
   * Binary COPY into a per-connection temporary table (emptied at every commit),
   * then one INSERT … SELECT … ON CONFLICT DO NOTHING into the real table, inside
   * the caller's transaction.
   */
  private async mergeCopy(client: pg.ClientBase, entries: ClosureEntry[], signal?: AbortSignal): Promise<void> {
    // CREATE … IF NOT EXISTS only once per connection (a rolled-back transaction may undo it: then again).
    if (!this.withUploadTable.has(client)) {
      await client.query(
        `CREATE TEMPORARY TABLE IF NOT EXISTS ${UPLOAD_TABLE} (digest bytea NOT NULL, bytes bytea NOT NULL, children bytea NOT NULL) ON COMMIT DELETE ROWS`,
      );
    }
    await this.copyRows(client, UPLOAD_TABLE, entries, signal);
    if (signal?.aborted) throw new AbortError("upload aborted", { cause: signal.reason });
    // The temporary table is read back in the order COPY wrote it (digest order): see putClosure.
    await client.query(
      `INSERT INTO ${this.table} (digest, bytes, children) SELECT digest, bytes, children FROM ${UPLOAD_TABLE}
       ON CONFLICT (digest) DO UPDATE SET used_at = clock_timestamp()`,
    );
    this.withUploadTable.add(client);
  }

  /**
   * An upload that streams once it is past 256 KiB ("auto") or at once
   * ("stream"), if a streaming slot is free; see PostgresUpload.
   */
  openUpload(signal?: AbortSignal): ClosureSink {
    const stream = this.uploadMethod === "auto" || this.uploadMethod === "stream";
    return new PostgresUpload(
      this.uploadHost,
      {
        stream,
        streamAfterBytes: this.uploadMethod === "stream" ? 0 : SINGLE_STATEMENT_BYTES,
        idleTimeoutMs: this.streamIdleTimeoutMs,
      },
      signal,
    );
  }

  private readonly uploadHost: UploadHost = {
    openStream: (onIdleFailure) => {
      if (this.closed || this.streams.size >= this.maxStreams) return undefined;
      const copy = new StreamingCopy(
        {
          table: this.table,
          connect: () => this.connect(),
          streamEnded: (ended) => this.streams.delete(ended),
        },
        onIdleFailure,
      );
      this.streams.add(copy);
      return copy;
    },
    init: () => this.init(),
    putClosure: (entries, signal) => this.putClosure(entries, signal),
  };

  /** Streaming uploads holding a connection now (for tests). */
  get openStreams(): number {
    return this.streams.size;
  }

  async *listDigests(signal?: AbortSignal, onInvalidKey?: OnInvalidKey): AsyncGenerator<Digest> {
    await this.init();
    let after: Buffer | undefined;
    for (;;) {
      // Keyset pagination: each page is one short query, so a slow consumer holds no
      // connection, transaction or cursor open.
      const page = await this.withClient("listing digests", signal, async (client) => {
        const result = await client.query<[Buffer]>({
          text:
            after === undefined
              ? `SELECT digest FROM ${this.table} ORDER BY digest LIMIT $1`
              : `SELECT digest FROM ${this.table} WHERE digest > $2 ORDER BY digest LIMIT $1`,
          values: after === undefined ? [LIST_PAGE] : [LIST_PAGE, after],
          rowMode: "array",
        });
        return result.rows;
      });
      // The table's CHECK keeps keys 32 bytes; a schema changed by hand is reported like any store's bad key.
      for (const [key] of page) {
        const digest = digestOfBinaryKey(key);
        if (digest instanceof Digest) yield digest;
        else reportInvalidKey(this.backend, digest, onInvalidKey);
      }
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1][0];
    }
  }

  /** Rolls back streaming uploads, then closes the pool (waiting for checked-out connections). Closing twice is fine. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = Promise.all([...this.streams].map((copy) => copy.cancel())).then(() => this.pool.end());
    }
    return this.closing;
  }
}
