/**
 * S3BlobStore: castore blob chunks and manifests in an S3 bucket, under the
 * same prefix (and options) as the directories. Core's ChunkedBlobService
 * does the chunking, hashing and verification; this module only stores.
 * Layout (README "Blobs"):
 *
 *   blobs/<hex>/chunk      a chunk's bytes, one object per chunk
 *   blobs/<hex>/manifest   a blob's chunk list (blob-manifest.ts), PUT last
 *
 * Both objects of a digest share the key prefix `blobs/<hex>/`, so one
 * listing request answers "chunk or manifest?" for a digest, and one listing
 * page answers it for every digest whose keys fall inside the page: `has`
 * of N digests costs at most N requests, and fewer when digests are dense
 * in the store's key range (see `has`).
 */
import type { BlobStore, CallOptions, ChunkMeta, Digest } from "@castore-ts/core";
import { decodeManifest, encodeManifest } from "./blob-manifest.js";
import { type S3ConnectionOptions, S3Objects, connectionOptionsFromUrl } from "./s3-objects.js";

/** Keys per listing page: S3's maximum. */
export const LIST_PAGE_KEYS = 1000;

export interface S3BlobStoreTuning {
  /** Keys per listing page of `has` (default and most 1 000); smaller only to test page boundaries. */
  listPageKeys?: number;
}

const CHUNK_SUFFIX = "/chunk";
const MANIFEST_SUFFIX = "/manifest";

export class S3BlobStore implements BlobStore {
  /** The bucket, prefix and client. */
  readonly objects: S3Objects;
  private readonly listPageKeys: number;

  constructor(opts: S3ConnectionOptions | S3Objects, tuning: S3BlobStoreTuning = {}) {
    this.objects = opts instanceof S3Objects ? opts : new S3Objects(opts);
    this.listPageKeys = tuning.listPageKeys ?? LIST_PAGE_KEYS;
    if (!Number.isInteger(this.listPageKeys) || this.listPageKeys < 2 || this.listPageKeys > LIST_PAGE_KEYS) {
      throw new RangeError(`listPageKeys must be an integer from 2 to ${LIST_PAGE_KEYS}, got ${tuning.listPageKeys}`);
    }
  }

  /** Opens the store an `s3:` URL names (the same URL as for directories; see parseS3Url). */
  static fromUrl(url: URL | string): S3BlobStore {
    return new S3BlobStore(connectionOptionsFromUrl(url));
  }

  /** Where the keys of every digest begin: `<prefix>blobs/`. */
  private get blobsPrefix(): string {
    return this.objects.key("blobs/");
  }

  chunkKey(digest: Digest): string {
    return `${this.blobsPrefix}${digest.hex}${CHUNK_SUFFIX}`;
  }

  manifestKey(digest: Digest): string {
    return `${this.blobsPrefix}${digest.hex}${MANIFEST_SUFFIX}`;
  }

  /** 1 PUT (If-None-Match: * where honoured: an existing chunk is left as it is). */
  async putChunk(digest: Digest, bytes: Uint8Array, opts?: CallOptions): Promise<void> {
    await this.objects.putIfAbsent(this.chunkKey(digest), bytes, opts?.signal);
  }

  /** 1 GET. */
  getChunk(digest: Digest, opts?: CallOptions): Promise<Uint8Array | undefined> {
    return this.objects.getBytes(this.chunkKey(digest), opts?.signal);
  }

  /** 1 HEAD. */
  chunkSize(digest: Digest, opts?: CallOptions): Promise<number | undefined> {
    return this.objects.head(this.chunkKey(digest), opts?.signal);
  }

  /** 1 PUT; the service calls it only once every chunk is stored, which is what makes the blob visible. */
  async putManifest(digest: Digest, chunks: readonly ChunkMeta[], opts?: CallOptions): Promise<void> {
    await this.objects.putIfAbsent(this.manifestKey(digest), encodeManifest(chunks), opts?.signal);
  }

  /** 1 GET. */
  async getManifest(digest: Digest, opts?: CallOptions): Promise<readonly ChunkMeta[] | undefined> {
    const data = await this.objects.getBytes(this.manifestKey(digest), opts?.signal);
    return data === undefined ? undefined : decodeManifest(digest, data);
  }

  /**
   * Which digests have a chunk or a manifest, by listing. The distinct
   * digests, sorted, are cut into g = min(concurrency, N) runs walked in
   * parallel. A run lists full pages (1 000 keys) starting just before its
   * first unanswered digest; a page answers every digest of the run whose
   * keys sort inside it; the run's last digest alone is asked with a listing
   * of its own prefix `blobs/<hex>/`. Each request answers at least one
   * digest, and full pages of one run never overlap, so the cost is at most
   * min(N, ⌊K/1000⌋ + 2g) listing requests for K objects under
   * `blobs/`, in about that divided by g round trips.
   */
  async has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    const wanted = [...new Set(digests.map((d) => d.hex))].sort();
    const present = new Set<string>();
    const runs = Math.min(this.objects.concurrency, wanted.length);
    await Promise.all(
      Array.from({ length: runs }, (_, r) =>
        this.walk(
          wanted.slice(Math.floor((r * wanted.length) / runs), Math.floor(((r + 1) * wanted.length) / runs)),
          present,
          opts?.signal,
        ),
      ),
    );
    return digests.map((d) => present.has(d.hex));
  }

  /** Answers `run` (sorted hex digests) into `present`: see `has`. */
  private async walk(run: string[], present: Set<string>, signal?: AbortSignal): Promise<void> {
    const base = this.blobsPrefix;
    const isOurs = (key: string) =>
      key.length === base.length + 64 + CHUNK_SUFFIX.length
        ? key.endsWith(CHUNK_SUFFIX)
        : key.length === base.length + 64 + MANIFEST_SUFFIX.length && key.endsWith(MANIFEST_SUFFIX);
    let lastKey = "";
    for (let i = 0; i < run.length;) {
      const hex = run[i];
      if (i === run.length - 1) {
        // One digest left: list its own two keys, not a page of others'.
        const page = await this.objects.listAfter({ prefix: `${base}${hex}/`, maxKeys: 2 }, signal);
        if (page.keys.some(isOurs)) present.add(hex);
        return;
      }
      // `blobs/<hex>` sorts just before `blobs/<hex>/chunk`; a page of foreign keys is stepped over by lastKey.
      const from = `${base}${hex}`;
      const page = await this.objects.listAfter(
        { prefix: base, marker: from > lastKey ? from : lastKey, maxKeys: this.listPageKeys },
        signal,
      );
      for (const key of page.keys) if (isOurs(key)) present.add(key.slice(base.length, base.length + 64));
      if (page.keys.length > 0) lastKey = page.keys[page.keys.length - 1];
      // A digest is answered once present, or once its last possible key is inside what was listed.
      while (
        i < run.length &&
        (present.has(run[i]) || !page.truncated || `${base}${run[i]}${MANIFEST_SUFFIX}` <= lastKey)
      ) {
        i++;
      }
    }
  }

  async close(): Promise<void> {
    await this.objects.close();
  }
}
