/**
 * The edges table's rows: for each stored directory, one row per distinct
 * child directory it refers to — (parent digest, child digest, idx), idx
 * being the position in the parent's `directories` list where the child is
 * first named. getRecursive reads a whole closure with one recursive query
 * over these rows (postgres-closure-read.ts); idx lets that query order each
 * level as breadth first does.
 *
 * Rows are made from canonical directory bytes that core already checked
 * (an upload, a repair) or that were just re-hashed (the fill of an existing
 * database), so a small scanner of the protobuf wire format is enough: it
 * reads field 1 (DirectoryNode) and, inside it, field 2 (digest), skipping
 * the rest, and never decodes names, files or symlinks.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ClosureEntry } from "@castore-ts/core";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { COPY_CHUNK_BYTES } from "./postgres-wire.js";

/** pg_type OID of int4. */
const INT4_OID = 23;

/** Edges of many parents, as three parallel columns (views into the parents' bytes). */
export interface EdgeColumns {
  parents: Uint8Array[];
  children: Uint8Array[];
  indexes: number[];
}

function malformed(why: string): Error {
  return new Error(`cannot list the child directories of canonical directory bytes: ${why}`);
}

/** A digest's bytes as a string key (no copy of the bytes first). */
function keyOf(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString("latin1");
}

/** A varint of at most 32 bits at `at`: [value, position after it]. */
function varint32(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let shift = 1;
  for (let i = 0; i < 5; i++) {
    if (at >= bytes.length) throw malformed("truncated varint");
    const b = bytes[at++];
    value += (b & 0x7f) * shift;
    if (b < 0x80) return [value, at];
    shift *= 128;
  }
  throw malformed("varint longer than 32 bits");
}

/** Skips a varint of up to 64 bits at `at`; returns the position after it. */
function skipVarint(bytes: Uint8Array, at: number): number {
  for (let i = 0; i < 10; i++) {
    if (at >= bytes.length) throw malformed("truncated varint");
    if (bytes[at++] < 0x80) return at;
  }
  throw malformed("varint longer than 64 bits");
}

/**
 * The digests of the child directories named in canonical Directory bytes,
 * in list order, each once (the first time it is named), with the position
 * of that first naming. Views into `bytes`.
 */
export function childEdges(bytes: Uint8Array): { child: Uint8Array; idx: number }[] {
  const out: { child: Uint8Array; idx: number }[] = [];
  let seen: Set<string> | undefined;
  let at = 0;
  // Canonical encoding writes fields in number order: every DirectoryNode (field 1,
  // wire type 2: tag 0x0a) comes first, so the scan ends at the first other tag.
  for (let idx = 0; at < bytes.length && bytes[at] === 0x0a; idx++) {
    let length: number;
    [length, at] = varint32(bytes, at + 1);
    const end = at + length;
    if (end > bytes.length) throw malformed("a DirectoryNode runs past the end");
    let digest: Uint8Array | undefined;
    while (at < end) {
      const tag = bytes[at++];
      if (tag === 0x0a || tag === 0x12) {
        let n: number;
        [n, at] = varint32(bytes, at);
        if (tag === 0x12) digest = bytes.subarray(at, at + n);
        at += n;
      } else if (tag === 0x18) {
        at = skipVarint(bytes, at);
      } else {
        throw malformed(`unexpected tag ${tag} in a DirectoryNode`);
      }
    }
    if (at !== end) throw malformed("a DirectoryNode field runs past its node");
    if (digest?.length !== 32) throw malformed("a DirectoryNode without a 32-byte digest");
    if (out.length > 0) {
      // A directory may name the same child under several names: one edge, at its first position.
      seen ??= new Set(out.map((e) => keyOf(e.child)));
      const key = keyOf(digest);
      if (seen.has(key)) continue;
      seen.add(key);
    }
    out.push({ child: digest, idx });
  }
  return out;
}

/** The canonical bytes of an entry (core's entries carry them joined to the digest). */
function entryBytes(entry: ClosureEntry): Uint8Array {
  return entry.digestAndBytes ? entry.digestAndBytes.subarray(32) : entry.bytes;
}

/** The digest bytes of an entry, without making a Digest object where core's entry has them joined. */
function entryDigest(entry: ClosureEntry): Uint8Array {
  return entry.digestAndBytes ? entry.digestAndBytes.subarray(0, 32) : entry.digest.bytes;
}

/** Every edge of `entries`, as columns for `unnest($1::bytea[], $2::bytea[], $3::int4[])`. */
export function edgeColumns(entries: readonly ClosureEntry[]): EdgeColumns {
  const columns: EdgeColumns = { parents: [], children: [], indexes: [] };
  for (const entry of entries) {
    const edges = childEdges(entryBytes(entry));
    if (edges.length === 0) continue;
    const parent = entryDigest(entry);
    for (const { child, idx } of edges) {
      columns.parents.push(parent);
      columns.children.push(child);
      columns.indexes.push(idx);
    }
  }
  return columns;
}

/** An `int4[]` parameter in PostgreSQL's binary array format (see byteaArray). */
export function int4Array(items: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(20 + items.length * 8);
  let at = out.writeInt32BE(1, 0); // dimensions
  at = out.writeInt32BE(0, at); // no NULLs
  at = out.writeInt32BE(INT4_OID, at);
  at = out.writeInt32BE(items.length, at);
  at = out.writeInt32BE(1, at); // lower bound
  for (const item of items) {
    at = out.writeInt32BE(4, at);
    at = out.writeInt32BE(item, at);
  }
  return out;
}

/** Bytes of one (parent, child, idx) row in binary COPY: field count, two 32-byte fields, one int4. */
const EDGE_ROW_BYTES = 2 + 4 + 32 + 4 + 32 + 4 + 4;

/**
 * Binary COPY data of the edges of `entries` — (parent, child, idx) rows,
 * with header and trailer — in chunks of about 256 KiB; nothing when no
 * entry has a child directory.
 */
export function* edgeCopyChunks(entries: readonly ClosureEntry[]): Generator<Buffer> {
  const header = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)]);
  let chunk: Buffer | undefined;
  let at = 0;
  for (const entry of entries) {
    const edges = childEdges(entryBytes(entry));
    if (edges.length === 0) continue;
    const parent = entryDigest(entry);
    for (const { child, idx } of edges) {
      if (!chunk) {
        chunk = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
        at = header.copy(chunk, 0);
      } else if (at + EDGE_ROW_BYTES > chunk.length) {
        yield chunk.subarray(0, at);
        chunk = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
        at = 0;
      }
      at = chunk.writeInt16BE(3, at);
      at = chunk.writeInt32BE(32, at);
      chunk.set(parent, at);
      at = chunk.writeInt32BE(32, at + 32);
      chunk.set(child, at);
      at = chunk.writeInt32BE(4, at + 32);
      at = chunk.writeInt32BE(idx, at);
    }
  }
  if (!chunk) return;
  if (at + 2 > chunk.length) {
    yield chunk.subarray(0, at);
    chunk = Buffer.allocUnsafe(2);
    at = 0;
  }
  at = chunk.writeInt16BE(-1, at);
  yield chunk.subarray(0, at);
}

/**
 * Binary COPY of the edges of `entries` into `table` (parent, child, idx), on
 * the caller's connection and inside its transaction; no statement at all when
 * no entry has a child directory.
 */
export async function copyEdges(client: pg.ClientBase, table: string, entries: readonly ClosureEntry[]): Promise<void> {
  const chunks = edgeCopyChunks(entries);
  const first = chunks.next();
  if (first.done) return;
  const copy = client.query(copyFrom(`COPY ${table} (parent, child, idx) FROM STDIN (FORMAT binary)`));
  await pipeline(
    Readable.from(
      (function* () {
        yield first.value;
        yield* chunks;
      })(),
      { objectMode: false },
    ),
    copy,
  );
}
