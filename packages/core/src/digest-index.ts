/**
 * DigestIndex: records found by their 32-byte digest, with no hex string per
 * key. Keying a Map by the 64-character hex of every digest meant building,
 * hashing and keeping one string per directory: a sixth of an upload's time.
 * Here the Map key is 30 bits of the digest (a small integer, so no heap
 * number; BLAKE3 output is uniform) and records that share those bits are
 * chained through a field of their own, compared on all 32 bytes.
 */

/** What a DigestIndex holds: a record that carries its digest and the chain link the index uses. */
export interface DigestIndexed<T> {
  readonly digestBytes: Uint8Array;
  /** Owned by the index the record is in: a record is in at most one index. */
  nextSamePrefix: T | undefined;
}

function prefixOf(digest: Uint8Array): number {
  return digest[0] | (digest[1] << 8) | (digest[2] << 16) | ((digest[3] & 0x3f) << 24);
}

function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
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
      if (sameDigest(r.digestBytes, digest)) return r;
    }
    return undefined;
  }

  /** Adds a record whose digest is not in the index yet (the caller looked it up first). */
  add(record: T): void {
    const prefix = prefixOf(record.digestBytes);
    record.nextSamePrefix = this.byPrefix.get(prefix);
    this.byPrefix.set(prefix, record);
    this.count++;
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
