/**
 * S3CollectableStore: what core's InProcessCollector needs of an S3 store
 * (spec §10; README "Garbage collection"). The objects of each kind:
 *
 *   directory   dirs/<hex>              the index object (the directory is visible exactly while it exists)
 *   blob        blobs/<hex>/manifest
 *   chunk       blobs/<hex>/chunk
 *
 * usedAt is the object's LastModified (the listing carries it: no request
 * per object); the clock is the server's (the Date header of a HeadBucket,
 * to the end of its second: see usedAtOf for what one-second times mean).
 * A touch is a COPY of the object onto itself (S3Objects.touch).
 *
 * Deleting a directory deletes its index object. Its bytes also live in
 * closure objects (`closures/<root>`, one per upload whose root had child
 * directories), which index objects of other directories point into. A
 * closure object goes once no index object the collection knows of points
 * into it, its root's index object is gone, and it is itself unused since
 * the cutoff: see ClosurePins. One that a live directory points into stays,
 * with the frames of the deleted directories in it, until that directory is
 * collected too.
 *
 * deleteUnusedSince: a HEAD per object re-checks LastModified, then one
 * DeleteObjects per 1 000. NOT atomic: a touch landing between an object's
 * HEAD and the delete is lost (S3 has no delete conditional on
 * LastModified for general purpose buckets), so collections are not safe
 * beside uploads that rely on stored objects (conformance: gcConcurrent).
 */
import {
  type CollectableStore,
  Digest,
  type DirectoryStore,
  type ObjectKind,
  type StoredObject,
} from "@castore-ts/core";
import { decodeIndex } from "./closure-format.js";
import type { S3BlobStore } from "./s3-blob-store.js";
import { CHUNK_SUFFIX, MANIFEST_SUFFIX } from "./s3-blob-store.js";
import { type S3Objects, mapLimit, usedAtOf } from "./s3-objects.js";

const HEX = /^[0-9a-f]{64}$/;

/**
 * Which closure objects index objects point into, for one collection: every
 * index object the collection reads (the live ones while marking, the
 * garbage ones when ordering them) is recorded, and forgotten when deleted.
 * A closure object with no recorded pointer left may go. An index object
 * written after the collection listed the store points into its own
 * upload's closure object, which that upload wrote or touched first (touch
 * rule (a)), so the usedAt check keeps it.
 *
 * Memory: one entry per directory read that has child directories (live and
 * garbage), and one per closure object listed.
 */
export class ClosurePins {
  private readonly pointsInto = new Map<string, string>();
  private readonly pins = new Map<string, number>();
  /** Closure objects listed and not yet decided on (root hex). */
  private undecided?: Set<string>;
  /** Closure objects this collection deleted, and their bytes. */
  readonly deleted = { objects: 0, bytes: 0 };

  record(directory: string, closureRoot: string): void {
    if (this.pointsInto.has(directory)) return;
    this.pointsInto.set(directory, closureRoot);
    this.pins.set(closureRoot, (this.pins.get(closureRoot) ?? 0) + 1);
  }

  release(directory: string): void {
    const root = this.pointsInto.get(directory);
    if (root === undefined) return;
    this.pointsInto.delete(directory);
    this.pins.set(root, this.pins.get(root)! - 1);
  }

  get listed(): boolean {
    return this.undecided !== undefined;
  }

  setListed(roots: Iterable<string>): void {
    this.undecided = new Set(roots);
  }

  /** Listed closure objects no recorded index object points into, not yet decided on. */
  unpinned(): string[] {
    return [...(this.undecided ?? [])].filter((root) => (this.pins.get(root) ?? 0) === 0);
  }

  decided(root: string): void {
    this.undecided?.delete(root);
  }
}

export class S3CollectableStore implements CollectableStore {
  readonly backend: string;
  /** The directories as core's collector and protectClosure read them: index objects, re-hashed by core. */
  readonly directories: DirectoryStore;

  constructor(
    readonly objects: S3Objects,
    readonly blobs: S3BlobStore,
    /** Given for a collection (a fresh one each); absent for protectClosure, which deletes nothing. */
    private readonly pins?: ClosurePins,
  ) {
    this.backend = objects.backend;
    this.directories = new IndexReader(this, pins);
  }

  indexKey(hex: string): string {
    return this.objects.key(`dirs/${hex}`);
  }

  closureKey(hex: string): string {
    return this.objects.key(`closures/${hex}`);
  }

  private keyOf(kind: ObjectKind, hex: string): string {
    if (kind === "directory") return this.indexKey(hex);
    return this.objects.key(`blobs/${hex}${kind === "blob" ? MANIFEST_SUFFIX : CHUNK_SUFFIX}`);
  }

  /**
   * 1 HeadBucket: the Date header, to the last millisecond of its second.
   * Nothing counts the collection in: a set on this store is not fenced, as a
   * collection here is not safe beside writers anyway (spec §10.3).
   */
  startCollection(): Promise<number> {
    return this.objects.serverNow();
  }

  /** 1 LIST per 1 000 keys: of `dirs/` for directories, of `blobs/` (both kinds' keys) for blobs and for chunks. */
  async *listObjects(kind: ObjectKind, signal?: AbortSignal): AsyncIterable<StoredObject> {
    const prefix = this.objects.key(kind === "directory" ? "dirs/" : "blobs/");
    const suffix = kind === "directory" ? "" : kind === "blob" ? MANIFEST_SUFFIX : CHUNK_SUFFIX;
    for await (const o of this.objects.listObjectsWithTimes(prefix, signal)) {
      const rest = o.key.slice(prefix.length);
      const hex = rest.slice(0, 64);
      // Only castore's own objects: anything else under the prefix is never listed, so never deleted.
      if (rest.length !== 64 + suffix.length || !rest.endsWith(suffix) || !HEX.test(hex)) continue;
      yield { digest: Digest.parse(hex), size: o.size, usedAt: usedAtOf(o.lastModified) };
    }
  }

  /** 1 COPY per directory or chunk; a blob: its chunks, then its manifest (S3BlobStore.touchBlobs). */
  async touch(kind: ObjectKind, digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]> {
    if (kind === "blob") return this.blobs.touchBlobs(digests, { signal });
    return mapLimit(digests, this.objects.concurrency, signal, (d, signal) =>
      this.objects.touch(this.keyOf(kind, d.hex), signal),
    );
  }

  /**
   * 1 HEAD per object (absent: skipped; used since the cutoff: spared), then
   * 1 DeleteObjects for those still unused (a batch of the collector is at
   * most 1 000). After directories: the closure objects no index points
   * into any more (ClosurePins), each re-checked by 2 HEADs (itself, its
   * root's index object), in 1 DeleteObjects.
   */
  async deleteUnusedSince(
    kind: ObjectKind,
    digests: readonly Digest[],
    cutoff: number,
    signal?: AbortSignal,
  ): Promise<StoredObject[]> {
    const stats = await mapLimit(digests, this.objects.concurrency, signal, (d, signal) =>
      this.objects.stat(this.keyOf(kind, d.hex), signal),
    );
    const doomed: StoredObject[] = [];
    stats.forEach((stat, i) => {
      if (stat === undefined) return; // gone already (another collection)
      const usedAt = usedAtOf(stat.lastModified);
      if (usedAt < cutoff) doomed.push({ digest: digests[i], size: stat.size, usedAt });
    });
    // The gap: a touch between the HEAD above and this delete is lost (see the module comment).
    await this.objects.deleteKeys(
      doomed.map((o) => this.keyOf(kind, o.digest.hex)),
      signal,
    );
    if (kind === "directory" && this.pins) {
      for (const o of doomed) this.pins.release(o.digest.hex);
      await this.deleteUnpinnedClosures(this.pins, cutoff, signal);
    }
    return doomed;
  }

  private async deleteUnpinnedClosures(pins: ClosurePins, cutoff: number, signal?: AbortSignal): Promise<void> {
    if (!pins.listed) {
      const prefix = this.objects.key("closures/");
      const roots: string[] = [];
      for await (const o of this.objects.listObjectsWithTimes(prefix, signal)) {
        const hex = o.key.slice(prefix.length);
        if (HEX.test(hex)) roots.push(hex);
      }
      pins.setListed(roots);
    }
    const candidates = pins.unpinned();
    const verdicts = await mapLimit(candidates, this.objects.concurrency, signal, async (root, signal) => {
      const closure = await this.objects.stat(this.closureKey(root), signal);
      if (closure === undefined || usedAtOf(closure.lastModified) >= cutoff) return undefined;
      // Its root's index object is there (one this collection never read): it may point into it. Kept.
      if ((await this.objects.stat(this.indexKey(root), signal)) !== undefined) return undefined;
      return closure.size;
    });
    const doomed = candidates.filter((_, i) => verdicts[i] !== undefined);
    await this.objects.deleteKeys(
      doomed.map((root) => this.closureKey(root)),
      signal,
    );
    for (const root of candidates) pins.decided(root);
    pins.deleted.objects += doomed.length;
    for (const v of verdicts) pins.deleted.bytes += v ?? 0;
  }
}

/**
 * The directories of an S3 store as a DirectoryStore for the collector and
 * protectClosure: getMany reads index objects (1 GET each, `concurrency` at
 * a time), recording where each points (ClosurePins). Only reads: uploads
 * go through S3DirectoryService.
 */
class IndexReader implements DirectoryStore {
  readonly backend: string;

  constructor(
    private readonly store: S3CollectableStore,
    private readonly pins?: ClosurePins,
  ) {
    this.backend = store.backend;
  }

  getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    const objects = this.store.objects;
    return mapLimit(digests, objects.concurrency, signal, async (digest, signal) => {
      const data = await objects.getBytes(this.store.indexKey(digest.hex), signal);
      if (data === undefined) return undefined;
      const record = decodeIndex(digest, data);
      if (record.closure) this.pins?.record(digest.hex, record.closure.hex);
      return record.bytes;
    });
  }

  async putClosure(): Promise<void> {
    throw new Error(`${this.backend}: the garbage collector's view of the directories is read-only`);
  }

  async close(): Promise<void> {}
}
