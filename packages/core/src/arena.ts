/**
 * ByteArena: copies of many small byte strings, packed into shared chunks.
 *
 * An upload keeps the canonical bytes of every directory (tens to hundreds of
 * bytes each) until it is committed, and an in-memory store keeps them for
 * good. One buffer per directory means one off-heap allocation per directory
 * for the garbage collector to track; packing them into 256 KiB chunks
 * leaves only a small view object per copy (chunk size: 256 KiB by default). A chunk lives as long as any
 * view into it, so an arena suits bytes that are kept or dropped together.
 */
export class ByteArena {
  private chunk = new Uint8Array(0);
  private used = 0;
  // Larger inputs get a buffer of their own: they would waste the rest of a chunk.
  private readonly ownBufferFrom: number;

  constructor(private readonly chunkSize = 256 * 1024) {
    this.ownBufferFrom = chunkSize / 16;
  }

  /** A copy of `bytes` (a view into a chunk, or a buffer of its own when large). */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n >= this.ownBufferFrom) return bytes.slice();
    if (this.used + n > this.chunk.length) {
      this.chunk = new Uint8Array(this.chunkSize);
      this.used = 0;
    }
    const start = this.used;
    this.chunk.set(bytes, start);
    this.used += n;
    return this.chunk.subarray(start, this.used);
  }
}
