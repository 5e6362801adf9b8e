/**
 * CachedBlobService (spec §6 and §8, `cache://?near=URL&far=URL`): the blob
 * side of the read-through cache, beside CacheDirectoryService.
 *
 * - A read tries `near`. On a miss, a whole-blob read streams from `far`
 *   and is written into `near` as it passes (so memory stays at the near
 *   writer's few chunks), hashed on the way, and checked against the asked
 *   digest at the end: a mismatch ends the stream with CorruptionError and
 *   stores nothing in near. A ranged read on a miss is served from far
 *   alone: filling near would mean reading the whole blob.
 * - `stat` and `has` ask near, then far for what near lacks. They fill nothing.
 * - Writes go to far, the store of record, and to near alongside. A blob is
 *   visible once far's write closed; near's copy is closed after that.
 *
 * near is a cache: when it fails (a write or close refused, a full disk)
 * the read or write goes on from far alone and near is left without the
 * blob, to be filled by a later read. Far's failures are the caller's.
 */
import { Digest } from "./digest.js";
import { CorruptionError } from "./errors.js";
import { createBlake3Hasher } from "./hash.js";
import { openBlobService, registerBlobServiceScheme } from "./blob/registry.js";
import type {
  BlobReadOptions,
  BlobService,
  BlobStat,
  BlobStatOptions,
  BlobWriter,
  BlobWritten,
  OpenWriterOptions,
} from "./blob/service.js";
import { parseCacheUrl } from "./cache.js";
import type { CallOptions } from "./service.js";

export class CachedBlobService implements BlobService {
  constructor(
    readonly near: BlobService,
    readonly far: BlobService,
  ) {}

  async read(digest: Digest, opts: BlobReadOptions = {}): Promise<AsyncIterable<Uint8Array> | undefined> {
    const hit = await this.near.read(digest, opts);
    if (hit) return hit;
    const fromFar = await this.far.read(digest, opts);
    const whole = (opts.offset ?? 0) === 0 && opts.length === undefined;
    if (!fromFar || !whole) return fromFar;
    return this.filling(digest, fromFar, opts.signal);
  }

  /** Yields far's bytes while writing them into near; see the module comment. */
  private async *filling(
    digest: Digest,
    fromFar: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array> {
    const copy = NearCopy.open(this.near, { signal });
    const hasher = createBlake3Hasher();
    let finished = false;
    try {
      for await (const piece of fromFar) {
        hasher.update(piece);
        await copy.write(piece);
        yield piece;
      }
      const got = Digest.fromBytes(hasher.digest());
      if (!got.equals(digest)) {
        throw new CorruptionError(`blob ${digest.hex} read from the far store hashes to ${got.hex}`);
      }
      finished = true;
      await copy.close();
    } finally {
      // An error, a mismatch, or a consumer that stopped early: near keeps nothing.
      if (!finished) await copy.abort();
    }
  }

  async stat(digest: Digest, opts?: BlobStatOptions): Promise<BlobStat | undefined> {
    return (await this.near.stat(digest, opts)) ?? this.far.stat(digest, opts);
  }

  async has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    const answers = await this.near.has(digests, opts);
    const missing = digests.flatMap((_, i) => (answers[i] ? [] : [i]));
    if (missing.length === 0) return answers;
    const fromFar = await this.far.has(
      missing.map((i) => digests[i]),
      opts,
    );
    missing.forEach((i, k) => (answers[i] = fromFar[k]));
    return answers;
  }

  openWriter(opts?: OpenWriterOptions): BlobWriter {
    return new WriteThrough(this.far.openWriter(opts), NearCopy.open(this.near, opts));
  }

  async close(): Promise<void> {
    await Promise.all([this.near.close(), this.far.close()]);
  }
}

/**
 * A writer into near that never fails its caller: the first error aborts
 * it and every later call does nothing (near is a cache; see the module
 * comment).
 */
class NearCopy {
  private failed: boolean;

  private constructor(private readonly writer: BlobWriter | undefined) {
    this.failed = writer === undefined;
  }

  /** A copy into `near`; a near that cannot even open a writer gets none. */
  static open(near: BlobService, opts?: OpenWriterOptions): NearCopy {
    try {
      return new NearCopy(near.openWriter(opts));
    } catch {
      return new NearCopy(undefined);
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.failed) return;
    try {
      await this.writer!.write(bytes);
    } catch {
      await this.abort();
    }
  }

  async close(): Promise<void> {
    if (this.failed) return;
    try {
      await this.writer!.close();
    } catch {
      this.failed = true; // a writer whose close failed stores nothing
    }
  }

  async abort(reason?: unknown): Promise<void> {
    this.failed = true;
    await this.writer?.abort(reason).catch(() => {});
  }
}

/** Writes to far and near side by side; far decides the outcome, near closes only after far did. */
class WriteThrough implements BlobWriter {
  constructor(
    private readonly far: BlobWriter,
    private readonly near: NearCopy,
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    try {
      await Promise.all([this.far.write(bytes), this.near.write(bytes)]);
    } catch (error) {
      await this.near.abort(error);
      throw error;
    }
  }

  async close(): Promise<BlobWritten> {
    let written: BlobWritten;
    try {
      written = await this.far.close();
    } catch (error) {
      await this.near.abort(error);
      throw error;
    }
    await this.near.close();
    return written;
  }

  async abort(reason?: unknown): Promise<void> {
    await Promise.all([this.far.abort(reason), this.near.abort(reason)]);
  }
}

registerBlobServiceScheme("cache", async (url) => {
  const { near, far } = parseCacheUrl(url);
  const nearService = await openBlobService(near);
  try {
    return new CachedBlobService(nearService, await openBlobService(far));
  } catch (e) {
    await nearService.close();
    throw e;
  }
});
