/**
 * ByteArena: copies of many small byte strings, packed into shared chunks.
 *
 * An upload keeps the canonical bytes of every directory (tens to hundreds of
 * bytes each) until it is committed, and an in-memory store keeps them for
 * good. One buffer per directory means one off-heap allocation per directory
 * for the garbage collector to track; packing them into chunks leaves only a
 * small view object per copy. A chunk lives as long as any view into it, so
 * an arena suits bytes that are kept or dropped together.
 *
 * Chunks start small (4 KiB) and double up to `chunkSize` (256 KiB by
 * default): most uploads are a few directories, and a full-size first chunk
 * for each of them was measured to be most of a busy server's allocations.
 */
export class ByteArena {
  private chunk = new Uint8Array(0);
  private used = 0;
  private nextChunkSize: number;
  // Larger inputs get a buffer of their own: they would waste the rest of a chunk.
  private readonly ownBufferFrom: number;

  constructor(private readonly chunkSize = 256 * 1024) {
    this.ownBufferFrom = chunkSize / 16;
    this.nextChunkSize = Math.min(4096, chunkSize);
  }

  /** A copy of `bytes` (a view into a chunk, or a buffer of its own when large). */
  copy(bytes: Uint8Array): Uint8Array {
    const out = this.take(bytes.length);
    out.set(bytes);
    return out;
  }

  /** A copy of `head` followed by `tail`, contiguous: one view for both (e.g. a digest and its bytes). */
  copyJoined(head: Uint8Array, tail: Uint8Array): Uint8Array {
    const out = this.take(head.length + tail.length);
    out.set(head);
    out.set(tail, head.length);
    return out;
  }

  /**
   * copyJoined without a view: the copy starts at the returned offset in
   * `lastChunk` (for a caller that records where bytes are rather than
   * holding a view of them: PackedRecords.addIn).
   */
  copyJoinedIn(head: Uint8Array, tail: Uint8Array): number {
    const at = this.room(head.length + tail.length);
    this.lastChunk.set(head, at);
    this.lastChunk.set(tail, at + head.length);
    return at;
  }

  /** The chunk (or own buffer) the last room was taken in. */
  lastChunk = new Uint8Array(0);

  /** `n` bytes of room: a view into a chunk, or a buffer of its own when large. */
  private take(n: number): Uint8Array {
    const at = this.room(n);
    return this.lastChunk.subarray(at, at + n);
  }

  /** `n` bytes of room in `lastChunk` (a chunk, or a buffer of its own when large): where they start. */
  private room(n: number): number {
    if (n >= this.ownBufferFrom) {
      this.lastChunk = new Uint8Array(n);
      return 0;
    }
    if (this.used + n > this.chunk.length) this.newChunk(n);
    const at = this.used;
    this.used += n;
    this.lastChunk = this.chunk;
    return at;
  }

  private newChunk(atLeast: number): void {
    let size = this.nextChunkSize;
    while (size < atLeast) size *= 2;
    this.chunk = new Uint8Array(size);
    this.used = 0;
    this.nextChunkSize = Math.min(size * 2, this.chunkSize);
  }
}
