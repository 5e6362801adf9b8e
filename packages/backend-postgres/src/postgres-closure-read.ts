/**
 * getRecursive's one statement: the whole closure of a root, read with one
 * recursive query over the directories' `children` column
 * (postgres-children.ts) and streamed back as binary `COPY (…) TO STDOUT`, so
 * the client holds no more than what it has not consumed yet (the socket's
 * backpressure holds the server back), and there are no cursor round trips.
 *
 * The query is breadth first itself, in the same order as core's
 * breadthFirst: PostgreSQL evaluates a recursive query a level at a time,
 * and this one is written so that its plan cannot reorder a level. The
 * recursive step is a nested loop over the previous level in the order it
 * was emitted (the work table keeps insertion order): for each, its
 * `children` split into digests by generate_series, which counts up (list
 * order), and each child's row looked up by its digest (a LATERAL subquery;
 * OFFSET 0 keeps the planner from flattening it into a join it could run as
 * a hash join). UNION (not UNION ALL) drops every row already emitted, in
 * this level or an earlier one, exactly as breadth first's "seen" set does:
 * each directory comes once, diamonds included.
 *
 * Each row is looked up once, in the recursion, and carries its bytes
 * along: the index lookups are most of the statement's time (a profile of
 * the server: b-tree descents and buffer lookups), and a second lookup per
 * row for its bytes, outside the recursion, cost a third more server time
 * (measured: a 1 000-deep chain 4.4 → 2.9 ms of server CPU, a 100 000-
 * directory tree about 25 % less). The price is the server's memory for
 * UNION's set of rows emitted so far, held for as long as the statement
 * runs: it grows with the closure's rows, bytes included (the generated
 * trees' directories average about 170 bytes), where before it held their
 * digests only.
 *
 * A directory named but not stored comes with NULL bytes, so the reader can
 * report it. A row whose children are NULL (not filled in) adds none: the
 * reader notices the directories it still expects.
 */
import { type Digest, hexOf } from "@castore-ts/core";
import type { SchemaTables } from "./postgres-schema.js";

/** One row of a closure read. `bytes` is null when a directory is named but not stored. */
export interface ClosureRow {
  digest: Buffer;
  bytes: Uint8Array | null;
}

/** The COPY statement that streams the closure of `root` (its digest inlined: COPY takes no parameters). */
export function closureCopyStatement(tables: SchemaTables, root: Digest): string {
  const { directories } = tables;
  // Hex made here from the 32 bytes (not the object's own `hex`, which a look-alike could define), so inlining it is safe.
  const hex = hexOf(root.bytes);
  return `COPY (
  WITH RECURSIVE walk (digest, children, bytes) AS (
    SELECT digest, children, bytes FROM ${directories} WHERE digest = decode('${hex}', 'hex')
    UNION
    SELECT c.digest, d.children, d.bytes
    FROM walk w
    CROSS JOIN LATERAL generate_series(0, octet_length(w.children) / 32 - 1) AS i
    CROSS JOIN LATERAL (SELECT substring(w.children FROM i * 32 + 1 FOR 32) AS digest) c
    LEFT JOIN LATERAL (SELECT d.children, d.bytes FROM ${directories} d WHERE d.digest = c.digest OFFSET 0) d ON true
  )
  SELECT digest, bytes FROM walk
) TO STDOUT (FORMAT binary)`;
}

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");

function malformed(why: string): Error {
  return new Error(`malformed closure read (binary COPY): ${why}`);
}

/**
 * Parses binary COPY output of (bytea, bytea) rows, chunk by
 * chunk as the stream delivers them (a row may span chunks). Row fields are
 * views into the chunks.
 */
export class ClosureRowParser {
  private pending: Buffer = Buffer.alloc(0);
  private headerRead = false;
  private ended = false;

  /** The rows completed by `chunk`. */
  push(chunk: Buffer): ClosureRow[] {
    const data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    const rows: ClosureRow[] = [];
    let at = 0;
    if (!this.headerRead) {
      if (data.length < 19) {
        this.pending = data;
        return rows;
      }
      if (!data.subarray(0, 11).equals(SIGNATURE)) throw malformed("no binary COPY header");
      const extension = data.readUInt32BE(15);
      if (data.length < 19 + extension) {
        this.pending = data;
        return rows;
      }
      at = 19 + extension;
      this.headerRead = true;
    }
    for (;;) {
      if (this.ended) {
        if (at < data.length) throw malformed("data after the trailer");
        break;
      }
      const start = at;
      if (at + 2 > data.length) break;
      const fields = data.readInt16BE(at);
      at += 2;
      if (fields === -1) {
        this.ended = true;
        continue;
      }
      if (fields !== 2) throw malformed(`a row of ${fields} fields, expected 2`);
      if (at + 4 + 32 + 4 > data.length) {
        at = start;
        break;
      }
      const digestLength = data.readInt32BE(at);
      if (digestLength !== 32) throw malformed(`a digest of ${digestLength} bytes`);
      at += 4;
      const digest = data.subarray(at, at + 32);
      at += 32;
      // bytes (NULL for a missing directory)
      const bytesLength = data.readInt32BE(at);
      at += 4;
      let bytes: Uint8Array | null = null;
      if (bytesLength >= 0) {
        if (at + bytesLength > data.length) {
          at = start;
          break;
        }
        bytes = data.subarray(at, at + bytesLength);
        at += bytesLength;
      }
      rows.push({ digest, bytes });
    }
    this.pending = data.subarray(at);
    return rows;
  }

  /** Call when the stream ended: it must have ended with the trailer. */
  end(): void {
    if (!this.ended || this.pending.length > 0) throw malformed("the output ended before its trailer");
  }
}

/**
 * Gives `rows` bytes of their own: copies of their bytes packed into one
 * fresh buffer (one allocation per chunk, as core's reads do per batch).
 * Decoded directories are views into these bytes and belong to the caller;
 * the chunks they were parsed from may be slices of Node's shared pool.
 */
export function packRowBytes(rows: ClosureRow[]): ClosureRow[] {
  let total = 0;
  for (const row of rows) if (row.bytes) total += row.bytes.length;
  const packed = new Uint8Array(total);
  let at = 0;
  for (const row of rows) {
    if (!row.bytes) continue;
    packed.set(row.bytes, at);
    row.bytes = packed.subarray(at, at + row.bytes.length);
    at += row.bytes.length;
  }
  return rows;
}
