/**
 * MemoryBlobStore: blob chunks and manifests in in-process Maps. Core's
 * ChunkedBlobService chunks, hashes and verifies; this keeps bytes by digest.
 */
import {
  type BlobStore,
  type CallOptions,
  ChunkedBlobService,
  type ChunkedBlobServiceOptions,
  type ChunkMeta,
  type Digest,
  throwIfAborted,
} from "@castore-ts/core";

export class MemoryBlobStore implements BlobStore {
  private readonly chunks = new Map<string, Uint8Array>();
  private readonly manifests = new Map<string, readonly ChunkMeta[]>();

  async putChunk(digest: Digest, bytes: Uint8Array, opts: CallOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    // Kept as given: the BlobStore contract hands the bytes over (ChunkedBlobService passes fresh copies).
    if (!this.chunks.has(digest.hex)) this.chunks.set(digest.hex, bytes);
  }

  async getChunk(digest: Digest, opts: CallOptions = {}): Promise<Uint8Array | undefined> {
    throwIfAborted(opts.signal);
    // A copy: a caller that changes what it got must not change the store.
    return this.chunks.get(digest.hex)?.slice();
  }

  async chunkSize(digest: Digest): Promise<number | undefined> {
    return this.chunks.get(digest.hex)?.length;
  }

  async putManifest(digest: Digest, chunks: readonly ChunkMeta[], opts: CallOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    this.manifests.set(
      digest.hex,
      chunks.map((c) => ({ digest: c.digest, size: c.size })),
    );
  }

  async getManifest(digest: Digest): Promise<readonly ChunkMeta[] | undefined> {
    return this.manifests.get(digest.hex)?.map((c) => ({ digest: c.digest, size: c.size }));
  }

  async has(digests: readonly Digest[]): Promise<boolean[]> {
    return digests.map((d) => this.manifests.has(d.hex) || this.chunks.has(d.hex));
  }

  /** Replaces a stored chunk's bytes, bypassing every check: for corruption tests. */
  corruptChunk(digest: Digest, bytes: Uint8Array): void {
    this.chunks.set(digest.hex, new Uint8Array(bytes));
  }

  /** Chunks and bytes held, for tests and the dedup measure. */
  get stats(): { chunks: number; bytes: number; manifests: number } {
    let bytes = 0;
    for (const c of this.chunks.values()) bytes += c.length;
    return { chunks: this.chunks.size, bytes, manifests: this.manifests.size };
  }

  async close(): Promise<void> {}
}

/** A BlobService in memory: every instance is a new, empty store. */
export class MemoryBlobService extends ChunkedBlobService {
  declare readonly store: MemoryBlobStore;

  constructor(opts: ChunkedBlobServiceOptions = {}) {
    super(new MemoryBlobStore(), opts);
  }
}
