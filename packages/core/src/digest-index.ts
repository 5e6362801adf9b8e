/**
 * DigestIndex: records found by their 32-byte digest, with no hex string per
 * key. Keying a Map by the 64-character hex of every digest meant building,
 * hashing and keeping one string per directory: a sixth of an upload's time.
 * Here the Map key is 30 bits of the digest (a small integer, so no heap
 * number; BLAKE3 output is uniform) and records that share those bits are
 * chained through a field of their own, compared on all 32 bytes.
 */
import { digestBytesEqual } from "./digest-bytes.js";

/** What a DigestIndex holds: a record that carries its digest and the chain link the index uses. */
export interface DigestIndexed<T> {
  /**
   * The record's 32 digest bytes, then whatever bytes the record keeps (e.g.
   * the directory's canonical bytes): one view, as a view object per field
   * is most of what a record costs.
   */
  readonly digestAndBytes: Uint8Array;
  /** Owned by the index the record is in: a record is in at most one index. */
  nextSamePrefix: T | undefined;
}

/**
 * 30 bits of the digest starting at `digest[0]`: the Map key of a digest
 * index (a small integer: no string, no heap number). Also the size
 * checker's (read-sizes.ts), whose records keep their digest elsewhere.
 */
export function prefixOf(digest: Uint8Array): number {
  return digest[0] | (digest[1] << 8) | (digest[2] << 16) | ((digest[3] & 0x3f) << 24);
}

export class DigestIndex<T extends DigestIndexed<T>> {
  private readonly byPrefix = new Map<number, T>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The record with this digest (32 bytes), if any. */
  get(digest: Uint8Array): T | undefined {
    for (let r = this.byPrefix.get(prefixOf(digest)); r !== undefined; r = r.nextSamePrefix) {
      if (digestBytesEqual(r.digestAndBytes, 0, digest, 0)) return r;
    }
    return undefined;
  }

  /** Adds a record whose digest is not in the index yet (the caller looked it up first). */
  add(record: T): void {
    const prefix = prefixOf(record.digestAndBytes);
    record.nextSamePrefix = this.byPrefix.get(prefix);
    this.byPrefix.set(prefix, record);
    this.count++;
  }

  /** Removes the record with this digest; whether there was one. */
  delete(digest: Uint8Array): boolean {
    const prefix = prefixOf(digest);
    let previous: T | undefined = undefined;
    for (let r = this.byPrefix.get(prefix); r !== undefined; previous = r, r = r.nextSamePrefix) {
      if (!digestBytesEqual(r.digestAndBytes, 0, digest, 0)) continue;
      if (previous) previous.nextSamePrefix = r.nextSamePrefix;
      else if (r.nextSamePrefix) this.byPrefix.set(prefix, r.nextSamePrefix);
      else this.byPrefix.delete(prefix);
      r.nextSamePrefix = undefined;
      this.count--;
      return true;
    }
    return false;
  }

  *values(): IterableIterator<T> {
    for (const head of this.byPrefix.values()) {
      for (let r: T | undefined = head; r !== undefined; r = r.nextSamePrefix) yield r;
    }
  }

  clear(): void {
    this.byPrefix.clear();
    this.count = 0;
  }
}
