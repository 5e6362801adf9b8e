/**
 * Each directory row's `children` column: the digests of the child
 * directories it names, each once (where it is first named), in list order,
 * concatenated (32 bytes each; empty for a directory without any). Written in
 * the same row as the directory, so no reader sees one without the other;
 * getRecursive reads a whole closure with one recursive query over it
 * (postgres-closure-read.ts). NULL means "not known": a row stored before
 * layout version 3 that the fill has not reached (postgres-children-fill.ts).
 *
 * The column is made from canonical directory bytes that core already
 * checked (an upload, a repair) or that were just re-hashed (the fill), so a
 * small scanner of the protobuf wire format is enough: it reads field 1
 * (DirectoryNode) and, inside it, field 2 (digest), skipping the rest, and
 * never decodes names, files or symlinks.
 */
import type { ClosureEntry } from "@castore-ts/core";

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

/** The `children` column of canonical Directory bytes (see above). */
export function childrenColumn(bytes: Uint8Array): Uint8Array {
  const edges = childEdges(bytes);
  if (edges.length === 1) return edges[0].child;
  const column = new Uint8Array(edges.length * 32);
  edges.forEach((e, i) => column.set(e.child, i * 32));
  return column;
}

/** The canonical bytes of an entry (core's entries carry them joined to the digest). */
export function entryBytes(entry: ClosureEntry): Uint8Array {
  return entry.digestAndBytes ? entry.digestAndBytes.subarray(32) : entry.bytes;
}
