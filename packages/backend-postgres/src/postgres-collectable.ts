/**
 * The `used_at` side of a PostgreSQL store (spec §10): core's
 * CollectableStore over the directories, blobs and chunks tables, and the
 * SQL that the in-database collector (postgres-collector.ts) shares with it.
 *
 * Times are the server's clock: `clock_timestamp()` when a row is written or
 * touched (the time of the write, not of its transaction's start), and ms
 * since the epoch on the way out. A cutoff comes back in as ms
 * (`to_timestamp(ms / 1000)`), with the microseconds of the server's clock
 * as its fraction: a collection's start in whole ms made an object used in
 * that same millisecond, before the start, count as used since (live), and
 * `collect({ graceMs: 0 })` right after a write deleted nothing.
 *
 * Deletes are conditional and never wait: each takes the row locks of the
 * objects it deletes with SKIP LOCKED, re-checking `used_at < cutoff` on the
 * newest version of each row. A row locked by an upload (which is touching
 * it, spec §10.2) is skipped: spared. An upload that reaches a row after the
 * delete locked it waits for the delete to commit and then finds it gone, so
 * it stores it again (an upload's INSERT … ON CONFLICT, copyMissing's touch),
 * reports it missing (BlobStore.has, touch) or, for a ref's set, refuses
 * (protectClosure).
 */
import { Digest, throwIfAborted, type CollectableStore, type ObjectKind, type StoredObject } from "@castore-ts/core";
import type pg from "pg";
import type { SchemaTables } from "./postgres-schema.js";
import type { PostgresDirectoryStore } from "./postgres-store.js";
import { touchBlobsStatement, touchStatement } from "./postgres-touch.js";
import { byteaArray } from "./postgres-wire.js";

/** Rows per page of listObjects. */
const LIST_PAGE = 4096;

/**
 * Counts a collection in (`collections.started`) and records its start
 * (`last_started_at`, the server's clock), returned in ms since the epoch
 * with the microseconds as the fraction (a float8: pg returns it as a
 * number), in one transaction that waits for every ref being set right now
 * (they hold the row FOR SHARE): their refs are committed before the
 * collection starts and it reads them; a ref set that begins later sees the
 * count change and protects its tree again, after the start (core's
 * fencedSet, postgres-ref-store.ts).
 */
export async function countCollectionIn(
  client: pg.ClientBase,
  tables: SchemaTables,
  session: { discard(why: unknown): void },
): Promise<number> {
  await client.query("BEGIN");
  try {
    const { rows } = await client.query<[number]>({
      text: `UPDATE ${tables.collections} SET started = started + 1, last_started_at = clock_timestamp()
             RETURNING (extract(epoch FROM last_started_at) * 1000)::float8`,
      rowMode: "array",
    });
    await client.query("COMMIT");
    return rows[0][0];
  } catch (error) {
    await client.query("ROLLBACK").catch(session.discard);
    throw error;
  }
}

/** `used_at` of a row as ms since the epoch. */
const USED_AT_MS = `floor(extract(epoch FROM o.used_at) * 1000)::float8`;

/** A cutoff given as ms since the epoch, in the parameter `param` (e.g. "$2"). */
export function cutoffAt(param: string): string {
  return `to_timestamp(${param}::float8 / 1000)`;
}

/** Each kind's table, and its stored size as an expression over the row alias `o`. */
export function kindTable(t: SchemaTables, kind: ObjectKind): { table: string; size: string } {
  switch (kind) {
    case "directory":
      return { table: t.directories, size: "octet_length(o.bytes)" };
    case "chunk":
      return { table: t.chunks, size: "octet_length(o.data)" };
    case "blob":
      // A manifest's stored bytes: its row (digest, size, count: 44 bytes) and a row per chunk (digest, index, size: 40).
      return { table: t.blobs, size: "(44 + 40 * o.chunk_count::bigint)" };
  }
}

/**
 * The CTEs of a conditional delete, ending with `gone (digest, size)`: each
 * object of `kind` whose digest `candidates` (a query of one bytea column)
 * yields, that is still unused since the cutoff in `cutoffParam`, not locked
 * by anyone, and meets `also` (a condition on the row, alias `o`, e.g. "not
 * live"). A blob's manifest goes with its row: both tables in one statement.
 * The caller appends the final SELECT over `gone`.
 */
export function conditionalDelete(
  t: SchemaTables,
  kind: ObjectKind,
  candidates: string,
  cutoffParam: string,
  also = "true",
): string {
  const { table, size } = kindTable(t, kind);
  const unused = `o.used_at < ${cutoffAt(cutoffParam)}`;
  const ctes = [
    // Locked in digest order, skipping rows someone holds (an upload touching them): those are spared.
    `doomed AS (
       SELECT o.digest FROM ${table} o
       WHERE o.digest IN (${candidates}) AND ${unused} AND ${also}
       ORDER BY o.digest
       FOR UPDATE OF o SKIP LOCKED
     )`,
    `gone AS (
       DELETE FROM ${table} o USING doomed
       WHERE o.digest = doomed.digest AND ${unused}
       RETURNING o.digest, ${size}::float8 AS size
     )`,
  ];
  if (kind === "blob") ctes.push(`gone_list AS (DELETE FROM ${t.blobChunks} c USING gone WHERE c.blob = gone.digest)`);
  return `WITH ${ctes.join(",\n")}\n`;
}

/** Core's CollectableStore over a PostgreSQL store (for core's protectClosure, and for tests). */
export class PostgresCollectableStore implements CollectableStore {
  readonly backend: string;

  constructor(readonly db: PostgresDirectoryStore) {
    this.backend = db.backend;
  }

  async startCollection(): Promise<number> {
    await this.db.init();
    return this.db.withClient("counting a collection in", undefined, (client, session) =>
      countCollectionIn(client, this.db.tables, session),
    );
  }

  async *listObjects(kind: ObjectKind, signal?: AbortSignal): AsyncIterable<StoredObject> {
    await this.db.init();
    const { table, size } = kindTable(this.db.tables, kind);
    let after: Buffer | undefined;
    for (;;) {
      throwIfAborted(signal);
      // Keyset pages, each its own short query (as listDigests).
      const page = await this.db.withClient(`listing stored ${kind}s`, signal, async (client) => {
        const columns = `SELECT o.digest, ${size}::float8, ${USED_AT_MS} FROM ${table} o`;
        const result = await client.query<[Buffer, number, number]>({
          // Two texts, so that each page is an index range scan (an OR of both would not be).
          text:
            after === undefined
              ? `${columns} ORDER BY o.digest LIMIT $1`
              : `${columns} WHERE o.digest > $2 ORDER BY o.digest LIMIT $1`,
          values: after === undefined ? [LIST_PAGE] : [LIST_PAGE, after],
          rowMode: "array",
        });
        return result.rows;
      });
      for (const [digest, bytes, usedAt] of page) yield { digest: Digest.fromBytes(digest), size: bytes, usedAt };
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1][0];
    }
  }

  async deleteUnusedSince(
    kind: ObjectKind,
    digests: readonly Digest[],
    cutoff: number,
    signal?: AbortSignal,
  ): Promise<StoredObject[]> {
    if (digests.length === 0) return [];
    await this.db.init();
    const rows = await this.db.withClient(`deleting unused ${kind}s`, signal, async (client) => {
      const result = await client.query<[Buffer, number]>({
        text:
          conditionalDelete(this.db.tables, kind, `SELECT unnest($1::bytea[])`, "$2") + `SELECT digest, size FROM gone`,
        values: [byteaArray(digests.map((d) => d.bytes)), cutoff],
        rowMode: "array",
      });
      return result.rows;
    });
    // Only deleted objects are reported, so their usedAt is not read back: it was before the cutoff.
    return rows.map(([digest, size]) => ({ digest: Digest.fromBytes(digest), size, usedAt: cutoff }));
  }

  async touch(kind: ObjectKind, digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]> {
    if (digests.length === 0) return [];
    await this.db.init();
    const t = this.db.tables;
    const text = kind === "blob" ? touchBlobsStatement(t) : touchStatement(kindTable(t, kind).table);
    const rows = await this.db.withClient(`marking ${kind}s used`, signal, async (client) => {
      const result = await client.query<[Buffer]>({
        text,
        values: [byteaArray(digests.map((d) => d.bytes))],
        rowMode: "array",
      });
      return result.rows;
    });
    const found = new Set(rows.map(([d]) => d.toString("hex")));
    return digests.map((d) => found.has(d.hex));
  }
}
