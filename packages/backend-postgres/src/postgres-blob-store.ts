/**
 * PostgresBlobStore: castore's BlobStore in the same schema as the directory
 * store of a `postgres:` URL (the tables are created by its migrations, see
 * postgres-schema.ts):
 * - `chunks` (digest bytea primary key, data bytea): one row per chunk;
 * - `blobs` (digest bytea primary key, size, chunk_count): one row per blob,
 *   the row that makes it visible;
 * - `blob_chunks` (blob, idx) → (chunk, size): the blob's chunk list, one
 *   small row per chunk, so no row grows with the blob.
 *
 * Round trips: putChunk, getChunk, chunkSize, putManifest, getManifest and
 * has are one statement each (plus one query on the first call of a store,
 * which checks the schema). It only stores and fetches bytes:
 * ChunkedBlobService (core) chunks, hashes, verifies every read and decides
 * when a blob becomes visible.
 */
import {
  BackendError,
  CorruptionError,
  Digest,
  type BlobStore,
  type CallOptions,
  type ChunkMeta,
  hexOf,
} from "@castore-ts/core";
import { to as copyTo } from "pg-copy-streams";
import { PostgresDirectoryStore, type PostgresStoreConfig } from "./postgres-store.js";
import { touchBlobsStatement } from "./postgres-touch.js";
import { parsePostgresUrl } from "./postgres-url.js";
import { byteaArray, singleFieldOfBinaryCopy } from "./postgres-wire.js";

/** A Buffer view of bytes (no copy): pg sends Buffer parameters as binary. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class PostgresBlobStore implements BlobStore {
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

  /**
   * Opens the blob store a `postgres:` or `postgresql:` URL names, with a
   * pool of its own. No connection is made yet. Options given here win over
   * the URL's.
   */
  static open(url: URL | string, config: PostgresStoreConfig = {}): PostgresBlobStore {
    const { connectionString, options } = parsePostgresUrl(url);
    const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    return new PostgresBlobStore(new PostgresDirectoryStore(connectionString, { ...options, ...defined }), true);
  }

  /** A blob store on the pool and schema of an open directory store; closing it leaves that store open. */
  static sharing(db: PostgresDirectoryStore): PostgresBlobStore {
    return new PostgresBlobStore(db, false);
  }

  private async ready(): Promise<void> {
    if (this.closed) throw new BackendError(this.backend, "store is closed");
    await this.db.init();
  }

  /**
   * One INSERT; a chunk already stored keeps its bytes and is marked used now
   * (spec §10.2: an upload relies on it), and a concurrent writer of the same
   * chunk waits, then does the same.
   */
  async putChunk(digest: Digest, bytes: Uint8Array, opts?: CallOptions): Promise<void> {
    await this.ready();
    await this.db.withClient("storing a chunk", opts?.signal, (client) =>
      client.query(
        `INSERT INTO ${this.db.tables.chunks} (digest, data) VALUES ($1, $2)
         ON CONFLICT (digest) DO UPDATE SET used_at = clock_timestamp()`,
        [asBuffer(digest.bytes), asBuffer(bytes)],
      ),
    );
  }

  /**
   * One statement: a binary `COPY (SELECT data …) TO STDOUT`, so the bytes
   * travel raw. (A plain SELECT returns bytea as hex text, twice the size and
   * measured 3 to 7 times slower for 512 KiB chunks; pg's per-query `binary`
   * result format cannot be used for bytea, pg-protocol decodes every field
   * as UTF-8 text first.) COPY takes no parameters: the digest goes in as hex
   * digits made here from the digest's 32 bytes (hexOf), which is all they can be.
   */
  async getChunk(digest: Digest, opts?: CallOptions): Promise<Uint8Array | undefined> {
    await this.ready();
    const output = await this.db.withClient("reading a chunk", opts?.signal, async (client) => {
      const copy = client.query(
        copyTo(
          `COPY (SELECT data FROM ${this.db.tables.chunks} WHERE digest = decode('${hexOf(digest.bytes)}', 'hex')) ` +
            `TO STDOUT (FORMAT binary)`,
        ),
      );
      const parts: Buffer[] = [];
      for await (const part of copy) parts.push(part as Buffer);
      return Buffer.concat(parts);
    });
    const data = singleFieldOfBinaryCopy(output);
    return data && new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }

  /** One SELECT of octet_length, which PostgreSQL answers from the stored value's header without reading it. */
  async chunkSize(digest: Digest, opts?: CallOptions): Promise<number | undefined> {
    await this.ready();
    const rows = await this.db.withClient("reading a chunk's size", opts?.signal, async (client) => {
      const result = await client.query<[number]>({
        text: `SELECT octet_length(data) FROM ${this.db.tables.chunks} WHERE digest = $1`,
        values: [asBuffer(digest.bytes)],
        rowMode: "array",
      });
      return result.rows;
    });
    return rows[0]?.[0];
  }

  /**
   * One statement, so one transaction: the blob's row and all its chunk rows
   * appear together. When the blob is already stored (or a concurrent writer
   * of it commits first) only its row is marked used now (spec §10.2): the
   * first list stays, never a mix of two.
   */
  async putManifest(digest: Digest, chunks: readonly ChunkMeta[], opts?: CallOptions): Promise<void> {
    await this.ready();
    let size = 0;
    for (const [i, chunk] of chunks.entries()) {
      if (!Number.isInteger(chunk.size) || chunk.size < 0 || chunk.size > 0x7fffffff) {
        throw new RangeError(`chunk ${i} of the manifest has size ${chunk.size}, not a PostgreSQL integer`);
      }
      size += chunk.size;
    }
    const t = this.db.tables;
    await this.db.withClient("storing a blob manifest", opts?.signal, (client) =>
      client.query(
        `WITH head AS (
           INSERT INTO ${t.blobs} (digest, size, chunk_count) VALUES ($1, $2, $3)
           ON CONFLICT (digest) DO UPDATE SET used_at = clock_timestamp()
           -- xmax is 0 on a row this statement inserted, not on one it updated.
           RETURNING digest, xmax = 0 AS inserted
         )
         INSERT INTO ${t.blobChunks} (blob, idx, chunk, size)
         SELECT head.digest, u.idx - 1, u.chunk, u.size
         FROM head, unnest($4::bytea[], $5::integer[]) WITH ORDINALITY AS u(chunk, size, idx)
         WHERE head.inserted`,
        [
          asBuffer(digest.bytes),
          String(size),
          chunks.length,
          byteaArray(chunks.map((c) => c.digest.bytes)),
          chunks.map((c) => c.size),
        ],
      ),
    );
  }

  /**
   * One SELECT: the blob's row joined with its chunk rows in order. A list
   * that does not match the blob's row (rows missing, or sizes that do not
   * add up) is CorruptionError: it can only come from edits behind castore's back.
   */
  async getManifest(digest: Digest, opts?: CallOptions): Promise<readonly ChunkMeta[] | undefined> {
    await this.ready();
    const t = this.db.tables;
    const rows = await this.db.withClient("reading a blob manifest", opts?.signal, async (client) => {
      const result = await client.query<[string, number, number | null, Buffer | null, number | null]>({
        text: `SELECT b.size, b.chunk_count, c.idx, c.chunk, c.size
               FROM ${t.blobs} b LEFT JOIN ${t.blobChunks} c ON c.blob = b.digest
               WHERE b.digest = $1
               ORDER BY c.idx`,
        values: [asBuffer(digest.bytes)],
        rowMode: "array",
      });
      return result.rows;
    });
    if (rows.length === 0) return undefined;
    const [size, count] = rows[0];
    const listed = rows.filter((row) => row[2] !== null);
    const chunks: ChunkMeta[] = [];
    let total = 0;
    for (const [i, [, , idx, chunk, chunkSize]] of listed.entries()) {
      if (idx !== i) break;
      chunks.push({ digest: Digest.fromBytes(chunk!), size: chunkSize! });
      total += chunkSize!;
    }
    if (chunks.length !== count || listed.length !== count || String(total) !== size) {
      throw new CorruptionError(
        `${this.backend}: the stored chunk list of blob ${digest.hex} does not match its row ` +
          `(${count} chunks of ${size} bytes recorded, ${listed.length} rows found adding up to ${total} bytes)`,
      );
    }
    return chunks;
  }

  /**
   * One statement over both tables for all the digests, which also marks
   * every blob found, and its chunks, as used now (spec §10.2: an upload that
   * skips a blob it was told is there relies on it). See touchBlobsStatement.
   */
  async has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    if (digests.length === 0) return [];
    await this.ready();
    const keys = byteaArray(digests.map((d) => d.bytes));
    const rows = await this.db.withClient("looking up blobs", opts?.signal, async (client) => {
      const result = await client.query<[Buffer]>({
        text: touchBlobsStatement(this.db.tables),
        values: [keys],
        rowMode: "array",
      });
      return result.rows;
    });
    const found = new Set(rows.map(([d]) => d.toString("hex")));
    return digests.map((d) => found.has(d.hex));
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
