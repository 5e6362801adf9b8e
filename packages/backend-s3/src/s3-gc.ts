/**
 * Garbage collection and protected refs for an S3 store (spec §10): core's
 * InProcessCollector over S3CollectableStore, with the store's refs as
 * roots; refs whose `set` runs core's protectClosure. README "Garbage
 * collection" has the request counts and what is not safe.
 */
import {
  type CallOptions,
  type CollectOptions,
  type CollectReport,
  Digest,
  type GarbageCollector,
  InProcessCollector,
  type OpenedRefStore,
  RefService,
  protectClosure,
} from "@castore-ts/core";
import { S3BlobStore } from "./s3-blob-store.js";
import { s3BlobService } from "./s3-blobs.js";
import { ClosurePins, S3CollectableStore } from "./s3-collectable.js";
import { type S3ConnectionOptions, S3Objects, connectionOptionsFromUrl } from "./s3-objects.js";
import { S3RefStore } from "./s3-refs.js";
import { S3DirectoryService } from "./s3-service.js";

/** What the last collection did with closure objects (not in CollectReport: they are not directories). */
export interface ClosureObjectsDeleted {
  objects: number;
  bytes: number;
}

export class S3GarbageCollector implements GarbageCollector {
  readonly backend: string;
  readonly objects: S3Objects;
  private readonly blobs: S3BlobStore;
  private readonly refs: S3RefStore;
  /** Closure objects the last collection deleted. */
  lastClosures: ClosureObjectsDeleted = { objects: 0, bytes: 0 };

  constructor(opts: S3ConnectionOptions | S3Objects) {
    this.objects = opts instanceof S3Objects ? opts : new S3Objects(opts);
    this.backend = this.objects.backend;
    this.blobs = new S3BlobStore(this.objects);
    this.refs = new S3RefStore(this.objects);
  }

  static fromUrl(url: URL | string): S3GarbageCollector {
    return new S3GarbageCollector(connectionOptionsFromUrl(url));
  }

  /** One collection: fresh per-collection state (which closure objects are pointed into). */
  async collect(opts?: CollectOptions): Promise<CollectReport> {
    const pins = new ClosurePins();
    const store = new S3CollectableStore(this.objects, this.blobs, pins);
    const collector = new InProcessCollector({
      objects: store,
      directories: store.directories,
      blobs: this.blobs,
      refs: this.refs,
    });
    try {
      return await collector.collect(opts);
    } finally {
      this.lastClosures = { ...pins.deleted };
    }
  }

  async close(): Promise<void> {
    await this.objects.close();
  }
}

/** core's protectClosure over the S3 store on `objects`: checks a tree is wholly stored and touches all of it. */
export function s3Protect(objects: S3Objects): (root: Digest, opts?: CallOptions) => Promise<void> {
  const store = new S3CollectableStore(objects, new S3BlobStore(objects));
  return (root, opts) =>
    protectClosure({ objects: store, directories: store.directories, blobs: store.blobs }, root, opts);
}

/**
 * The refs of the store an `s3:` URL names, with the `protect` a RefService
 * over them must use (what the s3: ref opener returns: openRefService and
 * castore's ref, serve and import pass it on). Closing the ref store closes
 * the client protect reads through.
 */
export function openS3RefStore(url: URL | string): OpenedRefStore {
  const objects = new S3Objects(connectionOptionsFromUrl(url));
  return { store: new S3RefStore(objects), protect: s3Protect(objects) };
}

/**
 * A RefService over the S3 store at `url`, with its directories and blobs,
 * whose `set` runs core's protectClosure (spec §10.2) instead of the plain
 * closure check. close() closes all of it.
 */
export function openS3RefService(url: URL | string): RefService {
  const objects = new S3Objects(connectionOptionsFromUrl(url));
  return s3RefService(objects, S3DirectoryService.fromUrl(url), { closeAll: true });
}

/** A RefService with `protect` over an S3 store's objects and its directory service (tests, embedding). */
export function s3RefService(
  objects: S3Objects,
  directories: S3DirectoryService,
  opts: { closeAll?: boolean } = {},
): RefService {
  return new RefService(new S3RefStore(objects), directories, s3BlobService(new S3BlobStore(objects)), {
    closeAll: opts.closeAll,
    protect: s3Protect(objects),
  });
}
