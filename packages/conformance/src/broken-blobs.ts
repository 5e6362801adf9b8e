/**
 * TEST ONLY: a correct blob store in a Map, and blob services each with one
 * realistic bug, to prove the blob.* scenarios fail them. See broken-backends.ts.
 */
import {
  type BlobReadOptions,
  type BlobStore,
  type BlobWriter,
  type CallOptions,
  ChunkedBlobService,
  type ChunkMeta,
  type OpenWriterOptions,
  Digest,
  throwIfAborted,
} from "@castore-ts/core";

/** Why the suite's own targets skip blob.large: a GiB per target; the backends' suites run it. */
export const LARGE_BLOBS_ELSEWHERE = "1 GiB per target is run by the real backends' suites, not by these test doubles";

/** Chunks and manifests in Maps: correct on its own. */
export class MapBlobStore implements BlobStore {
  readonly chunks = new Map<string, Uint8Array>();
  readonly manifests = new Map<string, readonly ChunkMeta[]>();

  async putChunk(digest: Digest, bytes: Uint8Array, opts: CallOptions = {}): Promise<void> {
    throwIfAborted(opts.signal);
    if (!this.chunks.has(digest.hex)) this.chunks.set(digest.hex, new Uint8Array(bytes));
  }
  async getChunk(digest: Digest): Promise<Uint8Array | undefined> {
    return this.chunks.get(digest.hex)?.slice();
  }
  async putManifest(digest: Digest, chunks: readonly ChunkMeta[]): Promise<void> {
    this.manifests.set(digest.hex, [...chunks]);
  }
  async getManifest(digest: Digest): Promise<readonly ChunkMeta[] | undefined> {
    return this.manifests.get(digest.hex);
  }
  async has(digests: readonly Digest[]): Promise<boolean[]> {
    return digests.map((d) => this.manifests.has(d.hex) || this.chunks.has(d.hex));
  }
  corruptChunk(digest: Digest, bytes: Uint8Array): void {
    this.chunks.set(digest.hex, new Uint8Array(bytes));
  }
  async close(): Promise<void> {}
}

/** The correct blob layer every broken backend has unless its bug is in blobs. */
export class MapBlobService extends ChunkedBlobService {
  declare readonly store: MapBlobStore;
  constructor(store: MapBlobStore = new MapBlobStore()) {
    super(store);
  }
}

/** Reads flip one bit in the second piece they yield: returns other bytes than were stored. */
export class OtherBytesBlobService extends MapBlobService {
  override async read(digest: Digest, opts?: BlobReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    const stream = await super.read(digest, opts);
    if (!stream) return undefined;
    return (async function* () {
      let n = 0;
      for await (const part of stream) {
        const out = new Uint8Array(part);
        if (n++ === 1 && out.length > 0) out[0] ^= 1;
        yield out;
      }
    })();
  }
}

/** Reads end cleanly after the first piece: a truncated blob with no error. */
export class TruncatingBlobService extends MapBlobService {
  override async read(digest: Digest, opts?: BlobReadOptions): Promise<AsyncIterable<Uint8Array> | undefined> {
    const stream = await super.read(digest, opts);
    if (!stream) return undefined;
    return (async function* () {
      for await (const part of stream) {
        yield part;
        return;
      }
    })();
  }
}

/** Stores a blob under the digest of all but its last write(): accepts an upload under a wrong digest. */
export class WrongDigestBlobService extends MapBlobService {
  override openWriter(opts?: OpenWriterOptions): BlobWriter {
    const inner = super.openWriter(opts);
    const store = this.store;
    let previous: Uint8Array[] = [];
    let last: Uint8Array | undefined;
    return {
      async write(bytes) {
        if (last) previous.push(last);
        last = new Uint8Array(bytes);
        await inner.write(bytes);
      },
      async close() {
        const written = await inner.close();
        if (previous.length === 0) return written;
        const wrong = Digest.of(Buffer.concat(previous));
        const chunks = await store.getManifest(written.digest);
        if (chunks) await store.putManifest(wrong, chunks);
        store.manifests.delete(written.digest.hex);
        previous = [];
        return { digest: wrong, size: written.size };
      },
      abort: (reason) => inner.abort(reason),
    };
  }
}

/**
 * Write-behind: chunk puts are acknowledged at once and land only when the
 * next write starts, so a blob is visible before all its chunks are stored,
 * and a blob of one chunk (no manifest: the chunk is the blob) is missing.
 */
export class WriteBehindBlobStore extends MapBlobStore {
  private pending: [Digest, Uint8Array][] = [];
  override async putChunk(digest: Digest, bytes: Uint8Array): Promise<void> {
    this.pending.push([digest, new Uint8Array(bytes)]);
  }
  /** Lands the chunks of earlier writes. */
  flush(): void {
    for (const [d, b] of this.pending) void super.putChunk(d, b);
    this.pending = [];
  }
}

export class WriteBehindBlobService extends MapBlobService {
  declare readonly store: WriteBehindBlobStore;
  constructor() {
    super(new WriteBehindBlobStore());
  }
  override openWriter(opts?: OpenWriterOptions): BlobWriter {
    this.store.flush();
    return super.openWriter(opts);
  }
}
