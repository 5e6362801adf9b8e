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
import { type S3ConnectionOptions, S3Objects, connectionOptionsFromUrl, mapLimit } from "./s3-objects.js";

/** Keys per listing page: S3's maximum. */
export const LIST_PAGE_KEYS = 1000;

export interface S3BlobStoreTuning {
  /** Keys per listing page of `has` (default and most 1 000); smaller only to test page boundaries. */
  listPageKeys?: number;
}

/** Chunk COPYs in flight per blob touched (touchBlobs); blobs are touched concurrency / 8 at a time. */
export const S3_TOUCH_CHUNKS_PER_BLOB = 8;

export const CHUNK_SUFFIX = "/chunk";
export const MANIFEST_SUFFIX = "/manifest";

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

  /**
   * 1 PUT (If-None-Match: * where honoured: an existing chunk is left as it
   * is, and touched instead: 1 COPY more, touch rule (b) of spec §10.2).
   */
  async putChunk(digest: Digest, bytes: Uint8Array, opts?: CallOptions): Promise<void> {
    await this.objects.putOrTouch(this.chunkKey(digest), bytes, opts?.signal);
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
    // Touch rule (c): a manifest already there is touched (1 COPY more where the server answers 412).
    await this.objects.putOrTouch(this.manifestKey(digest), encodeManifest(chunks), opts?.signal);
  }

  /** 1 GET. */
  async getManifest(digest: Digest, opts?: CallOptions): Promise<readonly ChunkMeta[] | undefined> {
    const data = await this.objects.getBytes(this.manifestKey(digest), opts?.signal);
    return data === undefined ? undefined : decodeManifest(digest, data);
  }

  /**
   * Which digests have a chunk or a manifest, by listing (README "Blobs").
   * One digest: 1 listing of its prefix `blobs/<hex>/`. N > 1 distinct
   * digests, sorted: first a probe page of up to 1 000 keys from just before
   * the smallest; it answers every digest whose keys fall inside it, and its
   * key range tells how densely the store is filled. For the M digests left,
   * P = how many more pages would list the key range they span. If P < M,
   * listing is cheaper: the M digests are cut into g = min(concurrency,
   * ⌈P/4⌉) runs listed in parallel, page after page, each page answering
   * every digest of its run inside it (at most P + 2g requests). Otherwise
   * each digest is asked by its own prefix, `concurrency` at a time (M
   * requests). Every request answers at least one digest: never more than N
   * requests; about 1 + min(M, 1.5 P) in a few round trips.
   *
   * Then every digest found is touched (touchBlobs: touch rule (d) of spec
   * §10.2): a caller that skips writing what `has` says is stored relies on
   * it staying, so a garbage collection must see it as used now. Per
   * distinct digest found: a blob 1 GET + its k chunks + 1 COPYs, a chunk
   * alone 1 GET (404) + 1 COPY.
   */
  async has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    const found = await this.listed(digests, opts?.signal);
    const unique = new Map<string, Digest>();
    digests.forEach((d, i) => found[i] && unique.set(d.hex, d));
    // The answer stays the listing's (a manifest or a chunk is stored); the touch is what a collection sees.
    await this.touchBlobs([...unique.values()], opts);
    return found;
  }

  /**
   * Marks blobs as used now, chunks before the manifest that names them (a
   * collection deletes manifests before chunks, so it cannot take a chunk of
   * a blob it spares): 1 GET of the manifest, 1 COPY per chunk, 1 COPY of the
   * manifest. A digest without a manifest is a chunk (or absent): 1 GET (404)
   * and 1 COPY. Says which are stored (as a manifest or a chunk).
   */
  async touchBlobs(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    const limit = Math.max(1, Math.floor(this.objects.concurrency / S3_TOUCH_CHUNKS_PER_BLOB));
    return mapLimit(digests, limit, opts?.signal, async (digest, signal) => {
      const chunks = await this.getManifest(digest, { signal });
      if (chunks === undefined) return this.objects.touch(this.chunkKey(digest), signal);
      const alive = await mapLimit(chunks, S3_TOUCH_CHUNKS_PER_BLOB, signal, (c, signal) =>
        this.objects.touch(this.chunkKey(c.digest), signal),
      );
      // A chunk gone: the blob is damaged (or being collected); it is not touched, and not reported stored.
      if (alive.includes(false)) return false;
      return this.objects.touch(this.manifestKey(digest), signal);
    });
  }

  /** Which digests have a chunk or a manifest, by listing alone (see `has`). */
  private async listed(digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]> {
    const wanted = [...new Set(digests.map((d) => d.hex))].sort();
    const present = new Set<string>();
    if (wanted.length === 1) await this.askAlone(wanted[0], present, signal);
    else if (wanted.length > 1) {
      const probe = await this.listPage(wanted[0], "", signal);
      const rest = wanted.filter((hex) => !probe.answers(hex, present));
      if (rest.length > 0) {
        const pages = probe.pagesToCover(rest[rest.length - 1]);
        if (pages < rest.length) {
          const runs = Math.min(this.objects.concurrency, Math.ceil(pages / 4), rest.length);
          await Promise.all(
            Array.from({ length: runs }, (_, r) =>
              this.walk(
                rest.slice(Math.floor((r * rest.length) / runs), Math.floor(((r + 1) * rest.length) / runs)),
                probe.lastKey,
                present,
                signal,
              ),
            ),
          );
        } else {
          let next = 0;
          const worker = async () => {
            while (next < rest.length) await this.askAlone(rest[next++], present, signal);
          };
          await Promise.all(Array.from({ length: Math.min(this.objects.concurrency, rest.length) }, worker));
        }
      }
    }
    return digests.map((d) => present.has(d.hex));
  }

  /** 1 listing of the prefix `blobs/<hex>/` (2 keys at most). */
  private async askAlone(hex: string, present: Set<string>, signal?: AbortSignal): Promise<void> {
    const base = this.blobsPrefix;
    const page = await this.objects.listAfter({ prefix: `${base}${hex}/`, maxKeys: 2 }, signal);
    if (page.keys.some((key) => this.digestOfKey(key) === hex)) present.add(hex);
  }

  /** Answers `run` (sorted hex digests) into `present` page by page: see `has`. */
  private async walk(run: string[], after: string, present: Set<string>, signal?: AbortSignal): Promise<void> {
    let lastKey = after;
    for (let i = 0; i < run.length;) {
      if (i === run.length - 1) return this.askAlone(run[i], present, signal); // one left: no page of others' keys
      const page = await this.listPage(run[i], lastKey, signal);
      lastKey = page.lastKey;
      while (i < run.length && page.answers(run[i], present)) i++;
    }
  }

  /** One page of keys under `blobs/` from just before `hex` (or after `lastKey`, if that is further). */
  private async listPage(hex: string, lastKey: string, signal?: AbortSignal): Promise<ListedPage> {
    const from = `${this.blobsPrefix}${hex}`; // sorts just before `blobs/<hex>/chunk`
    const marker = from > lastKey ? from : lastKey; // a page of foreign keys is stepped over
    const page = await this.objects.listAfter({ prefix: this.blobsPrefix, marker, maxKeys: this.listPageKeys }, signal);
    return new ListedPage(this.blobsPrefix, marker, page.keys, page.truncated, (key) => this.digestOfKey(key));
  }

  /** The hex digest a castore key under `blobs/` belongs to, or undefined for a foreign key. */
  private digestOfKey(key: string): string | undefined {
    const base = this.blobsPrefix;
    const rest = key.slice(base.length + 64);
    if (!key.startsWith(base) || (rest !== CHUNK_SUFFIX && rest !== MANIFEST_SUFFIX)) return undefined;
    const hex = key.slice(base.length, base.length + 64);
    return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
  }

  async close(): Promise<void> {
    await this.objects.close();
  }
}

/** One listing page of `has`: which digests it answers, and how far it reached. */
class ListedPage {
  readonly lastKey: string;
  private readonly found = new Set<string>();

  constructor(
    private readonly base: string,
    private readonly marker: string,
    keys: string[],
    private readonly truncated: boolean,
    digestOfKey: (key: string) => string | undefined,
  ) {
    this.lastKey = keys.length > 0 ? keys[keys.length - 1] : marker;
    for (const key of keys) {
      const hex = digestOfKey(key);
      if (hex) this.found.add(hex);
    }
  }

  /**
   * Whether this page settles `hex` (adding it to `present` when listed): it
   * does when listed, when the listing ended, or when the last key of `hex`
   * (its manifest) sorts inside the page.
   */
  answers(hex: string, present: Set<string>): boolean {
    if (this.found.has(hex)) {
      present.add(hex);
      return true;
    }
    return !this.truncated || `${this.base}${hex}${MANIFEST_SUFFIX}` <= this.lastKey;
  }

  /**
   * About how many more pages like this one list the keys up to `hex`: the
   * key range still to go over the range this page covered, measured on the
   * first 48 bits of the digests (uniformly spread, being hashes).
   */
  pagesToCover(hex: string): number {
    const at = (key: string) => {
      const h = key.slice(this.base.length, this.base.length + 12);
      return /^[0-9a-f]{12}$/.test(h) ? parseInt(h, 16) : 0;
    };
    const covered = Math.max(1, at(this.lastKey) - at(this.marker));
    return Math.max(0, parseInt(hex.slice(0, 12), 16) - at(this.lastKey)) / covered;
  }
}
