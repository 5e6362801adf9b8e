/**
 * The touch (spec §10.2) as SQL: marking stored rows as used now, in an
 * order that cannot deadlock against another touch.
 */
import type { SchemaTables } from "./postgres-schema.js";

/**
 * Marks the rows of `table` whose digests `$1` (a bytea array) holds as used
 * now, and returns their digests. The rows are locked in digest order first:
 * two transactions touching overlapping sets (uploads sharing directories)
 * then wait for each other instead of deadlocking, whatever order the
 * UPDATE's plan would visit them in.
 */
export function touchStatement(table: string): string {
  return `WITH locked AS (
            SELECT digest FROM ${table} WHERE digest = ANY($1::bytea[]) ORDER BY digest FOR UPDATE
          )
          UPDATE ${table} AS o SET used_at = clock_timestamp() FROM locked
          WHERE o.digest = locked.digest
          RETURNING o.digest`;
}

/**
 * Marks the blobs `$1` (a bytea array) names as used now, with their chunks,
 * and yields the digest of each that is stored: as a manifest (a `blobs`
 * row) or as a chunk (a blob of one chunk is that chunk). One statement, so
 * one transaction: a blob and its chunks are marked together (blobs locked
 * before chunks, each in digest order, as touchStatement). A garbage
 * collection skips rows this holds; a row it deleted first is not found
 * here, so its blob is reported missing and uploaded again.
 */
export function touchBlobsStatement(t: SchemaTables): string {
  return `WITH locked_blobs AS (
            SELECT digest FROM ${t.blobs} WHERE digest = ANY($1::bytea[]) ORDER BY digest FOR UPDATE
          ),
          blobs AS (
            UPDATE ${t.blobs} AS b SET used_at = clock_timestamp() FROM locked_blobs
            WHERE b.digest = locked_blobs.digest
            RETURNING b.digest
          ),
          locked_chunks AS (
            SELECT c.digest FROM ${t.chunks} c
            WHERE c.digest IN (SELECT unnest($1::bytea[])
                               UNION
                               SELECT chunk FROM ${t.blobChunks} WHERE blob = ANY($1::bytea[]))
            ORDER BY c.digest
            FOR UPDATE
          ),
          chunks AS (
            UPDATE ${t.chunks} AS c SET used_at = clock_timestamp() FROM locked_chunks
            WHERE c.digest = locked_chunks.digest
            RETURNING c.digest
          )
          SELECT digest FROM blobs
          UNION
          SELECT digest FROM chunks WHERE digest = ANY($1::bytea[])`;
}
