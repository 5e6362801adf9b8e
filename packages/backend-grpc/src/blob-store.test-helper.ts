/**
 * Test fixtures: a small Map-backed BlobService (fixed-size chunks, each
 * readable by its digest), standing in for core's ChunkedBlobService so the
 * gRPC layer is tested on its own. It verifies nothing on read, so a test
 * can make the server send corrupted bytes; it counts what its reads yield.
 */
import {
  type BlobReadOptions,
  type BlobService,
  type BlobStat,
  type BlobStatOptions,
  type BlobWriter,
  type CallOptions,
  type ChunkMeta,
  Digest,
  EMPTY_BLOB_DIGEST,
} from "@castore-ts/core";

export class MapBlobService implements BlobService {
  readonly chunks = new Map<string, Uint8Array>();
  readonly manifests = new Map<string, ChunkMeta[]>();
  /** Bytes the read streams have yielded so far. */
  yielded = 0;
  /** A read stream is suspended at a yield, waiting for the server to pull. */
  parked = false;
  /** Read streams that ended (finished, failed or returned early). */
  readsEnded = 0;
  /** Whether stat answers chunk lists (a tvix server may not). */
  sendChunkLists = true;
  closed = false;

  constructor(
    /** Size of every chunk but a blob's last. */
    readonly chunkSize = 64 * 1024,
    /** Size of the pieces a read yields. */
    readonly pieceSize = 16 * 1024,
  ) {}

  openWriter(opts: CallOptions = {}): BlobWriter {
    const pieces: Uint8Array[] = [];
    let state: "open" | "closed" | "aborted" = "open";
    return {
      write: async (bytes) => {
        if (state !== "open") throw new Error(`writer is ${state}`);
        if (opts.signal?.aborted) throw opts.signal.reason;
        pieces.push(new Uint8Array(bytes)); // a copy, also of a Buffer (whose slice() is a view)
      },
      close: async () => {
        if (state !== "open") throw new Error(`writer is ${state}`);
        state = "closed";
        const all = Buffer.concat(pieces);
        const list: ChunkMeta[] = [];
        for (let at = 0; at < all.length; at += this.chunkSize) {
          const chunk = new Uint8Array(all.subarray(at, Math.min(all.length, at + this.chunkSize)));
          const digest = Digest.of(chunk);
          this.chunks.set(digest.hex, chunk);
          list.push({ digest, size: chunk.length });
        }
        const digest = Digest.of(all);
        this.manifests.set(digest.hex, list);
        return { digest, size: all.length };
      },
      abort: async () => {
        if (state === "open") state = "aborted";
      },
    };
  }

  /** Replaces a stored chunk's bytes (the store now holds other bytes under its digest). */
  corruptChunk(digest: Digest, bytes: Uint8Array): void {
    this.chunks.set(digest.hex, bytes);
  }

  private chunkListOf(digest: Digest): ChunkMeta[] | undefined {
    // The empty blob exists in every store.
    if (digest.equals(EMPTY_BLOB_DIGEST)) return [];
    const manifest = this.manifests.get(digest.hex);
    if (manifest) return manifest;
    const chunk = this.chunks.get(digest.hex);
    return chunk ? [{ digest, size: chunk.length }] : undefined;
  }

  async read(digest: Digest, opts: BlobReadOptions = {}): Promise<AsyncIterable<Uint8Array> | undefined> {
    const list = this.chunkListOf(digest);
    if (!list) return undefined;
    const offset = opts.offset ?? 0;
    const end = offset + (opts.length ?? Infinity);
    return this.stream(list, offset, end, opts.signal);
  }

  private async *stream(
    list: readonly ChunkMeta[],
    offset: number,
    end: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    try {
      let at = 0;
      for (const meta of list) {
        const chunk = this.chunks.get(meta.digest.hex)!;
        for (let p = 0; p < chunk.length; p += this.pieceSize) {
          const from = Math.max(p, offset - at);
          const to = Math.min(p + this.pieceSize, chunk.length, end - at);
          if (from >= to) continue;
          signal?.throwIfAborted();
          this.yielded += to - from;
          this.parked = true;
          yield chunk.subarray(from, to);
          this.parked = false;
        }
        at += chunk.length;
      }
    } finally {
      this.parked = false;
      this.readsEnded++;
    }
  }

  async stat(digest: Digest, opts: BlobStatOptions = {}): Promise<BlobStat | undefined> {
    const list = this.chunkListOf(digest);
    if (!list) return undefined;
    const size = list.reduce((n, c) => n + c.size, 0);
    return opts.chunks && this.sendChunkLists ? { size, chunks: list } : { size };
  }

  async has(digests: readonly Digest[]): Promise<boolean[]> {
    return digests.map((d) => this.chunkListOf(d) !== undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Deterministic pseudo-random bytes (xorshift), so that chunks differ. */
export function testBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
