/**
 * ByteArena: copies of many small byte strings, packed into shared chunks.
 *
 * An upload keeps the canonical bytes of every directory (tens to hundreds of
 * bytes each) until it is committed, and an in-memory store keeps them for
 * good. One buffer per directory means one off-heap allocation per directory
 * for the garbage collector to track; packing them into 256 KiB chunks
 * leaves only a small view object per copy. A chunk lives as long as any
 * view into it, so an arena suits bytes that are kept or dropped together.
 */
const CHUNK_SIZE = 256 * 1024;
// Larger inputs get a buffer of their own: they would waste the rest of a chunk.
const OWN_BUFFER_FROM = CHUNK_SIZE / 16;

export class ByteArena {
  private chunk = new Uint8Array(0);
  private used = 0;

  /** A copy of `bytes` (a view into a chunk, or a buffer of its own when large). */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n >= OWN_BUFFER_FROM) return bytes.slice();
    if (this.used + n > this.chunk.length) {
      this.chunk = new Uint8Array(CHUNK_SIZE);
      this.used = 0;
    }
    const start = this.used;
    this.chunk.set(bytes, start);
    this.used += n;
    return this.chunk.subarray(start, this.used);
  }
}
