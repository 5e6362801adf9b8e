/**
 * The binary formats the store sends PostgreSQL: `bytea[]` parameters and
 * binary COPY data of (digest, bytes, children) rows. One place for each framing, used
 * by the close-time upload (putClosure) and the streaming one alike.
 */
import { AbortError, type ClosureEntry } from "@castore-ts/core";
import { childrenColumn } from "./postgres-children.js";

/** pg_type OID of bytea. */
const BYTEA_OID = 17;
/** Bytes per chunk written to a COPY stream. */
export const COPY_CHUNK_BYTES = 256 * 1024;
/** Binary COPY signature, flags and header extension length. */
const COPY_HEADER = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)]);
/** Binary COPY end of data: a tuple field count of -1. */
export const COPY_TRAILER = Buffer.from([0xff, 0xff]);

/**
 * A `bytea[]` parameter in PostgreSQL's binary array format (what array_recv
 * reads): `pg` sends a Buffer parameter as binary, and `$n::bytea[]` tells the
 * server its type. Raw bytes both ways; pg's default would hex-encode every
 * element into a text array literal, twice the size and far slower to build
 * and parse.
 */
export function byteaArray(items: readonly Uint8Array[]): Buffer {
  let size = 20;
  for (const item of items) size += 4 + item.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.writeInt32BE(1, 0); // dimensions
  at = out.writeInt32BE(0, at); // no NULLs
  at = out.writeInt32BE(BYTEA_OID, at); // element type
  at = out.writeInt32BE(items.length, at); // length of the dimension
  at = out.writeInt32BE(1, at); // lower bound
  for (const item of items) {
    at = out.writeInt32BE(item.length, at);
    out.set(item, at);
    at += item.length;
  }
  return out;
}

export interface CopyFraming {
  /** Start with the COPY header (the first piece of a COPY's data). */
  header: boolean;
  /** End with the trailer (the last piece). */
  trailer: boolean;
  /** Checked between chunks. */
  signal?: AbortSignal;
}

/**
 * Binary COPY data of (digest, bytes, children) rows (children: see
 * postgres-children.ts) in chunks of about 256 KiB: a whole COPY (header and
 * trailer), or one piece of a COPY that is streamed in batches.
 */
export function* binaryCopyChunks(entries: readonly ClosureEntry[], framing: CopyFraming): Generator<Buffer> {
  let chunk = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  let at = framing.header ? COPY_HEADER.copy(chunk, 0) : 0;
  for (const entry of entries) {
    // Core's entries carry digest and bytes in one view: reading `digest` and `bytes` instead
    // makes a Digest and views per row, a good part of the framing's time.
    const joined = entry.digestAndBytes;
    const length = joined ? joined.length - 32 : entry.bytes.length;
    const children = childrenColumn(joined ? joined.subarray(32) : entry.bytes);
    const need = 2 + 4 + 32 + 4 + length + 4 + children.length;
    if (at + need > chunk.length) {
      if (at > 0) yield chunk.subarray(0, at);
      if (framing.signal?.aborted) throw new AbortError("upload aborted", { cause: framing.signal.reason });
      chunk = Buffer.allocUnsafe(Math.max(COPY_CHUNK_BYTES, need + 2));
      at = 0;
    }
    at = chunk.writeInt16BE(3, at);
    at = chunk.writeInt32BE(32, at);
    if (joined) {
      // The row is digest, int32 length, bytes: copy digest+bytes 4 bytes on, so the bytes land
      // in place, then move the digest back over the gap and write the length after it.
      chunk.set(joined, at + 4);
      chunk.copyWithin(at, at + 4, at + 36);
      at = chunk.writeInt32BE(length, at + 32) + length;
    } else {
      chunk.set(entry.digest.bytes, at);
      at += 32;
      at = chunk.writeInt32BE(length, at);
      chunk.set(entry.bytes, at);
      at += length;
    }
    at = chunk.writeInt32BE(children.length, at);
    chunk.set(children, at);
    at += children.length;
  }
  if (framing.trailer) {
    if (at + COPY_TRAILER.length > chunk.length) {
      yield chunk.subarray(0, at);
      chunk = Buffer.allocUnsafe(COPY_TRAILER.length);
      at = 0;
    }
    at += COPY_TRAILER.copy(chunk, at);
  }
  if (at > 0) yield chunk.subarray(0, at);
}

/** The binary COPY signature alone (without flags and header extension length). */
const COPY_SIGNATURE = COPY_HEADER.subarray(0, 11);

/**
 * The one field of the at most one row in the output of a binary `COPY (SELECT
 * <one non-null column> …) TO STDOUT`, or undefined when there is no row. The
 * value is a view of `data`. Output of any other shape is an Error (the caller
 * reports it as the store's failure).
 */
export function singleFieldOfBinaryCopy(data: Buffer): Buffer | undefined {
  const malformed = (why: string) => new Error(`malformed binary COPY output: ${why}`);
  if (data.length < 21 || !data.subarray(0, 11).equals(COPY_SIGNATURE)) throw malformed("no binary COPY header");
  let at = 15; // signature, flags
  at += 4 + data.readUInt32BE(at); // header extension
  if (at + 2 > data.length) throw malformed("truncated");
  const fields = data.readInt16BE(at);
  at += 2;
  if (fields === -1) return undefined; // the trailer: no row
  if (fields !== 1) throw malformed(`a row of ${fields} fields, expected 1`);
  const length = data.readInt32BE(at);
  at += 4;
  if (length < 0 || at + length + 2 > data.length) throw malformed("a NULL or truncated field");
  const value = data.subarray(at, at + length);
  if (data.readInt16BE(at + length) !== -1) throw malformed("more than one row");
  return value;
}
