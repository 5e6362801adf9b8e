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
  Digest,
  monotonicNow,
  type StoredObject,
  throwIfAborted,
} from "@castore-ts/core";

interface StoredChunk {
  bytes: Uint8Array;
  usedAt: number;
}

interface StoredManifest {
  chunks: readonly ChunkMeta[];
  usedAt: number;
}

export class MemoryBlobStore implements BlobStore {
  private readonly chunks = new Map<string, StoredChunk>();
  private readonly manifests = new Map<string, StoredManifest>();

  async putChunk(digest: Digest, bytes: Uint8Array, opts: CallOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    const stored = this.chunks.get(digest.hex);
    // Storing it again is a use (spec §10.2); kept as given: the BlobStore contract hands the bytes over.
    if (stored) stored.usedAt = monotonicNow();
    else this.chunks.set(digest.hex, { bytes, usedAt: monotonicNow() });
  }

  async getChunk(digest: Digest, opts: CallOptions = {}): Promise<Uint8Array | undefined> {
    throwIfAborted(opts.signal);
    // A copy: a caller that changes what it got must not change the store.
    return this.chunks.get(digest.hex)?.bytes.slice();
  }

  async chunkSize(digest: Digest): Promise<number | undefined> {
    return this.chunks.get(digest.hex)?.bytes.length;
  }

  async putManifest(digest: Digest, chunks: readonly ChunkMeta[], opts: CallOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    this.manifests.set(digest.hex, {
      chunks: chunks.map((c) => ({ digest: c.digest, size: c.size })),
      usedAt: monotonicNow(),
    });
  }

  async getManifest(digest: Digest): Promise<readonly ChunkMeta[] | undefined> {
    return this.manifests.get(digest.hex)?.chunks.map((c) => ({ digest: c.digest, size: c.size }));
  }

  /** Which are stored; each one found counts as used (spec §10.2: an uploader that finds it will not send it). */
  async has(digests: readonly Digest[]): Promise<boolean[]> {
    return this.touch("blob", digests);
  }

  /** Marks stored blobs (with their chunks) or chunks used now; which are stored. */
  touch(kind: "blob" | "chunk", digests: readonly Digest[]): boolean[] {
    const now = monotonicNow();
    return digests.map((d) => {
      const manifest = kind === "blob" ? this.manifests.get(d.hex) : undefined;
      for (const c of manifest?.chunks ?? []) {
        const chunk = this.chunks.get(c.digest.hex);
        if (chunk) chunk.usedAt = now;
      }
      if (manifest) manifest.usedAt = now;
      const chunk = this.chunks.get(d.hex);
      if (chunk) chunk.usedAt = now;
      return manifest !== undefined || chunk !== undefined;
    });
  }

  /** Every stored manifest or chunk, with its size and when it was last used (for the collector). */
  *storedObjects(kind: "blob" | "chunk"): Iterable<StoredObject> {
    if (kind === "blob") {
      for (const [hex, m] of [...this.manifests])
        yield { digest: Digest.parse(hex), size: 40 * m.chunks.length, usedAt: m.usedAt };
    } else {
      for (const [hex, c] of [...this.chunks])
        yield { digest: Digest.parse(hex), size: c.bytes.length, usedAt: c.usedAt };
    }
  }

  /** Deletes each manifest or chunk still unused since `cutoff`; those deleted. */
  deleteUnusedSince(kind: "blob" | "chunk", digests: readonly Digest[], cutoff: number): StoredObject[] {
    const deleted: StoredObject[] = [];
    for (const digest of digests) {
      if (kind === "blob") {
        const m = this.manifests.get(digest.hex);
        if (!m || m.usedAt >= cutoff) continue;
        this.manifests.delete(digest.hex);
        deleted.push({ digest, size: 40 * m.chunks.length, usedAt: m.usedAt });
      } else {
        const c = this.chunks.get(digest.hex);
        if (!c || c.usedAt >= cutoff) continue;
        this.chunks.delete(digest.hex);
        deleted.push({ digest, size: c.bytes.length, usedAt: c.usedAt });
      }
    }
    return deleted;
  }

  /** Replaces a stored chunk's bytes, bypassing every check: for corruption tests. */
  corruptChunk(digest: Digest, bytes: Uint8Array): void {
    this.chunks.set(digest.hex, { bytes: new Uint8Array(bytes), usedAt: monotonicNow() });
  }

  /** Chunks and bytes held, for tests and the dedup measure. */
  get stats(): { chunks: number; bytes: number; manifests: number } {
    let bytes = 0;
    for (const c of this.chunks.values()) bytes += c.bytes.length;
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
